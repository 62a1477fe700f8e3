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

DEFAULT_EPOCHS = 30
LR = 0.01
PENALTY_WEIGHT_DECAY = 0.1
MILESTONES = [10, 15, 20]
BATCH_SIZE = 128


def unlearning(net, retain, forget, val):
    block = last_block(net)
    fresh_block = fresh_model_like(net).get_submodule(module_name(net, block))
    with torch.no_grad():
        for parameter, initial in zip(block.parameters(), fresh_block.parameters(), strict=True):
            parameter.copy_(initial)
    task = running_task()
    epochs = task.recipe.epochs if task is not None else DEFAULT_EPOCHS
    set_trainable(net, [block])
    batches = rebatch(retain, BATCH_SIZE)
    finetune_to_start(net, batches, epochs, LR, PENALTY_WEIGHT_DECAY, MILESTONES)
    return unfreeze(net).eval()
