"""l1-sparse unlearning: fine-tuning on retain with an L1 penalty on all weights, decayed linearly.

Sources: OPTML-Group/Unlearn-Sparse (Jia et al., NeurIPS 2023, "Model sparsity can simplify machine
unlearning") `README.MD`, `arg_parser.py`, `unlearn/FT.py`, `unlearn/FT_prune.py`; gamma from
JingWu321/Scissorhands `Classification/sh/main_0.2_cifar10.sh` (CIFAR-10 settings).

Constants: loss = CE + gamma_e x ||theta||_1 (L1 over all parameters concatenated), gamma_e =
gamma x (1 - e/E) for epoch e = 0..E-1 (no L1-free epochs), gamma = 1e-4; SGD(lr 0.01, momentum
0.9, weight decay 5e-4); batch 256; E = 10 epochs; train mode; the MultiStepLR milestones of the
source (91, 136) never trigger within 10 epochs, so no schedule.

Adaptations: none needed (architecture-free). Data order from fresh_seed().
"""

import torch
from torch import nn

from harness.toolkit import rebatch, train_epoch

NAME = "l1-sparse"
REFERENCE = "OPTML-Group/Unlearn-Sparse unlearn/FT.py, FT_prune.py; Jia et al., NeurIPS 2023"

GAMMA = 1e-4
EPOCHS = 10
BATCH_SIZE = 256


def unlearning(net, retain, forget, val):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    batches = rebatch(retain, BATCH_SIZE)
    net.train()
    for epoch in range(EPOCHS):
        gamma = GAMMA * (1 - epoch / EPOCHS)

        def loss_fn(model, inputs, targets, gamma=gamma):
            l1 = sum(p.abs().sum() for p in model.parameters())
            return nn.functional.cross_entropy(model(inputs), targets) + gamma * l1

        train_epoch(net, batches, optimizer, loss_fn)
    return net.eval()
