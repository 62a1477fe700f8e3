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

The constants are keyword arguments of `unlearning` with the notebook's values as defaults;
SEARCH_SPACE declares what `harness tune` may change (msteps above `epochs` means a max pass in
every epoch).
"""

import torch
from torch import nn

from harness.toolkit import distill_kl, frozen_copy, rebatch, train_epoch

NAME = "SCRUB"
REFERENCE = "meghdadk/SCRUB large_scale_unlearning.ipynb; Kurmanji et al., NeurIPS 2023"

SEARCH_SPACE = {
    "lr": {"low": 5e-5, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "max_steps": {"low": 1, "high": 10},
    "alpha": {"low": 1e-4, "high": 10.0, "log": True},
    "forget_batch_size": {"low": 16, "high": 512, "log": True},
}


def unlearning(
    net, retain, forget, val, lr=5e-4, epochs=3, max_steps=2, alpha=0.001, gamma=0.99,
    temperature=4.0, forget_batch_size=512, retain_batch_size=256,
):
    teacher = frozen_copy(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    forget_batches = rebatch(forget, forget_batch_size)
    retain_batches = rebatch(retain, retain_batch_size)

    def maximize(model, inputs, targets):
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        return -distill_kl(model(inputs), teacher_logits, temperature)

    def minimize(model, inputs, targets):
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        logits = model(inputs)
        return gamma * nn.functional.cross_entropy(logits, targets) + alpha * distill_kl(
            logits, teacher_logits, temperature
        )

    net.train()
    for epoch in range(1, epochs + 1):
        if epoch <= max_steps:
            train_epoch(net, forget_batches, optimizer, maximize)
        train_epoch(net, retain_batches, optimizer, minimize)
    return net.eval()
