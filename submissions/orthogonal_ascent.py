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
"""

import torch
from torch import nn

from harness.toolkit import device_of, rebatch, to_device

NAME = "Orthogonal gradient ascent"
REFERENCE = "hishamcse/NeurIPS_Machine_Unlearning gradient-ascent notebook"

STEP = 0.02
BETA = 0.9
FORGET_EPOCHS, FORGET_BATCH_SIZE = 5, 128
RETAIN_EPOCHS, RETAIN_BATCH_SIZE = 3, 256
PARTNER_BATCH_SIZE = 64
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


def _round(net, parameters, main, partner, epochs, sign):
    """``epochs`` passes over ``main``: move by ``sign`` x STEP along the EMA of the unit main
    gradient projected orthogonally to the gradient on a fresh ``partner`` batch."""
    momentum = 0.0
    net.train()
    for _ in range(epochs):
        for batch in main:
            partner_grad = _gradient(net, parameters, next(iter(partner)))
            unit = _orthogonal_unit(_gradient(net, parameters, batch), partner_grad)
            momentum = BETA * momentum + (1 - BETA) * unit
            _apply(parameters, momentum, sign * STEP)


def unlearning(net, retain, forget, val):
    batch_norm = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    frozen = {id(p) for m in batch_norm for p in m.parameters()}
    parameters = [p for p in net.parameters() if id(p) not in frozen]
    _round(net, parameters, rebatch(forget, FORGET_BATCH_SIZE),
           rebatch(retain, PARTNER_BATCH_SIZE), FORGET_EPOCHS, +1.0)
    _round(net, parameters, rebatch(retain, RETAIN_BATCH_SIZE),
           rebatch(forget, PARTNER_BATCH_SIZE), RETAIN_EPOCHS, -1.0)
    return net.eval()
