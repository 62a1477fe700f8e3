"""CF-k (catastrophic forgetting of the last k layers): fine-tune only the last block on retain.

Sources: Goel et al., "Towards adversarial evaluation of unlearning algorithms" (CF-k / EU-k);
meghdadk/SCRUB `small_scale_unlearning.ipynb` ("Catastrophic Forgetting k layers", `fk_fientune`,
`run_train_epoch`, `l2_penalty`); port in xcadet/deepunlearn
`munl/unlearning/catastrophic_forgetting_k.py`.

Constants (SC small): k = 1; every parameter frozen except the last block's; fine-tune on retain,
plain SGD lr 0.01 (no momentum, optimizer weight decay 0) with the penalty (wd/2) x ||theta -
theta_0||^2 over the trainable parameters, wd = 0.1 (the notebook's --weight-decay); 10 epochs;
lr x0.1 at each milestone in [10, 15, 20] strictly below the epoch (inactive within 10 epochs);
model in eval mode while training (BatchNorm statistics frozen); retain batch 128 (the notebook's
--batch-size).

Adaptations. "Last block" = harness.toolkit.last_block(net): ResNet-18's `layer4`; on the digits
MLP, whose only feature layer is the hidden Linear `fc1`, that layer. As in SC, the head is not
trained (DU's port also unfreezes it; not done here). All parameters are made trainable again
before returning. Data order from fresh_seed().

The constants are keyword arguments of `unlearning` with SC's values as defaults (milestones and
rate are harness.toolkit.finetune_to_start's defaults); SEARCH_SPACE declares what `harness tune`
may change.
"""

from harness.toolkit import finetune_to_start, last_block, rebatch, set_trainable, unfreeze

NAME = "CF-k (k = 1)"
REFERENCE = "meghdadk/SCRUB small_scale_unlearning.ipynb; Goel et al. (CF-k)"

SEARCH_SPACE = {
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "penalty_weight_decay": {"low": 1e-4, "high": 1.0, "log": True},
}


def unlearning(
    net, retain, forget, val, lr=0.01, epochs=10, penalty_weight_decay=0.1, batch_size=128
):
    set_trainable(net, [last_block(net)])
    finetune_to_start(net, rebatch(retain, batch_size), epochs, lr, penalty_weight_decay)
    return unfreeze(net).eval()
