"""EU-k (exact unlearning of the last k layers): re-initialise the last block, then train only it
on retain.

Sources: Goel et al., "Towards adversarial evaluation of unlearning algorithms" (CF-k / EU-k);
meghdadk/SCRUB `small_scale_unlearning.ipynb` ("Exact Unlearning k layers", `fk_fientune`);
xcadet/deepunlearn `munl/unlearning/exact_unlearning_k.py` (fresh initialisation).

Constants (SC small): k = 1; the last block's parameters (convolution and BatchNorm weights and
biases; running statistics kept) are reset to initial values; every other parameter is frozen;
the block is trained on retain for the full original training epoch count (the running task's
recipe epochs: 30 on digits; 30 when no task is set, SC's training_epochs); plain SGD lr 0.01 (no
momentum, optimizer weight decay 0) with the penalty (wd/2) x ||theta - theta_start||^2 toward the
reset weights, wd = 0.1; lr x0.1 at each milestone in [10, 15, 20] strictly below the (0-based)
epoch; model in eval mode while training; retain batch 128.

Adaptations.
- Initial values: there is no pre-training initial checkpoint, so the block takes the weights of
  a freshly initialised model, as DU does: the running task's model factory when it builds this
  architecture, else PyTorch's default reset_parameters() (harness.toolkit.fresh_model_like).
- "Last block" = harness.toolkit.last_block(net): ResNet-18's `layer4`; on the digits MLP the
  hidden Linear `fc1` (its only feature layer), so there EU-k re-draws all of fc1 and retrains it
  under the original head.
- As in SC's ResNet branch the head is neither reset nor trained (DU resets and trains it too;
  not done here). All parameters are made trainable again before returning.
- Fresh weights from torch's global RNG (seeded by the harness); data order from fresh_seed().

The constants are keyword arguments of `unlearning` with SC's values as defaults (milestones and
rate are harness.toolkit.finetune_to_start's defaults); the epoch count is `epoch_fraction` (1.0,
the published full count) of the recipe's epochs, rounded, at least 1. SEARCH_SPACE declares what
`harness tune` may change.
"""

import torch

from harness.toolkit import (
    finetune_to_start,
    fresh_model_like,
    last_block,
    module_name,
    rebatch,
    running_task,
    set_trainable,
    unfreeze,
)

NAME = "EU-k (k = 1)"
REFERENCE = "meghdadk/SCRUB small_scale_unlearning.ipynb; Goel et al. (EU-k)"

DEFAULT_EPOCHS = 30  # SC's training_epochs, when no task is set

SEARCH_SPACE = {
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epoch_fraction": {"low": 0.03, "high": 1.0},
    "penalty_weight_decay": {"low": 1e-4, "high": 1.0, "log": True},
}


def unlearning(
    net, retain, forget, val, lr=0.01, epoch_fraction=1.0, penalty_weight_decay=0.1,
    batch_size=128,
):
    block = last_block(net)
    fresh_block = fresh_model_like(net).get_submodule(module_name(net, block))
    with torch.no_grad():
        for parameter, initial in zip(block.parameters(), fresh_block.parameters(), strict=True):
            parameter.copy_(initial)
    task = running_task()
    full = task.recipe.epochs if task is not None else DEFAULT_EPOCHS
    epochs = max(1, round(epoch_fraction * full))
    set_trainable(net, [block])
    batches = rebatch(retain, batch_size)
    finetune_to_start(net, batches, epochs, lr, penalty_weight_decay)
    return unfreeze(net).eval()
