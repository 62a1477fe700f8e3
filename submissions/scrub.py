"""SCRUB: a student, starting from the original model, moves away from the frozen original teacher
on forget (max steps) and stays close to it on retain (min steps).

Sources: meghdadk/SCRUB (Kurmanji et al., NeurIPS 2023) `large_scale_unlearning.ipynb`,
`thirdparty/repdistiller/helper/loops.py` (`train_distill`), `distiller_zoo/KD.py`,
`helper/util.py`; port in xcadet/deepunlearn `munl/unlearning/scrub.py`.

Constants (the large-scale notebook's CIFAR-10 ResNet setting): teacher = frozen original in eval
mode, student in train mode; distillation loss KL(softmax(t/T) || softmax(s/T)) summed, x T^2,
/ batch size, T = 4; SGD(lr 5e-4, momentum 0.9, weight decay 5e-4); E = 3 epochs, msteps = 2:
in epochs 1 and 2 a max pass over forget minimising -KL, then in every epoch a min pass over
retain minimising gamma x CE + alpha x KL with gamma = 0.99, alpha = 0.001 (beta = 0, no other
KD term); forget batch 512, retain batch 256. The lr decays (x0.1 at milestones 3, 5, 9 strictly
below the epoch) are inactive within 3 epochs, so none is applied.

Adaptations: none needed (architecture-free). The large-scale setting is used rather than the
small-scale one (Adam, 10 epochs), since the harness's reference setting is CIFAR-10 ResNet-18; on
the digits task (126 forget, 1131 retain examples) a forget batch of 512 is one batch per pass.
Data order from fresh_seed().
"""

import torch
from torch import nn

from harness.toolkit import distill_kl, frozen_copy, rebatch, train_epoch

NAME = "SCRUB"
REFERENCE = "meghdadk/SCRUB large_scale_unlearning.ipynb; Kurmanji et al., NeurIPS 2023"

EPOCHS = 3
MAX_STEPS = 2
GAMMA = 0.99
ALPHA = 0.001
TEMPERATURE = 4.0
FORGET_BATCH_SIZE = 512
RETAIN_BATCH_SIZE = 256


def unlearning(net, retain, forget, val):
    teacher = frozen_copy(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=5e-4, momentum=0.9, weight_decay=5e-4)
    forget_batches = rebatch(forget, FORGET_BATCH_SIZE)
    retain_batches = rebatch(retain, RETAIN_BATCH_SIZE)

    def maximize(model, inputs, targets):
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        return -distill_kl(model(inputs), teacher_logits, TEMPERATURE)

    def minimize(model, inputs, targets):
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        logits = model(inputs)
        return GAMMA * nn.functional.cross_entropy(logits, targets) + ALPHA * distill_kl(
            logits, teacher_logits, TEMPERATURE
        )

    net.train()
    for epoch in range(1, EPOCHS + 1):
        if epoch <= MAX_STEPS:
            train_epoch(net, forget_batches, optimizer, maximize)
        train_epoch(net, retain_batches, optimizer, minimize)
    return net.eval()
