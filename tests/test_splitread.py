"""Large buffers of a regular file read on two threads (arraypickle._splitread).

The pieces are made small here (PIECE 4 KiB, buffers from 8 KiB, and buffers over
1 KiB taken past the one-call read of small ones) so that small files cross many
pieces and every handover of the hash between the threads."""

from __future__ import annotations

import gzip
import io
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraypickle as ap
from arraypickle import CorruptFileError, _reader, _splitread
from arraypickle._checksum import Hasher

PIECE = 4096


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(_splitread, "PIECE", PIECE)
    monkeypatch.setattr(_reader, "SPLIT_MIN", 2 * PIECE)
    monkeypatch.setattr(_reader, "HASH_PIECE", 1024)


@pytest.fixture
def splits(monkeypatch):
    """The buffers the loads read on two threads, by length."""
    seen: list[int] = []
    real = _splitread.SplitRead.__init__

    def spy(self, fd, offset, view, hasher):
        seen.append(len(view))
        real(self, fd, offset, view, hasher)

    monkeypatch.setattr(_splitread.SplitRead, "__init__", spy)
    return seen


def helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "arraypickle-helper"]


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("safe", [False, True])
def test_split_reads_load_what_was_dumped(tmp_path, splits, verify, safe):
    value = {
        "big": np.arange(10_000, dtype=np.float64),  # 80,000 bytes: 20 pieces
        "fortran": np.asfortranarray(np.arange(6_000, dtype=np.int32).reshape(60, 100)),
        "small": np.arange(10, dtype=np.uint8),
    }
    path = tmp_path / "f.pkl"
    ap.dump(value, path)
    again = ap.load(path, verify=verify, safe=safe, threads=2)
    assert sorted(splits) == [24_000, 80_000]
    for key, arr in value.items():
        np.testing.assert_array_equal(again[key], arr)
        assert again[key].flags.f_contiguous == arr.flags.f_contiguous
    assert not helpers()


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 12 * PIECE + 3))
def test_every_size_around_the_pieces_loads_and_verifies(tmp_path_factory, size):
    data = np.frombuffer(os.urandom(size), np.uint8)
    path = tmp_path_factory.mktemp("sizes") / "f.pkl"
    ap.dump([data, data[::-1].copy()], path)
    first, second = ap.load(path, threads=2)
    assert first.tobytes() == data.tobytes()
    assert second.tobytes() == data[::-1].tobytes()


def test_one_thread_or_a_stream_reads_as_before(tmp_path, splits):
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    np.testing.assert_array_equal(ap.load(path, threads=1), big)
    np.testing.assert_array_equal(ap.load(io.BytesIO(path.read_bytes()), threads=2), big)
    np.testing.assert_array_equal(ap.load(path, mmap_mode="r", threads=2), big)
    assert splits == []
    np.testing.assert_array_equal(ap.load(path, threads=2), big)
    assert splits == [80_000]


@pytest.mark.parametrize("piece", [0, 1, 19])
def test_a_changed_byte_in_any_piece_is_found(tmp_path, splits, piece):
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    raw = bytearray(path.read_bytes())
    at = raw.find(big.tobytes()) + piece * PIECE + 100
    raw[at] ^= 1
    path.write_bytes(bytes(raw))
    damaged = r"f\.pkl': record 0 \('B' at offset 16\) is damaged \(checksum mismatch\)"
    with pytest.raises(CorruptFileError, match=damaged):
        ap.load(path, threads=2)
    assert splits == [80_000]
    # Without verification the changed byte is what loads (as from one thread).
    start = at - 100 - piece * PIECE
    assert ap.load(path, threads=2, verify=False).tobytes() == bytes(raw[start : start + 80_000])
    assert not helpers()


def test_a_file_that_ends_early_is_truncated_not_hung(tmp_path, monkeypatch, splits):
    """The size check before allocating makes this rare (a file cut while it loads):
    here the load is told no size, so the read itself meets the end."""
    from arraypickle import _api

    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    raw = path.read_bytes()
    start = raw.find(big.tobytes())
    monkeypatch.setattr(_api, "remaining_size", lambda stream: None)
    for cut in (start + 5 * PIECE + 7, start + 6 * PIECE, start + 79_999):
        path.write_bytes(raw[:cut])
        with pytest.raises(CorruptFileError, match=rf"needs 80000 bytes, {cut - start} read"):
            ap.load(path, threads=2)
    assert splits == [80_000] * 3
    assert not helpers()


def test_the_end_is_said_where_the_file_ends_when_one_thread_stops_the_other(
    tmp_path, monkeypatch, splits
):
    """The helper's pieces are read only after the caller's (it was slow to start):
    the caller meets the end in a later piece and stops the helper before it reads
    the piece the file ends in. The count is still where the file ends. (Without
    verification: with it, the caller would wait for the helper's hash of piece 1.)"""
    from arraypickle import _api, _helper

    deferred = []
    real_wait = _helper.HelperThread.wait

    def wait(self):
        while deferred:
            call, arg = deferred.pop(0)
            call(arg)
        real_wait(self)

    monkeypatch.setattr(_helper.HelperThread, "submit", lambda self, c, a: deferred.append((c, a)))
    monkeypatch.setattr(_helper.HelperThread, "wait", wait)
    monkeypatch.setattr(_api, "remaining_size", lambda stream: None)
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    raw = path.read_bytes()
    start = raw.find(big.tobytes())
    path.write_bytes(raw[: start + 5 * PIECE + 7])  # the end in piece 5, the helper's
    with pytest.raises(CorruptFileError, match=rf"needs 80000 bytes, {5 * PIECE + 7} read"):
        ap.load(path, threads=2, verify=False)
    assert splits == [80_000]


def run_bounded(load) -> BaseException | None:
    """Run ``load`` on a thread of its own; fail (instead of hanging the suite) when it
    does not return; what it raised."""
    raised: list[BaseException] = []

    def target():
        try:
            load()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the load hangs"
    return raised[0] if raised else None


def test_an_interrupt_right_after_the_helper_got_its_half_does_not_hang(tmp_path, monkeypatch):
    from arraypickle import _helper

    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    real_submit = _helper.HelperThread.submit

    def submit_then_interrupted(self, call, arg):
        real_submit(self, call, arg)
        if getattr(call, "__self__", None).__class__ is _splitread.SplitRead:
            raise KeyboardInterrupt  # as a signal landing before the caller reads

    monkeypatch.setattr(_helper.HelperThread, "submit", submit_then_interrupted)
    assert isinstance(run_bounded(lambda: ap.load(path, threads=2)), KeyboardInterrupt)
    assert not helpers()


def test_the_callers_interrupt_wins_over_the_helpers_error(tmp_path, monkeypatch):
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    real = os.preadv
    helper_failed = threading.Event()

    def preadv(fd, buffers, offset):
        if threading.current_thread().name == "arraypickle-helper":
            helper_failed.set()
            raise OSError(5, "Input/output error")
        if helper_failed.wait(10):
            raise KeyboardInterrupt
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    assert isinstance(run_bounded(lambda: ap.load(path, threads=2)), KeyboardInterrupt)
    assert not helpers()


@pytest.mark.parametrize("failing_call", [1, 2, 7])
def test_a_read_error_on_either_thread_is_raised_and_stops_both(
    tmp_path, monkeypatch, failing_call
):
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "f.pkl"
    ap.dump(big, path)
    calls = iter(range(1, 1000))
    lock = threading.Lock()
    real = os.preadv

    def flaky(fd, buffers, offset):
        with lock:
            n = next(calls)
        if n == failing_call:
            raise OSError(5, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", flaky)
    with pytest.raises(OSError, match="Input/output error"):
        ap.load(path, threads=2)
    assert not helpers()


def test_back_to_back_objects_leave_the_file_after_each(tmp_path):
    first, second = np.arange(10_000.0), np.arange(20_000, dtype=np.int32)
    path = tmp_path / "f.pkl"
    with open(path, "wb") as f:
        ap.dump(first, f)
        ap.dump(second, f)
        ap.dump("end", f)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(ap.load(f, threads=2), first)
        np.testing.assert_array_equal(ap.load(f, threads=2), second)
        assert ap.load(f, threads=2) == "end"
        assert f.read() == b""


def test_positional_fd_takes_only_plain_regular_files(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as f:
        assert _splitread.positional_fd(f) == f.fileno()
    with open(path, "rb", buffering=0) as f:
        assert _splitread.positional_fd(f) == f.fileno()
    with open(path, "r+b") as f:
        assert _splitread.positional_fd(f) == f.fileno()
    assert _splitread.positional_fd(io.BytesIO(b"x")) is None
    with gzip.open(tmp_path / "f.gz", "wb") as f:
        assert _splitread.positional_fd(f) is None
    r, w = os.pipe()
    with os.fdopen(r, "rb") as f, os.fdopen(w, "wb"):
        assert _splitread.positional_fd(f) is None
    with open(path, "rb", buffering=0) as f:
        assert _splitread.positional_fd(io.BufferedReader(Window(f, 10))) is None


class Window(io.RawIOBase):
    """The bytes of ``f`` from ``base`` on (an archive's member): its ``fileno()`` is
    ``f``'s, but its offsets are not the descriptor's."""

    def __init__(self, f, base: int) -> None:
        self._f, self._base, self._pos = f, base, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._f.fileno()

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        end = os.fstat(self.fileno()).st_size - self._base
        self._pos = (0, self._pos, end)[whence] + pos
        return self._pos

    def readinto(self, b) -> int:
        n = os.preadv(self._f.fileno(), [b], self._base + self._pos)
        self._pos += n
        return n


@pytest.mark.parametrize("verify", [True, False])
def test_a_file_object_whose_offsets_are_not_its_descriptors_reads_on_one_thread(
    tmp_path, splits, verify
):
    big = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "archive.bin"
    with open(path, "wb") as f:
        f.write(b"member header" * 100)
        base = f.tell()
        ap.dump(big, f)
    with open(path, "rb", buffering=0) as raw:
        loaded = ap.load(io.BufferedReader(Window(raw, base)), threads=2, verify=verify)
    np.testing.assert_array_equal(loaded, big)
    assert splits == []


def test_split_read_alone_hashes_in_order(tmp_path):
    data = os.urandom(10 * PIECE + 123)
    path = tmp_path / "f.bin"
    path.write_bytes(b"h" * 64 + data)
    out = bytearray(len(data))
    hasher = Hasher()
    with open(path, "rb") as f:
        job = _splitread.SplitRead(f.fileno(), 64, memoryview(out), hasher)
        helper = threading.Thread(target=job.run, args=(1,))
        helper.start()
        job.run(0)
        helper.join()
    assert job.short is None
    assert bytes(out) == data
    assert hasher.intdigest() == Hasher(data).intdigest()
