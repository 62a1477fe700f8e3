"""fanchuan's 1st-place method with the "improved SCL" stage 1: a 0.85-weighted reverse KL added.

Sources: hishamcse/NeurIPS_Machine_Unlearning `neurips-machine-unlearning-improved-scl.ipynb` and
its final slides ("HC final slides"), a variant of the 1st place (KW/458721,
https://www.kaggle.com/competitions/neurips-2023-machine-unlearning/discussion/458721).

Constants. The only change from the 1st place (see fanchuan.py): the stage-1 loss is
KL(uniform || p) + 0.85 x KL(p || uniform), p = softmax(logits), the second term being KLDivLoss
(batchmean) of the input log(1/C) against the target p. Everything else is unchanged: one stage-1
epoch over forget, SGD(0.005, 0.9, 0); 8 stage-2 epochs of one forget round (contrastive loss on
logits, tau 1.15, SGD(3e-4, 0.9, 0), cosine over 8 x forget batches, eta_min 1e-6) and one retain
round (batch 256, SGD(0.004, 0.9, 0.01)). The notebook's "JSD" test-path variant (log-softmax
applied to already-softmaxed values) is not used.

Adaptations: as for fanchuan.py (architecture-free; BN in train mode throughout; retain logits
under no_grad; data order from fresh_seed()). Implemented by harness.toolkit.fanchuan_unlearning
with reverse_kl_weight = 0.85.

The constants that matter most are keyword arguments of `unlearning` with the values above as
defaults (the rest are fanchuan_unlearning's defaults); SEARCH_SPACE declares what `harness tune`
may change.
"""

from harness.toolkit import fanchuan_unlearning

NAME = "fanchuan + reverse KL (improved SCL)"
REFERENCE = "hishamcse/NeurIPS_Machine_Unlearning improved-scl notebook; KW/458721"

SEARCH_SPACE = {
    "reverse_kl_weight": {"low": 0.01, "high": 10.0, "log": True},
    "stage1_lr": {"low": 5e-4, "high": 1.0, "log": True},
    "forget_lr": {"low": 3e-5, "high": 1.0, "log": True},
    "retain_lr": {"low": 4e-4, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
}


def unlearning(
    net, retain, forget, val, reverse_kl_weight=0.85, stage1_lr=0.005, forget_lr=3e-4,
    retain_lr=0.004, epochs=8,
):
    return fanchuan_unlearning(
        net, retain, forget, reverse_kl_weight=reverse_kl_weight, epochs=epochs,
        stage1_lr=stage1_lr, forget_lr=forget_lr, retain_lr=retain_lr,
    )
