"""A real task end to end at a small N: seconds per pool model and per submission run.

    python bench/bench_real_tasks.py [--task cifar10|surf] [--data DIR] [-n 4] [--epochs 2]
                                     [--people 500] [--device cuda] [--json PATH]
                                     [--submissions finetune do_nothing ...]

Without ``--data`` it writes data of the real task's format into a temporary folder: for cifar10
the real size (50,000 training and 10,000 test images of random pixels, the official python
pickle batches); for surf a CASIA-SURF tree of ``--people`` people with ``--images`` JPEGs each
(random pixels, ages 20..70). The loaders, the pool and the runs then see the workload's shapes.
The recipe is the task's own with ``--epochs`` epochs (both tasks train 30), so a check fits in
minutes; the projected seconds of a 30-epoch pool model are the measured ones times 30 / epochs.
Scores at such an N mean nothing: the point is the time per model and per run, and that every
stage runs on the device.

Runs: ``--submissions`` from ``submissions/`` plus the competition-style files under
``tests/competition_style/`` named with ``--competition`` (dict batches, loaders rebuilt with
ConcatDataset). Everything is written into a temporary cache that is removed afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness.core import files  # noqa: E402
from harness.pipeline.scoring import score  # noqa: E402
from harness.tasks import get_task  # noqa: E402

from fake_data import write_casia, write_cifar10  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="cifar10", choices=["cifar10", "surf"])
    parser.add_argument("--data", default=None, help="the task's data folder (default: random "
                        "pixels in the task's format)")
    parser.add_argument("--people", type=int, default=500, help="surf: people to write")
    parser.add_argument("--images", type=int, default=40, help="surf: images per person")
    parser.add_argument("-n", "--num-models", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default=None, help="default: the task's (cuda if visible)")
    parser.add_argument("--submissions", nargs="*", default=["do_nothing", "finetune"])
    parser.add_argument("--competition", nargs="*", default=["kaggle_dict_finetune"])
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix=f"bench-{args.task}-"))
    numbers: dict[str, object] = {}
    try:
        start = time.perf_counter()
        data_dir = Path(args.data) if args.data else work / "data"
        if not args.data and args.task == "cifar10":
            write_cifar10(data_dir, per_batch=10_000, test_size=10_000)
        elif not args.data:
            write_casia(data_dir, people=args.people, per_person=args.images)
        numbers["write_data_seconds"] = round(time.perf_counter() - start, 2)

        overrides = {"data_dir": str(data_dir), "num_models": args.num_models}
        if args.device:
            overrides["device"] = args.device
        task = get_task(args.task, **overrides)
        task = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=args.epochs))
        start = time.perf_counter()
        data = task.load_data()
        numbers["load_data_seconds"] = round(time.perf_counter() - start, 2)
        numbers["device"] = task.device
        numbers["train_images"] = len(data.train)
        numbers["recipe"] = dataclasses.asdict(task.recipe)

        folder = work / "submissions"
        folder.mkdir()
        for name in args.submissions:
            shutil.copy(ROOT / "submissions" / f"{name}.py", folder)
        for name in args.competition:
            shutil.copy(ROOT / "tests" / "competition_style" / f"{name}.py", folder)

        start = time.perf_counter()
        board = score(
            task, folder, reference_root=work / "ref", output_dir=work / "out",
            leaderboard_path=work / "leaderboard.csv", jobs=1, budget_seconds=float("inf"),
        )
        numbers["score_wall_seconds"] = round(time.perf_counter() - start, 1)

        (store_dir,) = (work / "ref").iterdir()
        manifest = files.read_json(store_dir / "manifest.json")
        original = manifest["files"]["original.pt"]["seconds"]
        pool_seconds = np.concatenate([
            files.read_npz(store_dir / name)["seconds"]
            for name in manifest["files"] if name.startswith("pool-")
        ])
        numbers["original_seconds"] = round(original, 2)
        numbers["pool_seconds_per_model"] = round(float(pool_seconds.mean()), 2)
        numbers["pool_seconds_per_model_projected_30_epochs"] = round(
            float(pool_seconds.mean()) * 30 / args.epochs, 1
        )
        numbers["retrain_seconds_measured_in_worker"] = float(board["retrain_seconds"].iloc[0])
        numbers["runs"] = {
            row["submission"]: {
                "status": row["status"], "seconds_per_run": row["seconds_per_run"],
                "retain_acc": row["retain_acc"], "test_acc": row["test_acc"],
                "message": row["message"] if isinstance(row["message"], str) else "",
            }
            for _, row in board.iterrows()
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(numbers, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
