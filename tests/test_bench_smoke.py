"""The benchmark harness runs end to end on tiny data and writes its three outputs.

No timing is asserted: figures from a smoke run mean nothing. Libraries the test
environment lacks (joblib, matplotlib) are reported as skipped rows, not failures.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable,
        str(RUN),
        "--quick",
        "--cases", "seed,dict",
        "--configs", "none,zlib3,blosc",
        "--repeats", "2",
        "--rounds", "2",
        "--md", str(out / "benchmarks.md"),
        "--png", str(out / "benchmarks.png"),
        "--json", str(out / "results.json"),
        "--cache-dir", str(out / "cache"),
        "--note", "smoke test",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_json_has_a_row_per_case_library_config(smoke):
    out, _ = smoke
    results = json.loads((out / "results.json").read_text())
    rows = {(r["case"], r["config"], r["library"]): r for r in results["rows"]}
    for case in ("seed", "dict"):
        for config in ("none", "zlib3"):
            for library in ("arraypickle", "pickle5", "joblib"):
                assert (case, config, library) in rows
        # joblib and pickle have no blosc: only our row, run or skipped with a reason
        assert [k for k in rows if k[:2] == (case, "blosc")] == [(case, "blosc", "arraypickle")]
        for library in ("arraypickle", "pickle5"):
            row = rows[(case, "none", library)]
            assert row["status"] == "ok", row
            assert row["verified"] is True
            summary = row["summary"]
            assert summary["dump_s"] > 0 and summary["load_s"] > 0
            assert summary["file_size"] > 0
            assert summary["dump_peak"] >= 0 and summary["load_peak"] >= 0
            # two rounds of one repeat each, merged into the row
            assert row["processes"] == 2 and len(row["raw"]["load_s"]) == 2
        assert rows[(case, "none", "arraypickle")]["summary"]["mmap_s"] > 0
        joblib_row = rows[(case, "none", "joblib")]
        expected = "ok" if importlib.util.find_spec("joblib") else "skipped"
        assert joblib_row["status"] == expected, joblib_row
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["versions"]["arraypickle"]
    assert all(t["status"] in ("pass", "fail", "n/a") for t in results["targets"])


def test_skipped_rows_say_why(smoke):
    out, _ = smoke
    results = json.loads((out / "results.json").read_text())
    for row in results["rows"]:
        assert row["status"] in ("ok", "skipped"), row
        if row["status"] == "skipped":
            assert row["note"]


def test_markdown_has_headline_targets_and_case_tables(smoke):
    out, stdout = smoke
    md = (out / "benchmarks.md").read_text()
    assert "> **smoke test**" in md
    assert "## Headline: uncompressed" in md
    assert "## Targets (issues 2, 3 and 4)" in md
    assert "### Seed example" in md and "### Dict of floats" in md
    assert "| Seed example |" in md
    for line in ("Python ", "cores", "numpy"):
        assert line in md
    # the headline table is printed too
    assert "| case | dump s: arraypickle / pickle-5 / joblib" in stdout
    assert "Targets:" in stdout


def test_chart_is_a_png_when_matplotlib_is_installed(smoke):
    out, _ = smoke
    if importlib.util.find_spec("matplotlib") is None:
        assert not (out / "benchmarks.png").exists()
        pytest.skip("matplotlib not installed: the harness writes no chart")
    assert (out / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](benchmarks.png)" in (out / "benchmarks.md").read_text()


def test_unknown_case_is_refused():
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--cases", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "unknown case: nope" in proc.stderr


def _bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(RUN.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(RUN.parent))
    return module


@pytest.mark.parametrize(
    "repeats, rounds, expected",
    [(9, 3, [3, 3, 3]), (5, 3, [2, 2, 1]), (1, 1, [1]), (4, 4, [1, 1, 1, 1])],
)
def test_repeats_spread_over_rounds(repeats, rounds, expected):
    assert _bench_run().split_repeats(repeats, rounds) == expected


def _part(dumps, size=100, status="ok", note=""):
    raw = {
        "dump_s": dumps,
        "load_s": [d / 2 for d in dumps],
        "mmap_s": [],
        "dump_cpu_s": dumps,
        "load_cpu_s": dumps,
        "dump_peak": [7] * len(dumps),
        "load_peak": [8] * len(dumps),
        "load_retained": [8] * len(dumps),
    }
    return {"status": status, "note": note, "raw": raw, "file_size": size, "wall_s": 1.0,
            "cpu_s": 2.0}  # fmt: skip


def test_rounds_merge_into_one_row():
    run = _bench_run()
    row = run.merge([_part([1.0, 3.0]), _part([2.0])])
    assert row["status"] == "ok" and row["processes"] == 2
    assert row["raw"]["dump_s"] == [1.0, 3.0, 2.0]
    assert row["summary"]["dump_s"] == 2.0 and row["summary"]["dump_min_s"] == 1.0
    assert row["summary"]["load_s"] == 1.0 and row["summary"]["mmap_s"] is None
    assert row["wall_s"] == 2.0 and row["cpu_s"] == 4.0


def test_a_failed_round_fails_the_row():
    run = _bench_run()
    failed = _part([], status="failed", note="exit 1: boom")
    assert run.merge([_part([1.0]), failed])["note"] == "round 2: exit 1: boom"
    assert run.merge([failed])["note"] == "exit 1: boom"
    assert run.merge([_part([1.0])])["processes"] == 1
    row = run.merge([_part([1.0], size=100), _part([1.0], size=101)])
    assert row["status"] == "failed" and "file sizes differ" in row["note"]
