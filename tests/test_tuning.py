"""``harness tune`` and tuned settings: the study, its budget constraint, resuming an interrupted
study, the settings file, and scoring with (or without) tuned settings."""

import json

import pytest

import harness.pipeline.tuning as tuning
from harness.execution.store import ResultsStore
from harness.methods.tuned_settings import TunedFileError, read_tuned, tuned_path
from harness.pipeline.scoring import score
from harness.pipeline.tuning import TuningError, tune
from harness.tasks import get_task

N = 4
BUDGET = 0.2  # seconds per run: a trial that pauses 0.4 s is infeasible

TUNABLE = '''
import time

import torch

SEARCH_SPACE = {"shrink": {"low": 0.5, "high": 1.0}, "pause": {"choices": [0.0, 0.4]}}


def unlearning(net, retain, forget, val, shrink=1.0, pause=0.0):
    time.sleep(pause)
    with torch.no_grad():
        net.fc.weight.mul_(shrink)
    return net
'''


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory):
    return tmp_path_factory.mktemp("reference")  # the pool of N and the timing, built once


@pytest.fixture
def setup(tmp_path, reference_root):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "tunable.py").write_text(TUNABLE)
    (submissions / "fixed.py").write_text("def unlearning(net, retain, forget, val):\n    pass\n")
    options = dict(reference_root=reference_root, output_dir=tmp_path / "results", jobs=2,
                   budget_seconds=BUDGET)
    return get_task("digits"), submissions, options


def study_trials(options, name="tunable"):
    import optuna

    [path] = (options["output_dir"] / "tuning").glob(f"*/{name}.sqlite3")
    [summary] = optuna.get_all_study_summaries(f"sqlite:///{path}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{path}").trials


@pytest.mark.slow
def test_tune_writes_the_best_feasible_settings_and_resumes_an_interrupted_study(
    setup, monkeypatch, capsys
):
    from harness.cli import main

    task, submissions, options = setup
    status = main(["tune", "tunable", "--trials", "3", "-n", str(N), "--submissions",
                   str(submissions), "--output", str(options["output_dir"]), "--reference-root",
                   str(options["reference_root"]), "--budget", str(BUDGET), "-j", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "public score at N = 4" in out and "after 3 trials" in out
    entry = read_tuned(tuned_path(submissions, "digits"))["tunable"]

    trials = study_trials(options)
    assert len(trials) == 3
    assert trials[0].params == {"shrink": 1.0, "pause": 0.0}  # the published constants first
    for trial in trials:
        feasible = all(v <= 0 for v in trial.constraints.values())
        assert feasible == (trial.params["pause"] == 0.0)  # 0.4 s is over 75% of the budget
    best = max((t for t in trials if t.params["pause"] == 0.0), key=lambda t: t.value)
    assert entry["score"] == best.value
    assert entry["settings"] == {k: v for k, v in best.params.items()
                                 if v != {"shrink": 1.0, "pause": 0.0}[k]}
    assert entry["trials"] == 3 and entry["split"] == "public" and entry["num_models"] == N
    low, high = entry["score_interval"]
    assert low <= entry["score"] <= high
    assert entry["published_score"] == trials[0].value

    # interrupted in the middle of a trial, after its runs were recorded
    real_run = tuning.run_submissions

    def interrupted(*args, **kwargs):
        real_run(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "run_submissions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(task, "tunable", submissions, trials=4, num_models=N, **options)
    lost = study_trials(options)[3]
    assert lost.state.name == "FAIL"

    served = []

    def counting(workers, task, outcomes, *args, **kwargs):
        served.extend(i for o in outcomes.values() for i in range(N) if i not in o.runs)
        return real_run(workers, task, outcomes, *args, **kwargs)

    monkeypatch.setattr(tuning, "run_submissions", counting)
    tune(task, "tunable", submissions, trials=4, num_models=N, **options)
    trials = study_trials(options)
    assert len(trials) == 5 and trials[4].state.name == "COMPLETE"
    assert trials[4].params == lost.params  # the interrupted trial, resumed
    assert served == []  # from its recorded runs: nothing was run again


@pytest.mark.slow
def test_scoring_uses_tuned_settings_unless_untuned(setup):
    task, submissions, options = setup
    path = tuned_path(submissions, "digits")
    path.parent.mkdir()
    path.write_text(json.dumps({"tunable": {"settings": {"shrink": 0.5}}}))
    task = task.with_options(num_models=N)
    common = dict(leaderboard_path=None, ceiling=False, **options)

    tuned = score(task, submissions, **common).set_index("submission")
    untuned = score(task, submissions, untuned=True, **common).set_index("submission")
    assert json.loads(tuned.loc["tunable", "settings"]) == {"shrink": 0.5}
    assert untuned.loc["tunable", "settings"] == "published"
    assert tuned.loc["fixed", "settings"] == "published"
    assert tuned.loc["tunable", "provenance"] != untuned.loc["tunable", "provenance"]
    # the settings reached the runs: shrinking the head changes every confidence
    records = ResultsStore(next((options["output_dir"]).glob("digits-*")))
    with_settings = records.load_runs("tunable", tuned.loc["tunable", "provenance"])
    published = records.load_runs("tunable", untuned.loc["tunable", "provenance"])
    assert len(with_settings) == len(published) == N
    for index in range(N):
        assert with_settings[index].confidences != published[index].confidences
    assert tuned.loc["fixed", "final_score"] == untuned.loc["fixed", "final_score"]

    path.write_text(json.dumps({"tunable": {"settings": {"shrink": 2.0}}}))
    stale = score(task, submissions, **common).set_index("submission")
    assert stale.loc["tunable", "status"] == "rejected"
    assert "no longer fit" in stale.loc["tunable", "message"]
    assert "--untuned" in stale.loc["tunable", "message"]


def test_a_damaged_tuned_file_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "digits.json"
    path.write_text("{not json")
    with pytest.raises(TunedFileError, match="digits.json"):
        read_tuned(path)
    path.write_text(json.dumps({"a": {"lr": 0.1}}))
    with pytest.raises(TunedFileError, match="'settings' dict"):
        read_tuned(path)
    assert read_tuned(tmp_path / "absent.json") == {}


def test_tune_refuses_what_it_cannot_tune(tmp_path):
    (tmp_path / "fixed.py").write_text("def unlearning(net, retain, forget, val):\n    pass\n")
    (tmp_path / "broken.py").write_text("def unlearning(net):\n    pass\n")
    task = get_task("digits")
    with pytest.raises(TuningError, match="declares no SEARCH_SPACE"):
        tune(task, "fixed", tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(TuningError, match="unknown submission 'nope'"):
        tune(task, "nope", tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(TuningError, match="cannot be run"):
        tune(task, "broken", tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(TuningError, match="at least"):
        tune(task, "fixed", tmp_path, trials=0)


def test_only_changed_settings_are_passed_to_runs():
    from harness.methods.hyperparameters import parse_space

    space = parse_space({"a": {"low": 0, "high": 5}, "b": {"choices": ["x", "y"]}},
                        {"a": 2, "b": "x"})
    assert tuning.changed_settings(space, {"a": 2, "b": "y"}) == {"b": "y"}
    assert tuning.changed_settings(space, {"a": 2, "b": "x"}) == {}
