"""Command line: a thin layer over the Python API (``harness.scoring.score`` and friends)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.pool import DEFAULT_ROOT
from harness.regression import add_check_command
from harness.report import add_report_command


def default_jobs(task) -> int:
    """Worker processes when ``--jobs`` is not given: every core on a CPU task; one on a GPU task
    (several processes would share one GPU's memory and time)."""
    import torch

    return (os.cpu_count() or 1) if torch.device(task.device).type == "cpu" else 1


def _task_from_args(args: argparse.Namespace):
    from harness.tasks import get_task

    overrides = {}
    if args.num_models is not None:
        overrides["num_models"] = args.num_models
    if args.root_seed is not None:
        overrides["root_seed"] = args.root_seed
    for option in ("device", "data_dir", "checkpoint", "forget_index"):
        if getattr(args, option, None):
            overrides[option] = getattr(args, option)
    return get_task(args.task, **overrides)


class RichReporter:
    """Live progress bars (pool, then each submission) with rates and time left."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10}"), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.bars: dict[str, int] = {}
        self.started = False

    def __enter__(self) -> RichReporter:
        return self  # the display starts with the first bar: an early error prints alone

    def __exit__(self, *exc) -> None:
        if self.started:
            self.progress.stop()

    def stage(self, name: str, total: int, done: int = 0) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.bars[name] = self.progress.add_task(name, total=total, completed=done, rate="")

    def advance(self, name: str, amount: int = 1) -> None:
        bar = self.bars[name]
        self.progress.advance(bar, amount)
        speed = self.progress.tasks[bar].speed
        self.progress.update(bar, rate=f"{speed:.1f}/s" if speed else "")

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/dim]")


def print_leaderboard(board, console) -> None:
    from rich.table import Table

    table = Table(title="leaderboard", header_style="bold")
    shown = [
        ("rank", "rank"), ("submission", "submission"), ("final_score", "score"),
        ("forget_quality", "F"), ("retain_acc", "retain acc"), ("test_acc", "test acc"),
        ("seconds_per_run", "s/run"), ("status", "status"),
    ]
    for _, title in shown:
        text = title in ("submission", "status")
        table.add_column(title, justify="left" if text else "right", no_wrap=True)
    for _, row in board.iterrows():
        cells = []
        for key, _ in shown:
            value = row[key]
            if value is None or (isinstance(value, float) and value != value) or str(value) in (
                "<NA>", "nan"
            ):
                cells.append("-")
            elif isinstance(value, float):
                cells.append(f"{value:.5f}" if key != "seconds_per_run" else f"{value:.3f}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    console.print(table)
    ref = board.iloc[0]
    console.print(
        f"N = {ref['num_models']}, task {ref['task']}, root seed {ref['root_seed']}; "
        f"reference pool: retain acc {ref['ref_retain_acc']:.4f}, test acc "
        f"{ref['ref_test_acc']:.4f}; budget {ref['budget_seconds']:.3f} s per run"
    )
    for _, row in board.iterrows():
        if row["message"] and isinstance(row["message"], str):
            console.print(f"[yellow]{row['submission']}[/yellow]: {row['message']}")


def cmd_score(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.scoring import score

    console = Console(stderr=True)
    task = _task_from_args(args)
    with RichReporter(console) as reporter:
        board = score(
            task, Path(args.submissions), names=args.only or None,
            reference_root=Path(args.reference_root), output_dir=Path(args.output),
            leaderboard_path=Path(args.leaderboard), jobs=args.jobs or default_jobs(task),
            timeout=args.timeout, budget_seconds=args.budget, reporter=reporter,
        )
    print_leaderboard(board, Console(width=None if sys.stdout.isatty() else 120))
    Console(stderr=True).print(f"wrote {args.leaderboard}")
    return 0


def cmd_pool(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.pool import ReferenceStore
    from harness.scoring import build_reference

    console = Console()
    task = _task_from_args(args)
    store = ReferenceStore(task, task.load_data(), Path(args.reference_root))
    if not args.status:
        with RichReporter(Console(stderr=True)) as reporter:
            build_reference(store, reporter, jobs=args.jobs or default_jobs(task))
    status = store.status()
    for key, value in status.items():
        console.print(f"{key:>16}: {value}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.validate import validate

    result = validate(
        Path(args.path), _task_from_args(args), runs=args.runs,
        reference_root=Path(args.reference_root),
    )
    for finding in result.findings:
        print(finding)
    print("PASSED: ready to submit" if result.passed else "FAILED: see the findings above")
    return 0 if result.passed else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    from harness.tasks import TASKS, get_task

    for name in TASKS.names():
        task = get_task(name)
        print(f"{name}: N={task.num_models}, device={task.device}, recipe={task.recipe}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Score machine-unlearning submissions like the NeurIPS 2023 "
        "competition: a reference pool of retrained models, N seeded runs per submission, the "
        "official per-example epsilon metric, and a ranked leaderboard.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def task_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--task", default="digits", help="task name (default: digits)")
        sub.add_argument("--num-models", "-n", type=int, default=None,
                         help="N: runs per submission and reference models (default: the task's, "
                         "512); scores compare only at equal N")
        sub.add_argument("--root-seed", type=int, default=None, help="the task's root seed")
        sub.add_argument("--device", default=None,
                         help="torch device, e.g. cpu or cuda:1 (default: the task's; real tasks "
                         "use cuda when a GPU is visible)")
        sub.add_argument("--data-dir", default=None,
                         help="local folder of a real task's data (default: $HARNESS_<TASK>_DATA, "
                         "e.g. HARNESS_CIFAR10_DATA); nothing is ever downloaded")
        sub.add_argument("--checkpoint", default=None,
                         help="a state-dict file to use as the original model instead of training "
                         "it (the pool is still trained by the task's recipe)")
        sub.add_argument("--forget-index", default=None,
                         help="cifar10: a .npy file of training-set indices to forget")
        sub.add_argument("--reference-root", default=str(DEFAULT_ROOT),
                         help="cache folder for the original model and the pool")

    score_parser = commands.add_parser("score", help="score submissions, write leaderboard.csv")
    task_options(score_parser)
    score_parser.add_argument("--submissions", default="submissions", help="submissions folder")
    score_parser.add_argument("--only", nargs="*", metavar="NAME", help="score only these")
    score_parser.add_argument("--jobs", "-j", type=int, default=None,
                              help="worker processes (default: every core on a CPU task, 1 on a "
                              "GPU task)")
    score_parser.add_argument("--output", default="results", help="folder for run records")
    score_parser.add_argument("--leaderboard", default="leaderboard.csv", help="CSV to write")
    score_parser.add_argument("--timeout", type=float, default=None,
                              help="hard per-run timeout in seconds")
    score_parser.add_argument("--budget", type=float, default=None,
                              help="time budget per run in seconds (default: 20%% of retraining)")
    score_parser.set_defaults(func=cmd_score)

    pool_parser = commands.add_parser("pool", help="build or inspect the reference pool")
    task_options(pool_parser)
    pool_parser.add_argument("--status", action="store_true", help="only show what is cached")
    pool_parser.add_argument("--jobs", "-j", type=int, default=None,
                             help="processes for models trained one at a time (default: every "
                             "core on a CPU task, 1 on a GPU task)")
    pool_parser.set_defaults(func=cmd_pool)

    validate_parser = commands.add_parser(
        "validate", help="check one submission quickly and say what is wrong in plain words"
    )
    validate_parser.add_argument("path", help="the submission file")
    task_options(validate_parser)
    validate_parser.add_argument("--runs", type=int, default=3, help="runs to try (default 3)")
    validate_parser.set_defaults(func=cmd_validate)

    add_report_command(commands, task_options)
    add_check_command(commands, task_options)

    tasks_parser = commands.add_parser("tasks", help="list the tasks")
    tasks_parser.set_defaults(func=cmd_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, PermissionError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"harness: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished work is kept and resumes on the next run",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
