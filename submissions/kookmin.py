"""2nd place, NeurIPS 2023 Machine Unlearning (Kookmin Univ: Doun Lee, Jinwoo Bae, Jangho Kim):
gradient-based targeted re-initialisation, then fine-tuning on retain.

Sources: Kaggle write-up KW/459200
(https://www.kaggle.com/competitions/neurips-2023-machine-unlearning/discussion/459200);
the organizers' slides (slides 20-22); xcadet/deepunlearn
`munl/unlearning/kgltop2.py`. Authors' notebook:
https://www.kaggle.com/code/nuod8260/targeted-re-initialization-3rd-on-private-lb.

Constants.
1. Gradient collection: a random retain subset of forget-set size, drawn afresh every run, in
   batches of 64; gradients zeroed once, then accumulated: +CE over the subset, -CE over the forget
   loader, so g = sum grad CE_retain - sum grad CE_forget.
2. Re-initialisation: in each feature layer, the 30% (rounded) of weight entries with the smallest
   |g| get fresh Kaiming-normal values (fan_out, ReLU gain: torchvision ResNet's init); all other
   entries, biases, BN and the head are unchanged. Selection is per layer (the only code-level
   evidence; the write-up says "globally").
3. Retraining: 5 epochs of CE on retain, batch 64, train mode, SGD(base lr 0.001, momentum 0.9,
   weight decay 5e-4), per-epoch lr 0.000333, 0.000667, 0.001, 0.000667, 0.000333. Gradients of
   the kept (not re-initialised) feature-layer weight entries are multiplied by 0.1; re-initialised
   entries and every other parameter get the full gradient (weight decay is added by the optimizer
   after the scaling, as with the source's autograd mask).

Adaptations. "Conv layers" = harness.toolkit.feature_layers(net): every Conv2d on ResNet-18, and on
a model without convolutions (the digits MLP) every Linear except the head, i.e. the hidden layer
fc1 (its Kaiming fan_out is its output size, 256). Gradients are collected in eval mode (the mode
the harness hands the model in; the source collects them in whatever mode the model arrives in).
The retain subset and data order come from generators seeded from fresh_seed(); new weight values
from torch's global RNG, which the harness seeds. The scaling is a tensor hook, removed before
returning.

The constants are keyword arguments of `unlearning` with the values above as defaults;
SEARCH_SPACE declares what `harness tune` may change. For a tuned epoch count E the per-epoch lr
follows the same triangle (inferred): lr x min(e + 1, E - e) / ceil(E / 2) for epoch e = 0..E-1,
which for E = 5 is the published 1/3, 2/3, 1, 2/3, 1/3 of the base lr.
"""

import torch
from torch import nn

from harness.toolkit import (
    cross_entropy_loss,
    device_of,
    feature_layers,
    random_subset,
    rebatch,
    set_lr,
    to_device,
    train_epoch,
)

NAME = "Kookmin Univ (2nd place)"
REFERENCE = "KW/459200; organizers' slides; xcadet/deepunlearn kgltop2.py"

SEARCH_SPACE = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "reinit_fraction": {"low": 0.01, "high": 0.95},
    "kept_grad_scale": {"low": 1e-3, "high": 1.0, "log": True},
}


def _epoch_lrs(lr, epochs):
    """The triangular per-epoch schedule peaking at ``lr`` (5 epochs: lr/3, 2lr/3, lr, 2lr/3,
    lr/3)."""
    peak = (epochs + 1) // 2
    steps = [min(epoch + 1, epochs - epoch) for epoch in range(epochs)]
    return [lr if k == peak else lr * k / peak for k in steps]


def _accumulate_gradients(net, retain, forget, batch_size):
    device = device_of(net)
    subset = random_subset(retain.dataset, len(forget.dataset))
    net.eval()
    net.zero_grad(set_to_none=True)
    for sign, batches in ((1.0, rebatch(subset, batch_size)), (-1.0, rebatch(forget))):
        for batch in batches:
            inputs, targets = to_device(batch, device)
            (sign * nn.functional.cross_entropy(net(inputs), targets)).backward()


@torch.no_grad()
def _reinitialise(net, reinit_fraction, kept_grad_scale):
    """Re-initialise the smallest-|g| entries of each feature layer; return the gradient scales."""
    scales = []
    for layer in feature_layers(net):
        weight = layer.weight
        grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
        count = round(reinit_fraction * weight.numel())
        chosen = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
        chosen[torch.topk(-grad.abs().flatten(), count).indices] = True
        chosen = chosen.view_as(weight)
        fresh = nn.init.kaiming_normal_(torch.empty_like(weight), mode="fan_out",
                                        nonlinearity="relu")
        weight[chosen] = fresh[chosen]
        scale = torch.full_like(weight, kept_grad_scale)
        scale[chosen] = 1.0
        scales.append((weight, scale))
    return scales


def unlearning(
    net, retain, forget, val, lr=0.001, epochs=5, reinit_fraction=0.3, kept_grad_scale=0.1,
    batch_size=64,
):
    _accumulate_gradients(net, retain, forget, batch_size)
    scales = _reinitialise(net, reinit_fraction, kept_grad_scale)
    net.zero_grad(set_to_none=True)
    hooks = [weight.register_hook(lambda g, s=scale: g * s) for weight, scale in scales]
    epoch_lrs = _epoch_lrs(lr, epochs)
    optimizer = torch.optim.SGD(net.parameters(), lr=epoch_lrs[0], momentum=0.9,
                                weight_decay=5e-4)
    batches = rebatch(retain, batch_size)
    net.train()
    try:
        for epoch_lr in epoch_lrs:
            set_lr(optimizer, epoch_lr)
            train_epoch(net, batches, optimizer, cross_entropy_loss)
    finally:
        for hook in hooks:
            hook.remove()
    return net.eval()
