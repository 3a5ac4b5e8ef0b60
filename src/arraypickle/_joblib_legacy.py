"""joblib 0.8.4-0.9's multi-file layout: arrays in companion files beside the pickle.

An uncompressed dump wrote ``name_01.npy``, ``name_02.npy``... (numpy's ``.npy``
format) and pickled an ``NDArrayWrapper`` (state: ``filename``, ``subclass``,
``allow_mmap``) in each array's place. A compressed dump wrapped the pickle in joblib's
zlib framing (:mod:`._joblib_zf`) and wrote big arrays to ``name_01.npy.z`` ``ZF``
files of raw bytes, pickling a ``ZNDArrayWrapper`` (state: ``filename``,
``init_args`` = ``(subclass, (0,), 'b')``, ``state`` = ``(1, shape, dtype,
fortran_order)``); smaller arrays stayed in the pickle as ordinary numpy pickles.

Companion names must be plain file names: they are looked for beside the main file
only, never elsewhere. Object arrays in ``.npy`` files are a nested pickle, read through
the load's own unpickler factory. Such files load with a ``DeprecationWarning``.
"""

from __future__ import annotations

import os
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import CorruptFileError
from ._joblib_stream import Source
from ._joblib_zf import MAGIC, open_zf
from ._memory import aligned_empty
from ._numpy import _rebuild_array
from ._warnings import warn_caller

if TYPE_CHECKING:
    from ._joblib import PickleLoad


def deprecation(name: str) -> None:
    """The warning every joblib < 0.10 file loads with, as in joblib."""
    warn_caller(
        f"{name} was written by joblib < 0.10 (zlib framing or companion files); "
        "arraypickle reads it, but re-save it (arraypickle.dump) to keep it readable",
        DeprecationWarning,
    )


def read_ndarray_wrapper(load: PickleLoad, state: Any) -> np.ndarray:
    """An ``NDArrayWrapper``: the array in a ``.npy`` companion file."""
    from ._joblib import check_subclass, restore_subclass

    load.outcome.legacy = True
    state = _state_dict(load, state, "NDArrayWrapper")
    path = _companion(load, state.get("filename"))
    subclass = state.get("subclass", np.ndarray)
    check_subclass(load.name, subclass)
    mmap_mode = load.mmap_mode if state.get("allow_mmap", True) else None
    return restore_subclass(read_npy(load, path, mmap_mode), subclass)


def read_zndarray_wrapper(load: PickleLoad, state: Any) -> np.ndarray:
    """A ``ZNDArrayWrapper``: raw array bytes in a ``.npy.z`` companion ``ZF`` file."""
    from ._joblib import check_array_meta, restore_subclass

    load.outcome.legacy = True
    state = _state_dict(load, state, "ZNDArrayWrapper")
    path = _companion(load, state.get("filename"))
    try:
        subclass = state["init_args"][0]
        _version, shape, dtype, fortran = state["state"]
    except (KeyError, TypeError, IndexError, ValueError):
        raise CorruptFileError(f"{load.name}: a joblib ZNDArrayWrapper has a bad state") from None
    check_array_meta(load.name, subclass, shape, dtype)
    if dtype.hasobject:
        raise CorruptFileError(f"{load.name}: {path!r} claims to hold an object array")
    nbytes = dtype.itemsize * prod(shape)
    with _open(load, path) as f:
        if f.read(2) != MAGIC:
            raise CorruptFileError(f"{path!r} is not a joblib zlib file")
        f.seek(0)
        reader = open_zf(f, repr(path))
        if reader.length != nbytes:
            raise CorruptFileError(
                f"{path!r} holds {reader.length} bytes for an array of {nbytes} bytes"
            )
        try:
            buf = aligned_empty(nbytes)
        except MemoryError:
            raise CorruptFileError(f"{path!r} declares {nbytes} bytes: cannot allocate") from None
        source = Source(reader, repr(path), buffered=False, piece=4 << 20)
        source.readinto_exact(buf, "the array")
        if reader.read(1):
            raise CorruptFileError(f"{path!r} holds more than its array")
    array = _rebuild_array(dtype, tuple(shape), "F" if fortran else "C", buf)
    return restore_subclass(array, subclass)


def read_npy(load: PickleLoad, path: str, mmap_mode: str | None) -> np.ndarray:
    """An array from a ``.npy`` file: mapped, read into aligned memory, or unpickled."""
    from ._joblib import map_array

    fmt = np.lib.format
    with _open(load, path) as f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise CorruptFileError(f"{path!r} is not a valid .npy file: {exc}") from None
        order = "F" if fortran else "C"
        if dtype.hasobject:
            return load.unpickle_nested(f, f"{path!r}", scan=True)
        nbytes = dtype.itemsize * prod(shape)
        offset = f.tell()
        if os.fstat(f.fileno()).st_size - offset < nbytes:
            raise CorruptFileError(f"{path!r} is truncated: its array needs {nbytes} bytes")
        if mmap_mode:
            return map_array(load, dtype, shape, order, offset, path)
        buf = aligned_empty(nbytes)
        Source(f, repr(path), buffered=False).readinto_exact(buf, "the array")
    return _rebuild_array(dtype, shape, order, buf)


def _state_dict(load: PickleLoad, state: Any, kind: str) -> dict:
    if not isinstance(state, dict):
        raise CorruptFileError(
            f"{load.name}: a joblib {kind} has a state of type {type(state).__name__}"
        )
    return state


def _companion(load: PickleLoad, filename: Any) -> str:
    """The path of a companion file: a plain name, beside the main file."""
    if (
        not isinstance(filename, str)
        or os.path.basename(filename) != filename
        or filename in ("", ".", "..")
    ):
        raise CorruptFileError(
            f"{load.name}: a joblib array refers to the companion file {filename!r}; only "
            "plain file names beside the main file are read"
        )
    if load.dirname is None:
        raise CorruptFileError(
            f"{load.name}: written by joblib < 0.10, its arrays are in companion files "
            f"({filename!r}); load it by its path so that they can be found"
        )
    return os.path.join(load.dirname, filename)


def _open(load: PickleLoad, path: str) -> Any:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CorruptFileError(f"{load.name}: its companion file {path!r} is missing") from None
