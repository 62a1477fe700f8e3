"""Fine-tuning on the retain set: the competition starting kit's baseline.

Constants from the starting kit (unlearning-challenge/starting-kit, unlearning-CIFAR10.ipynb):
5 epochs of cross-entropy on the retain loader, SGD(lr 0.1, momentum 0.9, weight decay 5e-4),
cosine annealing with T_max = 5 stepped per epoch; the forget and validation sets are unused. The
model trains in train mode and is returned in eval mode. The constants are keyword arguments with
the kit's values as defaults; ``harness tune`` searches SEARCH_SPACE.
"""

import torch
from torch import nn

NAME = "Fine-tune (starting kit)"
REFERENCE = "unlearning-challenge/starting-kit, unlearning-CIFAR10.ipynb"

SEARCH_SPACE = {
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
}


def unlearning(net, retain, forget, val, lr=0.1, epochs=5, weight_decay=5e-4):
    device = next(net.parameters()).device
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    net.train()
    for _ in range(epochs):
        for inputs, targets in retain:
            inputs, targets = inputs.to(device), targets.to(device)
            loss = nn.functional.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    return net.eval()
