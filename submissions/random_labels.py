"""Random labels (RL): train on the forget set with uniformly random labels and on the retain set
with true labels.

Sources: OPTML-Group/Unlearn-Saliency `Classification/unlearn/RL.py` (CIFAR-10 branch),
`README.md` and issue #21 (sequential updates, retain weight 1); the SalUn paper (Fan et al.,
ICLR 2024) uses RL as its baseline and as SalUn's unlearning step.

Constants: each epoch one pass over forget with labels drawn uniformly from 0..C-1 (possibly the
true label), then one pass over retain with true labels; cross-entropy; one SGD optimizer
(momentum 0.9, weight decay 5e-4); 10 epochs; lr 0.013; batch 256; train mode. The epochs, lr and
batch are the README's SalUn configuration (10% CIFAR-10) with the mask removed: the sources give
no separate RL setting (inferred).

Adaptations: none needed (architecture-free; C is the head's output size). Labels and data order
come from generators seeded from fresh_seed(). Implemented by
harness.toolkit.random_label_unlearning, shared with SalUn.

The constants are keyword arguments of `unlearning` with the values above as defaults;
SEARCH_SPACE declares what `harness tune` may change.
"""

from harness.toolkit import random_label_unlearning

NAME = "Random labels (RL)"
REFERENCE = "OPTML-Group/Unlearn-Saliency Classification/unlearn/RL.py, README.md"

SEARCH_SPACE = {
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "batch_size": {"low": 64, "high": 512, "log": True},
}


def unlearning(net, retain, forget, val, lr=0.013, epochs=10, batch_size=256):
    return random_label_unlearning(net, retain, forget, epochs, lr, batch_size)
