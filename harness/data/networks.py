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
        a pool of small MLPs (used by ``harness.reference.ensemble``; checked against
        ``forward``)."""
        x = x.flatten(2)
        hidden = torch.baddbmm(params["fc1.bias"].unsqueeze(1), x, params["fc1.weight"].mT)
        return torch.baddbmm(params["fc.bias"].unsqueeze(1), hidden.relu(), params["fc.weight"].mT)


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem, no pretrained weights), as in the starting kit."""
    from torchvision.models import resnet18 as tv_resnet18

    return tv_resnet18(weights=None, num_classes=num_classes)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout at any width (``width`` channels in the first stage, then
    2x, 4x, 8x), built with torchvision's own ``BasicBlock``. At width 64 it is torchvision's
    ``resnet18`` module for module: the same parameter names and shapes, and, from the same seed,
    the same initial weights (checked in the tests). Smaller widths give ResNet-18-shaped models
    that train on a CPU in seconds (the ensemble's tests and the CPU benchmarks)."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(BasicBlock, width, 1)
        self.layer2 = self._stage(BasicBlock, 2 * width, 2)
        self.layer3 = self._stage(BasicBlock, 4 * width, 2)
        self.layer4 = self._stage(BasicBlock, 8 * width, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)
        for module in self.modules():  # torchvision's initialisation, in its order
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _stage(self, block: type[nn.Module], planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        first = block(self.inplanes, planes, stride, downsample)
        self.inplanes = planes
        return nn.Sequential(first, block(planes, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
