"""The phase clock: what ``harness score`` says about where its time went."""

import time

import pytest

from harness.execution.phases import EVALUATION, OWN_RUN_TIME, Phases, phase_table, read_phase_table


def test_a_phase_timed_twice_adds_up_and_keeps_its_first_place():
    phases = Phases()
    with phases.phase("set-up"):
        time.sleep(0.01)
    with phases.phase("runs"):
        time.sleep(0.02)
    with phases.phase("set-up"):
        time.sleep(0.01)
    assert list(phases.seconds) == ["set-up", "runs"]
    assert phases.seconds["set-up"] >= 0.02 and phases.seconds["runs"] >= 0.02


def test_a_phase_that_raises_is_still_timed():
    phases = Phases()
    with pytest.raises(RuntimeError), phases.phase("pool"):
        raise RuntimeError("boom")
    assert "pool" in phases.seconds


def test_the_parts_of_the_runs_are_not_counted_twice_and_set_the_harness_share():
    phases = Phases({"pool": 30.0, "runs": 70.0, OWN_RUN_TIME: 50.0, EVALUATION: 5.0})
    assert phases.total() == 100.0
    assert phases.harness_share() == pytest.approx(0.5)  # (100 - 50) / 100
    assert Phases().harness_share() == 0.0


def test_the_table_has_each_split_with_its_total_and_reads_back(tmp_path):
    table = phase_table({"private": Phases({"pool": 2.0, "runs": 6.0, OWN_RUN_TIME: 4.0}),
                         "public": Phases({"pool": 1.0})})
    rows = {(r.split, r.phase): r.seconds for r in table.itertuples()}
    assert rows[("private", "total")] == 8.0
    assert rows[("private", "harness share of the total")] == pytest.approx(0.5)
    assert rows[("public", "total")] == 1.0
    board = tmp_path / "board.csv"
    assert read_phase_table(board) is None  # none written yet
    table.to_csv(tmp_path / "board.phases.csv", index=False)
    assert read_phase_table(board).equals(table)
