"""progress=: byte counts reported to a callable, throttled; a bar only for big files."""

from __future__ import annotations

import io
import itertools
import os
import sys
import threading

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _progress
from conftest import STDLIB_CODECS


class Recorder:
    def __init__(self):
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done, total):
        self.calls.append((done, total))

    def check(self, *, total, final):
        """The promises of every report sequence: start, growth, spacing, end."""
        calls = self.calls
        assert calls[0] == (0, total)
        assert calls[-1] == (final, final if total is None else total)
        assert all(t == total for _, t in calls[:-1])
        dones = [d for d, _ in calls]
        assert dones == sorted(dones)
        gap = max(_progress.MIN_STEP, total // _progress.STEPS) if total else _progress.MIN_STEP
        assert all(b - a >= gap for a, b in itertools.pairwise(dones[:-1]))
        if total:
            assert len(calls) <= _progress.STEPS + 2


def data(nbytes: int = 5 << 20) -> dict:
    return {"a": np.arange(nbytes // 8, dtype=np.float64), "b": list(range(1000))}


@pytest.mark.parametrize("compress", [0, *STDLIB_CODECS])
def test_dump_and_load_report_file_bytes(tmp_path, compress, monkeypatch):
    # Small steps and pieces: several reports from a small file.
    monkeypatch.setattr(_progress, "MIN_STEP", 8 << 10)
    monkeypatch.setattr(_progress, "WRITE_PIECE", 16 << 10)
    path = tmp_path / "p.pkl"
    value = {"a": np.random.default_rng(0).integers(0, 9, 512 << 10, dtype=np.uint8), "b": [1]}
    rec = Recorder()
    ap.dump(value, path, compress=compress, progress=rec)
    size = path.stat().st_size
    rec.check(total=None, final=size)
    assert len(rec.calls) >= 4

    rec = Recorder()
    out = ap.load(path, progress=rec)
    np.testing.assert_array_equal(out["a"], value["a"])
    rec.check(total=size, final=size)  # compressed: the compressed file's bytes
    assert len(rec.calls) >= 3


def test_one_big_array_reports_as_it_is_written(tmp_path):
    rec = Recorder()
    ap.dump(np.zeros(40 << 20, dtype=np.uint8), tmp_path / "z.pkl", progress=rec)
    assert len(rec.calls) >= (40 << 20) // _progress.WRITE_PIECE
    rec.check(total=None, final=(tmp_path / "z.pkl").stat().st_size)


def test_a_million_records_are_not_a_million_calls(tmp_path):
    path = tmp_path / "dict.pkl"
    value = {float(i): float(i) for i in range(1_000_000)}
    rec = Recorder()
    ap.dump(value, path, progress=rec)
    size = path.stat().st_size
    assert size > 10 << 20
    assert 3 <= len(rec.calls) <= size // _progress.MIN_STEP + 2
    rec = Recorder()
    assert len(ap.load(path, progress=rec)) == 1_000_000
    rec.check(total=size, final=size)
    assert len(rec.calls) <= size // _progress.MIN_STEP + 2


def test_reports_are_bounded_for_big_files(tmp_path, monkeypatch):
    # With a small step unit, the count is set by STEPS, not by the size.
    monkeypatch.setattr(_progress, "MIN_STEP", 1024)
    path = tmp_path / "big.pkl"
    rec = Recorder()
    ap.dump(data(16 << 20), path, progress=rec)
    size = path.stat().st_size
    assert len(rec.calls) <= 2 * _progress.STEPS  # unknown total: steps grow with done
    rec = Recorder()
    ap.load(path, progress=rec)
    rec.check(total=size, final=size)
    assert len(rec.calls) <= _progress.STEPS + 3


def test_mmap_load_reports_the_whole_file(tmp_path):
    path = tmp_path / "m.pkl"
    ap.dump(data(), path)
    rec = Recorder()
    out = ap.load(path, mmap_mode="r", progress=rec)
    assert isinstance(out["a"], np.memmap)
    size = path.stat().st_size
    rec.check(total=size, final=size)


def test_file_objects_bytes_and_streams(tmp_path):
    buf = io.BytesIO()
    rec = Recorder()
    ap.dump(data(), buf, progress=rec)
    rec.check(total=None, final=len(buf.getvalue()))
    buf.seek(0)
    rec = Recorder()
    ap.load(buf, progress=rec)
    rec.check(total=len(buf.getvalue()), final=len(buf.getvalue()))

    rec = Recorder()
    blob = ap.dumps(data(), compress="gzip", progress=rec)
    rec.check(total=None, final=len(blob))
    rec = Recorder()
    ap.loads(blob, progress=rec)
    rec.check(total=len(blob), final=len(blob))


def test_pipe_has_no_total(tmp_path):
    blob = ap.dumps(data())
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, blob), os.close(w)))
    writer.start()
    rec = Recorder()
    with os.fdopen(r, "rb", buffering=0) as f:
        ap.load(f, progress=rec)
    writer.join()
    rec.check(total=None, final=len(blob))


@pytest.mark.parametrize("compress", [0, "gzip"])
def test_back_to_back_objects_report_each_one(tmp_path, compress):
    # Compressed: the decoder reads ahead past the object (on a helper thread), and
    # the load seeks back; the final report is still where the object ends.
    buf = io.BytesIO()
    ap.dump(data(), buf, compress=compress)
    first = buf.tell()
    ap.dump(data(), buf, compress=compress)
    buf.seek(0)
    rec = Recorder()
    ap.load(buf, progress=rec, threads=2)
    assert rec.calls[-1] == (first, len(buf.getvalue()))
    assert ap.load(buf)["a"].nbytes == data()["a"].nbytes


def test_failed_dump_makes_no_final_report(tmp_path):
    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError):
        ap.dump([np.zeros(3 << 20), Boom()], tmp_path / "x.pkl", progress=rec)
    assert rec.calls[0] == (0, None)
    assert all(total is None for _, total in rec.calls)


def test_remote_store(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    rec = Recorder()
    ap.dump(data(), "memory://progress/x.pkl.gz", progress=rec)
    size = mem.info("/progress/x.pkl.gz")["size"]
    rec.check(total=None, final=size)
    rec = Recorder()
    ap.load("memory://progress/x.pkl.gz", progress=rec)
    rec.check(total=size, final=size)
    mem.rm("/progress", recursive=True)


@pytest.mark.parametrize("bad", [1, "yes", object()])
def test_bad_progress_argument(tmp_path, bad):
    with pytest.raises(ValueError, match="progress must be"):
        ap.dump(1, tmp_path / "x.pkl", progress=bad)
    with pytest.raises(ValueError, match="progress must be"):
        ap.load(tmp_path / "x.pkl", progress=bad)
    assert not (tmp_path / "x.pkl").exists()


def test_off_means_untouched_file_objects():
    with _progress.track(False, "dump", "x") as tracker:
        buf = io.BytesIO()
        assert tracker.writer(buf) is buf
        assert tracker.reader(buf) is buf


# -- the bar ------------------------------------------------------------------------


def test_small_files_show_nothing(tmp_path, capfd):
    path = tmp_path / "s.pkl"
    ap.dump(data(), path, progress=True)
    ap.load(path, progress=True)
    assert capfd.readouterr().err == ""


def test_tqdm_bar_for_files_over_the_threshold(tmp_path, capfd):
    pytest.importorskip("tqdm")
    path = tmp_path / "big.pkl"
    big = np.zeros((_progress.BAR_THRESHOLD + (4 << 20)) // 8)  # zero pages: cheap
    ap.dump(big, path, progress=True)
    err = capfd.readouterr().err
    assert "dump big.pkl" in err
    assert "MiB" in err or "M/" in err or "MB" in err
    out = ap.load(path, progress=True)
    assert out.shape == big.shape
    err = capfd.readouterr().err
    assert "load big.pkl" in err
    assert "100%" in err


def test_text_bar_without_tqdm(tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_progress, "BAR_THRESHOLD", 1 << 20)
    path = tmp_path / "t.pkl"
    ap.dump(data(8 << 20), path, progress=True)
    ap.load(path, progress=True)
    err = capfd.readouterr().err
    size_mib = path.stat().st_size >> 20
    assert "dump t.pkl" in err
    assert f"load t.pkl: {size_mib}/{size_mib} MiB (100%)" in err
    lines = err.strip().splitlines()
    assert len(lines) <= 20  # not a tty: a line per tenth at most


def test_a_failing_callback_aborts_the_dump_cleanly(tmp_path):
    def stop(done, total):
        if done:
            raise KeyboardInterrupt

    path = tmp_path / "x.pkl"
    ap.dump({"old": 1}, path)
    with pytest.raises(KeyboardInterrupt):
        ap.dump(np.ones(4 << 20), path, progress=stop)
    assert ap.load(path) == {"old": 1}
    assert os.listdir(tmp_path) == ["x.pkl"]
