"""Array memory as bytes: aligned allocation, arrays over a file mapping, and arrays walked
in bounded byte chunks."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._format import ALIGNMENT

# Non-contiguous arrays are copied out in pieces of at most this many bytes (unless a
# single element is larger), so a dump never holds a second copy of a big array.
CHUNK_BYTES = 4 << 20

_addressof = ctypes.addressof
_char_at = ctypes.c_char.from_buffer
# A dtype object, not the type: np.empty converts a type on every call.
_BYTE = np.dtype(np.uint8)


def byte_view(data: Any) -> memoryview:
    """``data`` (any buffer) as a flat memoryview of bytes, without copying."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


class WholeFileMapping(mmap.mmap):
    """A mapping of a whole file, from its first byte.

    An array :func:`memmap_over` makes directly on it (its ``base``) sits at its file
    ``offset`` in the mapping: :func:`mapping_position` then needs no pointers, which
    cost most of mapping each of many small arrays.
    """


def mapping_position(arr: np.ndarray, mm: mmap.mmap) -> int:
    """Where ``arr``'s first byte sits in ``mm``, the mapping it views."""
    if arr.base is mm and type(mm) is WholeFileMapping:
        return int(arr.offset)  # type: ignore[attr-defined]
    return arr.ctypes.data - np.frombuffer(mm, _BYTE).ctypes.data


def memmap_over(
    mm: mmap.mmap, at: int, shape: Any, dtype: Any, order: str, file: tuple[str, int, str]
) -> np.memmap:
    """An ``np.memmap`` of ``shape`` and ``dtype`` over ``mm`` from byte ``at``, made as
    np.memmap makes its own (on the mapping itself); ``file``: its ``filename``,
    ``offset`` and ``mode`` (``at``, on a :class:`WholeFileMapping`)."""
    arr = np.ndarray.__new__(np.memmap, shape, dtype, buffer=mm, offset=at, order=order)
    # Its slices stay memmaps only while _mmap is set, as np.memmap sets it.
    arr._mmap = mm
    arr.filename, arr.offset, arr.mode = file
    return arr


def aligned_empty(nbytes: int, alignment: int = ALIGNMENT, lead: int = 0) -> np.ndarray:
    """A writable 1-D uint8 array of ``nbytes`` whose byte ``lead`` (the first, by
    default) sits ``alignment``-aligned: a record's payload, read with the padding
    before it.

    ``np.empty`` only promises 16-byte alignment, so over-allocate and offset.
    """
    raw = np.empty(nbytes + alignment, _BYTE)
    # The address through ctypes: a third of the cost of __array_interface__, which
    # builds a dict (this runs once per loaded array).
    start = (-_addressof(_char_at(raw)) - lead) % alignment
    if nbytes:
        return raw[start : start + nbytes]
    # Not raw[start:start]: numpy gives an empty slice the parent's address.
    return raw[start:][:0]


def as_bytes(arr: np.ndarray) -> np.ndarray:
    """A 1-D uint8 view of a C-contiguous array (any dtype, 0-d included), no copy."""
    return arr.reshape(-1).view(np.uint8)


def contiguous_bytes(arr: np.ndarray, order: str) -> np.ndarray | None:
    """The bytes of ``arr`` laid out in ``order`` ('F', or else C) as a uint8 view of
    its own memory, or None when its memory does not hold them in that layout."""
    a = arr.T if order == "F" else arr
    return as_bytes(a) if a.flags.c_contiguous else None


def byte_chunks(arr: np.ndarray, order: str, limit: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Yield the bytes of ``arr`` laid out in ``order`` ('C' or 'F') as uint8 arrays.

    A contiguous array is yielded whole, as a view of its own memory. Any other array
    is copied out in whole rows of at most ``limit`` bytes into one scratch buffer, so
    each chunk is valid until the next one is asked for. Every chunk holds a whole
    number of elements.
    """
    whole = contiguous_bytes(arr, order)
    if whole is not None:
        yield whole
        return
    a = arr.T if order == "F" else arr
    scratch = np.empty(0, np.uint8)
    for block in _blocks(a, limit):
        need = block.nbytes
        if scratch.nbytes < need:
            scratch = np.empty(max(need, min(limit, a.nbytes)), np.uint8)
        np.copyto(scratch[:need].view(a.dtype).reshape(block.shape), block)
        yield scratch[:need]


def _blocks(a: np.ndarray, limit: int) -> Iterator[np.ndarray]:
    """Split a non-contiguous array, in C order, into row blocks of at most ``limit`` bytes."""
    if a.flags.c_contiguous:
        yield a
        return
    n = a.shape[0]
    row_nbytes = a.nbytes // n
    if row_nbytes > limit and a.ndim > 1:
        for i in range(n):
            yield from _blocks(a[i], limit)
        return
    step = max(1, limit // max(row_nbytes, 1))
    for i in range(0, n, step):
        yield a[i : i + step]
