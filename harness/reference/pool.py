"""The expensive shared artifacts, trained once and cached: the original model and the reference
pool of N retain-only models (their forget-set confidences and accuracies).

Everything lives in ``reference_models/<task>-<hash>/``, keyed by a content hash of what determines
the numbers. ``manifest.json`` records the configuration and a SHA-256 of every finished file;
a file whose checksum does not match is deleted and retrained, never used. Pool models are
trained and written in chunks, so an interrupted build resumes from the last finished chunk and,
since every model's seed depends only on its index, gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.core import files, sources
from harness.core.defaults import REFERENCE_ROOT
from harness.core.seeds import derive_seed, pool_seed
from harness.data.examples import labels_of
from harness.evaluation.example_outputs import SETS, model_outputs
from harness.evaluation.model_stats import ModelStats
from harness.tasks.base import Task, TaskData, task_code
from harness.training.loop import predict, synchronize, torch_threads, train_model

CHUNK_SIZE = 128
ORIGINAL_FILE = "original.pt"
MANIFEST_FILE = "manifest.json"
POOL, CEILING = "pool", "ceiling"  # the reference pool, and an independent one scored as a row

Progress = Callable[[int], None]  # called with the number of models just finished


def _logits(
    model: nn.Module, data: TaskData, device: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One model's logits [1, n, C] and the targets [n] per split of ``SETS``."""
    logits, targets = {}, {}
    for split in SETS:
        z, targets[split] = predict(model, getattr(data, split), device)
        logits[split] = z[None]
    return logits, targets


def evaluate_model(model: nn.Module, data: TaskData, device: str) -> dict[str, object]:
    """One model's ``example_outputs.model_outputs`` (its logits on every split): the forget
    confidences, the accuracies and the per-example losses (``losses``, per split); only
    ``all_logits_finite`` False when some logit is not finite (a run's weights are then
    invalid)."""
    logits, targets = _logits(model, data, device)
    if not all(np.isfinite(z).all() for z in logits.values()):
        return {"all_logits_finite": False}
    outputs = model_outputs(logits, targets)
    return {
        "losses": {split: outputs[f"{split}_losses"][0] for split in SETS},
        "confidences": outputs["confidences"][0],
        **{f"{split}_acc": float(outputs[f"{split}_acc"][0]) for split in SETS},
        "all_logits_finite": True,
    }


def train_from_scratch(
    task: Task,
    dataset,
    seed: int,
    gather: bool = True,
    *,
    val=None,
    best_val_from: int | None = None,
    weight_labels: torch.Tensor | None = None,
) -> tuple[nn.Module, float]:
    """A new model of ``task`` trained on ``dataset``: initialisation and data order from
    ``seed`` alone (``gather``, ``val``, ``best_val_from``, ``weight_labels``: see
    ``training.train_model``). Returns the model and its training seconds (the per-epoch val
    checks included, as they are part of the organisers' training)."""
    torch.manual_seed(seed)
    model = task.make_model()
    synchronize(task.device)  # earlier queued GPU work is not this training's
    start = time.perf_counter()
    train_model(
        model, dataset, task.recipe, seed, task.num_classes, task.device, gather,
        weight_labels=weight_labels, val=val, best_val_from=best_val_from,
    )
    synchronize(task.device)
    return model, time.perf_counter() - start


def train_reference_model(
    task: Task, data: TaskData, index: int, gather: bool = True
) -> tuple[nn.Module, float]:
    """Reference model ``index``, trained on the retain set from its own seed, as the organisers
    retrained: class weights counted on the full training set (``surf.get_dataset`` computes
    them once and ``main.py`` trains every model with them) and the epoch the recipe's
    ``pool_best_val_from`` keeps."""
    return train_from_scratch(
        task, data.retain, pool_seed(task.seed, index), gather, val=data.val,
        best_val_from=task.recipe.pool_best_val_from,
        weight_labels=labels_of(data.train) if task.recipe.class_weighted else None,
    )


def train_chunk_sequential(task: Task, data: TaskData, indices: list[int]) -> ModelStats:
    """Train the pool models ``indices`` one after another (the path for large models), as the
    workers run submissions: one thread each."""
    rows, seconds = [], []
    with torch_threads(1):
        for index in indices:
            model, took = train_reference_model(task, data, index)
            rows.append(model_outputs(*_logits(model, data, task.device)))
            seconds.append(took)
    return ModelStats.from_outputs(
        {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}, np.array(seconds))


def _train_chunk_alone(
    train_chunk: Callable[[Task, TaskData, list[int]], ModelStats],
    task: Task,
    name: str,
    indices: list[int],
) -> tuple[str, list[int], ModelStats]:
    """One chunk in a joblib worker, which loads the (deterministic) data itself."""
    return name, indices, train_chunk(task, task.load_data(), indices)


class ReferenceStore:
    """The cache folder of one task configuration."""

    def __init__(self, task: Task, data: TaskData, root: Path = REFERENCE_ROOT) -> None:
        """The key covers what can change the original model and the pool: the task's fields
        (less those only the submissions' runs use), the data, the numeric stack's versions and
        the source code that trains and evaluates the models."""
        self.task = task
        self.data = data
        task_config = task.config()
        # the time budget and the submissions' loader batch size never touch the pool
        for field_name in ("budget_fraction", "loader_batch_size"):
            task_config.pop(field_name, None)
        # the code that trains and evaluates pool models (and all it imports: the networks, the
        # training loop, the metric's confidences, the chunk files' layout) and the task's own
        task_files, task_text = task_code(type(task))
        trainers = [sources.PACKAGE / "reference" / name for name in ("pool.py", "ensemble.py")]
        self.config = {
            "task": task_config,
            "data_fingerprint": data.fingerprint,
            "versions": files.numeric_versions(),
            "source": sources.code_digest([*trainers, *task_files], [sources.PACKAGE], task_text),
        }
        self.key = files.config_hash(self.config)
        self.directory = Path(root) / f"{task.name}-{self.key}"

    # -- manifest ---------------------------------------------------------------------------
    def _manifest(self) -> dict:
        """The manifest of this key; a missing, damaged or foreign one counts as empty (so every
        file it would vouch for is untrusted and rebuilt), and so does any malformed entry."""
        fresh = {"key": self.key, "config": self.config, "files": {}, "created": time.time()}
        manifest = files.read_json_or_none(self.directory / MANIFEST_FILE)
        if manifest is None or manifest.get("key") != self.key:
            return fresh
        entries = manifest.get("files")
        created = manifest.get("created")
        return {
            **fresh,
            "files": {
                name: entry for name, entry in entries.items()
                if isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            } if isinstance(entries, dict) else {},
            "created": created if isinstance(created, int | float) else fresh["created"],
        }

    def _record(self, name: str, path: Path, **extra) -> None:
        """Vouch for ``path`` in the manifest (rewriting a damaged manifest from scratch)."""
        manifest = self._manifest()
        manifest["files"][name] = {"sha256": files.file_sha256(path), **extra}
        files.write_json(self.directory / MANIFEST_FILE, manifest)

    def _valid(self, name: str) -> bool:
        """True when ``name`` exists and matches its recorded checksum; a bad file is removed."""
        path = self.directory / name
        entry = self._manifest()["files"].get(name)
        if entry is None or not path.is_file():
            return False
        try:
            matches = files.file_sha256(path) == entry["sha256"]
        except OSError:  # unreadable: as good as missing, and rewritten by the caller
            return False
        if not matches:
            path.unlink()
            return False
        return True

    # -- original model ---------------------------------------------------------------------
    @property
    def original_path(self) -> Path:
        """Where the original model's weights are (written by ``original_model``)."""
        return self.directory / ORIGINAL_FILE

    def original_model(self) -> nn.Module:
        """The model trained on the whole training set (trained once, then loaded)."""
        path = self.original_path
        model = self.task.make_model()
        if self._valid(ORIGINAL_FILE):
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            return model.eval()
        if self.task.checkpoint is not None:
            model, seconds = self.task.load_checkpoint(), float("nan")
        else:
            seed = derive_seed(self.task.seed, "original")
            with torch_threads(1):
                model, seconds = train_from_scratch(
                    self.task, self.data.train, seed, val=self.data.val,
                    best_val_from=self.task.recipe.original_best_val_from,
                )
        model.cpu()

        def write(tmp: Path) -> None:
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            tmp.write_bytes(buffer.getvalue())

        files.atomic_write(path, write)
        self._record(ORIGINAL_FILE, path, seconds=seconds)
        return model.eval()

    # -- reference pool ---------------------------------------------------------------------
    def chunks(self, which: str = POOL) -> list[tuple[str, list[int]]]:
        """The chunk files of the pool (models 0..N-1) or of the ceiling (models N..2N-1 of the
        same seed stream: an independent pool trained the same way)."""
        n = self.task.num_models
        first = 0 if which == POOL else n
        return [
            (f"{which}-{start:05d}-{min(start + CHUNK_SIZE, first + n) - 1:05d}.npz",
             list(range(start, min(start + CHUNK_SIZE, first + n))))
            for start in range(first, first + n, CHUNK_SIZE)
        ]

    def missing_chunks(self, which: str = POOL) -> list[tuple[str, list[int]]]:
        return [(name, idx) for name, idx in self.chunks(which) if not self._valid(name)]

    def pool(
        self,
        train_chunk: Callable[[Task, TaskData, list[int]], ModelStats] = train_chunk_sequential,
        progress: Progress | None = None,
        jobs: int = 1,
        which: str = POOL,
    ) -> ModelStats:
        """The N reference models' numbers (or, with ``which=CEILING``, the N models of the
        independent second pool), training only the chunks not already cached.

        With ``jobs > 1`` the missing chunks train in that many processes (joblib), each loading
        the task's data itself: the path for models trained one at a time. Every finished chunk
        is written as soon as it arrives, so an interruption keeps it."""
        missing = self.missing_chunks(which)
        if jobs > 1 and len(missing) > 1:
            from joblib import Parallel, delayed

            finished = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_train_chunk_alone)(train_chunk, self.task, name, indices)
                for name, indices in missing
            )
        else:
            finished = (
                (name, indices, train_chunk(self.task, self.data, indices))
                for name, indices in missing
            )
        for name, indices, stats in finished:
            self.write_chunk(name, indices, stats)
            if progress is not None:
                progress(len(indices))
        return self.read_pool(which)

    def write_chunk(self, name: str, indices: list[int], stats: ModelStats) -> None:
        """Store one finished chunk (atomically, then vouched for in the manifest): the one way
        chunks enter the cache, whether they were trained here, in joblib processes or on a
        cluster (``harness.execution.cluster``), so every path resumes the others."""
        path = self.directory / name
        files.write_npz(path, stats.to_arrays())
        self._record(name, path, models=len(indices))

    def read_pool(self, which: str = POOL) -> ModelStats:
        """The cached chunks of the pool (or the ceiling) joined in index order; every chunk must
        be finished."""
        parts = [
            ModelStats(**files.read_npz(self.directory / name)) for name, _ in self.chunks(which)
        ]
        return ModelStats.concatenate(parts)

    def status(self) -> dict:
        """What is cached for this configuration (for ``harness pool --status``)."""
        chunks = self.chunks()
        done = [name for name, _ in chunks if self._valid(name)]
        models_done = sum(len(idx) for name, idx in chunks if name in done)
        ceiling_done = sum(len(idx) for _, idx in self.chunks(CEILING)) - sum(
            len(idx) for _, idx in self.missing_chunks(CEILING)
        )
        return {
            "directory": str(self.directory),
            "original_model": self._valid(ORIGINAL_FILE),
            "models_done": models_done,
            "models_total": self.task.num_models,
            "chunks_done": len(done),
            "chunks_total": len(chunks),
            "ceiling_models_done": ceiling_done,
        }
