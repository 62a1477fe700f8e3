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

REINIT_FRACTION = 0.3
KEPT_GRAD_SCALE = 0.1
BATCH_SIZE = 64
EPOCH_LRS = (0.001 / 3, 0.002 / 3, 0.001, 0.002 / 3, 0.001 / 3)


def _accumulate_gradients(net, retain, forget):
    device = device_of(net)
    subset = random_subset(retain.dataset, len(forget.dataset))
    net.eval()
    net.zero_grad(set_to_none=True)
    for sign, batches in ((1.0, rebatch(subset, BATCH_SIZE)), (-1.0, rebatch(forget))):
        for batch in batches:
            inputs, targets = to_device(batch, device)
            (sign * nn.functional.cross_entropy(net(inputs), targets)).backward()


@torch.no_grad()
def _reinitialise(net):
    """Re-initialise the smallest-|g| entries of each feature layer; return the gradient scales."""
    scales = []
    for layer in feature_layers(net):
        weight = layer.weight
        grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
        count = round(REINIT_FRACTION * weight.numel())
        chosen = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
        chosen[torch.topk(-grad.abs().flatten(), count).indices] = True
        chosen = chosen.view_as(weight)
        fresh = nn.init.kaiming_normal_(torch.empty_like(weight), mode="fan_out",
                                        nonlinearity="relu")
        weight[chosen] = fresh[chosen]
        scale = torch.full_like(weight, KEPT_GRAD_SCALE)
        scale[chosen] = 1.0
        scales.append((weight, scale))
    return scales


def unlearning(net, retain, forget, val):
    _accumulate_gradients(net, retain, forget)
    scales = _reinitialise(net)
    net.zero_grad(set_to_none=True)
    hooks = [weight.register_hook(lambda g, s=scale: g * s) for weight, scale in scales]
    optimizer = torch.optim.SGD(net.parameters(), lr=EPOCH_LRS[0], momentum=0.9,
                                weight_decay=5e-4)
    batches = rebatch(retain, BATCH_SIZE)
    net.train()
    try:
        for lr in EPOCH_LRS:
            set_lr(optimizer, lr)
            train_epoch(net, batches, optimizer, cross_entropy_loss)
    finally:
        for hook in hooks:
            hook.remove()
    return net.eval()
