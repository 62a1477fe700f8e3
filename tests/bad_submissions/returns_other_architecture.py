from torch import nn


def unlearning(net, retain, forget, val):
    return nn.Linear(64, 10)
