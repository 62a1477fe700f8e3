"""Orthogonal gradient ascent: ascend the forget loss orthogonally to the retain gradient, then
descend the retain loss orthogonally to the forget gradient (the "gradient-ascent" notebook).

Sources: hishamcse/NeurIPS_Machine_Unlearning `neurips-machine-unlearning-gradient-ascent.ipynb`;
results in its final slides ("NeurIPS_ Machine Unlearning - Final.pdf").

Constants. No optimizer: manual updates without gradient tracking. BatchNorm affine parameters
are frozen (not updated); each round sets train mode, so BatchNorm running statistics are updated.
- Forget round, 5 epochs over forget at batch 128. Per forget batch: the first batch (64) of a
  freshly shuffled retain loader; flattened gradients g_r (CE on that retain batch) and g_f (CE on
  the forget batch); g_f projected orthogonally to g_r, scaled to unit norm, averaged into an EMA
  (beta 0.9); theta <- theta + 0.02 x EMA (ascent on the forget loss).
- Retain round, 3 epochs over retain at batch 256, roles swapped: per retain batch a fresh forget
  batch of 64; g_retain projected orthogonally to g_forget, unit-normalised, EMA 0.9;
  theta <- theta - 0.02 x EMA.

Defect of the source: it never zeroes gradients, so they accumulate across steps and each
"gradient" is the sum of all past ones. This port does NOT reproduce it: every gradient is
computed fresh (torch.autograd.grad), i.e. gradients are zeroed.

Inferred details: EMA m <- 0.9 m + 0.1 u (u the unit direction), restarted at zero at the start
of each round; a small epsilon guards the projection and the normalisation against zero norms.

Adaptations: none needed beyond the choice above (architecture-free; on the digits MLP there is no
BatchNorm). "Parameters" = every parameter outside BatchNorm layers. Batches and data order from
generators seeded from fresh_seed().

The constants are keyword arguments of `unlearning` with the notebook's values as defaults;
SEARCH_SPACE declares what `harness tune` may change.
"""

import torch
from torch import nn

from harness.toolkit import device_of, rebatch, to_device

NAME = "Orthogonal gradient ascent"
REFERENCE = "hishamcse/NeurIPS_Machine_Unlearning gradient-ascent notebook"

SEARCH_SPACE = {
    "step": {"low": 1e-3, "high": 1.0, "log": True},
    "beta": {"low": 0.0, "high": 0.99},
    "forget_epochs": {"low": 1, "high": 10},
    "retain_epochs": {"low": 1, "high": 10},
}
EPS = 1e-12


def _gradient(net, parameters, batch):
    inputs, targets = to_device(batch, device_of(net))
    loss = nn.functional.cross_entropy(net(inputs), targets)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, parameters)])


def _orthogonal_unit(g, other):
    g = g - (g @ other) / (other @ other + EPS) * other
    return g / (g.norm() + EPS)


@torch.no_grad()
def _apply(parameters, direction, scale):
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.add_(direction[offset : offset + count].view_as(parameter), alpha=scale)
        offset += count


def _round(net, parameters, main, partner, epochs, step, beta):
    """``epochs`` passes over ``main``: move by ``step`` (negative: descent) along the EMA
    (``beta``) of the unit main gradient projected orthogonally to the gradient on a fresh
    ``partner`` batch."""
    momentum = 0.0
    net.train()
    for _ in range(epochs):
        for batch in main:
            partner_grad = _gradient(net, parameters, next(iter(partner)))
            unit = _orthogonal_unit(_gradient(net, parameters, batch), partner_grad)
            momentum = beta * momentum + (1 - beta) * unit
            _apply(parameters, momentum, step)


def unlearning(
    net, retain, forget, val, step=0.02, beta=0.9, forget_epochs=5, retain_epochs=3,
    forget_batch_size=128, retain_batch_size=256, partner_batch_size=64,
):
    batch_norm = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    frozen = {id(p) for m in batch_norm for p in m.parameters()}
    parameters = [p for p in net.parameters() if id(p) not in frozen]
    _round(net, parameters, rebatch(forget, forget_batch_size),
           rebatch(retain, partner_batch_size), forget_epochs, step, beta)
    _round(net, parameters, rebatch(retain, retain_batch_size),
           rebatch(forget, partner_batch_size), retain_epochs, -step, beta)
    return net.eval()
