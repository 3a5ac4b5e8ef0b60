"""Sample objects, files and comparisons shared by the integrity, CLI and fuzz tests.

The samples cover what a container can hold: arrays of many kinds (each a BUFFER
record), objects pickled in band, a buffer taken by NEXT_BUFFER, and a bytes object
big enough to be written as a PICKLE record of its own.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import struct
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _format as fmt
from conftest import STDLIB_CODECS

COMPRESSIONS = ("none", *STDLIB_CODECS)


class Blob:
    """An object whose own reduction hands out a PickleBuffer (read back by NEXT_BUFFER)."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol):
        return Blob, (pickle.PickleBuffer(self.data),)

    def __eq__(self, other):
        return type(other) is Blob and bytes(self.data) == bytes(other.data)


def small_mixed() -> dict:
    """A few arrays and objects: the file the exhaustive tests damage byte by byte."""
    a = np.arange(12.0).reshape(3, 4)
    return {
        "a": a,
        "view": a[:, ::2],
        "big_endian": np.arange(5, dtype=">i2"),
        "masked": np.ma.array([1.0, 2.0], mask=[0, 1]),
        "objects": np.array([1, "x", None], dtype=object),
        "empty": np.empty((0, 3)),
        "blob": Blob(bytearray(b"blob" * 4)),
        "nested": [1, "two", (3.0, None), {"k": b"v"}],
    }


def objects_only() -> dict:
    return {"ints": list(range(200)), "text": "é" * 50, "set": {1, 2, 3}, "f": 1.5}


def arrays() -> list:
    rng = np.random.default_rng(0)
    return [
        rng.random((64, 65)),
        np.arange(1000, dtype=np.int32),
        np.array(3.5),
        np.zeros((2, 3), dtype=[("x", "<f4"), ("y", "S3")]),
        np.asfortranarray(np.ones((5, 7), dtype=np.complex64)),
        np.array([True, False]),
    ]


def big_bytes() -> dict:
    # Over 64 KiB: the C pickler writes it directly, as a PICKLE record of its own.
    return {"payload": bytes(range(256)) * 300, "n": 7}


SAMPLES = {
    "small_mixed": small_mixed,
    "objects_only": objects_only,
    "arrays": arrays,
    "big_bytes": big_bytes,
}


@functools.cache
def dumped(sample: str, compression: str) -> bytes:
    compress = 0 if compression == "none" else (compression, 1)
    return ap.dumps(SAMPLES[sample](), compress=compress)


@functools.lru_cache(maxsize=1)
def corpus_globals() -> frozenset[tuple[str, str]]:
    """The globals the undamaged corpus files name, found by loading each once."""
    from arraypickle import _reader

    seen: set[tuple[str, str]] = set()
    original = _reader.Unpickler.find_class

    def recording(self, module, name):
        seen.add((module, name))
        return original(self, module, name)

    _reader.Unpickler.find_class = recording
    try:
        for sample in SAMPLES:
            for compression in COMPRESSIONS:
                ap.loads(dumped(sample, compression))
    finally:
        _reader.Unpickler.find_class = original
    return frozenset(seen)


@contextlib.contextmanager
def only_corpus_globals():
    """While fuzzing: refuse any global the corpus does not name.

    A damaged first byte sends a file to the plain-pickle fallback, and a fuzzer can
    then make the unpickler import and call things (coverage-guided ones try hard).
    Nothing outside the corpus's own globals may run; a refusal is a
    ``CorruptFileError`` (an ``UnpicklingError`` raised here, outside arraypickle, would
    count as the error of code the pickle named, and propagate as it is).
    """
    from arraypickle import _reader

    allowed = corpus_globals()
    original = _reader.Unpickler.find_class

    def guarded(self, module, name):
        if (module, name) not in allowed:
            raise ap.CorruptFileError(f"fuzzing: global {module}.{name} refused")
        return original(self, module, name)

    _reader.Unpickler.find_class = guarded
    try:
        yield allowed
    finally:
        _reader.Unpickler.find_class = original


def deep_equal(a, b) -> bool:
    """Equality of loaded objects: same types, dtypes, shapes and bytes, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ma.MaskedArray):
        return (
            deep_equal(np.asarray(a.data), np.asarray(b.data))
            and deep_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            and deep_equal(np.asarray(a.fill_value), np.asarray(b.fill_value))
        )
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.hasobject:
            return all(deep_equal(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class OneWay(io.RawIOBase):
    """A non-seekable stream over ``data`` (as a pipe or a socket reads)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._src.readinto(b)


def container(*records: tuple[bytes, int, int, bytes], end: tuple[int, int] | None = None) -> bytes:
    """A container built by hand: ``(kind, flags, declared_length, payload)`` records.

    Headers get valid CRCs, buffers their padding; the payload may be shorter than
    declared (what a crafted or truncated file holds). ``end`` gives the END counts
    (default: the true ones); ``end=()`` leaves END out.
    """
    out = bytearray(fmt.pack_header())
    buffers = 0
    for index, (kind, flags, length, payload) in enumerate(records):
        pad = fmt.padding(len(out)) if kind in fmt.ALIGNED_KINDS else 0
        out += fmt.pack_record(kind, pad, flags, length) + bytes(pad) + payload
        if len(payload) == length:
            out += fmt.TRAILER.pack(fmt.record_checksum(payload, index))
        buffers += kind == fmt.KIND_BUFFER
    if end != ():
        counts = end or (len(records), buffers)
        payload = fmt.END.pack(*counts)
        out += fmt.pack_record(fmt.KIND_END, 0, 0, len(payload)) + payload
        out += fmt.TRAILER.pack(fmt.record_checksum(payload, len(records)))
    return bytes(out)


def crc_ok(header: bytes) -> bool:
    return zlib.crc32(header[:12]) == struct.unpack("<I", header[12:16])[0]


# -- the corpus itself --------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_corpus_round_trips(sample, compression):
    data = dumped(sample, compression)
    first = ap.loads(data)
    assert deep_equal(first, ap.loads(data))
    assert deep_equal(ap.load(OneWay(data)), first)


def test_hand_built_container_loads():
    opcodes = pickle.dumps([1, 2], protocol=5)
    assert ap.loads(container((fmt.KIND_PICKLE, 0, len(opcodes), opcodes))) == [1, 2]
    assert crc_ok(fmt.pack_record(fmt.KIND_PICKLE, 0, 0, 1 << 40))
