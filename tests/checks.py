"""Comparisons for loaded objects: values, dtypes, types, layout, and where memory lives."""

from __future__ import annotations

import math
import mmap
import os

import numpy as np

ALIGNMENT = 64


def native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in native byte order (every field of a structured dtype included)."""
    return dtype.newbyteorder("=")


def expected_type(ref: np.ndarray, *, mapped: bool = False) -> type:
    """The class a loaded copy of ``ref`` should have."""
    cls = type(ref)
    if cls is np.memmap:
        cls = np.ndarray
    if mapped and cls is np.ndarray and not ref.dtype.hasobject:
        return np.memmap
    return cls


def assert_array_same(out: object, ref: np.ndarray, *, mapped: bool = False) -> None:
    """``out`` is a faithful copy of ``ref``: class, shape, dtype and every byte of value.

    Loaded arrays are native-endian, except memory-mapped ones, which keep the stored
    byte order.
    """
    assert isinstance(out, np.ndarray), type(out)
    assert type(out) is expected_type(ref, mapped=mapped), (type(out), type(ref))
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if isinstance(ref, np.ma.MaskedArray):
        assert_array_same(np.ma.getdata(out), np.ma.getdata(ref), mapped=mapped)
        assert (out.mask is np.ma.nomask) == (ref.mask is np.ma.nomask)
        np.testing.assert_array_equal(np.ma.getmaskarray(out), np.ma.getmaskarray(ref))
        if ref.dtype.fields is None:
            assert out.fill_value == ref.fill_value
        assert out.hardmask == ref.hardmask
        return
    if ref.dtype.hasobject:
        assert out.dtype == ref.dtype
        assert_same(out.tolist(), ref.tolist())
        return
    want = ref.dtype if mapped else native(ref.dtype)
    assert out.dtype == want, (out.dtype, want)
    # Byte-exact, field by field: NaN payloads, -0.0 and NaT must survive too.
    assert leaf_bytes(np.asarray(out)) == leaf_bytes(np.asarray(ref), want)
    if getattr(ref, "__dict__", None) and not isinstance(ref, (np.matrix, np.memmap)):
        assert out.__dict__ == ref.__dict__


def leaf_bytes(arr: np.ndarray, dtype: np.dtype | None = None) -> list[bytes]:
    """The bytes of each non-structured field of ``arr``, as values of ``dtype``'s order.

    Padding between fields is not part of the value, so it is left out.
    """
    if arr.dtype.fields is None:
        if dtype is not None and dtype != arr.dtype:
            arr = arr.astype(dtype)
        return [np.ascontiguousarray(arr).tobytes()]
    found = []
    for name in arr.dtype.names:
        sub = None if dtype is None else dtype.fields[name][0].base
        found += leaf_bytes(arr[name], sub)
    return found


def _scalar_equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, complex) and isinstance(b, complex):
        return _scalar_equal(a.real, b.real) and _scalar_equal(a.imag, b.imag)
    if isinstance(a, np.generic) and isinstance(b, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return bool(a == b)


def assert_same(out: object, ref: object, *, mapped: bool = False) -> None:
    """Deep comparison of nested containers of scalars, strings and arrays."""
    if isinstance(ref, np.ndarray):
        assert_array_same(out, ref, mapped=mapped)
        return
    assert type(out) is type(ref), (type(out), type(ref))
    if isinstance(ref, dict):
        assert list(out) == list(ref)
        for key in ref:
            assert_same(out[key], ref[key], mapped=mapped)
    elif isinstance(ref, (list, tuple)):
        assert len(out) == len(ref)
        for a, b in zip(out, ref, strict=True):
            assert_same(a, b, mapped=mapped)
    else:
        assert _scalar_equal(out, ref), (out, ref)


def iter_arrays(obj: object):
    """Every ndarray in nested dicts, lists and tuples."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from iter_arrays(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from iter_arrays(value)


# The most a loaded array's allocation holds beyond its bytes: the alignment's slack,
# and the record's padding (< ALIGNMENT) and 8-byte checksum, read with the payload.
LOAD_SLACK = 2 * ALIGNMENT + 8
# Buffers up to GROUPED bytes are written in GROUP records of up to GROUP bytes, each
# read into one allocation that its buffers share.
GROUPED = 16 << 10
GROUP = 64 << 10


def load_allocation_max(nbytes: int) -> int:
    """The most a loaded buffer of ``nbytes``'s allocation may hold."""
    return (max(nbytes, GROUP) if nbytes <= GROUPED else nbytes) + LOAD_SLACK


def memory_root(arr: np.ndarray) -> object:
    """The object at the end of ``arr``'s base chain: what really holds its memory."""
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base


def assert_loaded_layout(out: np.ndarray, ref: np.ndarray) -> None:
    """``out`` sits in memory the way a load promises: aligned, writable, no extra copy.

    - contiguous in the layout of ``ref`` (C stays C, F stays F, anything else is
      one or the other);
    - writable, and its data 64-byte aligned;
    - the end of its base chain is one allocation: the aligned buffer the bytes were
      read into, not a copy made afterwards. Its slack is at most the alignment's,
      plus the record's padding and checksum where they were read with the payload
      (a small buffer's: the GROUP record it was read with).
    """
    if isinstance(out, np.ma.MaskedArray):
        assert_loaded_layout(np.ma.getdata(out), np.ma.getdata(ref))
        if ref.mask is not np.ma.nomask and ref.mask.shape:
            assert_loaded_layout(out.mask, ref.mask)
        return
    if ref.dtype.hasobject:
        return
    if ref.flags.c_contiguous:
        assert out.flags.c_contiguous
    elif ref.flags.f_contiguous:
        assert out.flags.f_contiguous
    else:
        assert out.flags.c_contiguous or out.flags.f_contiguous
    assert out.flags.writeable
    assert out.ctypes.data % ALIGNMENT == 0, out.ctypes.data % ALIGNMENT
    root = memory_root(out)
    assert isinstance(root, np.ndarray) and root.flags.owndata, type(root)
    assert root.nbytes <= load_allocation_max(out.nbytes), (root.nbytes, out.nbytes)
    start = root.ctypes.data
    assert start <= out.ctypes.data <= out.ctypes.data + out.nbytes <= start + root.nbytes


def assert_mapped(out: np.ndarray, path: str, mode: str) -> None:
    """``out`` is an ``np.memmap`` of ``path`` in ``mode``, its root an ``mmap``."""
    assert type(out) is np.memmap, type(out)
    assert out.filename == os.path.abspath(path)
    assert isinstance(out.offset, int) and out.offset % ALIGNMENT == 0
    assert out.mode == mode
    assert isinstance(memory_root(out), mmap.mmap)
    assert out.flags.writeable == (mode != "r")
