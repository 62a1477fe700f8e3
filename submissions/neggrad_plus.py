"""NegGrad+: descend on retain (with an L2 pull toward the starting weights) while ascending on
forget, in one combined loss.

Sources: meghdadk/SCRUB `small_scale_unlearning.ipynb` (`negative_grad`, `run_neggrad_epoch`; the
SCRUB paper, Kurmanji et al., NeurIPS 2023, names it NegGrad+); port in xcadet/deepunlearn
`munl/unlearning/neggradplus.py`.

Constants (SC small): every retain batch is paired with the next batch of a cycled forget loader
(itertools.cycle, created each epoch: one shuffled pass replayed), an epoch being one pass over
retain; loss = alpha x (CE_retain + (wd/2) x ||theta - theta_0||^2) - (1 - alpha) x CE_forget
with alpha = 0.95 and wd = 0.1 (the small notebook's --weight-decay,
which its penalty uses); plain SGD, lr 0.01, no momentum, optimizer weight decay 0; 10 epochs;
the model in eval mode while training (BatchNorm statistics frozen); retain batch 128 (the
notebook's --batch-size) and forget batch 64 (its forget_bs).

Adaptations: none needed (architecture-free); theta_0 = the weights the harness hands in. DU's
variant (momentum 0.9, batch 256, penalty weight 0) is not used. Data order from fresh_seed().

The constants are keyword arguments of `unlearning` with SC's values as defaults; SEARCH_SPACE
declares what `harness tune` may change.
"""

import itertools

import torch
from torch import nn

from harness.toolkit import device_of, l2_to, parameter_snapshot, rebatch, to_device

NAME = "NegGrad+"
REFERENCE = "meghdadk/SCRUB small_scale_unlearning.ipynb; xcadet/deepunlearn neggradplus.py"

SEARCH_SPACE = {
    "alpha": {"low": 0.5, "high": 0.999},
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "penalty_weight_decay": {"low": 1e-4, "high": 1.0, "log": True},
}


def unlearning(
    net, retain, forget, val, alpha=0.95, lr=0.01, epochs=10, penalty_weight_decay=0.1,
    retain_batch_size=128, forget_batch_size=64,
):
    device = device_of(net)
    start = parameter_snapshot(net)
    retain_batches = rebatch(retain, retain_batch_size)
    forget_batches = rebatch(forget, forget_batch_size)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.0, weight_decay=0.0)
    net.eval()
    for _ in range(epochs):
        forget_stream = itertools.cycle(forget_batches)  # one shuffled pass, then replayed
        for retain_batch, forget_batch in zip(retain_batches, forget_stream, strict=False):
            retain_inputs, retain_targets = to_device(retain_batch, device)
            forget_inputs, forget_targets = to_device(forget_batch, device)
            retain_loss = nn.functional.cross_entropy(net(retain_inputs), retain_targets)
            forget_loss = nn.functional.cross_entropy(net(forget_inputs), forget_targets)
            loss = alpha * (retain_loss + l2_to(net, start, penalty_weight_decay))
            loss = loss - (1 - alpha) * forget_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


