"""3rd place, NeurIPS 2023 Machine Unlearning (Seif Eddine Achour): "vision confusion" (weight
noise on the stem) and weighted-CE reconstitution on retain.

Sources: Kaggle write-up KW/459334
(https://www.kaggle.com/competitions/neurips-2023-machine-unlearning/discussion/459334);
the organizers' slides (slides 17-19); xcadet/deepunlearn
`munl/unlearning/kgltop3.py`. Author's notebook:
https://www.kaggle.com/code/seifachour12/unlearning-solution-4th-rank.

Constants. Confuse: the stem's weight w <- w + N(0, 0.6^2) (absolute, mean-preserving).
Reconstitute: 4 epochs of CE on retain, batch 64, train mode, SGD(lr 0.0007, momentum 0.9, weight
decay 5e-4), CosineAnnealingLR(T_max 4) stepped per epoch. Slight confusion: after the third
epoch, before the last, the same noise with sigma 0.005. The forget and validation sets are unused
(as the author says).

Adaptations.
- Scope of the noise: the stem only, harness.toolkit.stem(net): ResNet-18's `conv1` (what the
  DU port perturbs, its only top-level child named "conv"), and on the digits MLP the first hidden
  Linear `fc1` (its weight only; its bias is left alone, as the source perturbs weights only).
  sigma = 0.6 is kept although it dwarfs the MLP's weights; on ResNet-18 it dwarfs conv1's too, but
  the following BatchNorm rescales it there, while the MLP has no BatchNorm after fc1.
- Class weights: uniform (plain cross-entropy). The source weights class 0 by 1 and the others by
  0.05 because class 0 was the competition's majority age group; on digits and CIFAR-10 no class
  is special. (DU's "balanced" weights are also uniform on balanced data.)
- Noise draws from torch's global RNG (seeded by the harness); data order from fresh_seed().

The constants are keyword arguments of `unlearning` with the values above as defaults (the slight
confusion comes before the last of `epochs` epochs); SEARCH_SPACE declares what `harness tune`
may change.
"""

import torch

from harness.toolkit import cross_entropy_loss, rebatch, stem, train_epoch

NAME = "Seif Eddine Achour (3rd place)"
REFERENCE = "KW/459334; organizers' slides; xcadet/deepunlearn kgltop3.py"

SEARCH_SPACE = {
    "lr": {"low": 7e-5, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "confusion_sigma": {"low": 0.005, "high": 1.0, "log": True},
}


@torch.no_grad()
def _confuse(layer, sigma):
    layer.weight.add_(torch.randn_like(layer.weight) * sigma)


def unlearning(
    net, retain, forget, val, lr=0.0007, epochs=4, confusion_sigma=0.6,
    slight_confusion_sigma=0.005, batch_size=64,
):
    target = stem(net)
    _confuse(target, confusion_sigma)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    batches = rebatch(retain, batch_size)
    net.train()
    for epoch in range(epochs):
        if epoch == epochs - 1:
            _confuse(target, slight_confusion_sigma)
        train_epoch(net, batches, optimizer, cross_entropy_loss)
        scheduler.step()
    return net.eval()
