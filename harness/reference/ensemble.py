"""Train many pool models at once as one ensemble (the reference pool's fast path).

Why: the pool needs N (512) models that differ only in their seeds. A small model trained alone
spends most of its time on per-step overhead (the data loader's per-example fetches, autograd and
optimizer bookkeeping, kernels too small to keep a core or a GPU busy). Training M models as one
computation does the same arithmetic in a few large operations per step. Two ways:

* **stacked** (:class:`StackedEnsemble`): the members' parameters stacked along a new leading
  dimension and run with ``torch.func.vmap`` (or a model's own ``stacked_forward``): small
  buffer-free models on the CPU (the digits MLP);
* **grouped** (:class:`GroupedEnsemble`): one network whose every layer does M members' work on
  member-major channels: convolutions with M times the groups, BatchNorm over M times the
  channels (so each member's batch statistics and running statistics are its own: channel
  ``k * C + c`` is member k's channel c), linear layers as batched matrix products. For
  convolution/BatchNorm/linear models such as ResNet-18, on the CPU and on CUDA.

Why grouped and not vmap for BatchNorm models: both work (vmap with the running statistics passed
as stacked buffers updates them per member), and on the CPU grouped was the faster, measured with
``bench/bench_resnet_pool.py --vmap --threads 1`` (ResNet-18 of width 8 on 16x16 images, batch 32,
8 members, one thread, on a 2-core machine shared with other jobs, load average 2.3): grouped 5,111
member-images/s, vmap 3,607, one model at a time 2,223 (2.30x and 1.62x); with ``--width 16
--image-size 32``: grouped 1,300, vmap 1,126, one at a time 1,096 (1.19x and 1.03x). More members
at once did not hurt on the CPU: ``--threads 1 --members 64 --sequential 2`` gave 5,869 grouped
(2.67x; 4,720 and 2.19x with ``--members 8`` in the same series, load average 2.9). The CPU's
gain shrinks as the model grows, so on the CPU only models of at most ``MAX_MODEL_PARAMETERS``
parameters train grouped; on a GPU every supported model does (how much it gains there is for
``bench/bench_resnet_pool.py --device cuda ...`` to say; no GPU measurement is recorded here).

Why the members are the models the sequential path trains (``pool.train_chunk_sequential``):

* initialisation: member ``i`` is built exactly as there, ``torch.manual_seed(pool_seed(root, i))``
  then ``task.make_model()``, and its tensors are copied bit for bit into the ensemble;
* data order: every member draws its own batches from its own ``torch.Generator`` seeded with its
  seed, with the same draws ``training.train_model``'s shuffling ``DataLoader`` makes
  (:class:`ShuffleOrder`, checked against the real ``DataLoader`` at run time);
* augmentation: every member's crops and flips come from its own generator seeded with its seed
  plus one, drawn as ``training.crop_flip`` draws them (``crop_flip_draws``), then all members'
  images are cropped in one pass;
* recipe: the loss is the sum over members of each member's mean (optionally class-weighted, with
  the full training set's counts as there) cross-entropy, so each member's gradient is its own
  loss's gradient; SGD and Adam (with weight
  decay) update every element independently, so ``recipe.make_optimizer`` over the ensemble's
  tensors is M independent optimizers; the cosine schedule steps once per epoch with
  ``T_max = epochs``, as there; BatchNorm's batch and running statistics are per member (above);
* checkpoint: with the recipe's ``pool_best_val_from``, every member is scored on val after every
  epoch and keeps the epoch ``training.BestVal`` keeps, its tensors copied out of the ensemble
  when it is saved and back at the end (BatchNorm's step counter, one for all members and unused
  by a BatchNorm with a momentum, stays the last epoch's).

In float64 a grouped member equals its one-at-a-time twin to about 1e-13 (tests/test_ensemble.py).
In float32 the two differ by rounding, which training amplifies: a ReLU-silenced channel of a
narrow ResNet has near-zero batch variance, and BatchNorm divides rounding noise by sqrt(eps). The
pool is then statistically, not bitwise, the sequential pool.

Models the ensembles cannot hold (stochastic layers such as dropout, layers with parameters other
than convolutions, BatchNorm and linear layers, a forward that mixes channels, data that is not
held in tensors) are trained one at a time: :func:`select_chunk_trainer` then returns
``pool.train_chunk_sequential``, which has the same interface (``(task, data, indices) ->
ModelStats``), so ``ReferenceStore.pool`` accepts either. Before the grouped path is used, a
grouped network is checked against its members on real inputs (training and eval forward, running
statistics).

How many members train at once: stacked, a parameter budget; grouped, a memory budget (a share of
the GPU's free memory, a fixed number of floats on the CPU) over an estimate of one member's
memory (``member_elements``); an ensemble that runs out of memory is retried with half as many.
Torch's thread count is left as it is: the ensemble is one process that uses all of the machine's
threads for its large operations.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.data import Dataset

from harness.core.seeds import pool_seed
from harness.data.examples import ShuffleOrder, column_view, inputs_targets, labels_of
from harness.evaluation.example_outputs import SETS, model_outputs
from harness.evaluation.model_stats import ModelStats
from harness.reference.pool import train_chunk_sequential
from harness.tasks.base import Task, TaskData
from harness.training.loop import (
    BestVal,
    Recipe,
    apply_crop_flip,
    at_least_float32,
    backend_flags,
    class_weights,
    crop_flip_draws,
    optimise,
    synchronize,
)

ChunkTrainer = Callable[[Task, TaskData, list[int]], ModelStats]
STACKED, GROUPED = "stacked", "grouped"  # the two ways of training members at once

# Models with more parameters than this train one at a time: their own matmuls already keep the
# cores busy, so stacking them gains little and costs M times the memory.
MAX_MODEL_PARAMETERS = 2_000_000
# Stacked parameter elements per sub-ensemble (params, grads and optimizer state each hold this
# many floats); a chunk with more is trained as several consecutive ensembles.
MAX_STACKED_PARAMETERS = 50_000_000
# Members evaluated per batched forward pass (bounds the [members, examples, hidden] activations).
EVAL_MEMBERS = 64
# Grouped ensembles: floats one ensemble may hold on the CPU (1 GiB), the share of a GPU's free
# memory it may plan for (``member_elements`` is an estimate), the most members at once, and the
# member-images per evaluation pass.
MAX_STACKED_ELEMENTS = 2**28
GPU_MEMORY_SHARE = 0.6
MAX_MEMBERS = 64
EVAL_IMAGES = 4096

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

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def train(self) -> None:
        self.template.train()

    def eval(self) -> None:
        self.template.eval()

    def prepare(self, recipe: Recipe) -> None:
        """Nothing to adopt: the stacked path trains small buffer-free models on the CPU."""

    def state(self) -> dict[str, torch.Tensor]:
        """The live tensors, member k's the k-th slice of dimension 0 (``copy_members``)."""
        return self.params

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


class GroupedLinear(nn.Module):
    """``members`` linear layers side by side. Features arrive member-major, [B, members * in]
    (what flattening a grouped network's channels gives), and leave as [B, members * out]. The
    weight is the members' weights stacked on its first dimension ([members * out, in]), like
    every tensor of a grouped network: member k's tensor is the k-th slice of dimension 0."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members * out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        x = x.reshape(batch, self.members, self.in_features).transpose(0, 1)  # [K, B, in]
        weight = self.weight.view(self.members, self.out_features, self.in_features).mT
        if self.bias is None:
            out = torch.bmm(x, weight)
        else:
            out = torch.baddbmm(self.bias.view(self.members, 1, self.out_features), x, weight)
        return out.transpose(0, 1).reshape(batch, self.members * self.out_features)


class UnsupportedModel(ValueError):
    """A model that cannot be trained as a grouped ensemble (a layer with parameters or buffers
    other than convolutions, BatchNorm and linear layers, or a stochastic layer)."""


def _grouped_layer(module: nn.Module, members: int) -> nn.Module | None:
    """The layer that does ``members`` copies of ``module``'s work on member-major channels
    (built on the meta device: its tensors are filled in by ``group_models``); None for a layer
    without parameters or buffers, which acts on every channel alike and is kept as it is."""
    k = members
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return type(module)(
            k * module.in_channels, k * module.out_channels, module.kernel_size, module.stride,
            module.padding, module.dilation, k * module.groups, module.bias is not None,
            module.padding_mode,
        )
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) and not isinstance(
        module, nn.SyncBatchNorm
    ):
        # channel c of member k is channel k * C + c: statistics per member and channel
        return type(module)(
            k * module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )
    if isinstance(module, nn.Linear):
        return GroupedLinear(k, module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, _STOCHASTIC_LAYERS):
        raise UnsupportedModel(f"{type(module).__name__} draws from the global RNG")
    own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    if own:
        raise UnsupportedModel(f"{type(module).__name__} has parameters or buffers of its own")
    return None


def group_models(models: list[nn.Module]) -> nn.Module:
    """One network that computes ``models`` (one architecture) side by side on member-major
    channels: every convolution grouped (``groups`` times K), every BatchNorm over K times the
    channels, every linear layer a ``GroupedLinear``. Input [B, K * C, ...] (member k's batch in
    channels k*C .. k*C + C - 1), output [B, K * classes]. Raises ``UnsupportedModel``."""
    k = len(models)
    net = copy.deepcopy(models[0])
    with torch.device("meta"):
        replacements = {
            name: layer for name, module in net.named_modules()
            if (layer := _grouped_layer(module, k)) is not None
        }
    for name, layer in replacements.items():
        parent, _, leaf = name.rpartition(".")
        if not leaf:
            raise UnsupportedModel("the model is a single layer, not a network of layers")
        setattr(net.get_submodule(parent), leaf, layer)
    states = [model.state_dict() for model in models]
    grouped = {}
    for key, tensor in net.state_dict().items():
        parts = [state[key] for state in states]
        if tensor.dim() == 0:  # BatchNorm's step counter: one for all, so it must agree
            if any(not torch.equal(part, parts[0]) for part in parts):
                raise UnsupportedModel(f"the members' {key} differ")
            grouped[key] = parts[0].clone()
        else:
            grouped[key] = torch.cat([part.detach() for part in parts])
    net.load_state_dict(grouped, assign=True)
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    return net


class GroupedEnsemble:
    """K models of one architecture run as one grouped network (``group_models``): per member
    its own parameters, batch statistics and running statistics, in a few large kernels."""

    def __init__(self, models: list[nn.Module], device: str | torch.device = "cpu") -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = len(models)
        self.template = copy.deepcopy(models[0]).cpu()
        self.net = group_models(models).to(device)
        self.device = torch.device(device)
        self.run: Callable[[torch.Tensor], torch.Tensor] = self.net
        self.layout: Callable[[torch.Tensor], torch.Tensor] = lambda tensor: tensor

    def __len__(self) -> int:
        return self.members

    def parameters(self) -> list[torch.Tensor]:
        return list(self.net.parameters())

    def train(self) -> None:
        self.net.train()

    def eval(self) -> None:
        self.net.eval()

    def prepare(self, recipe: Recipe) -> None:
        """Adopt the recipe's memory layout and compilation (``Recipe.prepare``)."""
        self.run = recipe.prepare(self.net)
        self.layout = recipe.layout

    def state(self) -> dict[str, torch.Tensor]:
        """The live tensors (parameters and running statistics), member-major on dimension 0;
        0-dimensional ones (BatchNorm's step counter) are shared by all members."""
        return self.net.state_dict()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Every member on its own batch: inputs [K, B, C, ...] -> logits [K, B, classes]."""
        k, batch = inputs.shape[:2]
        rest = inputs.shape[3:]
        merged = inputs.transpose(0, 1).reshape(batch, k * inputs.shape[2], *rest)
        return self.run(self.layout(merged)).view(batch, k, -1).transpose(0, 1)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, images: int = EVAL_IMAGES) -> torch.Tensor:
        """Every member in eval mode on the same inputs [n, C, ...] -> float32 logits [K, n, C],
        ``images`` member-images per pass (bounds the activations' memory)."""
        was_training = self.net.training
        self.net.eval()
        step = max(1, images // self.members)
        try:
            parts = []
            for first in range(0, len(inputs), step):
                part = inputs[first : first + step].to(self.device)
                tiled = part.repeat(1, self.members, *([1] * (part.dim() - 2)))
                logits = self.net(tiled).float()
                parts.append(logits.view(len(part), self.members, -1).transpose(0, 1).cpu())
            if not parts:
                return torch.zeros(self.members, 0, 0)
            return torch.cat(parts, dim=1)
        finally:
            self.net.train(was_training)

    def unstack(self) -> list[nn.Module]:
        """The members as ordinary modules (CPU, eval mode), with their running statistics."""
        state = {key: value.detach().cpu() for key, value in self.net.state_dict().items()}
        models = []
        for m in range(self.members):
            model = copy.deepcopy(self.template)
            model.load_state_dict({
                key: value.clone() if value.dim() == 0 else value.chunk(self.members)[m].clone()
                for key, value in state.items()
            })
            models.append(model.eval())
        return models


Ensemble = StackedEnsemble | GroupedEnsemble


def _augment_members(
    inputs: torch.Tensor, generators: list[torch.Generator], fill: tuple[float, ...] | None
) -> torch.Tensor:
    """Crop-flip every member's batch [K, B, C, H, W] with the draws its own generator makes, as
    ``training.train_model`` augments a model's batches (padding ``fill``), in one pass over all
    members' images."""
    k, batch = inputs.shape[:2]
    draws = [crop_flip_draws(batch, generator) for generator in generators]
    offsets = torch.cat([offsets for offsets, _ in draws], dim=1)
    flips = torch.cat([flips for _, flips in draws])
    flat = apply_crop_flip(inputs.reshape(k * batch, *inputs.shape[2:]), offsets, flips, fill)
    return flat.view(inputs.shape)


@torch.no_grad()
def copy_members(
    target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], members: np.ndarray
) -> None:
    """Copy the ``members`` (bool per member) slices of every member-major tensor of ``source``
    into ``target`` (an ensemble's ``state`` or a copy of it); shared 0-dim tensors are left."""
    count = len(members)
    chosen = torch.from_numpy(np.flatnonzero(members))
    for key, tensor in source.items():
        if tensor.dim() == 0:
            continue
        rows = chosen.to(tensor.device)
        target[key].unflatten(0, (count, -1))[rows] = tensor.unflatten(0, (count, -1))[rows]


def _val_correct(ensemble: Ensemble, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Val examples each member (in eval mode) classifies right."""
    logits = ensemble.predict(inputs)  # [M, n, C] on the CPU
    return (logits.argmax(dim=2) == targets).sum(dim=1).numpy()


def _build(kind: str, models: list[nn.Module], device: str) -> Ensemble:
    return StackedEnsemble(models) if kind == STACKED else GroupedEnsemble(models, device)


def train_ensemble(
    task: Task, data: TaskData, indices: list[int], kind: str | None = None
) -> tuple[Ensemble, float]:
    """Train pool models ``indices`` together; returns the ensemble and the training seconds
    (data orders and training, like ``train_reference_model``'s timing: not init, not eval).
    ``kind``: ``STACKED`` or ``GROUPED`` (default: what ``ensemble_kind`` picks)."""
    kind = kind or ensemble_kind(task, data)
    if kind is None:
        raise ValueError(f"task {task.name!r} cannot be trained as an ensemble")
    tensors = _tensors(data.retain)
    if tensors is None:
        raise ValueError("the ensemble needs a retain set held in tensors")
    device = task.device
    inputs, targets = (t.to(device) for t in tensors)
    recipe = task.recipe
    n, batch_size = len(targets), recipe.batch_size
    ensemble = _build(kind, [init_member(task, i) for i in indices], device)
    weight = None
    if recipe.class_weighted:  # counted on the full training set, as train_reference_model's
        weight = class_weights(labels_of(data.train).numpy(), task.num_classes).to(device)
    rule, val = None, None
    if recipe.pool_best_val_from is not None:
        val = _tensors(data.val)
        if val is None:
            raise ValueError("keeping the best val epoch needs a val set held in tensors")
        rule = BestVal(recipe.pool_best_val_from, len(indices))

    synchronize(device)
    start = time.perf_counter()
    seeds = [pool_seed(task.seed, i) for i in indices]
    orders = [ShuffleOrder(n, seed, batch_size) for seed in seeds]
    augment = [torch.Generator().manual_seed(seed + 1) for seed in seeds]  # as train_model's

    def epoch_batches(epoch_index: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = torch.stack([order.next_epoch() for order in orders]).to(device)  # [M, n]
        for first in range(0, n, batch_size):
            batch = epoch[:, first : first + batch_size]
            flat = batch.reshape(-1)  # index_select: a faster gather than advanced indexing
            batch_inputs = inputs.index_select(0, flat).view(*batch.shape, *inputs.shape[1:])
            batch_targets = targets.index_select(0, flat).view(batch.shape)
            if recipe.augment == "crop-flip":
                batch_inputs = _augment_members(batch_inputs, augment, recipe.crop_fill)
            yield batch_inputs, batch_targets

    def loss_of(batch_inputs: torch.Tensor, batch_targets: torch.Tensor) -> torch.Tensor:
        with recipe.autocast(device):
            logits = ensemble.forward(batch_inputs)
        return _ensemble_loss(at_least_float32(logits), batch_targets, weight)

    saved: dict[str, torch.Tensor] = {}

    def keep_best_val(epoch_index: int) -> None:
        save = rule.update(epoch_index, _val_correct(ensemble, *val))
        if save.any():
            if not saved:
                saved.update({k: v.detach().clone() for k, v in ensemble.state().items()})
            copy_members(saved, ensemble.state(), save)

    ensemble.train()
    with backend_flags(recipe, device):
        ensemble.prepare(recipe)
        optimise(ensemble.parameters(), recipe, epoch_batches, loss_of,
                 None if rule is None else keep_best_val)
    if saved:
        copy_members(ensemble.state(), saved, rule.epochs >= 0)
    synchronize(device)
    seconds = time.perf_counter() - start
    ensemble.eval()
    for p in ensemble.parameters():
        p.grad = None
    return ensemble, seconds


def evaluate_ensemble(ensemble: Ensemble, data: TaskData) -> dict[str, np.ndarray]:
    """Every member's ``example_outputs.model_outputs``, from the logits of batched forward
    passes of all members."""
    logits, targets = {}, {}
    for split in SETS:
        tensors = _tensors(getattr(data, split))
        if tensors is None:
            raise ValueError(f"the stacked ensemble needs the {split} set held in tensors")
        logits[split] = ensemble.predict(tensors[0]).numpy()  # [M, n, C]
        targets[split] = tensors[1].numpy()
    return model_outputs(logits, targets)


def member_elements(task: Task, sample: torch.Tensor) -> int:
    """Floats one member of a grouped ensemble holds while it trains: its parameters four times
    (weights, gradients, two optimizer states at most) and twice the outputs of its layers on one
    batch (those autograd keeps, and their gradients); ``sample`` is one input [C, ...]. Counted
    on the meta device: no memory and no arithmetic."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        model = task.make_model().train()
    outputs = 0

    def count(module: nn.Module, args: tuple, output: object) -> None:
        nonlocal outputs
        if isinstance(output, torch.Tensor):
            outputs += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        shape = (task.recipe.batch_size, *sample.shape)
        model(torch.empty(shape, device="meta", dtype=sample.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return 4 * sum(p.numel() for p in model.parameters()) + 2 * outputs


def _budget_elements(device: str | torch.device) -> int:
    """Floats an ensemble may use: on a GPU a share of its free memory now, on the CPU the
    fixed ``MAX_STACKED_ELEMENTS``."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(GPU_MEMORY_SHARE * free) // 4
    return MAX_STACKED_ELEMENTS


def members_per_ensemble(task: Task, data: TaskData, kind: str) -> int:
    """How many members train at once. Stacked: the parameter budget. Grouped: the memory budget
    (``_budget_elements``) over one member's share (``member_elements``), at most
    ``MAX_MEMBERS``. The members' numbers do not depend on it."""
    if kind == STACKED:
        with torch.random.fork_rng(devices=[]):
            size = sum(p.numel() for p in task.make_model().parameters())
        return max(1, MAX_STACKED_PARAMETERS // max(size, 1))
    tensors = _tensors(data.retain)
    if tensors is None or len(tensors[0]) == 0:
        raise ValueError("the ensemble needs a retain set held in tensors")
    share = member_elements(task, tensors[0][0])
    return max(1, min(MAX_MEMBERS, _budget_elements(task.device) // max(share, 1)))


def train_chunk_ensemble(task: Task, data: TaskData, indices: list[int]) -> ModelStats:
    """Train the pool models ``indices`` at once as ensembles (the fast path).

    Same contract as ``pool.train_chunk_sequential``. ``seconds`` is each member's share of its
    ensemble's training time (total / members): an honest per-model cost of building the pool, but
    not the time one model takes alone. The efficiency budget of submissions does not use it: it
    comes from a separate single-model timing (``runner.WorkerPool.time_retrain``). An
    ensemble that runs out of device memory (``members_per_ensemble`` estimates) is tried again
    with half as many members at once, down to one.
    """
    kind = ensemble_kind(task, data)
    if kind is None:
        raise ValueError(
            f"task {task.name!r} cannot be trained as an ensemble; "
            "use select_chunk_trainer() or pool.train_chunk_sequential"
        )
    group = members_per_ensemble(task, data, kind)
    parts = []
    first = 0
    while first < len(indices):
        members = indices[first : first + group]
        try:
            ensemble, seconds = train_ensemble(task, data, members, kind)
            stats = evaluate_ensemble(ensemble, data)
        except torch.OutOfMemoryError:
            # the memory estimate was short (workspace, fragmentation): fewer at once
            if group == 1:
                raise
            group = max(1, group // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        parts.append(ModelStats.from_outputs(stats, np.full(len(members), seconds / len(members))))
        del ensemble
        first += len(members)
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


class EnsembleFallback(UserWarning):
    """A pool that could not train as one kind of ensemble, and why (it trains another way)."""


def _fell_back(kind: str, why: str) -> bool:
    then = ("a grouped ensemble is tried next" if kind == STACKED
            else "it trains one model at a time")
    warnings.warn(f"the pool does not train as a {kind} ensemble ({why}); {then}",
                  EnsembleFallback, stacklevel=3)
    return False


def _vmap_matches(models: list[nn.Module], inputs: torch.Tensor) -> bool:
    """Whether the vmapped functional forward runs and gives each model's own forward."""
    try:
        stacked = StackedEnsemble(models)
        with torch.no_grad():
            batched = stacked.forward(inputs.unsqueeze(0).expand(len(models), *inputs.shape))
            singles = torch.stack([m.train()(inputs) for m in models])
    except Exception as error:  # any model vmap cannot trace: train it the ordinary way
        return _fell_back(STACKED, f"vmap cannot run the model: {type(error).__name__}: {error}")
    if batched.shape == singles.shape and torch.allclose(batched, singles, atol=1e-4):
        return True
    return _fell_back(STACKED, "its outputs differ from the models' own")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to rounding (relative to the size of ``b``; TF32 on a GPU rounds coarsely). A
    layer that mixes members or channels is off by the size of the values themselves."""
    if a.shape != b.shape:
        return False
    scale = b.abs().max().item() + 1e-6
    return bool(((a - b).abs().max() <= 1e-3 * scale).item())


def _grouped_matches(models: list[nn.Module], inputs: torch.Tensor, device: str) -> bool:
    """Whether the grouped network gives each model's own training-mode forward, the same
    running statistics afterwards, and each model's eval-mode forward (a model whose forward
    mixes channels, e.g. by concatenating them, fails here and trains one at a time)."""
    try:
        with _full_float32():
            if _grouped_matches_unguarded(models, inputs, device):
                return True
    except (UnsupportedModel, RuntimeError, TypeError, ValueError) as error:
        return _fell_back(GROUPED, f"{type(error).__name__}: {error}")
    return _fell_back(GROUPED, "its outputs or running statistics differ from the models' own")


@contextmanager
def _full_float32() -> Iterator[None]:
    """No TF32 (Ampere and newer GPUs round convolutions and matmuls to 10-bit mantissas by
    default) while the grouped network is checked: the check compares to 1e-3 and must not
    refuse a model for rounding."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _grouped_matches_unguarded(
    models: list[nn.Module], inputs: torch.Tensor, device: str
) -> bool:
    singles = [copy.deepcopy(m).to(device).train() for m in models]
    grouped = GroupedEnsemble(models, device)
    grouped.train()
    inputs = inputs.to(device)
    with torch.no_grad():
        batched = grouped.forward(inputs.unsqueeze(0).expand(len(models), *inputs.shape))
        trained = torch.stack([m(inputs) for m in singles])
        predicted = grouped.predict(inputs)
        evaluated = torch.stack([m.eval()(inputs).float().cpu() for m in singles])
    states = [m.state_dict() for m in grouped.unstack()]
    return (
        _close(batched, trained) and _close(predicted, evaluated)
        and all(
            _close(state[key].float(), value.float().cpu())
            for single, state in zip(singles, states, strict=True)
            for key, value in single.state_dict().items()
        )
    )


def ensemble_kind(task: Task, data: TaskData | None = None) -> str | None:
    """How ``task``'s pool trains at once: ``STACKED`` (vmap over stacked parameters: small
    buffer-free models on the CPU without augmentation), ``GROUPED`` (one grouped network:
    convolution/BatchNorm/linear models, on a GPU, or on the CPU up to ``MAX_MODEL_PARAMETERS``
    parameters, where it measured faster), or None (one model at a time). With ``data``, the
    splits must be held in tensors and the ensemble must compute what the models compute."""
    device = torch.device(task.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return None
    if device.type not in ("cpu", "cuda"):
        return None
    with torch.random.fork_rng(devices=[]):
        models = [task.make_model() for _ in range(2 if data is not None else 1)]
    params = list(models[0].parameters())
    if not params or not all(p.is_floating_point() for p in params):
        return None
    small = sum(p.numel() for p in params) <= MAX_MODEL_PARAMETERS
    stacked = device.type == "cpu" and task.recipe.augment == "none" and _model_supported(
        models[0]
    )
    candidates = [STACKED] if stacked else []
    if device.type == "cuda" or small:
        candidates.append(GROUPED)
    if data is None:
        for kind in candidates:
            if kind == STACKED:
                return kind
            try:
                group_models(models)
            except UnsupportedModel:
                return None
            return kind
        return None
    splits = [data.retain, data.forget, data.test]
    if task.recipe.pool_best_val_from is not None:  # scored on val after every epoch
        splits.append(data.val)
    tensors = [_tensors(split) for split in splits]
    if any(t is None for t in tensors) or len(tensors[0][0]) == 0:
        return None
    sample = tensors[0][0][:8]
    for kind in candidates:
        if kind == STACKED and _vmap_matches(models, sample):
            return kind
        if kind == GROUPED:
            with torch.random.fork_rng(devices=[]):
                if _grouped_matches(models, sample, task.device):
                    return kind
    return None


def supports_ensemble(task: Task, data: TaskData | None = None) -> bool:
    """True when ``task``'s pool can be trained as an ensemble (``ensemble_kind``)."""
    return ensemble_kind(task, data) is not None


def select_chunk_trainer(task: Task, data: TaskData | None = None) -> ChunkTrainer:
    """The pool's chunk trainer for ``task``: an ensemble when supported, otherwise the
    one-at-a-time ``pool.train_chunk_sequential`` (same interface, same numbers in distribution)."""
    return train_chunk_ensemble if supports_ensemble(task, data) else train_chunk_sequential
