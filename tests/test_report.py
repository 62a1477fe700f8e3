"""The report folder: files, valid PNGs, a self-contained page that references them all, the
command's inputs, and the page as a real browser renders it (headless Chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from harness import cli
from harness.cli import build_parser
from harness.evaluation.model_stats import ModelStats
from harness.execution.phases import OWN_RUN_TIME, Phases, phase_table, phases_path
from harness.execution.records import RunResult
from harness.execution.store import ResultsStore
from harness.outputs import leaderboard, report
from harness.outputs.leaderboard import COLUMNS
from harness.pipeline import recorded
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

N, E = 8, 24
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic(n: int = N, e: int = E) -> tuple[pd.DataFrame, ModelStats, dict[str, np.ndarray]]:
    """A leaderboard shaped like ``build_leaderboard``'s, a pool and the runs behind it."""
    rng = np.random.default_rng(1)
    pool = ModelStats(
        confidences=rng.normal(2.0, 1.0, size=(n, e)), retain_acc=np.full(n, 0.99),
        test_acc=np.full(n, 0.95), forget_acc=np.full(n, 0.94), seconds=np.full(n, 0.5),
    )
    runs = {
        "close": rng.normal(2.0, 1.0, size=(n, e)),
        "far": rng.normal(5.0, 0.5, size=(n, e)),
        "constant": np.tile(rng.normal(6.0, 1.0, size=e), (n, 1)),
    }
    rows = [
        ("close", "ok", 0.12, 0.98, 0.94, 0.02),
        ("far", "ok", 0.03, 0.99, 0.95, 0.05),
        ("constant", "over-budget", 0.0, 1.0, 0.96, 0.7),
        ("<b>broken</b>", "error", np.nan, np.nan, np.nan, 0.01),
    ]
    board = pd.DataFrame([
        {"submission": name, "status": status, "final_score": score, "forget_quality": score,
         "retain_acc": ra, "test_acc": ta, "forget_acc": ra, "seconds_per_run": sec,
         "runs_ok": n if status != "error" else 0, "ref_retain_acc": 0.99, "ref_test_acc": 0.95,
         "budget_seconds": 0.1, "retrain_seconds": 0.5, "num_models": n, "task": "digits",
         "root_seed": 0, "harness_version": "0.1.0", "torch_version": "2", "python_version": "3",
         "message": "8 of 8 runs failed; run 0: ValueError: <script>alert(1)</script>"
         if status == "error" else ""}
        for name, status, score, ra, ta, sec in rows
    ]).reindex(columns=COLUMNS)
    board["rank"] = pd.array([1, 2, pd.NA, pd.NA], dtype="Int64")
    board["rank_lo"] = pd.array([1, 1, pd.NA, pd.NA], dtype="Int64")
    board["rank_hi"] = pd.array([1, 2, pd.NA, pd.NA], dtype="Int64")
    return board, pool, runs


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    board, pool, runs = synthetic()
    out = tmp_path_factory.mktemp("report") / "report"
    page = report.write_report(board, pool, runs, out, budget=0.1)
    assert page == out / "index.html"
    return out


def test_every_plot_is_a_valid_png(written: Path) -> None:
    pngs = sorted(p.name for p in written.glob("*.png"))
    assert pngs == sorted(report.PLOT_FILES.values())
    for name in pngs:
        data = (written / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        image = imread(written / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas
    assert not list(written.glob("*.tmp")) and not list(written.glob(".*"))


def test_the_page_references_every_plot_and_lists_every_row(written: Path) -> None:
    page = (written / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(p.name for p in written.glob("*.png"))
    ranking = page.split('<table id="leaderboard"')[1].split("</tbody>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", ranking.split("<tbody>")[1])
    assert len(rows) == 4
    for name in ("close", "far", "constant"):
        assert f'<td class="text" title="{name}">{name}</td>' in ranking
    assert re.search(r'<td class="ranks">1-2</td><td class="text" title="far">', ranking)
    assert "&lt;b&gt;broken&lt;/b&gt;" in page and "<b>broken</b>" not in page
    assert "&lt;script&gt;" in page and "<script" not in page
    # the note is cut short in the ranking and whole in the notes below it
    notes = page.split('<details id="notes">')[1].split("</details>")[0]
    assert "8 of 8 runs failed; run 0: ValueError: &lt;script&gt;" in notes
    assert "Tied for first (2 of 2 ranked): close, far." in page


def test_the_page_is_self_contained(written: Path) -> None:
    page = (written / "index.html").read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"(https?:)?//", page.replace("<!DOCTYPE html>", ""))
    assert "@import" not in page and "url(" not in page
    for source in re.findall(r'src="([^"]+)"', page):
        assert "/" not in source and (written / source).is_file()


def test_a_report_without_run_records_has_no_epsilon_plots(tmp_path) -> None:
    board, pool, _ = synthetic()
    report.write_report(board, pool, {}, tmp_path, budget=float("nan"))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["scores.png", "time.png"]
    page = (tmp_path / "index.html").read_text()
    assert "epsilons.png" not in page and "No run records for close, far, constant" in page


def test_chosen_examples_are_where_submissions_disagree() -> None:
    eps = {"a": np.array([1.0, 5.0, 2.0, 0.0]), "b": np.array([1.0, 0.0, 2.0, 3.0])}
    assert list(report.chosen_examples(eps, 2)) == [1, 3]
    assert list(report.chosen_examples({"a": eps["a"]}, 2)) == [1, 2]


def test_identity_options_must_match_the_leaderboard() -> None:
    board, _, _ = synthetic()
    task = recorded.task_for_board(board, "lb.csv")
    assert (task.name, task.num_models, task.root_seed) == ("digits", N, 0)
    with pytest.raises(ValueError, match="scored with N 8, not 512"):
        recorded.task_for_board(board, "lb.csv", num_models=512)


def test_load_records_needs_the_cached_pool_and_matches_runs_by_file_hash(tmp_path) -> None:
    board, _, runs = synthetic(n=2, e=1)
    task = get_task("digits", num_models=2, root_seed=0)
    with pytest.raises(FileNotFoundError, match="run `harness score` first"):
        recorded.load_records(board, task, tmp_path / "refs", tmp_path / "results")

    store = ReferenceStore(task, task.load_data(), tmp_path / "refs")
    e = len(store.data.forget_idx)
    store.original_model()  # the one real training here: digits trains in about a second
    fake_pool = ModelStats(np.zeros((2, e)), np.ones(2), np.ones(2), np.ones(2), np.ones(2))
    store.pool(train_chunk=lambda task, data, indices: fake_pool)
    results = ResultsStore(tmp_path / "results" / store.directory.name)
    results.ensure_writable()
    board["provenance"] = ["h-close", "h-far", "h-constant", "h-broken"]
    for name, provenance in (("close", "h-close"), ("far", "old-version")):
        for i in range(2):
            results.append(RunResult(name, "file", provenance, i, seed=i, status="ok", seconds=0.1,
                                     retain_acc=1.0, test_acc=1.0, forget_acc=1.0,
                                     confidences=[float(i)] * e))
    pool, found = recorded.load_records(board, task, tmp_path / "refs", tmp_path / "results")
    assert pool.confidences.shape == (2, e)
    assert list(found) == ["close"]  # "far" ran another file version; "constant" never ran
    assert found["close"].shape == (2, e) and found["close"][1, 0] == 1.0


def test_report_command(tmp_path, monkeypatch) -> None:
    board, pool, runs = synthetic()
    csv = tmp_path / "leaderboard.csv"
    board.to_csv(csv, index=False)
    args = build_parser().parse_args(["report", "--leaderboard", str(csv),
                                      "--report-dir", str(tmp_path / "out")])
    assert args.func is cli.cmd_report and args.task is None
    seen = []

    def fake_load(board, task, reference_root, output_dir):
        seen.append((task.name, task.num_models, Path(output_dir)))
        return pool, runs

    monkeypatch.setattr(recorded, "load_records", fake_load)
    assert args.func(args) == 0
    assert seen == [("digits", N, Path("results"))]
    assert "Where the time went" not in (tmp_path / "out" / "index.html").read_text()
    # the phase times written beside the leaderboard are shown on the page
    phase_table({"private": Phases({"reference pool": 12.5, "runs": 40.0,
                                    OWN_RUN_TIME: 30.0})}).to_csv(phases_path(csv), index=False)
    assert args.func(args) == 0
    page = (tmp_path / "out" / "index.html").read_text()
    section = page[page.index("Where the time went"):]
    assert "<td>reference pool</td><td>12.5</td>" in section
    assert "<td>total</td><td>52.5</td>" in section and "<td>43%</td>" in section
    args.leaderboard = str(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="run `harness score`"):
        args.func(args)


# -- in a real browser -------------------------------------------------------------------------
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter((i) => i.complete && i.naturalWidth > 0)
    .map((i) => i.getAttribute("src"));
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-rendered", ok.join(","));
  document.body.setAttribute("data-rows",
    String(document.querySelectorAll("#leaderboard tbody tr").length));
});
</script>
</body>"""


def chromium() -> str:
    """The browser; missing it is a failure, not a skip (CI installs it: apt-get install
    chromium)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not found:
        pytest.fail("headless Chromium is needed for the report's browser test: install it "
                    "(apt-get install -y chromium) or set CHROMIUM to its path")
    return found


def browser(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", *extra, page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_page_renders_in_headless_chromium(written: Path, tmp_path) -> None:
    # The probe goes into a copy beside the page (same relative image paths); the page itself
    # stays script-free.
    probe = written / "_probe.html"
    probe.write_text((written / "index.html").read_text().replace("</body>", PROBE))
    try:
        result = browser(probe, tmp_path / "profile", "--dump-dom")
    finally:
        probe.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:2000]
    attributes = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', body.group(1)))
    expected = sorted(report.PLOT_FILES.values())
    assert attributes.get("data-images") == str(len(expected)), attributes
    assert sorted(attributes["data-rendered"].split(",")) == expected
    assert attributes["data-rows"] == "4"
    assert '<table id="leaderboard"' in dom and "constant" in dom

    shot = tmp_path / "shot.png"
    result = browser(written / "index.html", tmp_path / "profile2", "--window-size=1100,2400",
                     f"--screenshot={shot}")
    assert result.returncode == 0 and shot.read_bytes().startswith(PNG_MAGIC)
    assert imread(shot).std() > 0


# The layout at 1280 px: measured in the page (after opening every <details>, where the full
# settings and notes are) and seen in a screenshot.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const body = document.body;
  const lines = (selector) => Math.max(0, ...Array.from(document.querySelectorAll(selector))
    .map((row) => {
      const style = getComputedStyle(row.cells[0]);
      const inner = row.getBoundingClientRect().height - parseFloat(style.paddingTop)
        - parseFloat(style.paddingBottom);
      return inner / parseFloat(style.lineHeight);
    }));
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const right = Math.max(...Array.from(body.querySelectorAll("*"))
    .map((e) => e.getBoundingClientRect().right));
  body.setAttribute("data-width", String(window.innerWidth));
  body.setAttribute("data-scroll", String(document.documentElement.scrollWidth));
  body.setAttribute("data-right", String(right));
  body.setAttribute("data-body", String(body.getBoundingClientRect().right
    - parseFloat(getComputedStyle(body).paddingRight)));
  body.setAttribute("data-ranking", String(lines("#leaderboard tbody tr")));
  body.setAttribute("data-notes", String(lines("#notes tbody tr")));
  body.setAttribute("data-splits", String(lines("#splits tbody tr")));
});
</script>
</body>"""
WIDTH = 1280


def layout(folder: Path, profile: Path) -> dict[str, float]:
    """The probe's measures of ``folder``'s page in a 1280 px wide window."""
    probe = folder / "_layout.html"
    probe.write_text((folder / "index.html").read_text().replace("</body>", LAYOUT_PROBE))
    try:
        result = browser(probe, profile, f"--window-size={WIDTH},900", "--dump-dom")
    finally:
        probe.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", result.stdout)
    return {k: float(v) for k, v in re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1))}


def margins(shot: Path) -> tuple[int, int]:
    """Blank columns left and right of what a screenshot shows."""
    ink = (imread(shot)[..., :3].min(axis=2) < 0.9).any(axis=0)
    columns = np.flatnonzero(ink)
    return int(columns[0]), int(len(ink) - 1 - columns[-1])


@pytest.fixture(scope="module")
def full_board(tmp_path_factory) -> Path:
    """The report of the committed leaderboard (both splits, 17 rows with their real settings and
    the ceiling's long message) plus a row with a long name and a long unbroken message."""
    whole = leaderboard.read_leaderboard(Path(__file__).parents[1] / "leaderboard.csv")
    private = leaderboard.split_rows(whole, "private").copy()
    ranked = private["rank"].notna()
    count = int(ranked.sum())
    private.loc[ranked, "rank_lo"] = [max(1, int(r) - 9) for r in private.loc[ranked, "rank"]]
    private.loc[ranked, "rank_hi"] = [min(count, int(r) + 6) for r in private.loc[ranked, "rank"]]
    broken = private.iloc[[0]].assign(
        submission="a_submission_with_a_rather_long_name", status="error", rank=pd.NA,
        rank_lo=pd.NA, rank_hi=pd.NA, final_score=np.nan, final_score_lo=np.nan,
        final_score_hi=np.nan, forget_quality=np.nan, retain_acc=np.nan, test_acc=np.nan,
        forget_acc=np.nan, runs_ok=0,
        message="8 of 8 runs failed; run 0: FileNotFoundError: /tmp/" + "x" * 150 + ".pt")
    board = pd.concat([private, broken], ignore_index=True)
    _, pool, _ = synthetic()
    out = tmp_path_factory.mktemp("full") / "report"
    report.write_report(board, pool, {}, out, budget=0.2, both_splits=whole)
    return out


def test_the_page_fits_1280_px_with_one_line_per_ranking_row(full_board: Path, tmp_path) -> None:
    measured = layout(full_board, tmp_path / "profile")
    assert measured["width"] == WIDTH
    assert measured["scroll"] <= WIDTH, measured  # no horizontal scrolling
    assert measured["right"] <= measured["body"] + 1, measured  # nothing sticks out of the column
    assert measured["ranking"] <= 1.2, measured  # every ranking row is one line
    assert 0 < measured["notes"] <= 5, measured  # the full settings and notes wrap at words
    assert 0 < measured["splits"] <= 3, measured
    shot = tmp_path / "shot.png"
    result = browser(full_board / "index.html", tmp_path / "profile2",
                     f"--window-size={WIDTH},3000", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.read_bytes().startswith(PNG_MAGIC)
    assert imread(shot).shape[1] == WIDTH
    left, right = margins(shot)
    assert left >= 16 and abs(right - left) <= 2, (left, right)  # centred: nothing runs off
    page = (full_board / "index.html").read_text()
    assert page.index('id="plot-scores"') < page.index('id="leaderboard"')  # the picture first


def _split_board(split, rows):
    """A minimal leaderboard of one split: (submission, score, se, settings) per row."""
    return pd.DataFrame([
        {"submission": name, "status": "ok", "final_score": score, "final_score_se": se,
         "final_score_lo": score - 1.96 * se, "final_score_hi": score + 1.96 * se,
         "settings": settings, "split": split}
        for name, score, se, settings in rows
    ])


def test_significance_against_baselines_uses_both_errors():
    from harness.outputs.leaderboard import significantly_above
    from harness.outputs.report import baselines_beaten

    board = _split_board("private", [
        ("do_nothing", 0.0, 0.0, "published"), ("finetune", 0.010, 0.002, "published"),
        ("clear", 0.020, 0.002, "published"),  # gap 0.010 > 1.96 * 0.0028
        ("close", 0.013, 0.002, "published"),  # gap 0.003 < 1.96 * 0.0028, but > 0 clearly
        ("worse", 0.005, 0.001, "published"),
    ])
    assert significantly_above(board, "finetune") == ["clear"]
    assert significantly_above(board, "do_nothing") == ["finetune", "clear", "close", "worse"]
    assert significantly_above(board, "absent") == []
    assert baselines_beaten(board) == (
        "Significantly (at the interval level, unpaired, so conservative): 4 above do_nothing; "
        "1 above finetune."
    )


def test_tuning_gap_counts_tuned_rows_that_fall_on_the_private_split():
    from harness.outputs.report import tuning_gap

    tuned = '{"lr": 0.5}'
    public = _split_board("public", [("a", 0.05, 0.005, tuned), ("b", 0.02, 0.005, tuned),
                                     ("c", 0.03, 0.005, "published")])
    private = _split_board("private", [("a", 0.01, 0.005, tuned), ("b", 0.019, 0.005, tuned),
                                       ("c", 0.0, 0.005, "published")])
    both = pd.concat([private, public], ignore_index=True)
    assert tuning_gap(both) == (
        "2 rows use tuned settings; 1 of them score on the private split below their public "
        "interval (a)."
    )
    untuned = both.assign(settings="published")
    assert tuning_gap(untuned) == "No row uses tuned settings."


def test_the_readme_table_says_whether_a_row_was_tuned():
    from harness.outputs.leaderboard import settings_kind

    assert settings_kind('{"lr": 0.5}') == "tuned"
    assert settings_kind("published") == "published"
    assert settings_kind(float("nan")) == "-"  # the ceiling row runs no submission
