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
"""

import itertools

import torch
from torch import nn

from harness.toolkit import device_of, l2_to, parameter_snapshot, rebatch, to_device

NAME = "NegGrad+"
REFERENCE = "meghdadk/SCRUB small_scale_unlearning.ipynb; xcadet/deepunlearn neggradplus.py"

ALPHA = 0.95
PENALTY_WEIGHT_DECAY = 0.1
EPOCHS = 10
RETAIN_BATCH_SIZE = 128
FORGET_BATCH_SIZE = 64


def unlearning(net, retain, forget, val):
    device = device_of(net)
    start = parameter_snapshot(net)
    retain_batches = rebatch(retain, RETAIN_BATCH_SIZE)
    forget_batches = rebatch(forget, FORGET_BATCH_SIZE)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.0, weight_decay=0.0)
    net.eval()
    for _ in range(EPOCHS):
        forget_stream = itertools.cycle(forget_batches)  # one shuffled pass, then replayed
        for retain_batch, forget_batch in zip(retain_batches, forget_stream, strict=False):
            retain_inputs, retain_targets = to_device(retain_batch, device)
            forget_inputs, forget_targets = to_device(forget_batch, device)
            retain_loss = nn.functional.cross_entropy(net(retain_inputs), retain_targets)
            forget_loss = nn.functional.cross_entropy(net(forget_inputs), forget_targets)
            loss = ALPHA * (retain_loss + l2_to(net, start, PENALTY_WEIGHT_DECAY))
            loss = loss - (1 - ALPHA) * forget_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


