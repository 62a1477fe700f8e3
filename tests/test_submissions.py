import textwrap

import pytest

from harness.methods.loading import SubmissionError, discover, inspect_submission


def write(directory, name, source):
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def test_discover_finds_valid_files_and_ignores_underscored(tmp_path):
    write(tmp_path, "good.py", '''
        """A method."""
        NAME = "Good method"
        def unlearning(net, retain, forget, val):
            return net
    ''')
    write(tmp_path, "_helper.py", "x = 1\n")
    found, rejected = discover(tmp_path)
    assert [s.name for s in found] == ["good"]
    assert found[0].title == "Good method"
    assert found[0].description == "A method."
    assert rejected == {}


@pytest.mark.parametrize(
    "source, reason",
    [
        ("def unlearning(net, retain, forget, val)\n    return net\n", "syntax error"),
        ("def other(net, retain, forget, val):\n    return net\n", "defines no `unlearning"),
        ("def f():\n    def unlearning(net, retain, forget, val):\n        pass\n", "defines no"),
        ("if x:\n    def unlearning(net):\n        pass\n", "must accept 4"),
        ("def unlearning(net, retain):\n    return net\n", "must accept 4"),
        ("def unlearning(net, retain, forget, val, extra):\n    pass\n", "requires 5"),
        ("def unlearning(net, retain, forget, val, *, k):\n    pass\n", "keyword-only"),
        ("async def unlearning(net, retain, forget, val):\n    pass\n", "async"),
    ],
)
def test_bad_submissions_are_rejected_with_the_reason(tmp_path, source, reason):
    path = write(tmp_path, "bad.py", source)
    with pytest.raises(SubmissionError, match=reason):
        inspect_submission(path)
    found, rejected = discover(tmp_path)
    assert found == [] and reason in rejected["bad"]


def test_flexible_signatures_are_accepted(tmp_path):
    write(tmp_path, "a.py", "def unlearning(*args):\n    pass\n")
    write(tmp_path, "b.py", "def unlearning(net, retain, forget, val, lr=0.1):\n    pass\n")
    found, rejected = discover(tmp_path)
    assert sorted(s.name for s in found) == ["a", "b"] and rejected == {}


def test_unlearning_bound_under_if_by_assignment_or_import_is_accepted(tmp_path):
    write(tmp_path, "a.py", """
        import os
        if os.path.exists("/kaggle/input/empty.txt"):
            print("mock")
        else:
            def unlearning(net, retain, forget, val):
                pass
    """)
    write(tmp_path, "b.py", "def f(n, r, fo, v):\n    pass\nunlearning = f\n")
    write(tmp_path, "c.py", "try:\n    from m import method as unlearning\nexcept ImportError:\n"
          "    unlearning = None\n")
    found, rejected = discover(tmp_path)
    assert sorted(s.name for s in found) == ["a", "b", "c"] and rejected == {}


def test_file_hash_follows_content(tmp_path):
    path = write(tmp_path, "m.py", "def unlearning(net, retain, forget, val):\n    pass\n")
    first = inspect_submission(path).file_hash
    path.write_text(path.read_text() + "# changed\n")
    assert inspect_submission(path).file_hash != first


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="submissions folder"):
        discover(tmp_path / "nope")
