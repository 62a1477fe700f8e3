"""Bad Teacher ("blindspot" / incompetent-teacher unlearning): distil from a randomly initialised
teacher on forget and from the original model on retain.

Sources: vikram2000b/bad-teaching-unlearning (Chundawat et al., AAAI 2023) `unlearn.py`,
`CIFARSuper20_Rocket_Unlearn.ipynb`, `README.md`; xcadet/deepunlearn
`munl/unlearning/bad_teacher.py`.

Constants (the notebook's): the student starts from the original; teachers in eval mode: the
original ("competent") and a randomly initialised model of the same architecture ("incompetent");
one shuffled loader mixing the forget set (flag 1) and a random 30% (int(0.3 x n)) of the retain
set (flag 0), batch 256; target = softmax(teacher logits / T) of the incompetent teacher for
flag-1 examples, of the original for flag-0 ones; loss = PyTorch kl_div of the student's
log_softmax(logits / T) against that target, default reduction (mean over all elements,
written out explicitly since PyTorch plans to change that default); T = 1;
Adam lr 1e-4; 1 epoch; student in train mode. (The function defaults, 10 epochs and lr 0.01, and
DU's choice of them, are not used.) These constants are keyword arguments of `unlearning` with the
notebook's values as defaults; SEARCH_SPACE declares what `harness tune` may change.

Adaptations: the incompetent teacher is a fresh model from the running task's model factory when
it builds this architecture, else a copy of the model re-initialised with PyTorch's default
reset_parameters() (harness.toolkit.fresh_model_like); its weights come from torch's global RNG,
seeded by the harness. Subset and data order from fresh_seed().
"""

import torch
from torch.nn import functional

from harness.toolkit import (
    Tagged,
    fresh_model_like,
    frozen_copy,
    random_subset,
    rebatch,
    train_epoch,
)

NAME = "Bad Teacher"
REFERENCE = "vikram2000b/bad-teaching-unlearning unlearn.py; Chundawat et al., AAAI 2023"

SEARCH_SPACE = {
    "lr": {"low": 1e-5, "high": 0.1, "log": True},
    "epochs": {"low": 1, "high": 10},
    "retain_fraction": {"low": 0.05, "high": 1.0},
    "temperature": {"low": 0.25, "high": 8.0, "log": True},
}


def unlearning(
    net, retain, forget, val, lr=1e-4, epochs=1, retain_fraction=0.3, temperature=1.0,
    batch_size=256,
):
    competent = frozen_copy(net)
    incompetent = frozen_copy(fresh_model_like(net))
    retain_part = random_subset(retain.dataset, int(retain_fraction * len(retain.dataset)))
    mixed = torch.utils.data.ConcatDataset([Tagged(forget.dataset, 1), Tagged(retain_part, 0)])
    batches = rebatch(mixed, batch_size)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def loss_fn(model, inputs, targets, flags):
        with torch.no_grad():
            good = functional.softmax(competent(inputs) / temperature, dim=1)
            bad = functional.softmax(incompetent(inputs) / temperature, dim=1)
            target = torch.where(flags.unsqueeze(1) == 1, bad, good)
        log_student = functional.log_softmax(model(inputs) / temperature, dim=1)
        # kl_div's default "mean" reduction, written out (PyTorch plans to change that default)
        return (torch.xlogy(target, target) - target * log_student).mean()

    net.train()
    for _ in range(epochs):
        train_epoch(net, batches, optimizer, loss_fn)
    return net.eval()
