"""Helpers shared by the joblib test modules (joblib and lz4 are test-only dependencies)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _plugins

LZ4_MAGIC = b"\x04\x22\x4d\x18"


class Lz4FrameCodec:
    """The five members of a codec, over the ``lz4`` package, for tests only.

    The real codec is the ``arraypickle-lz4`` plugin; when it is installed it is used
    instead of this one.
    """

    name = "lz4"
    magic = LZ4_MAGIC
    extensions = (".lz4",)

    def open_writer(self, fileobj: Any, level: int) -> Any:
        import lz4.frame

        return lz4.frame.LZ4FrameFile(fileobj, "wb", compression_level=level)

    def open_reader(self, fileobj: Any) -> Any:
        import lz4.frame

        return lz4.frame.LZ4FrameFile(fileobj, "rb")


@pytest.fixture
def lz4_codec() -> Iterator[None]:
    """An ``lz4`` codec in the registry: the plugin's if installed, else the test one."""
    if "lz4" in ap.codecs():
        yield
        return
    pytest.importorskip("lz4.frame")
    _plugins.reset()
    ap.register_codec(Lz4FrameCodec())
    try:
        yield
    finally:
        _plugins.reset()


@contextmanager
def pipe_reader(data: bytes) -> Iterator[Any]:
    """A non-seekable binary file that yields ``data`` (written by a thread)."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(write_fd, "wb") as out, suppress(BrokenPipeError):
            out.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        with open(read_fd, "rb") as f:
            yield f
    finally:
        thread.join(timeout=30)


class RawStream:
    """A read-only stream with nothing but ``read`` (no peek, seek, readinto, tell)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else min(len(self._data), self._pos + n)
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def readline(self, size: int | None = -1) -> bytes:
        rest = bytes(self._data[self._pos :])
        nl = rest.find(b"\n")
        return RawStream.read(self, len(rest) if nl < 0 else nl + 1)  # whole lines


def craft_wrapper(cls_name: str, state: Any, after: bytes = b"", protocol: int = 3) -> bytes:
    """A pickle of one joblib ``cls_name`` object with ``state``, ``after`` its BUILD.

    Written by hand, as joblib would (``GLOBAL``, ``NEWOBJ``, state, ``BUILD``), so
    that tests can craft damaged or hostile wrappers without joblib.
    """
    import pickle

    body = pickle.dumps(state, protocol=protocol)
    body = body[2:-1]  # without PROTO and STOP
    return (
        b"\x80"
        + bytes([protocol])
        + b"cjoblib.numpy_pickle\n"
        + cls_name.encode()
        + b"\n)\x81"
        + body
        + b"b"
        + after
        + b"."
    )


def assert_same(got: Any, want: Any, *, mapped: bool = False) -> None:
    """Deep equality of loaded objects, array types, dtypes and values included.

    ``want`` is the object as dumped; arrays come back native-endian unless
    ``mapped``, where plain arrays may come back as ``np.memmap``.
    """
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), type(got)
        if mapped and isinstance(got, np.memmap) and type(want) is np.ndarray:
            pass
        else:
            assert type(got) is type(want), (type(got), type(want))
        if not mapped:
            assert got.dtype == want.dtype.newbyteorder("=") or got.dtype == want.dtype
        assert got.shape == want.shape
        if want.dtype.hasobject:
            assert len(got.ravel()) == len(want.ravel())
            for g, w in zip(got.ravel().tolist(), want.ravel().tolist(), strict=True):
                assert_same(g, w, mapped=mapped)
        else:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        if isinstance(want, np.ma.MaskedArray):
            np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
            assert got.fill_value == want.fill_value
        return
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key], mapped=mapped)
        return
    if isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w, mapped=mapped)
        return
    assert type(got) is type(want), (type(got), type(want))
    assert got == want or (got != got and want != want)  # NaN equals NaN here


class ChoppyStream(RawStream):
    """A non-seekable stream returning arbitrary short reads and short peeks."""

    def __init__(self, data: bytes, seed: int, *, peek: bool = True) -> None:
        super().__init__(data)
        import random

        self._rng = random.Random(seed)
        if not peek:
            self.peek = None  # type: ignore[assignment]

    def read(self, n: int = -1) -> bytes:
        if n is not None and n > 0:
            n = self._rng.randint(1, n)
        return super().read(n)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def peek(self, n: int = 1) -> bytes:
        end = min(len(self._data), self._pos + self._rng.randint(1, max(1, n)))
        return bytes(self._data[self._pos : end])
