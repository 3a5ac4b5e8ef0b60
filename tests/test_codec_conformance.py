"""The conformance kit (arraypickle.testing) run against the five built-in codecs, and
against a codec with only the required members (no ``readinto``, no ``finish_stream``)."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest

from arraypickle import dumps, loads
from arraypickle.codec import Codec, CompressWriter, DecompressReader, Inflater, skip_magic
from arraypickle.testing import STDLIB_TOOLS, CodecConformance, assert_same


class TestZlibConformance(CodecConformance):
    codec = "zlib"
    tool = STDLIB_TOOLS["zlib"]


class TestGzipConformance(CodecConformance):
    codec = "gzip"
    tool = STDLIB_TOOLS["gzip"]


class TestBz2Conformance(CodecConformance):
    codec = "bz2"
    tool = STDLIB_TOOLS["bz2"]


class TestLzmaConformance(CodecConformance):
    codec = "lzma"
    tool = STDLIB_TOOLS["lzma"]


class TestXzConformance(CodecConformance):
    codec = "xz"
    tool = STDLIB_TOOLS["xz"]


class _ReadOnly(io.RawIOBase):
    """A reader implementing ``read`` alone (its ``readinto`` is io's, which raises)."""

    def __init__(self, inner: DecompressReader) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)


class _Minimal(Codec):
    """Raw deflate behind a magic, read with ``read`` alone and no ``finish_stream``:
    the kit reads it as arraypickle does, and skips what needs ``finish_stream``."""

    name, magic, extensions = "minimal", b"MIN1", (".min",)

    def open_writer(self, fileobj, level):
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        return CompressWriter(fileobj, compressor, magic=self.magic)

    def open_reader(self, fileobj):
        skip_magic(fileobj, self.magic, self.name)
        return _ReadOnly(
            DecompressReader(fileobj, lambda: Inflater(-15), codec=self.name, multistream=False)
        )


class TestMinimalCodecConformance(CodecConformance):
    codec = _Minimal()


@pytest.mark.parametrize(
    "values",
    [[1.0, np.nan], [complex(np.nan, 1), 2j], np.array(["2020-01-01", "NaT"], "M8[s]")],
)
def test_the_kits_comparison_takes_missing_values_in_place_as_the_same(values):
    # A kit rejecting a sound round trip of NaN or NaT would fail codecs that are right.
    arr = np.asarray(values)
    assert_same(arr, loads(dumps(arr)))
    with pytest.raises(AssertionError, match="values differ"):
        assert_same(arr, arr[::-1].copy())


@pytest.mark.parametrize(
    "value",
    [
        {"f": float("nan")},
        np.float64("nan"),
        np.datetime64("NaT", "s"),
        [complex(np.nan, 1)],
        np.array([1.0, np.nan], dtype=object),
    ],
    ids=["dict", "numpy-scalar", "NaT", "complex", "object-array"],
)
def test_the_kits_comparison_takes_missing_values_outside_arrays_too(value):
    assert_same(value, loads(dumps(value)))


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (complex(np.nan, 1), complex(np.nan, 2)),
        (complex(1, np.nan), complex(np.nan, 5)),
        (np.array([np.nan + 1j]), np.array([np.nan + 2j])),
        (np.array([1.0], dtype=object), np.array([2.0], dtype=object)),
    ],
)
def test_the_kits_comparison_tells_a_complex_numbers_parts_apart(expected, actual):
    # numpy's equal_nan takes any two complex numbers holding a NaN for the same.
    with pytest.raises(AssertionError):
        assert_same(expected, actual)
