"""Model factories for the tasks. Heads are named ``fc`` everywhere, as in torchvision's ResNet,
so that methods that treat the classifier head specially find it on every task's model."""

from __future__ import annotations

import torch
from torch import nn


class DigitsMLP(nn.Module):
    """The default task's small model: flatten, one hidden ReLU layer, linear head ``fc``."""

    def __init__(self, in_features: int = 64, hidden: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc1(x.flatten(1))))

    @staticmethod
    def stacked_forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """M models at once, each on its own batch: parameters stacked on a leading dimension,
        inputs [M, B, ...] -> logits [M, B, C]. Batched matrix products, the fastest way to train
        a pool of small MLPs (used by ``harness.ensemble``; checked against ``forward``)."""
        x = x.flatten(2)
        hidden = torch.baddbmm(params["fc1.bias"].unsqueeze(1), x, params["fc1.weight"].mT)
        return torch.baddbmm(params["fc.bias"].unsqueeze(1), hidden.relu(), params["fc.weight"].mT)


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem, no pretrained weights), as in the starting kit."""
    from torchvision.models import resnet18 as tv_resnet18

    return tv_resnet18(weights=None, num_classes=num_classes)
