"""Command line: a thin layer over the Python API (``harness.pipeline.scoring.score`` and
friends)."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.core.defaults import (
    LEVEL,
    REFERENCE_ROOT,
    TUNING_RUNS,
    TUNING_TRIALS,
    WORKERS_PER_DEVICE,
)
from harness.execution.sandbox import SandboxUnavailable


def default_jobs(task, workers_per_device: int | None = None) -> int:
    """Worker processes when ``--jobs`` is not given: every core on a CPU task; on a GPU task
    ``--workers-per-device`` (``defaults.WORKERS_PER_DEVICE`` unless given)."""
    from harness.execution.runner import workers_for

    return workers_for(task.device, None, workers_per_device)


def jobs_option(parser: argparse.ArgumentParser, what: str = "worker processes") -> None:
    """``--jobs``, whose default is ``default_jobs``'s (``runner.workers_for``)."""
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help=f"{what} (default: every core on a CPU task; on a GPU task "
                        f"--workers-per-device, {WORKERS_PER_DEVICE} unless given)")


def clock_options(parser: argparse.ArgumentParser) -> None:
    """``--timeout`` and ``--budget``: with both given, no retraining is timed (the yardstick
    serves nothing then)."""
    parser.add_argument("--timeout", type=float, default=None,
                        help="hard per-run timeout in seconds (default: 10 retrainings, at "
                        "least a minute)")
    parser.add_argument("--budget", type=float, default=None,
                        help="time budget per run in seconds (default: 20%% of retraining; "
                        "with --timeout too, no retraining is timed)")


def workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers-per-device", type=int, default=None, metavar="K",
                        help="worker processes sharing the GPU of a GPU task (default "
                        "defaults.WORKERS_PER_DEVICE; --jobs, where given, decides)")


def sandbox_option(parser: argparse.ArgumentParser) -> None:
    from harness.execution.sandbox import MODES

    parser.add_argument("--sandbox", choices=MODES, default="auto",
                        help="run submissions in the bubblewrap sandbox: auto (where `bwrap` is "
                        "installed; says so once where it is not), on (required), off")


def sandbox_mode(args: argparse.Namespace) -> str:
    """``--sandbox`` checked before any work: ``on`` without bubblewrap is an error, ``auto``
    without it says once that submissions run unsandboxed."""
    from harness.execution import sandbox

    if not sandbox.resolve(args.sandbox) and args.sandbox == "auto":
        print(f"harness: {sandbox.unavailable_notice()}", file=sys.stderr)
    return args.sandbox


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
        from harness.core.progress import progress_bars

        self.progress = progress_bars(console, rate=True, transient=False)
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
        if name in self.bars:  # a stage met again (a submission in each tuning trial): reset
            self.progress.reset(self.bars[name], total=total, completed=done, rate="")
            return
        self.bars[name] = self.progress.add_task(name, total=total, completed=done, rate="")

    def advance(self, name: str, amount: int = 1) -> None:
        bar = self.bars[name]
        self.progress.advance(bar, amount)
        speed = self.progress.tasks[bar].speed
        self.progress.update(bar, rate=f"{speed:.1f}/s" if speed else "")

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/dim]")

    def activity(self, worker: str, text: str) -> None:
        """One line per cluster worker, below the bars, saying what it has done."""
        name = f"  {worker}"
        if name not in self.bars:
            self.bars[name] = self.progress.add_task(name, total=None, rate="")
        self.progress.update(self.bars[name], description=f"{name}: {text}", advance=1)


def print_leaderboard(board, console) -> None:
    """One table per split (private first: the final ranking), with intervals and rank ranges."""
    from rich.table import Table

    from harness.evaluation.ranks import LEGEND, rank_text, tied_for_first_text
    from harness.outputs.leaderboard import board_splits, rank_correlation, split_rows
    from harness.outputs.report import baselines_beaten

    shown = [
        ("rank", "rank"), ("ranks", "ranks"), ("submission", "submission"),
        ("final_score", "score"), ("final_score_lo", "low"), ("final_score_hi", "high"),
        ("forget_quality", "F"), ("retain_acc", "retain acc"), ("test_acc", "test acc"),
        ("seconds_per_run", "s/run"), ("status", "status"),
    ]
    for split in board_splits(board):
        rows = split_rows(board, split)
        table = Table(title=f"leaderboard, {split} split", header_style="bold")
        for _, title in shown:
            text = title in ("submission", "status")
            table.add_column(title, justify="left" if text else "right", no_wrap=True)
        for _, row in rows.iterrows():
            table.add_row(*(rank_text(row.get("rank_lo"), row.get("rank_hi")) if key == "ranks"
                            else _cell_text(key, row.get(key)) for key, _ in shown))
        console.print(table)
        if tied := tied_for_first_text(rows):
            console.print(f"{split}: {tied}")
        if beaten := baselines_beaten(rows):
            console.print(f"{split}: {beaten}")
    ref = board.iloc[0]
    console.print(
        f"N = {ref['num_models']}, task {ref['task']}, root seed {ref['root_seed']}; "
        f"reference pool: retain acc {ref['ref_retain_acc']:.4f}, test acc "
        f"{ref['ref_test_acc']:.4f}; budget {ref['budget_seconds']:.3f} s per run; "
        f"intervals: {LEVEL:.0%} bootstrap; {LEGEND}"
    )
    if len(board_splits(board)) == 2:
        console.print(f"rank correlation of public and private: {rank_correlation(board):.3f}")
    for _, row in board.iterrows():
        if row["message"] and isinstance(row["message"], str):
            console.print(f"[yellow]{row['submission']}[/yellow]: {row['message']}")


def _cell_text(key: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value) or str(value) in (
        "<NA>", "nan"
    ):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if key == "seconds_per_run" else f"{value:.5f}"
    return str(value)


def lock_path(folder: str | Path) -> Path:
    """Where the lock of a cache folder is: in the system's temporary folder, named by the
    folder's absolute path, so that locking creates nothing among the user's files (a command
    refused for bad input leaves no trace)."""
    import hashlib
    import tempfile

    name = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "unlearning-harness-locks" / f"{name}.lock"


@contextlib.contextmanager
def caches_locked(console, *folders: str) -> Iterator[None]:
    """The cache folders a command writes, held while it works (``files.exclusive``): a second
    command on the same folders of this machine (another terminal, parallel CI jobs) waits, says
    for whom, and then reuses the first's pools and runs instead of doing them again. Always
    taken in the order reference root, then run records, once a cluster (if any) is reached."""
    from harness.core import files

    with contextlib.ExitStack() as held:
        for folder in folders:
            held.enter_context(files.exclusive(
                lock_path(folder), lambda text: console.print(f"{text} ..."),
                what=str(Path(folder).resolve())))
        yield


def cmd_score(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.pipeline.scoring import score_splits

    console = Console(stderr=True)
    task = _task_from_args(args)
    splits = ["public", "private"] if args.split == "both" else [args.split]
    phases: dict = {}
    sandbox = sandbox_mode(args)  # checked before anything is created
    with cluster_client(args) as client, caches_locked(
        console, args.reference_root, args.output
    ), RichReporter(console) as reporter:
        board = score_splits(
            task, splits, Path(args.submissions), names=args.only or None,
            reference_root=Path(args.reference_root), output_dir=Path(args.output),
            leaderboard_path=Path(args.leaderboard),
            jobs=args.jobs or default_jobs(task, args.workers_per_device),
            timeout=args.timeout, budget_seconds=args.budget, reporter=reporter,
            ceiling=not args.no_ceiling, untuned=args.untuned, cluster=client,
            workers_per_device=args.workers_per_device, sandbox=sandbox,
            phases=phases, run_root=args.run_seed,
        )
    out = Console(width=None if sys.stdout.isatty() else 160)
    print_leaderboard(board, out)
    print_phases(phases, out)
    Console(stderr=True).print(f"wrote {args.leaderboard}, its phase times and gate rows beside it")
    return 0


def print_phases(phases: dict, console) -> None:
    """Where the wall time went, per split: one column per split, one row per phase."""
    from rich.table import Table

    from harness.execution.phases import PARTS

    table = Table(title="where the time went (wall seconds)", header_style="bold")
    table.add_column("phase", no_wrap=True)
    for split in phases:
        table.add_column(split, justify="right")
    names = list(dict.fromkeys(name for timed in phases.values() for name in timed.seconds))
    for name in names:
        table.add_row(*([f"  {name}" if name in PARTS else name]
                        + [f"{timed.seconds.get(name, 0.0):.1f}" for timed in phases.values()]),
                      end_section=name == names[-1])
    table.add_row("total", *(f"{timed.total():.1f}" for timed in phases.values()))
    table.add_row("harness share", *(f"{timed.harness_share():.0%}" for timed in phases.values()))
    console.print(table)


def cmd_tune(args: argparse.Namespace) -> int:
    """``harness tune NAME``: search the submission's declared hyperparameters on the public
    split; resumable; writes the chosen settings to submissions/tuned/<task>.json."""
    from rich.console import Console

    from harness.methods.hyperparameters import describe
    from harness.methods.tuned_settings import tuned_path
    from harness.pipeline.tuning import tune

    task = _task_from_args(args)
    console = Console(stderr=True)
    sandbox = sandbox_mode(args)  # checked before anything is created
    with caches_locked(console, args.reference_root, args.output), RichReporter(
        console
    ) as reporter:
        entry = tune(
            task, args.name, Path(args.submissions), trials=args.trials,
            num_models=args.num_models or TUNING_RUNS, reference_root=Path(args.reference_root),
            output_dir=Path(args.output), jobs=args.jobs or default_jobs(task),
            timeout=args.timeout, budget_seconds=args.budget, reporter=reporter,
            sandbox=sandbox,
        )
    low, high = entry["score_interval"]
    print(f"{args.name}: {describe(entry['settings'])}")
    print(f"public score at N = {entry['num_models']}: {entry['score']:.5f} "
          f"[{low:.5f}, {high:.5f}] after {entry['trials']} trials "
          f"({entry['feasible_trials']} feasible); published constants: "
          + (f"{entry['published_score']:.5f}" if entry["published_score"] is not None
             else "infeasible"))
    print(f"wrote {tuned_path(Path(args.submissions), task.name)}", file=sys.stderr)
    return 0


def cluster_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help=f"{what} on the dask.distributed scheduler at ADDRESS, e.g. "
                        "tcp://host:8786 (default: $HARNESS_CLUSTER; unset: this machine); "
                        "results are cached here as in local work")
    parser.add_argument("--scheduler-file", default=None, metavar="PATH",
                        help="the scheduler's JSON file (dask scheduler --scheduler-file), "
                        "instead of --cluster")
    parser.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                        help="how long to try reaching the scheduler (default: "
                        "harness.execution.cluster.DEFAULT_CONNECT_TIMEOUT)")


@contextlib.contextmanager
def cluster_client(args: argparse.Namespace) -> Iterator[object | None]:
    """The ``distributed.Client`` the options (or ``$HARNESS_CLUSTER``) name, closed afterwards;
    None: work on this machine. Connects before any data loads: a bad address fails at once."""
    from harness.execution.cluster import DEFAULT_CONNECT_TIMEOUT, cluster_target, connect

    address, scheduler_file = cluster_target(args.cluster, args.scheduler_file)
    if not (address or scheduler_file):
        yield None
        return
    timeout = args.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    with connect(address, scheduler_file, timeout=timeout) as client:
        yield client


def cmd_pool(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.pipeline.scoring import build_reference
    from harness.reference.pool import CEILING, POOL, ReferenceStore

    console = Console()
    task = _task_from_args(args)
    if args.status:
        store = ReferenceStore(task, task.load_data(), Path(args.reference_root))
    else:
        errors = Console(stderr=True)
        with cluster_client(args) as client, caches_locked(
            errors, args.reference_root
        ), RichReporter(errors) as reporter:
            store = ReferenceStore(task, task.load_data(), Path(args.reference_root))
            for which in (POOL, CEILING) if args.ceiling else (POOL,):
                if client is None:
                    build_reference(store, reporter, jobs=args.jobs or default_jobs(task),
                                    which=which)
                else:
                    from harness.execution.cluster import build_reference_on_cluster

                    build_reference_on_cluster(store, client, reporter, which=which)
    status = store.status()
    for key, value in status.items():
        console.print(f"{key:>16}: {value}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.pipeline.validate import validate

    task = _task_from_args(args)
    gpu = task.device.startswith("cuda")  # on a CPU task one worker, as before
    result = validate(
        Path(args.path), task, runs=args.runs, reference_root=Path(args.reference_root),
        jobs=default_jobs(task, args.workers_per_device) if gpu else 1,
        sandbox=sandbox_mode(args),
    )
    for finding in result.findings:
        print(finding)
    print("PASSED: ready to submit" if result.passed else "FAILED: see the findings above")
    return 0 if result.passed else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    """``harness tasks``: each task's name and what it is; with names, each one's settings (which
    imports the task, and torch with it)."""
    from harness.tasks import TASKS, get_task

    for name in args.names or TASKS.names():
        if not args.names:
            print(f"{name}: {TASKS.summary(name)}")
            continue
        task = get_task(name)
        print(f"{name}: N={task.num_models}, device={task.device}, recipe={task.recipe}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``harness report``: the report of an already scored leaderboard (nothing is trained); the
    final (private) split in detail, both splits compared when both were scored."""
    from harness.execution.phases import read_phase_table
    from harness.outputs.leaderboard import (
        board_splits,
        finite,
        read_leaderboard,
        split_rows,
    )
    from harness.outputs.report import write_report
    from harness.pipeline.recorded import load_records, task_for_board

    path = Path(args.leaderboard)
    both = read_leaderboard(path)
    split = board_splits(both)[0]
    board = split_rows(both, split).reset_index(drop=True)
    task = task_for_board(both, str(path), args.task, args.num_models, args.root_seed,
                          device=args.device, data_dir=args.data_dir,
                          checkpoint=args.checkpoint, forget_index=args.forget_index)
    task = task.with_options(split=split)
    pool, runs = load_records(board, task, Path(args.reference_root), Path(args.output))
    scored = [n for n, s, st in zip(board["submission"], board["final_score"], board["status"],
                                    strict=True) if finite(s) and st != "reference"]
    lost = [n for n in scored if n not in runs]
    if lost:
        print(f"harness: warning: no complete run records under {args.output} for "
              f"{', '.join(lost)}; left out of the epsilon plots", file=sys.stderr)
    budget = float(board["budget_seconds"].iloc[0]) if "budget_seconds" in board else math.nan
    page = write_report(board, pool, runs, Path(args.report_dir), budget, both,
                        read_phase_table(path))
    print(f"wrote {page}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``harness check``: re-score like the baseline, print the diff, exit 1 on a regression."""
    from rich.console import Console

    from harness.pipeline.regression import check

    options = {"task": args.task, "num_models": args.num_models, "root_seed": args.root_seed,
               "device": args.device, "data_dir": args.data_dir, "checkpoint": args.checkpoint,
               "forget_index": args.forget_index}

    def run(reporter, client) -> object:
        return check(
            Path(args.baseline), submissions_dir=Path(args.submissions),
            reference_root=Path(args.reference_root), output_dir=Path(args.output),
            jobs=args.jobs,
            tolerance=args.tolerance,
            task_options=options, reporter=reporter,
            splits=None if args.split == "both" else [args.split],
            budget_seconds=args.budget, timeout=args.timeout, untuned=args.untuned,
            cluster=client, workers_per_device=args.workers_per_device, sandbox=mode,
            phases=phases, run_root=args.run_seed, all_runs=args.all_runs,
        )

    mode = sandbox_mode(args)
    phases: dict = {}
    with cluster_client(args) as client, caches_locked(
        Console(stderr=True), args.reference_root, args.output
    ):
        if args.no_progress:
            report = run(None, client)
        else:
            with RichReporter(Console(stderr=True)) as reporter:
                report = run(reporter, client)
    print(report.format())
    if phases:
        print_phases(phases, Console(stderr=True))
    if report.problems:
        print(f"harness check: {len(report.problems)} regression(s) against {args.baseline}",
              file=sys.stderr)
    return report.exit_status


TABLE_START = "<!-- leaderboard table: written by `harness table --readme README.md` -->"
TABLE_END = "<!-- end of the leaderboard table -->"


def readme_with_table(readme: str, table: str) -> str:
    """``readme`` with the text between the table markers replaced by ``table``."""
    if readme.count(TABLE_START) != 1 or readme.count(TABLE_END) != 1:
        raise ValueError(f"the README must hold the markers {TABLE_START} and {TABLE_END} once")
    before, rest = readme.split(TABLE_START)
    _, after = rest.split(TABLE_END)
    return f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}"


def cmd_table(args: argparse.Namespace) -> int:
    """``harness table``: the leaderboard as a Markdown table, or written into the README."""
    from harness.core import files
    from harness.outputs.leaderboard import markdown_table, read_leaderboard

    table = markdown_table(read_leaderboard(Path(args.leaderboard)))
    if args.readme is None:
        print(table)
        return 0
    path = Path(args.readme)
    text = readme_with_table(path.read_text(encoding="utf-8"), table)
    files.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"wrote the table into {path}", file=sys.stderr)
    return 0


def recorded_identity_options(parser: argparse.ArgumentParser, whose: str) -> None:
    """Re-declare --task, -n and --root-seed for commands that read them from a CSV: their
    default is the recorded value (None here), and a given value must match it. Needs a parser
    made with ``conflict_handler="resolve"`` after the shared task options were added."""
    parser.add_argument("--task", default=None, help=f"task name (default: {whose})")
    parser.add_argument("--num-models", "-n", type=int, default=None,
                        help=f"N (default: {whose}; a different N is an error, scores compare "
                        f"only at equal N)")
    parser.add_argument("--root-seed", type=int, default=None,
                        help=f"the task's root seed (default: {whose})")


def task_options(sub: argparse.ArgumentParser) -> None:
    """The options that name a task and where its data and caches are."""
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
                     help="a .npy file of training-set indices to forget (cifar10, surf), "
                     "kept in the file's order, on both splits")
    sub.add_argument("--reference-root", default=str(REFERENCE_ROOT),
                     help="cache folder for the original model and the pool")


def run_seed_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--run-seed", type=int, default=None,
                     help="take the runs' seeds from this root instead of the split's seed; "
                     "the pool and forget set are unchanged. Only for measuring the gate's "
                     "false alarms (bench/bench_gate_false_alarms.py): a board scored with "
                     "it is not the reference board")


def _add_score(commands) -> None:
    score_parser = commands.add_parser("score", help="score submissions, write leaderboard.csv")
    task_options(score_parser)
    score_parser.add_argument("--submissions", default="submissions", help="submissions folder")
    score_parser.add_argument("--only", nargs="*", metavar="NAME", help="score only these")
    jobs_option(score_parser)
    score_parser.add_argument("--output", default="results", help="folder for run records")
    score_parser.add_argument("--leaderboard", default="leaderboard.csv", help="CSV to write")
    clock_options(score_parser)
    score_parser.add_argument("--split", choices=["public", "private", "both"],
                              default="private",
                              help="the private split (the default: another forget set and "
                              "seeds than the public one, made the same way; the final "
                              "ranking), the public one, or both (twice the time; the report "
                              "then compares them)")
    score_parser.add_argument("--no-ceiling", action="store_true",
                              help="skip the ceiling row (an independent retrained pool of N "
                              "more models, scored as a submission)")
    score_parser.add_argument("--untuned", action="store_true",
                              help="score the published constants, ignoring the tuned settings "
                              "in <submissions>/tuned/<task>.json")
    run_seed_option(score_parser)
    workers_option(score_parser)
    sandbox_option(score_parser)
    cluster_options(score_parser, "train the pools and do the runs")
    score_parser.set_defaults(func=cmd_score)


def _add_tune(commands) -> None:
    tune_parser = commands.add_parser(
        "tune", conflict_handler="resolve",
        help="tune a submission's declared hyperparameters on the public split",
        description="Run (or continue: the study is kept under <output>/tuning/) a seeded Optuna "
        "study over the submission's SEARCH_SPACE. Each trial is the official final score on the "
        "public split at N (-n, default 32) runs; trials slower than 75%% of the time budget are "
        "infeasible. The best settings are written to <submissions>/tuned/<task>.json, which "
        "`harness score` uses (see --untuned).",
    )
    task_options(tune_parser)
    tune_parser.add_argument("name", help="the submission to tune (file stem)")
    sandbox_option(tune_parser)
    tune_parser.add_argument("--num-models", "-n", type=int, default=None,
                             help=f"N per trial: runs of the submission and models in the pool "
                             f"(default {TUNING_RUNS})")
    tune_parser.add_argument("--trials", type=int, default=TUNING_TRIALS,
                             help=f"trials the study should have in all (default {TUNING_TRIALS})")
    tune_parser.add_argument("--submissions", default="submissions", help="submissions folder")
    tune_parser.add_argument("--output", default="results",
                             help="folder for run records and the study")
    jobs_option(tune_parser, "worker processes for a trial's runs")
    clock_options(tune_parser)
    tune_parser.set_defaults(func=cmd_tune)


def _add_pool(commands) -> None:
    pool_parser = commands.add_parser("pool", help="build or inspect the reference pool")
    task_options(pool_parser)
    pool_parser.add_argument("--status", action="store_true", help="only show what is cached")
    jobs_option(pool_parser, "processes for models trained one at a time")
    pool_parser.add_argument("--ceiling", action="store_true",
                             help="also build the ceiling pool (N more retrained models, scored "
                             "as the leaderboard's ceiling row)")
    cluster_options(pool_parser, "train the pools' chunks")
    pool_parser.set_defaults(func=cmd_pool)


def _add_validate(commands) -> None:
    validate_parser = commands.add_parser(
        "validate", help="check one submission quickly and say what is wrong in plain words"
    )
    validate_parser.add_argument("path", help="the submission file")
    task_options(validate_parser)
    validate_parser.add_argument("--runs", type=int, default=3, help="runs to try (default 3)")
    workers_option(validate_parser)
    sandbox_option(validate_parser)
    validate_parser.set_defaults(func=cmd_validate)


def _add_report(commands) -> None:
    report_parser = commands.add_parser(
        "report", conflict_handler="resolve",
        help="write a static HTML report (plots and table) of a scored leaderboard",
        description="Write report/index.html and its plots from leaderboard.csv, the cached "
        "reference pool and the run records. Trains nothing: run `harness score` first. The task, "
        "N and root seed default to the leaderboard's.",
    )
    task_options(report_parser)
    recorded_identity_options(report_parser, "the leaderboard's")
    report_parser.add_argument("--output", default="results",
                               help="folder of the run records, as given to `harness score`")
    report_parser.add_argument("--leaderboard", default="leaderboard.csv", help="the scored CSV")
    report_parser.add_argument("--report-dir", default="report",
                               help="folder to write (default: report)")
    report_parser.set_defaults(func=cmd_report)


def _add_check(commands) -> None:
    check_parser = commands.add_parser(
        "check", conflict_handler="resolve",
        help="CI gate: re-score and fail when a score drops below the baseline beyond its noise",
        description="Re-score the submissions with the baseline's task, N, root seed and splits "
        "(in memory; no leaderboard file is written) and compare. Exit 0: no regression; 1: a "
        "recorded score dropped significantly (paired test), a submission disappeared or started "
        "failing, or task/N differ; 2: bad input. --task and -n, when given, must match the "
        "baseline.",
    )
    task_options(check_parser)
    recorded_identity_options(check_parser, "the baseline's")
    check_parser.add_argument("--baseline", default="leaderboard.csv",
                              help="the recorded leaderboard CSV (default: leaderboard.csv)")
    check_parser.add_argument("--tolerance", type=float, default=None,
                              help="allowed absolute drop of final score for every submission, "
                              "instead of the paired test (default: a one-sided paired test per "
                              "row against the baseline's gate rows in <baseline>.gate.csv, "
                              "scored against its pool in <baseline>.gate.npz, Holm-corrected; "
                              "see harness.pipeline.regression)")
    check_parser.add_argument("--submissions", default="submissions", help="submissions folder")
    check_parser.add_argument("--output", default="results", help="folder for run records")
    jobs_option(check_parser)
    check_parser.add_argument("--split", choices=["public", "private", "both"], default="both",
                              help="check only this split of the baseline (a quicker gate; "
                              "default: every split it holds)")
    clock_options(check_parser)
    check_parser.add_argument("--untuned", action="store_true",
                              help="re-score the published constants (for a baseline scored "
                              "with `harness score --untuned`)")
    check_parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    check_parser.add_argument("--all-runs", action="store_true",
                              help="re-run every run of every row (default: a row whose code "
                              "is unchanged since the baseline re-runs its first runs, and all "
                              "of them only if these differ)")
    run_seed_option(check_parser)
    workers_option(check_parser)
    sandbox_option(check_parser)
    cluster_options(check_parser, "train the pools and do the runs")
    check_parser.set_defaults(func=cmd_check)


def _add_table(commands) -> None:
    table_parser = commands.add_parser(
        "table", help="print the leaderboard as a Markdown table, or write it into the README"
    )
    table_parser.add_argument("--leaderboard", default="leaderboard.csv", help="the scored CSV")
    table_parser.add_argument("--readme", default=None,
                              help="write the table between the README's table markers")
    table_parser.set_defaults(func=cmd_table)


def _add_tasks(commands) -> None:
    tasks_parser = commands.add_parser("tasks", help="list the tasks, or show some in detail")
    tasks_parser.add_argument("names", nargs="*", metavar="TASK",
                              help="tasks to show with their settings")
    tasks_parser.set_defaults(func=cmd_tasks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Score machine-unlearning submissions like the NeurIPS 2023 "
        "competition: a reference pool of retrained models, N seeded runs per submission, the "
        "official per-example epsilon metric, and a ranked leaderboard.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_score, _add_tune, _add_pool, _add_validate, _add_report, _add_check,
                _add_table, _add_tasks):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, PermissionError,
            SandboxUnavailable) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"harness: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished work is kept and resumes on the next run",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
