"""Gradient ascent (NegGrad / GA) on the forget set.

Constants from OPTML-Group/Unlearn-Sparse (README and arg_parser.py defaults for GA): loss =
-cross-entropy on the forget set only, SGD(lr 1e-4, momentum 0.9, weight decay 5e-4), batch 256,
5 epochs. Train mode while training, eval mode on return.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader

NAME = "Gradient ascent"
REFERENCE = "OPTML-Group/Unlearn-Sparse (GA defaults); Jia et al., NeurIPS 2023"

EPOCHS = 5
BATCH_SIZE = 256


def unlearning(net, retain, forget, val):
    device = next(net.parameters()).device
    loader = DataLoader(forget.dataset, batch_size=BATCH_SIZE, shuffle=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    net.train()
    for _ in range(EPOCHS):
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            loss = -nn.functional.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()
