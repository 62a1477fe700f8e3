"""l1-sparse unlearning: fine-tuning on retain with an L1 penalty on all weights, decayed linearly.

Sources: OPTML-Group/Unlearn-Sparse (Jia et al., NeurIPS 2023, "Model sparsity can simplify machine
unlearning") `README.MD`, `arg_parser.py`, `unlearn/FT.py`, `unlearn/FT_prune.py`; gamma from
JingWu321/Scissorhands `Classification/sh/main_0.2_cifar10.sh` (CIFAR-10 settings).

Constants: loss = CE + gamma_e x ||theta||_1 (L1 over all parameters concatenated), gamma_e =
gamma x (1 - e/E) for epoch e = 0..E-1 (no L1-free epochs), gamma = 1e-4; SGD(lr 0.01, momentum
0.9, weight decay 5e-4); batch 256; E = 10 epochs; train mode; the MultiStepLR milestones of the
source (91, 136) never trigger within 10 epochs, so no schedule.

Adaptations: none needed (architecture-free). Data order from fresh_seed().

The constants are keyword arguments of `unlearning` with the values above as defaults;
SEARCH_SPACE declares what `harness tune` may change.
"""

import torch
from torch import nn

from harness.toolkit import rebatch, train_epoch

NAME = "l1-sparse"
REFERENCE = "OPTML-Group/Unlearn-Sparse unlearn/FT.py, FT_prune.py; Jia et al., NeurIPS 2023"

SEARCH_SPACE = {
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "gamma": {"low": 1e-6, "high": 1e-2, "log": True},
}


def unlearning(net, retain, forget, val, lr=0.01, epochs=10, gamma=1e-4, batch_size=256):
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    batches = rebatch(retain, batch_size)
    net.train()
    for epoch in range(epochs):
        weight = gamma * (1 - epoch / epochs)

        def loss_fn(model, inputs, targets, weight=weight):
            l1 = sum(p.abs().sum() for p in model.parameters())
            return nn.functional.cross_entropy(model(inputs), targets) + weight * l1

        train_epoch(net, batches, optimizer, loss_fn)
    return net.eval()
