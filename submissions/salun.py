"""SalUn (saliency unlearning): random-label unlearning restricted to the weights whose forget-loss
gradient is largest.

Sources: OPTML-Group/Unlearn-Saliency (Fan et al., ICLR 2024) `Classification/generate_mask.py`,
`unlearn/RL.py`, `README.md`, issue #21 (maintainer: sequential forget-then-retain updates,
retain weight 1).

Constants.
- Mask: eval mode, one pass over forget at batch 256 summing the gradients of -CE over the
  batches; |g| ranked globally over all named parameters (BatchNorm and biases included); mask = 1
  for the top 50% (the README's threshold 0.5), else 0.
- Unlearning: random labels (see random_labels.py) with every gradient multiplied elementwise by
  the mask before each step; 10 epochs, lr 0.013, SGD(momentum 0.9, weight decay 5e-4), batch
  256, train mode.
- Masking is gradient masking only, the paper-era behaviour: the optimizer's weight decay (and
  momentum) still move masked-out weights. The repository's later "Fix weight decay" commit
  (restoring masked-out weights each step) is not reproduced.

Adaptations: none needed (architecture-free). Data order and random labels from fresh_seed().

The constants are keyword arguments of `unlearning` with the values above as defaults (one batch
size for the mask pass and the unlearning, as in the source); SEARCH_SPACE declares what
`harness tune` may change.
"""

import torch
from torch import nn

from harness.toolkit import device_of, random_label_unlearning, rebatch, to_device

NAME = "SalUn"
REFERENCE = "OPTML-Group/Unlearn-Saliency generate_mask.py, unlearn/RL.py; Fan et al., ICLR 2024"

SEARCH_SPACE = {
    "mask_fraction": {"low": 0.05, "high": 1.0},
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "batch_size": {"low": 64, "high": 512, "log": True},
}


def saliency_masks(net, forget, mask_fraction, batch_size):
    """Masks (one per parameter) selecting the top ``mask_fraction`` of |grad of -CE on forget|,
    the gradients summed over batches of ``batch_size``."""
    device = device_of(net)
    net.eval()
    net.zero_grad(set_to_none=True)
    for batch in rebatch(forget, batch_size):
        inputs, targets = to_device(batch, device)
        (-nn.functional.cross_entropy(net(inputs), targets)).backward()
    grads = [
        p.grad.abs().flatten() if p.grad is not None else torch.zeros(p.numel(), device=device)
        for p in net.parameters()
    ]
    net.zero_grad(set_to_none=True)
    magnitudes = torch.cat(grads)
    selected = torch.zeros_like(magnitudes)
    selected[torch.topk(magnitudes, round(mask_fraction * magnitudes.numel())).indices] = 1.0
    return [part.view_as(p) for part, p in zip(selected.split([g.numel() for g in grads]),
                                                net.parameters(), strict=True)]


def unlearning(net, retain, forget, val, mask_fraction=0.5, lr=0.013, epochs=10, batch_size=256):
    masks = saliency_masks(net, forget, mask_fraction, batch_size)
    return random_label_unlearning(net, retain, forget, epochs, lr, batch_size, masks=masks)
