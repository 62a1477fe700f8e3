import pytest

from harness.core.seeds import derive_seed, pool_seed, run_seed


def test_seeds_are_reproducible_and_distinct():
    assert run_seed(0, "finetune", 3) == run_seed(0, "finetune", 3)
    seeds = {run_seed(0, name, i) for name in ("a", "b") for i in range(50)}
    assert len(seeds) == 100
    assert run_seed(0, "a", 0) != run_seed(1, "a", 0)
    assert pool_seed(0, 0) != run_seed(0, "", 0)


def test_adding_a_submission_changes_no_other_seed():
    # a seed depends only on (root, name, index): nothing global to shift
    before = [run_seed(7, "finetune", i) for i in range(5)]
    run_seed(7, "new_method", 0)
    assert [run_seed(7, "finetune", i) for i in range(5)] == before


def test_seeds_fit_torch_and_reject_negatives():
    assert 0 <= derive_seed(0, "x") < 2**63
    with pytest.raises(ValueError):
        derive_seed(-1, "x")
