"""Gradient ascent (NegGrad / GA) on the forget set.

Constants from OPTML-Group/Unlearn-Sparse (README and arg_parser.py defaults for GA): loss =
-cross-entropy on the forget set only, SGD(lr 1e-4, momentum 0.9, weight decay 5e-4), batch 256,
5 epochs. Train mode while training, eval mode on return. The constants are keyword arguments with
those values as defaults; SEARCH_SPACE declares what `harness tune` may change.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader

NAME = "Gradient ascent"
REFERENCE = "OPTML-Group/Unlearn-Sparse (GA defaults); Jia et al., NeurIPS 2023"

SEARCH_SPACE = {
    "lr": {"low": 1e-5, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "batch_size": {"low": 16, "high": 256, "log": True},
}


def unlearning(net, retain, forget, val, lr=1e-4, epochs=5, batch_size=256, weight_decay=5e-4):
    device = next(net.parameters()).device
    loader = DataLoader(forget.dataset, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay
    )
    net.train()
    for _ in range(epochs):
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            loss = -nn.functional.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()
