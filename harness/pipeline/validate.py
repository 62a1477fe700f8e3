"""``harness validate``: the conformance check a participant runs before submitting.

A few quick runs on the task, then plain-words findings: rejected before running, failing runs
(with the traceback tail), a model that did not change (forgetting quality would be 0), and the
measured time against the competition's budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.defaults import REFERENCE_ROOT
from harness.core.seeds import run_seed
from harness.execution.records import OK, RunResult, too_slow, typical_seconds
from harness.execution.runner import RunRequest, WorkerPool
from harness.methods.loading import SubmissionError, inspect_submission
from harness.pipeline.setup import set_up, start_clock
from harness.tasks.base import Task


@dataclass
class Validation:
    passed: bool
    findings: list[str] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)


def validate(
    path: Path, task: Task, runs: int = 3, reference_root: Path = REFERENCE_ROOT, jobs: int = 1,
    sandbox: str = "auto",
) -> Validation:
    """Check the submission at ``path`` with ``runs`` runs on ``task`` in ``jobs`` workers (the
    time budget is measured under the same concurrency: ``WorkerPool.time_retrain``), in the
    sandbox as ``harness score`` runs it (``harness.execution.sandbox``)."""
    try:
        submission = inspect_submission(Path(path))
    except SubmissionError as error:
        return Validation(False, [f"rejected before any run: {error}"])
    store = set_up(task, reference_root).store
    store.original_model()
    results: list[RunResult] = []
    requests = [RunRequest(submission, i, run_seed(task.seed, submission.name, i))
                for i in range(runs)]
    with WorkerPool(task, store.original_path, jobs=jobs,
                    sandbox=sandbox) as workers:
        retrain, budget = start_clock(store, workers)
        workers.run(requests, results.append)

    findings = []
    if submission.space:
        findings.append(
            f"declares {len(submission.space)} hyperparameters ({', '.join(submission.space)}) "
            f"for `harness tune {submission.name}`; these runs use the published defaults"
        )
    failed = [r for r in results if r.status != OK]
    for result in failed:
        findings.append(f"run {result.run_index} ended with status '{result.status}': "
                        f"{result.message}")
        if result.output.strip():
            findings.append("  last output:\n    " + "\n    ".join(
                result.output.strip().splitlines()[-8:]))
    ok = [r for r in results if r.status == OK]
    passed = not failed
    if ok:
        mean_seconds = float(np.mean([r.seconds for r in ok]))
        median_seconds = typical_seconds([r.seconds for r in ok])
        findings.append(
            f"{len(ok)} of {len(results)} runs finished; {mean_seconds:.3f} s per run on average; "
            f"retain accuracy {np.mean([r.retain_acc for r in ok]):.4f}, test accuracy "
            f"{np.mean([r.test_acc for r in ok]):.4f}, forget accuracy "
            f"{np.mean([r.forget_acc for r in ok]):.4f}"
        )
        if too_slow([r.seconds for r in ok], budget):
            passed = False
            findings.append(
                f"too slow: {median_seconds:.3f} s per run (median); the budget is "
                f"{budget:.3f} s per run ({task.budget_fraction:.0%} of "
                f"the {retrain:.3f} s that retraining takes here); the scorer would stop it "
                "and mark it over-budget"
            )
        else:
            findings.append(f"within the time budget of {budget:.3f} s per run")
        if len(ok) > 1 and all(np.array_equal(ok[0].confidences, r.confidences) for r in ok):
            passed = False
            findings.append(
                "every run produced exactly the same model outputs: with no spread across runs "
                "each forget example gets the epsilon cap and the forgetting quality is 0 "
                "(does the method depend on the run's randomness at all?)"
            )
    return Validation(passed, findings, results)
