"""A model with a tensor of the wrong shape: an eleventh, "forgotten", class on the head.

The head becomes ``Linear(hidden, classes + 1)``, its first rows copied from the original, so
``fc.weight`` and ``fc.bias`` have other shapes than the task's architecture.
"""

import torch
from torch import nn


def unlearning(net, retain, forget, val):
    old = net.fc
    head = nn.Linear(old.in_features, old.out_features + 1)
    with torch.no_grad():
        head.weight[: old.out_features] = old.weight
        head.bias[: old.out_features] = old.bias
    net.fc = head
    return net
