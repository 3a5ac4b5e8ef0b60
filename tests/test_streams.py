"""Non-seekable streams: pipes, sockets, short reads, objects back to back."""

from __future__ import annotations

import io
import os
import pickle
import socket
import threading

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_same
from conftest import COMPRESS_SETTINGS


def sample(seed: int = 0) -> dict:
    a = np.arange(40_000.0).reshape(200, 200) + seed  # 320 kB: more than a pipe holds
    return {
        "a": a,
        "strided": a[::7, ::-3],
        "small": [seed, "text", np.int16(seed)],
        "objects": np.array([None, seed], dtype=object),
        "masked": np.ma.array([1.0, 2.0], mask=[0, 1]),
    }


class Writer(threading.Thread):
    """Runs ``job(fileobj)`` in a thread, keeping its exception for the test."""

    def __init__(self, fileobj, job):
        super().__init__(daemon=True)
        self.fileobj, self.job, self.error = fileobj, job, None

    def run(self):
        try:
            with self.fileobj as f:
                self.job(f)
        except BaseException as exc:
            self.error = exc

    def finish(self):
        self.join(timeout=60)
        assert not self.is_alive(), "the writer thread hangs"
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("buffering", [-1, 0], ids=["buffered", "raw"])
@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_pipe_read_by_the_main_thread(compress, buffering):
    obj = sample()
    r, w = os.pipe()
    writer = Writer(os.fdopen(w, "wb", buffering=buffering), lambda f: ap.dump(obj, f, compress))
    writer.start()
    with os.fdopen(r, "rb", buffering=buffering) as f:
        out = ap.load(f)
    writer.finish()
    assert_same(out, obj)


@pytest.mark.parametrize("compress", [0, "gzip"])
def test_socketpair(compress):
    obj = sample()
    left, right = socket.socketpair()
    with left, right:

        def send(f):
            ap.dump(obj, f, compress=compress)
            f.flush()
            left.shutdown(socket.SHUT_WR)

        writer = Writer(left.makefile("wb"), send)
        writer.start()
        with right.makefile("rb") as f:
            out = ap.load(f)
        writer.finish()
    assert_same(out, obj)


def test_socket_without_buffering():
    # SocketIO reads return what has arrived: short reads everywhere.
    obj = sample()
    left, right = socket.socketpair()
    with left, right:
        writer = Writer(left.makefile("wb", buffering=0), lambda f: ap.dump(obj, f))
        writer.start()
        with right.makefile("rb", buffering=0) as f:
            out = ap.load(f)
        writer.finish()
    assert_same(out, obj)


def _objects():
    return [sample(1), {"x": 1}, np.arange(5), "tail", sample(2), []]


def test_back_to_back_in_a_bytesio():
    objs = _objects()
    buf = io.BytesIO()
    ends = []
    for obj in objs:
        ap.dump(obj, buf)
        ends.append(buf.tell())
    buf.write(b"caller's trailing bytes")
    buf.seek(0)
    for obj, end in zip(objs, ends, strict=True):
        assert_same(ap.load(buf), obj)
        assert buf.tell() == end  # right after its object, not further
    assert buf.read() == b"caller's trailing bytes"


@pytest.mark.parametrize("buffering", [-1, 0], ids=["buffered", "raw"])
def test_back_to_back_through_a_pipe(buffering):
    objs = _objects()
    r, w = os.pipe()

    def send(f):
        for obj in objs:
            ap.dump(obj, f)
        f.write(b"END")

    writer = Writer(os.fdopen(w, "wb", buffering=buffering), send)
    writer.start()
    with os.fdopen(r, "rb", buffering=buffering) as f:
        for obj in objs:
            assert_same(ap.load(f), obj)
        assert f.read() == b"END"
    writer.finish()


def test_back_to_back_mixed_with_plain_pickles():
    # Plain pickles (what pickle.dump writes) load too, and stop at their STOP.
    buf = io.BytesIO()
    ap.dump({"a": np.arange(3)}, buf)
    pickle.dump({"p": 1}, buf, protocol=2)
    ap.dump([1, 2], buf)
    pickle.dump("five", buf, protocol=5)
    buf.write(b"!")
    buf.seek(0)
    stream = NonSeekable(buf.getvalue(), chunk=3)
    for source in (buf, stream):
        assert ap.load(source)["a"].tolist() == [0, 1, 2]
        assert ap.load(source) == {"p": 1}
        assert ap.load(source) == [1, 2]
        assert ap.load(source) == "five"
        assert source.read(1) == b"!"


class NonSeekable(io.RawIOBase):
    """A raw reader that is not seekable and returns at most ``chunk`` bytes per call."""

    def __init__(self, data: bytes, chunk: int):
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._chunk = chunk

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._chunk, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class ReadOnlyShort:
    """Not even a file: just ``read(n)``, returning at most ``chunk`` bytes."""

    def __init__(self, data: bytes, chunk: int):
        self._buf = io.BytesIO(data)
        self._chunk = chunk

    def read(self, n=-1):
        if n is None or n < 0:
            return self._buf.read()
        return self._buf.read(min(n, self._chunk))


# One byte at a time only uncompressed: decompressing so is slow and chunk=5 covers it.
SHORT_READS = [(c, n) for c in COMPRESS_SETTINGS for n in (1, 5, 4093) if n > 1 or not c]


@pytest.mark.parametrize("reader", [NonSeekable, ReadOnlyShort])
@pytest.mark.parametrize(("compress", "chunk"), SHORT_READS)
def test_short_reads(compress, chunk, reader):
    obj = {"a": np.arange(20_000.0)[::-3], "meta": {"k": [1, 2.5, "x"]}}
    out = ap.load(reader(ap.dumps(obj, compress=compress), chunk))
    assert_same(out, obj)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("reader", [NonSeekable, ReadOnlyShort])
def test_short_reads_of_a_plain_pickle(reader, protocol):
    obj = {"a": np.arange(10_000.0), "text": "x" * 70_000, "n": list(range(1000))}
    out = ap.load(reader(pickle.dumps(obj, protocol=protocol), 7))
    assert_same(out, obj)


def test_back_to_back_with_short_reads():
    objs = _objects()
    data = b"".join(ap.dumps(o) for o in objs) + b"rest"
    stream = NonSeekable(data, 4099)
    for obj in objs:
        assert_same(ap.load(stream), obj)
    assert stream.read() == b"rest"
