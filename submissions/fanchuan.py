"""1st place, NeurIPS 2023 Machine Unlearning (fanchuan): KL-to-uniform forgetting, then
adversarial contrastive fine-tuning.

Sources: Kaggle write-up KW/458721
(https://www.kaggle.com/competitions/neurips-2023-machine-unlearning/discussion/458721);
the organizers' slides (slide 23); the reproduction in
hishamcse/NeurIPS_Machine_Unlearning `neurips-machine-unlearning-1st-place.ipynb`;
xcadet/deepunlearn `munl/unlearning/kgltop1.py`. Author's notebook:
https://www.kaggle.com/code/fanchuan/2nd-place-machine-unlearning-solution.

Constants. Stage 1: one epoch over the forget loader at its own batch size (64 on the default
task), train mode, SGD(lr 0.005, momentum 0.9, weight decay 0), loss KL(uniform || softmax(z))
(KLDivLoss, batchmean). Stage 2: 8 epochs; two retain views A and B reshuffled at batch 256;
forget optimizer SGD(3e-4, 0.9, 0) with CosineAnnealingLR, T_max = 8 x (forget batches),
eta_min 1e-6, stepped per forget step; retain optimizer SGD(0.004 = 0.001 x 256/64, 0.9, 0.01).
Each epoch a forget round (forget batches zipped with A, one step per forget batch: S = F R^T /
1.15 with F the forget logits and R the A-batch logits without gradient, loss = -mean of
log_softmax(S) over the retain axis, on logits) and a retain round (cross-entropy over B).

Adaptations: none beyond the harness's loaders. The method is architecture-free (it acts on
logits only). BN, where present, stays in train mode throughout, so even the gradient-free retain
forward of the forget round updates running statistics, as in the source. The retain logits are
computed under no_grad instead of computed and then detached (same values). Data order comes from
generators seeded from fresh_seed(). The implementation is
harness.toolkit.fanchuan_unlearning, shared with the "improved SCL" variant.

The constants that matter most are keyword arguments of `unlearning` with the values above as
defaults (the rest are fanchuan_unlearning's defaults); SEARCH_SPACE declares what `harness tune`
may change.
"""

from harness.toolkit import fanchuan_unlearning

NAME = "fanchuan (1st place)"
REFERENCE = (
    "KW/458721; organizers' slides; hishamcse/NeurIPS_Machine_Unlearning 1st-place notebook; "
    "xcadet/deepunlearn kgltop1.py"
)


SEARCH_SPACE = {
    "stage1_lr": {"low": 5e-4, "high": 1.0, "log": True},
    "forget_lr": {"low": 3e-5, "high": 1.0, "log": True},
    "retain_lr": {"low": 4e-4, "high": 1.0, "log": True},
    "epochs": {"low": 1, "high": 10},
    "temperature": {"low": 0.1, "high": 10.0, "log": True},
}


def unlearning(
    net, retain, forget, val, stage1_lr=0.005, forget_lr=3e-4, retain_lr=0.004, epochs=8,
    temperature=1.15,
):
    return fanchuan_unlearning(
        net, retain, forget, reverse_kl_weight=0.0, epochs=epochs, temperature=temperature,
        stage1_lr=stage1_lr, forget_lr=forget_lr, retain_lr=retain_lr,
    )
