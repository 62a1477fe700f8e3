"""Train many small pool models at once as one stacked ensemble (the reference pool's fast path).

Why: the pool needs N (512) models that differ only in their seeds. A small model trained alone
spends most of its time on per-step overhead (the data loader's per-example fetches, autograd and
optimizer bookkeeping, matmuls too small to keep a core busy). Stacking M models' parameters along
a new leading dimension and running them with ``torch.func.vmap`` does the same arithmetic in a
few large batched operations per step, in one process that uses the machine's threads.

Why the members are the models the sequential path trains (``pool.train_chunk_sequential``):

* initialisation: member ``i`` is built exactly as there, ``torch.manual_seed(pool_seed(root, i))``
  then ``task.make_model()``, and its parameters are copied bit for bit into the stack;
* data order: every member draws its own batches from its own ``torch.Generator`` seeded with its
  seed, with the same draws ``training.train_model``'s shuffling ``DataLoader`` makes
  (:class:`ShuffleOrder`, checked against the real ``DataLoader`` at run time);
* recipe: the loss is the sum over members of each member's mean (optionally class-weighted)
  cross-entropy, so each member's gradient is its own loss's gradient; SGD and Adam update every
  element independently, so ``recipe.make_optimizer`` over the stacked tensors is M independent
  optimizers; the cosine schedule steps once per epoch with ``T_max = epochs``, as there.

Only the order of floating-point sums inside the batched matmuls differs, so a member matches its
singly trained twin to float tolerance after a few steps and is statistically equivalent to it
after the full recipe (SGD amplifies rounding differences over hundreds of steps).

Models with buffers (BatchNorm), stochastic layers (dropout), non-CPU devices, data that is not
held in tensors (augmentation) or more than :data:`MAX_MODEL_PARAMETERS` parameters are trained one
at a time: :func:`select_chunk_trainer` then returns ``pool.train_chunk_sequential``, which has the
same interface (``(task, data, indices) -> ModelStats``), so ``ReferenceStore.pool`` accepts either.

Torch's thread count is left as it is: the ensemble is one process that uses all of the machine's
threads for its large operations.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.data import Dataset

from harness.batches import ShuffleOrder, column_view, inputs_targets
from harness.metric import logit_scaled_confidence
from harness.pool import train_chunk_sequential
from harness.records import ModelStats
from harness.seeds import pool_seed
from harness.tasks.base import Task, TaskData
from harness.training import class_weights

ChunkTrainer = Callable[[Task, TaskData, list[int]], ModelStats]

# Models with more parameters than this train one at a time: their own matmuls already keep the
# cores busy, so stacking them gains little and costs M times the memory.
MAX_MODEL_PARAMETERS = 2_000_000
# Stacked parameter elements per sub-ensemble (params, grads and optimizer state each hold this
# many floats); a chunk with more is trained as several consecutive ensembles.
MAX_STACKED_PARAMETERS = 50_000_000
# Members evaluated per batched forward pass (bounds the [members, examples, hidden] activations).
EVAL_MEMBERS = 64

# Layers whose training-mode output depends on torch's global RNG: under vmap they would not draw
# what the singly trained model draws, so such models are not stacked.
_STOCHASTIC_LAYERS = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


# -- the stacked ensemble ------------------------------------------------------------------------
class StackedEnsemble:
    """M models of one architecture whose parameters are stacked along a new leading dimension."""

    def __init__(self, models: list[nn.Module]) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        params, _ = stack_module_state(models)
        self.params = {name: p.detach().requires_grad_() for name, p in params.items()}
        self.template = copy.deepcopy(models[0]).to("meta")

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call(self, params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, params, (inputs,))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Every member on its own batch: inputs [M, B, ...] -> logits [M, B, C]. A model class
        may provide ``stacked_forward(params, inputs)`` (batched matrix products, faster than
        vmap for small models); ``supports_ensemble`` checks it against the model's forward."""
        stacked_forward = getattr(type(self.template), "stacked_forward", None)
        if stacked_forward is not None:
            return stacked_forward(self.params, inputs)
        return vmap(self._call)(self.params, inputs)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, members: int = EVAL_MEMBERS) -> torch.Tensor:
        """Every member in eval mode on the same inputs [n, ...] -> float32 logits [M, n, C]."""
        was_training = self.template.training
        self.template.eval()
        try:
            parts = []
            for start in range(0, len(self), members):
                chunk = {k: v[start : start + members] for k, v in self.params.items()}
                parts.append(vmap(self._call, in_dims=(0, None))(chunk, inputs).float())
            return torch.cat(parts)
        finally:
            self.template.train(was_training)

    def unstack(self) -> list[nn.Module]:
        """The members as ordinary modules (CPU, eval mode), e.g. to save or inspect them."""
        models = []
        for m in range(len(self)):
            model = copy.deepcopy(self.template).to_empty(device="cpu")
            model.load_state_dict({k: v[m].detach().clone() for k, v in self.params.items()})
            models.append(model.eval())
        return models


def init_member(task: Task, index: int) -> nn.Module:
    """Pool model ``index`` before training, built exactly as the sequential path builds it."""
    torch.manual_seed(pool_seed(task.seed, index))
    return task.make_model()


def _tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(inputs, targets) of a column-held dataset (``batches.column_view``); None for anything
    else (e.g. a dataset that augments on access, which only a per-example loader reproduces)."""
    view = column_view(dataset)
    if view is None:
        return None
    base, index = view
    return inputs_targets(base.rows(index))


def _ensemble_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    """Sum over members of each member's mean (class-weighted) cross-entropy, as train_model's."""
    # log-softmax written out: on [M, B, C] with small C it is several times faster than
    # cross_entropy's kernel, and it is the same function (checked against it in the tests)
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)
    picked = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    losses = shifted.exp().sum(dim=-1).log() - picked
    if weight is None:
        return losses.mean(dim=1).sum()
    # cross_entropy's weighted "mean" divides by the sum of the targets' weights
    sample_weights = weight[targets]
    return ((losses * sample_weights).sum(dim=1) / sample_weights.sum(dim=1)).sum()


def train_ensemble(task: Task, data: TaskData, indices: list[int]) -> tuple[StackedEnsemble, float]:
    """Train pool models ``indices`` together; returns the ensemble and the training seconds
    (data orders and training, like ``train_reference_model``'s timing: not init, not eval)."""
    tensors = _tensors(data.retain)
    if tensors is None:
        raise ValueError("the stacked ensemble needs a retain set held in tensors")
    inputs, targets = tensors
    recipe = task.recipe
    n, batch_size = len(targets), recipe.batch_size
    ensemble = StackedEnsemble([init_member(task, i) for i in indices])
    ensemble.template.train()
    weight = None
    if recipe.class_weighted:
        weight = class_weights(targets.numpy(), task.num_classes)

    start = time.perf_counter()
    orders = [ShuffleOrder(n, pool_seed(task.seed, i), batch_size) for i in indices]
    optimizer = recipe.make_optimizer(list(ensemble.params.values()))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
        if recipe.schedule == "cosine"
        else None
    )
    for _ in range(recipe.epochs):
        epoch = torch.stack([order.next_epoch() for order in orders])  # [M, n]
        for first in range(0, n, batch_size):
            batch = epoch[:, first : first + batch_size]
            flat = batch.reshape(-1)  # index_select: a faster gather than advanced indexing
            batch_inputs = inputs.index_select(0, flat).view(*batch.shape, *inputs.shape[1:])
            batch_targets = targets.index_select(0, flat).view(batch.shape)
            loss = _ensemble_loss(ensemble.forward(batch_inputs), batch_targets, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
    seconds = time.perf_counter() - start
    ensemble.template.eval()
    for p in ensemble.params.values():
        p.grad = None
    return ensemble, seconds


def evaluate_ensemble(ensemble: StackedEnsemble, data: TaskData) -> dict[str, np.ndarray]:
    """Per member, what ``pool.evaluate_model`` computes: forget-set logit-scaled confidences and
    retain/test/forget accuracies (logits of all members from batched forward passes)."""
    results: dict[str, np.ndarray] = {}
    for split in ("forget", "retain", "test"):
        tensors = _tensors(getattr(data, split))
        if tensors is None:
            raise ValueError(f"the stacked ensemble needs the {split} set held in tensors")
        logits = ensemble.predict(tensors[0]).numpy()  # [M, n, C]
        split_targets = tensors[1].numpy()
        members, n, num_classes = logits.shape
        if n:
            hits = np.argmax(logits, axis=2) == split_targets
            results[f"{split}_acc"] = hits.mean(axis=1).astype(np.float64)
        else:
            results[f"{split}_acc"] = np.full(members, np.nan)
        if split == "forget":  # row-wise statistic: all members in one call
            results["confidences"] = logit_scaled_confidence(
                logits.reshape(members * n, num_classes), np.tile(split_targets, members)
            ).reshape(members, n)
    return results


def _members_per_ensemble(task: Task) -> int:
    with torch.random.fork_rng(devices=[]):
        size = sum(p.numel() for p in task.make_model().parameters())
    return max(1, MAX_STACKED_PARAMETERS // max(size, 1))


def train_chunk_ensemble(task: Task, data: TaskData, indices: list[int]) -> ModelStats:
    """Train the pool models ``indices`` at once as stacked ensembles (the path for small models).

    Same contract as ``pool.train_chunk_sequential``. ``seconds`` is each member's share of its
    ensemble's training time (total / members): an honest per-model cost of building the pool, but
    not the time one model takes alone. The efficiency budget of submissions does not use it: it
    comes from a separate single-model timing (``scoring._retrain_seconds``).
    """
    if not supports_ensemble(task, data):
        raise ValueError(
            f"task {task.name!r} cannot be trained as a stacked ensemble; "
            "use select_chunk_trainer() or pool.train_chunk_sequential"
        )
    group = _members_per_ensemble(task)
    parts = []
    for first in range(0, len(indices), group):
        members = indices[first : first + group]
        ensemble, seconds = train_ensemble(task, data, members)
        stats = evaluate_ensemble(ensemble, data)
        parts.append(
            ModelStats(
                confidences=stats["confidences"],
                retain_acc=stats["retain_acc"],
                test_acc=stats["test_acc"],
                forget_acc=stats["forget_acc"],
                seconds=np.full(len(members), seconds / len(members)),
            )
        )
    return ModelStats.concatenate(parts)


# -- choosing a path -----------------------------------------------------------------------------
def _model_supported(model: nn.Module) -> bool:
    params = list(model.parameters())
    return (
        bool(params)
        and not list(model.buffers())  # BatchNorm statistics would need per-member updates
        and not any(isinstance(m, _STOCHASTIC_LAYERS) for m in model.modules())
        and all(p.is_floating_point() for p in params)
        and sum(p.numel() for p in params) <= MAX_MODEL_PARAMETERS
    )


def _vmap_matches(models: list[nn.Module], inputs: torch.Tensor) -> bool:
    """Whether the vmapped functional forward runs and gives each model's own forward."""
    try:
        stacked = StackedEnsemble(models)
        with torch.no_grad():
            batched = stacked.forward(inputs.unsqueeze(0).expand(len(models), *inputs.shape))
            singles = torch.stack([m.train()(inputs) for m in models])
    except Exception:  # any model vmap cannot trace: train it the ordinary way
        return False
    return batched.shape == singles.shape and torch.allclose(batched, singles, atol=1e-4)


def supports_ensemble(task: Task, data: TaskData | None = None) -> bool:
    """True when ``task``'s pool can be trained as a stacked ensemble: a CPU task whose model has
    no buffers or stochastic layers and at most ``MAX_MODEL_PARAMETERS`` parameters, and (when
    ``data`` is given) whose splits are held in tensors and run through vmap as through the model.
    """
    if torch.device(task.device).type != "cpu" or task.recipe.augment != "none":
        return False
    with torch.random.fork_rng(devices=[]):
        models = [task.make_model() for _ in range(2 if data is not None else 1)]
    if not _model_supported(models[0]):
        return False
    if data is None:
        return True
    splits = [data.retain, data.forget, data.retain, data.test]
    tensors = [_tensors(split) for split in splits]
    if any(t is None for t in tensors):
        return False
    sample = tensors[0][0][:4]
    return len(sample) > 0 and _vmap_matches(models, sample)


def select_chunk_trainer(task: Task, data: TaskData | None = None) -> ChunkTrainer:
    """The pool's chunk trainer for ``task``: the stacked ensemble when supported, otherwise the
    one-at-a-time ``pool.train_chunk_sequential`` (same interface, same numbers in distribution)."""
    return train_chunk_ensemble if supports_ensemble(task, data) else train_chunk_sequential
