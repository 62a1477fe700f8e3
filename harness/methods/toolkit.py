"""Helpers for submissions: what several unlearning methods need, written once.

Submissions import from here by its public name (``from harness.toolkit import ...``). During a run
the harness tells the toolkit which task is being scored, so methods that re-initialise layers
(EU-k, fresh models) can use the task's own model factory and recipe.

Contents: the running task and seeds; the layer mapping that carries ResNet-18 rules ("conv
layers", ``conv1``, ``layer4``, ``fc``) to any classifier (``feature_layers``, ``head``, ``stem``,
``last_block``); re-batched, reshuffled views of the given datasets (``rebatch``,
``random_subset``, ``Tagged``); frozen teachers and fresh models; losses (KL to and from uniform,
distillation KL, entropy, class-count weights, L2 to the start); and loops shared by several
methods (``train_epoch``, ``fanchuan_unlearning``, ``random_label_unlearning``,
``finetune_to_start``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from harness.data.examples import (  # noqa: F401  labels_of: for submissions
    Example,
    ExampleDataset,
    column_view,
    inputs_targets,
    labels_of,
)
from harness.tasks.base import Task

_current_task: Task | None = None


def set_current_task(task: Task | None) -> None:
    """Called by the harness's worker before runs; not for submissions."""
    global _current_task
    _current_task = task


def running_task() -> Task | None:
    """The task being scored, or None outside a harness run (for methods with a fallback)."""
    return _current_task


def device_of(net: nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without parameters)."""
    return next(net.parameters(), torch.empty(0)).device


def fresh_seed() -> int:
    """A seed drawn from torch's global RNG, which the harness seeds for every run."""
    return int(torch.randint(0, 2**62, ()).item())


# ---------------------------------------------------------------------------------------------
# Randomness. Data order comes from generators seeded with ``fresh_seed()``; parameter noise and
# re-initialisation draw from torch's global RNG. The harness seeds both sources before every run,
# so a run is reproducible from its seed; nothing here seeds a global RNG.
# ---------------------------------------------------------------------------------------------


def seeded_generator(seed: int | None = None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (default: a fresh seed from torch's global RNG)."""
    return torch.Generator().manual_seed(fresh_seed() if seed is None else seed)


# ---------------------------------------------------------------------------------------------
# Layer mapping: how rules written for ResNet-18 ("conv layers", "conv1", "layer4", "fc") apply to
# any classifier the tasks use. Every method uses these, so the mapping is stated once:
#   feature_layers(net): every nn.Conv2d if the net has any, else every nn.Linear except the head;
#   head(net):           ``net.fc`` if it is an nn.Linear, else the last nn.Linear;
#   stem(net):           the first feature layer (ResNet-18: ``conv1``; digits MLP: ``fc1``);
#   last_block(net):     ``net.layer4`` if present, else the last feature layer (MLP: ``fc1``).
# ---------------------------------------------------------------------------------------------


def head(net: nn.Module) -> nn.Linear:
    """The classifier head: ``net.fc`` if it is a Linear layer, else the model's last Linear."""
    fc = getattr(net, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to act as its head")
    return linears[-1]


def feature_layers(net: nn.Module) -> list[nn.Module]:
    """Every Conv2d of the model if it has any, else every Linear except the head (in order)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs
    top = head(net)
    return [m for m in net.modules() if isinstance(m, nn.Linear) and m is not top]


def stem(net: nn.Module) -> nn.Module:
    """The first feature layer (ResNet-18: ``conv1``; an MLP: its first hidden Linear)."""
    layers = feature_layers(net)
    if not layers:
        raise ValueError("the model has no feature layer (no Conv2d, no Linear besides the head)")
    return layers[0]


def last_block(net: nn.Module) -> nn.Module:
    """``net.layer4`` (ResNet's last block) if present, else the last feature layer."""
    block = getattr(net, "layer4", None)
    if isinstance(block, nn.Module):
        return block
    layers = feature_layers(net)
    if not layers:
        raise ValueError("the model has no feature layer (no Conv2d, no Linear besides the head)")
    return layers[-1]


def num_classes(net: nn.Module) -> int:
    """The number of classes: the head's output size."""
    return head(net).out_features


def module_name(net: nn.Module, module: nn.Module) -> str:
    """The qualified name of ``module`` inside ``net`` (``""`` for ``net`` itself)."""
    for name, candidate in net.named_modules():
        if candidate is module:
            return name
    raise ValueError("the module is not part of the model")


# ---------------------------------------------------------------------------------------------
# Data: re-batched, reshuffled views of the datasets behind the harness's loaders.
# ---------------------------------------------------------------------------------------------


class Tagged(Dataset):
    """A dataset whose items ``(x, y)`` become ``(x, y, tag)`` (e.g. 1 = forget, 0 = retain);
    its ``targets`` are the inner dataset's labels."""

    def __init__(self, dataset: Dataset, tag: int) -> None:
        self.dataset, self.tag = dataset, int(tag)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*inputs_targets(self.dataset[index]), self.tag)

    @property
    def targets(self) -> torch.Tensor:
        return labels_of(self.dataset)


def _tagged_view(
    dataset: Dataset,
) -> tuple[ExampleDataset, torch.Tensor, torch.Tensor | None] | None:
    """For a column-held dataset (``batches.column_view``), a Tagged one, or a ConcatDataset of
    those over one ExampleDataset: (that dataset, row index, tags or None), so batches are
    gathered by indexing; None for any other dataset."""
    if isinstance(dataset, Tagged):
        inner = column_view(dataset.dataset)
        if inner is None:
            return None
        base, index = inner
        return base, index, torch.full((len(index),), dataset.tag, dtype=torch.long)
    if isinstance(dataset, ConcatDataset):
        parts = [_tagged_view(part) for part in dataset.datasets]
        if not parts or any(part is None for part in parts):
            return None
        tagged = {part[2] is not None for part in parts}
        if len({id(part[0]) for part in parts}) != 1 or len(tagged) != 1:
            return None
        tags = torch.cat([part[2] for part in parts]) if tagged == {True} else None
        return parts[0][0], torch.cat([part[1] for part in parts]), tags
    view = column_view(dataset)
    return None if view is None else (*view, None)


class Batches:
    """An iterable of batches over a dataset, reshuffled on every pass (like a DataLoader with
    its own seeded generator). Datasets held in memory as tensors are batched by indexing, without
    a per-example Python loop; any other dataset goes through a DataLoader."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        num_workers: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), shuffle
        self.generator = seeded_generator(seed)
        self._view = _tagged_view(dataset)
        self._loader = None
        if self._view is None:
            self._loader = DataLoader(
                dataset,
                batch_size=self.batch_size,
                shuffle=shuffle,
                generator=self.generator,
                num_workers=num_workers,
            )

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        if self._loader is not None:
            yield from self._loader
            return
        base, index, tags = self._view
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = base.rows(index[rows])
            yield batch if tags is None else (*batch, tags[rows])


def rebatch(
    source: DataLoader | Dataset, batch_size: int | None = None, shuffle: bool = True
) -> Batches:
    """Batches over ``source``'s dataset (a loader's ``.dataset``, or a dataset) with the given
    batch size (default: the loader's), shuffled with a generator seeded from ``fresh_seed()``."""
    if isinstance(source, DataLoader):
        dataset, default_size = source.dataset, source.batch_size
        num_workers = source.num_workers
    else:
        dataset, default_size, num_workers = source, None, 0
    size = batch_size if batch_size is not None else default_size
    if size is None:
        raise ValueError("batch_size is required for a dataset or a loader without batch_size")
    return Batches(dataset, size, shuffle=shuffle, num_workers=num_workers)


def random_subset(dataset: Dataset, size: int) -> Subset:
    """A random subset of ``size`` examples (without replacement), drawn with a fresh generator."""
    size = max(0, min(int(size), len(dataset)))
    order = torch.randperm(len(dataset), generator=seeded_generator())[:size]
    return Subset(dataset, order.tolist())


def to_device(batch, device: torch.device) -> list[torch.Tensor]:
    """A batch's inputs and targets (and a tag, if any) moved to ``device``, from a batch in either
    style (``(inputs, targets, ...)`` or ``{'image': ..., 'age_group': ...}``)."""
    if isinstance(batch, Mapping) and not isinstance(batch, Example):
        batch = inputs_targets(batch)
    return [torch.as_tensor(part).to(device) for part in batch]


# ---------------------------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------------------------


def frozen_copy(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` without gradients: a teacher, or the original model."""
    teacher = copy.deepcopy(net).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _same_architecture(a: nn.Module, b: nn.Module) -> bool:
    shapes_a = [(k, tuple(v.shape)) for k, v in a.state_dict().items()]
    return shapes_a == [(k, tuple(v.shape)) for k, v in b.state_dict().items()]


def fresh_model_like(net: nn.Module) -> nn.Module:
    """A newly initialised model of ``net``'s architecture, on its device: the running task's model
    factory when it builds this architecture, else a copy of ``net`` whose every submodule is
    ``reset_parameters()``-ed (PyTorch's default initialisation)."""
    model = None
    task = running_task()
    if task is not None:
        candidate = task.make_model()
        if _same_architecture(candidate, net):
            model = candidate
    if model is None:
        model = copy.deepcopy(net)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return model.to(device_of(net))


def parameter_snapshot(net: nn.Module) -> list[torch.Tensor]:
    """Detached copies of the parameters (e.g. theta_0 of an L2-to-start penalty)."""
    return [p.detach().clone() for p in net.parameters()]


def l2_to(net: nn.Module, reference: list[torch.Tensor], weight_decay: float) -> torch.Tensor:
    """(weight_decay / 2) * ||theta - theta_0||^2 over the parameters that require gradients."""
    total = torch.zeros((), device=device_of(net))
    for parameter, start in zip(net.parameters(), reference, strict=True):
        if parameter.requires_grad:
            total = total + (parameter - start).pow(2).sum()
    return 0.5 * weight_decay * total


def set_trainable(net: nn.Module, modules: list[nn.Module]) -> list[nn.Parameter]:
    """Freeze every parameter, then unfreeze those of ``modules``; returns the trainable ones."""
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    trainable = []
    for module in modules:
        for parameter in module.parameters():
            if not parameter.requires_grad:
                parameter.requires_grad_(True)
                trainable.append(parameter)
    return trainable


def unfreeze(net: nn.Module) -> nn.Module:
    """Make every parameter trainable again (before returning a model that was partly frozen)."""
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    return net


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def step_decay(base_lr: float, epoch: int, milestones: Sequence[int], rate: float = 0.1) -> float:
    """``base_lr`` times ``rate`` per milestone strictly below ``epoch`` (SCRUB's schedule)."""
    return base_lr * rate ** sum(epoch > m for m in milestones)


# ---------------------------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------------------------


def kl_uniform_to_model(logits: torch.Tensor) -> torch.Tensor:
    """KL(uniform || softmax(logits)), averaged over the batch (KLDivLoss, batchmean, of the
    log-softmax against the uniform target 1/C)."""
    num = logits.shape[1]
    log_p = torch.log_softmax(logits, dim=1)
    return (-math.log(num) - log_p).sum(dim=1).mean() / num


def kl_model_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) || uniform), averaged over the batch (KLDivLoss, batchmean, of the input
    log(1/C) against the target softmax(logits))."""
    log_p = torch.log_softmax(logits, dim=1)
    return (log_p.exp() * (log_p + math.log(logits.shape[1]))).sum(dim=1).mean()


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)), summed, times T^2, divided by the batch size
    (the knowledge-distillation loss SCRUB uses)."""
    log_s = torch.log_softmax(student / temperature, dim=1)
    log_t = torch.log_softmax(teacher / temperature, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum()
    return kl * temperature**2 / student.shape[0]


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-example entropy of softmax(logits)."""
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def class_count_weights(labels: torch.Tensor, classes: int, power: float) -> torch.Tensor:
    """Per-class weights count**power (0 for a class absent from ``labels``)."""
    counts = torch.bincount(labels.long().cpu(), minlength=classes).double()
    weights = torch.where(counts > 0, counts.clamp(min=1) ** power, torch.zeros_like(counts))
    return weights.float()


# ---------------------------------------------------------------------------------------------
# Training loops shared by several methods.
# ---------------------------------------------------------------------------------------------


def train_epoch(
    net: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    before_step: Callable[[], None] | None = None,
) -> None:
    """One pass: for each batch, ``loss_fn(net, *batch)`` (tensors moved to the model's device),
    backward, ``before_step()`` (e.g. gradient masking), optimizer step. The caller sets the
    mode (train or eval)."""
    device = device_of(net)
    for batch in batches:
        loss = loss_fn(net, *to_device(batch, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        optimizer.step()


def cross_entropy_loss(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    return nn.functional.cross_entropy(net(inputs), targets)


def fanchuan_unlearning(
    net: nn.Module,
    retain: DataLoader,
    forget: DataLoader,
    reverse_kl_weight: float = 0.0,
    epochs: int = 8,
    temperature: float = 1.15,
    retain_batch_size: int = 256,
    stage1_lr: float = 0.005,
    forget_lr: float = 3e-4,
    forget_lr_min: float = 1e-6,
    retain_lr: float = 0.004,
    retain_weight_decay: float = 0.01,
    momentum: float = 0.9,
) -> nn.Module:
    """The 1st-place method (fanchuan), shared by its submission and the "improved SCL" variant.
    Every constant is an argument whose default is the published value (the values below).

    Stage 1, one epoch over the forget loader (its own batch size), train mode,
    SGD(``stage1_lr`` 0.005, ``momentum`` 0.9, 0): minimise KL(uniform || p) +
    ``reverse_kl_weight`` * KL(p || uniform), p = softmax(logits).
    Stage 2, ``epochs`` (8) epochs, train mode throughout; two retain views A and B reshuffled at
    ``retain_batch_size`` (256); forget optimizer SGD(``forget_lr`` 3e-4, 0.9, 0) with cosine
    annealing over ``epochs`` x (forget batches) steps down to ``forget_lr_min`` (1e-6), stepped
    per forget step; retain optimizer SGD(``retain_lr`` 0.004, 0.9, ``retain_weight_decay`` 0.01).
    Each epoch: a forget round (forget batches zipped with A: logits F of the forget batch, logits
    R of the A batch without gradient, S = F R^T / ``temperature`` (1.15), loss =
    -mean(log_softmax(S, over the retain axis))), then a retain round (cross-entropy over B).
    """
    device = device_of(net)
    forget_batches = rebatch(forget)
    net.train()
    stage1 = torch.optim.SGD(net.parameters(), lr=stage1_lr, momentum=momentum, weight_decay=0.0)

    def forget_to_uniform(model, inputs, targets):
        logits = model(inputs)
        loss = kl_uniform_to_model(logits)
        if reverse_kl_weight:
            loss = loss + reverse_kl_weight * kl_model_to_uniform(logits)
        return loss

    train_epoch(net, forget_batches, stage1, forget_to_uniform)

    retain_a = rebatch(retain, retain_batch_size)
    retain_b = rebatch(retain, retain_batch_size)
    forget_optimizer = torch.optim.SGD(
        net.parameters(), lr=forget_lr, momentum=momentum, weight_decay=0.0
    )
    forget_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        forget_optimizer, T_max=epochs * max(1, len(forget_batches)), eta_min=forget_lr_min
    )
    retain_optimizer = torch.optim.SGD(
        net.parameters(), lr=retain_lr, momentum=momentum, weight_decay=retain_weight_decay
    )
    for _ in range(epochs):
        for forget_batch, retain_batch in zip(forget_batches, retain_a, strict=False):
            forget_inputs = inputs_targets(forget_batch)[0].to(device)
            forget_logits = net(forget_inputs)
            with torch.no_grad():
                retain_logits = net(inputs_targets(retain_batch)[0].to(device))
            similarity = forget_logits @ retain_logits.T / temperature
            loss = -torch.log_softmax(similarity, dim=1).mean()
            forget_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            forget_optimizer.step()
            forget_schedule.step()
        train_epoch(net, retain_b, retain_optimizer, cross_entropy_loss)
    return net.eval()


def random_label_unlearning(
    net: nn.Module,
    retain: DataLoader,
    forget: DataLoader,
    epochs: int = 10,
    lr: float = 0.013,
    batch_size: int = 256,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    masks: list[torch.Tensor] | None = None,
) -> nn.Module:
    """Random labels (RL), optionally saliency-masked (SalUn). Train mode; one SGD optimizer
    (``lr``, ``momentum``, ``weight_decay``); each of ``epochs`` epochs a pass over forget with
    labels drawn uniformly from 0..C-1 (the true label included), then a pass over retain with
    true labels, both at ``batch_size``, cross-entropy throughout. The defaults are the published
    constants (Unlearn-Saliency's README: 10 epochs, lr 0.013, batch 256, SGD(0.9, 5e-4)). With
    ``masks`` (one per parameter, in ``net.parameters()`` order) every gradient is multiplied by
    its mask before each step (weight decay is added by the optimizer afterwards, so it still
    moves masked weights)."""
    classes = num_classes(net)
    forget_batches, retain_batches = rebatch(forget, batch_size), rebatch(retain, batch_size)
    label_generator = seeded_generator()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    parameters = list(net.parameters())

    def apply_masks():
        if masks is not None:
            for parameter, mask in zip(parameters, masks, strict=True):
                if parameter.grad is not None:
                    parameter.grad.mul_(mask)

    def random_label_loss(model, inputs, targets):
        labels = torch.randint(0, classes, targets.shape, generator=label_generator)
        return nn.functional.cross_entropy(model(inputs), labels.to(targets.device))

    net.train()
    for _ in range(epochs):
        train_epoch(net, forget_batches, optimizer, random_label_loss, apply_masks)
        train_epoch(net, retain_batches, optimizer, cross_entropy_loss, apply_masks)
    return net.eval()


def finetune_to_start(
    net: nn.Module,
    batches,
    epochs: int,
    lr: float = 0.01,
    weight_decay: float = 0.1,
    milestones: Sequence[int] = (10, 15, 20),
    rate: float = 0.1,
) -> nn.Module:
    """SCRUB's small-scale fine-tuning loop (used by CF-k and EU-k): eval mode (BN statistics
    frozen), plain SGD (no momentum, no optimizer weight decay) on the parameters that require
    gradients, loss = CE + (weight_decay / 2) * ||theta - theta_start||^2, learning rate
    ``lr`` x ``rate`` per milestone strictly below the (0-based) epoch. The defaults are the
    published constants (SCRUB's small-scale notebook: lr 0.01, --weight-decay 0.1, milestones
    10, 15, 20, rate 0.1); the epoch count differs between the methods and has none."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    start = parameter_snapshot(net)
    optimizer = torch.optim.SGD(trainable, lr=lr, momentum=0.0, weight_decay=0.0)

    def loss_fn(model, inputs, targets):
        return nn.functional.cross_entropy(model(inputs), targets) + l2_to(
            model, start, weight_decay
        )

    net.eval()
    for epoch in range(epochs):
        set_lr(optimizer, step_decay(lr, epoch, milestones, rate))
        train_epoch(net, batches, optimizer, loss_fn)
    return net.eval()

__all__ = [
    "Batches",
    "Tagged",
    "class_count_weights",
    "cross_entropy_loss",
    "device_of",
    "distill_kl",
    "fanchuan_unlearning",
    "feature_layers",
    "finetune_to_start",
    "fresh_model_like",
    "fresh_seed",
    "frozen_copy",
    "head",
    "kl_model_to_uniform",
    "kl_uniform_to_model",
    "l2_to",
    "labels_of",
    "last_block",
    "module_name",
    "num_classes",
    "parameter_snapshot",
    "random_label_unlearning",
    "random_subset",
    "rebatch",
    "running_task",
    "seeded_generator",
    "set_current_task",
    "set_lr",
    "set_trainable",
    "softmax_entropy",
    "stem",
    "step_decay",
    "to_device",
    "train_epoch",
    "unfreeze",
]
