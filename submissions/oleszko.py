"""4th place, NeurIPS 2023 Machine Unlearning (Sebastian Oleszko): 99% global magnitude pruning with
re-initialisation, then fine-tuning that matches the original model's prediction entropies.

Sources: Kaggle write-up KW/459148
(https://www.kaggle.com/competitions/neurips-2023-machine-unlearning/discussion/459148);
the organizers' slides (slides 14-16); xcadet/deepunlearn
`munl/unlearning/kgltop4.py`; placing per oleszko/oleszko.github.io `competitions/comp1.md`.

Constants.
1. Prune: the 99% (rounded) of all entries of every Conv2d and Linear weight and bias with the
   smallest |value|, ranked jointly across all of them (global L1-unstructured). Pruned weight
   entries are re-drawn from U(-1/sqrt(fan_in), +1/sqrt(fan_in)); pruned bias entries stay 0;
   BatchNorm is untouched.
2. Fine-tune on retain: floor(3.2 x retain batches) iterations at batch 64 (3.2 epochs, cycling
   through reshuffled passes), train mode, SGD(lr 5e-4, momentum 0.9, weight decay 5e-4), no
   scheduler. Loss = class-weighted CE with weights count^-0.1 over the retain labels + MSE between
   the per-example softmax entropies of the model and of the original model (a frozen eval-mode
   copy taken before pruning).
3. Cast every parameter and floating buffer to float16 and back.

Adaptations. Architecture-free: "Conv2d and Linear" includes the head (as in the source, where
the fc layer is a Linear); on the digits MLP that is fc1 and fc. fan_in = in_features for a Linear,
in_channels/groups x kernel area for a Conv2d. A class absent from retain gets weight 0. Data order
from fresh_seed(); re-drawn weights from torch's global RNG (seeded by the harness).

The constants are keyword arguments of `unlearning` with the values above as defaults (`epochs`
may be fractional: floor(epochs x retain batches) iterations); SEARCH_SPACE declares what
`harness tune` may change.
"""

import math

import torch
from torch import nn

from harness.toolkit import (
    class_count_weights,
    device_of,
    frozen_copy,
    labels_of,
    num_classes,
    rebatch,
    softmax_entropy,
    to_device,
)

NAME = "Sebastian Oleszko (4th place)"
REFERENCE = "KW/459148; organizers' slides; xcadet/deepunlearn kgltop4.py"

SEARCH_SPACE = {
    "prune_fraction": {"low": 0.05, "high": 0.99},
    "lr": {"low": 5e-5, "high": 1.0, "log": True},
    "epochs": {"low": 0.5, "high": 8.0},
}


@torch.no_grad()
def _prune_and_reinitialise(net, prune_fraction):
    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    tensors = [t for m in layers for t in (m.weight, m.bias) if t is not None]
    magnitudes = torch.cat([t.abs().flatten() for t in tensors])
    keep = magnitudes.numel() - round(prune_fraction * magnitudes.numel())
    pruned = torch.ones(magnitudes.numel(), dtype=torch.bool, device=magnitudes.device)
    pruned[torch.topk(magnitudes, keep).indices] = False
    offset = 0
    masks = {}
    for tensor in tensors:
        masks[tensor] = pruned[offset : offset + tensor.numel()].view_as(tensor)
        offset += tensor.numel()
    for layer in layers:
        weight, mask = layer.weight, masks[layer.weight]
        bound = 1.0 / math.sqrt(weight[0].numel())
        weight[mask] = torch.empty_like(weight).uniform_(-bound, bound)[mask]
        if layer.bias is not None:
            layer.bias[masks[layer.bias]] = 0.0


def unlearning(
    net, retain, forget, val, prune_fraction=0.99, lr=5e-4, epochs=3.2, batch_size=64,
    class_weight_power=-0.1,
):
    device = device_of(net)
    original = frozen_copy(net)
    _prune_and_reinitialise(net, prune_fraction)
    weights = class_count_weights(
        labels_of(retain.dataset), num_classes(net), class_weight_power
    ).to(device)
    batches = rebatch(retain, batch_size)
    iterations = math.floor(epochs * len(batches))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    net.train()
    step = 0
    while step < iterations:
        for batch in batches:
            if step == iterations:
                break
            inputs, targets = to_device(batch, device)
            logits = net(inputs)
            with torch.no_grad():
                original_entropy = softmax_entropy(original(inputs))
            loss = nn.functional.cross_entropy(logits, targets, weight=weights)
            loss = loss + nn.functional.mse_loss(softmax_entropy(logits), original_entropy)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return net.half().float().eval()
