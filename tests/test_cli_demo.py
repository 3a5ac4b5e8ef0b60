"""``arraypickle demo``: every codec round-trips a generated dataset and is reported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import arraypickle
from arraypickle import _demo
from arraypickle._cli import main

TINY = "0.2"  # MB: enough for every array, fast even for xz


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["demo", "--size-mb", TINY, "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_default_runs_none_and_every_installed_codec(capsys):
    code, out = run_json(capsys, "--max-seconds", "0")
    assert code == 0
    names = [r["codec"] for r in out["rows"]]
    assert names == ["none", *sorted(arraypickle.codecs())]
    for row in out["rows"]:
        assert row["verified"] is True, row
        assert row["file_size"] > 0 and row["dump_s"] > 0 and row["load_s"] > 0
        assert not row["skipped"]
    levels = {r["codec"]: r["level"] for r in out["rows"]}
    assert levels["none"] is None
    for name, codec in arraypickle.codecs().items():
        assert levels[name] == arraypickle.codec.default_level(codec)


def test_compression_shrinks_the_file(capsys):
    code, out = run_json(capsys, "--codecs", "none,zlib")
    assert code == 0
    sizes = {r["codec"]: r["file_size"] for r in out["rows"]}
    assert sizes["zlib"] < sizes["none"]
    assert sizes["none"] >= out["data_bytes"]


def test_table_lists_each_codec_with_a_verdict(capsys):
    assert main(["demo", "--size-mb", TINY, "--codecs", "none,gzip"]) == 0
    out = capsys.readouterr().out
    assert "loaded == saved" in out and "dump peak +MB" in out
    lines = [line for line in out.splitlines() if line.startswith(("none ", "gzip "))]
    assert len(lines) == 2
    assert all(line.rstrip().endswith("yes") for line in lines)


def test_slow_codecs_are_skipped_with_the_estimate(capsys, monkeypatch):
    monkeypatch.setattr(_demo, "_probe_seconds", lambda data, compress, where: 1234.0)
    code, out = run_json(capsys, "--max-seconds", "5")
    assert code == 0
    rows = {r["codec"]: r for r in out["rows"]}
    assert rows["none"]["verified"] is True
    for name in arraypickle.codecs():
        assert "about 1234 s" in rows[name]["skipped"]
        assert rows[name]["verified"] is None


def test_named_codecs_always_run(capsys, monkeypatch):
    monkeypatch.setattr(_demo, "_probe_seconds", lambda data, compress, where: 1234.0)
    code, out = run_json(capsys, "--codecs", "bz2", "--max-seconds", "1")
    assert code == 0
    assert [(r["codec"], r["verified"]) for r in out["rows"]] == [("bz2", True)]


def test_a_mismatch_fails_the_demo(capsys, monkeypatch):
    monkeypatch.setattr(_demo, "load", lambda path: {"not": "the data"})
    assert main(["demo", "--size-mb", TINY, "--codecs", "none"]) == 1
    assert "NO" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size-mb", "0"], "--size-mb must be a positive number"),
        (["--size-mb", "inf"], "--size-mb must be a positive number"),
        (["--size-mb", "nan"], "--size-mb must be a positive number"),
        (["--size-mb", "1", "--codecs", "nope"], "unknown codec 'nope'"),
        (["--size-mb", "1", "--max-seconds", "-1"], "--max-seconds"),
    ],
)
def test_bad_arguments_are_usage_errors(capsys, args, message, monkeypatch):
    built = []
    monkeypatch.setattr(_demo, "make_dataset", lambda *a, **k: built.append(1))
    assert main(["demo", *args]) == 2
    assert message in capsys.readouterr().err
    assert built == []  # refused before the dataset is built (seconds, at the default size)


def test_module_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "arraypickle", "demo", "--size-mb", TINY, "--codecs", "none",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "arraypickle" in proc.stdout and "yes" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # the demo's files are removed


def test_dataset_has_the_asked_size_and_is_reproducible():
    data = _demo.make_dataset(8)
    assert abs(_demo.data_bytes(data) - 8e6) / 8e6 < 0.05
    assert {k: v.dtype for k, v in data.items() if isinstance(v, np.ndarray)} == {
        "images": np.float32,
        "embeddings": np.float32,
        "labels": np.int64,
        "mask": np.bool_,
    }
    assert _demo.same(data, _demo.make_dataset(8))
    assert not _demo.same(data, _demo.make_dataset(8, seed=1))
    with pytest.raises(ValueError, match="size_mb"):
        _demo.make_dataset(0)


def test_same_compares_dtype_shape_and_values():
    a = {"x": np.arange(4), "m": {"k": [1, "a"]}}
    assert _demo.same(a, {"x": np.arange(4), "m": {"k": [1, "a"]}})
    assert not _demo.same(a, {"x": np.arange(4.0), "m": {"k": [1, "a"]}})
    assert not _demo.same(a, {"x": np.arange(4).reshape(2, 2), "m": {"k": [1, "a"]}})
    assert not _demo.same(a, {"x": np.arange(4), "m": {"k": (1, "a")}})
