"""The built-in array wrapper for numpy: arrays, memmaps, matrices, masked arrays, subclasses.

Stored forms (the wrapper name ``"numpy"``, then ``meta``; part of the file format):

``("a", dtype, shape, order)`` + one buffer
    An array of a non-object dtype, its bytes laid out in ``order`` ('C' or 'F').
``("v", cls, base, state)``
    A subclass that pickles as ndarray does (``np.matrix``, ``np.recarray``, most
    user subclasses): ``base`` is the data as a plain array (its own record), rebuilt
    with ``base.view(cls)``; ``state`` is the instance ``__dict__`` or None (see
    :func:`kept_state`).
``("m", cls, data, mask, fill_value, hard_mask)``
    A masked array: ``data`` and ``mask`` (None for ``nomask``) are arrays of their own.

``np.memmap`` instances are stored as plain arrays. Object arrays, and subclasses with
their own ``__reduce__``, are left to pickle.
"""

from __future__ import annotations

import functools
import mmap
from contextvars import ContextVar
from math import prod
from typing import Any

import numpy as np

from ._errors import CorruptFileError
from ._memory import mapping_position, memmap_over
from .hookspecs import hookimpl
from .wrapper import ArrayWrapper, Buffer, Exposed

_ND = np.ndarray
_MA = np.ma.MaskedArray
_new = tuple.__new__
NUMPY1 = np.lib.NumpyVersion(np.__version__) < "2.0.0"


def _misreads_datetime_states() -> bool:
    """Whether this numpy builds an unreadable dtype from a datetime dtype state as
    numpy 2.3 and later write it (no metadata as ``None``; numpy 1.x to 2.2 wrote
    ``{}``, and read ``None`` into a dtype whose ``metadata`` raises TypeError)."""
    probe = np.dtype("M8", False, True)
    try:
        probe.__setstate__((4, "<", None, None, None, -1, -1, 0, (None, (b"D", 1, 1, 1))))
        probe.metadata  # noqa: B018 - the read is the test
    except TypeError:
        return True
    return False


MISREADS_DATETIMES = _misreads_datetime_states()


def _layout(arr: np.ndarray) -> str:
    """The order to lay ``arr`` out in: its own when contiguous, else the nearer one."""
    if arr.flags.c_contiguous:
        return "C"
    if arr.flags.f_contiguous:
        return "F"
    if arr.ndim > 1 and abs(arr.strides[0]) < abs(arr.strides[-1]):
        return "F"
    return "C"


def plain_form(arr: np.ndarray) -> tuple[str, np.dtype, tuple[int, ...], str] | None:
    """The stored form ``("a", dtype, shape, order)`` of a plain array (its one buffer
    laid out in ``order``), or None when pickle is to handle it (object dtypes)."""
    dtype = arr.dtype
    if dtype.hasobject or dtype.itemsize == 0:
        return None
    return ("a", dtype, arr.shape, _layout(arr))


def _subclass_kind(cls: type) -> str | None:
    """How a subclass of ndarray is stored: 'm' masked, 'v' as a view, None by pickle."""
    if issubclass(cls, _MA):
        same = (
            cls.__reduce__ is _MA.__reduce__
            and cls.__reduce_ex__ is _MA.__reduce_ex__
            and cls.__setstate__ is _MA.__setstate__
        )
        return "m" if same else None
    same = (
        cls.__reduce__ is _ND.__reduce__
        and cls.__reduce_ex__ is _ND.__reduce_ex__
        and cls.__setstate__ is _ND.__setstate__
    )
    return "v" if same else None


# What np.memmap keeps of its mapping: rebuilt by its __array_finalize__, and an mmap
# cannot be pickled.
_MEMMAP_OWN = frozenset(("_mmap", "filename", "offset", "mode"))


def kept_state(obj: np.ndarray) -> dict[str, Any] | None:
    """The instance attributes of a subclass stored in the view form, or None.

    pickle drops them (ndarray's ``__reduce__`` leaves ``__dict__`` out); they are kept
    here (a unit or a description set in ``__array_finalize__``), pickled with the rest
    of the object, so one that cannot be pickled (a lock) fails the dump rather than
    being lost unseen. A memmap subclass's own mapping is np.memmap's to rebuild.
    """
    state = getattr(obj, "__dict__", None)
    if state and isinstance(obj, np.memmap):
        state = {k: v for k, v in state.items() if k not in _MEMMAP_OWN}
    return state or None


# How many ndarray subclasses the wrapper remembers the stored form of.
_KINDS_LIMIT = 1024


class NumpyWrapper(ArrayWrapper):
    """numpy arrays: buffers out of band, everything else (dtype, shape) pickled."""

    name = "numpy"
    types = (np.ndarray,)

    def __init__(self) -> None:
        self._kinds: dict[type, str | None] = {}

    def expose(self, obj: Any) -> Exposed | None:
        cls = type(obj)
        if cls is _ND or cls is np.memmap:
            meta = plain_form(obj)
            if meta is None:
                return None
            # tuple.__new__ skips the namedtuples' Python-level __new__: this runs once
            # per array, and objects of many small arrays (forests) feel every microsecond.
            return _new(Exposed, (meta, (_new(Buffer, (obj, meta[3])),)))
        kind = self._kinds.get(cls, "?")
        if kind == "?":
            if len(self._kinds) >= _KINDS_LIMIT:
                self._kinds.clear()  # classes made as a program runs: keep none alive
            kind = self._kinds[cls] = _subclass_kind(cls)
        if kind == "v":
            return Exposed(("v", cls, obj.view(_ND), kept_state(obj)))
        if kind == "m":
            mask = obj._mask
            return Exposed(
                (
                    "m",
                    cls,
                    obj._data,
                    None if mask is np.ma.nomask else mask,
                    obj._fill_value,
                    bool(obj._hardmask),
                )
            )
        return None

    def rebuild_one(self, meta: Any, buf: Any) -> Any:
        """:meth:`rebuild` of one buffer, or of the reader's ``FileSlot``: bytes of a
        memory-mapped file not mapped yet, where an array's memmap is made directly
        (mapping the slot as a uint8 memmap first, then the array over it, was a
        third of a mapped load of many small arrays)."""
        if isinstance(buf, np.ndarray):
            return self.rebuild(meta, [buf])
        if type(meta) is tuple and len(meta) == 4 and meta[0] == "a":
            _, dtype, shape, order = meta
            dtype = _array_dtype(dtype, shape, order, buf.length)
            return buf.target.array(buf.offset, shape, dtype, order)
        return self.rebuild(meta, [buf.mapped()])

    def rebuild(self, meta: Any, buffers: list[np.ndarray]) -> Any:
        if type(meta) is not tuple or not meta:  # as expose stores it, and format.md says
            raise CorruptFileError(
                f"numpy wrapper: a meta of type {type(meta).__name__}, not a tuple"
            )
        kind = meta[0]
        if kind == "a" and len(meta) == 4 and len(buffers) == 1:
            return _rebuild_array(meta[1], meta[2], meta[3], buffers[0])
        if kind == "v" and len(meta) == 4 and not buffers:
            _, cls, base, state = meta
            # As expose stores them: anything else would make base.view(cls) a call
            # of the file's choosing (an attribute named view, set by a state).
            if not isinstance(base, _ND) or not _is_subclass(cls, _ND) or issubclass(cls, _MA):
                raise CorruptFileError("numpy wrapper: a view form over something not an array")
            if state is not None and type(state) is not dict:
                raise CorruptFileError("numpy wrapper: a view form with a state not a dict")
            out = base.view(cls)
            if state is not None:
                if not hasattr(out, "__dict__"):
                    raise CorruptFileError(
                        f"numpy wrapper: a view form with a state for {cls.__qualname__}, "
                        "whose instances hold none"
                    )
                # The state dict itself becomes the array's: when an attribute leads
                # back to the array, this runs before the unpickler fills the dict.
                # What __array_finalize__ set stays unless the state says otherwise.
                for key, value in out.__dict__.items():
                    state.setdefault(key, value)
                # Past the class's own __setattr__ (a read-only one, a recarray's that
                # sets fields), as update() on its __dict__ was.
                object.__setattr__(out, "__dict__", state)
            return out
        if kind == "m" and len(meta) == 6 and not buffers:
            _, cls, data, mask, fill_value, hard = meta
            if (
                not _is_subclass(cls, _MA)
                or not isinstance(data, _ND)
                or not (mask is None or isinstance(mask, _ND))
            ):
                raise CorruptFileError("numpy wrapper: a masked form over something not arrays")
            try:
                return _MA.__new__(
                    cls,
                    data=data,
                    mask=np.ma.nomask if mask is None else mask,
                    copy=False,
                    fill_value=fill_value,
                    hard_mask=hard,
                    keep_mask=False,  # else a structured mask is OR-ed into a new one
                    subok=True,
                )
            except (TypeError, ValueError) as exc:
                # What expose stored from a masked array always fits it: numpy refuses
                # only parts a file was given otherwise (a fill value of another type,
                # a mask of another shape).
                raise CorruptFileError(
                    f"numpy wrapper: a masked form whose parts numpy refuses ({exc})"
                ) from exc
        if kind in ("a", "v", "m"):
            raise CorruptFileError(
                f"numpy wrapper: stored form {kind!r} with {len(meta)} fields and "
                f"{len(buffers)} buffers, not as written"
            )
        raise CorruptFileError(f"numpy wrapper: unknown stored form {kind!r}")


def _is_subclass(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


# False for the length of a load(ensure_native_byte_order=False), set by every load (so
# one made inside another, by a __setstate__, has its own). A context variable, not an
# argument: arrays are rebuilt by calls the pickle stream makes, through the wrapper
# hook, and only a non-native array (rare) ever reads it.
KEEP_BYTE_ORDER: ContextVar[bool] = ContextVar("arraypickle_keep_byte_order", default=False)


def _array_dtype(dtype: np.dtype, shape: tuple[int, ...], order: str, nbytes: int) -> np.dtype:
    """The dtype to build an array of the stored form ``("a", dtype, shape, order)``
    with, over a buffer of ``nbytes``; CorruptFileError if they disagree."""
    if not isinstance(dtype, np.dtype) or order not in ("C", "F"):
        raise CorruptFileError("numpy wrapper: bad dtype or order")
    if dtype.hasobject or dtype.itemsize == 0:
        # The writer never stores these as buffers (expose leaves them to pickle): over
        # a file's bytes (mapped ones included) an object's items would be pointers.
        raise CorruptFileError(f"numpy wrapper: a buffer holding an array of {dtype}")
    if nbytes != dtype.itemsize * prod(shape):
        raise CorruptFileError(
            f"numpy wrapper: buffer of {nbytes} bytes for an array {shape} of {dtype}"
        )
    if MISREADS_DATETIMES and dtype.kind in "mMV":
        return readable_dtype(dtype)
    return dtype


def _rebuild_array(dtype: np.dtype, shape: tuple[int, ...], order: str, buf: np.ndarray) -> Any:
    dtype = _array_dtype(dtype, shape, order, buf.nbytes)
    if isinstance(buf, np.memmap):
        return _mapped(buf, dtype, shape, order)
    arr = buf.view(dtype).reshape(shape, order=order)
    if _is_native(dtype) or KEEP_BYTE_ORDER.get():
        return arr
    # Swap in place: the memory is ours and the result must be native-endian.
    if dtype.fields is None:
        arr.byteswap(inplace=True)
    elif _fields_disjoint(dtype):
        _swap_fields(arr)
    else:
        # Fields sharing bytes have no native-order equivalent (astype would let one
        # field's conversion overwrite another's bytes): keep the stored order.
        return arr
    return arr.view(dtype.newbyteorder("="))


def readable_dtype(dtype: np.dtype) -> np.dtype:
    """``dtype`` as this numpy builds it, when numpy 2.3 or later wrote its state.

    numpy 2.3 writes "no metadata" of a datetime64/timedelta64 dtype as ``None`` where
    numpy 1.x to 2.2 wrote ``{}``, and these load it into a dtype whose ``metadata``
    raises ``TypeError`` (so ``np.save`` of the array fails), also as a field or
    subarray type. Such parts are built again from their type strings; ``dtype``
    itself when nothing needs it.
    """
    if dtype.names is not None:
        entries = [dtype.fields[name] for name in dtype.names]
        formats = [readable_dtype(entry[0]) for entry in entries]
        if all(new is entry[0] for new, entry in zip(formats, entries, strict=True)):
            return dtype
        out = struct_dtype(dtype.names, entries, formats, dtype.itemsize, dtype.isalignedstruct)
        if out.type is not dtype.type:  # np.record
            out = np.dtype((dtype.type, out))
        return _with_metadata(out, dtype)
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        new = readable_dtype(base)
        return dtype if new is base else _with_metadata(np.dtype((new, shape)), dtype)
    if dtype.kind in "mM":
        try:
            dtype.metadata  # noqa: B018 - the read is the test
        except TypeError:
            return np.dtype(dtype.str)
    return dtype


def struct_dtype(
    names: Any, entries: list[Any], formats: list[Any], itemsize: int, align: bool
) -> np.dtype:
    """The structured dtype with fields ``names``: ``entries`` are theirs as
    ``dtype.fields`` and dtype states hold them (``(type, offset)`` or ``(type, offset,
    title)``), with each type given by ``formats``."""
    spec = {
        "names": list(names),
        "formats": formats,
        "offsets": [entry[1] for entry in entries],
        "itemsize": itemsize,
    }
    titles = [entry[2] if len(entry) == 3 else None for entry in entries]
    if any(title is not None for title in titles):
        spec["titles"] = titles
    return np.dtype(spec, align=align)


def _with_metadata(new: np.dtype, old: np.dtype) -> np.dtype:
    """``new`` carrying ``old``'s own metadata (a struct's or a subarray's, readable)."""
    meta = old.metadata
    return new if meta is None else np.dtype(new, metadata=dict(meta))


def _mapped(buf: np.memmap, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.memmap:
    """The array over the file bytes ``buf`` maps, made on the mapping itself.

    As ``np.memmap`` makes its own arrays: code that maps an array again elsewhere
    (``joblib.Parallel`` sending it to workers) takes the order from the memmap whose
    base is the mapping. Were that ``buf``, one-dimensional, a Fortran-ordered array
    would come back in C order there, its elements scrambled.
    """
    mm = buf.base
    if not isinstance(mm, mmap.mmap):  # pragma: no cover - np.memmap's base is its mmap
        return buf.view(dtype).reshape(shape, order=order)
    at = mapping_position(buf, mm)
    return memmap_over(mm, at, shape, dtype, order, (buf.filename, buf.offset, buf.mode))


def _is_native(dtype: np.dtype) -> bool:
    """Whether every part of ``dtype`` is in native byte order.

    ``dtype.isnative`` misses subarray fields: ``[('m', '>i4', (2,))]`` says True.
    """
    if dtype.fields is None and dtype.subdtype is None:
        return dtype.isnative  # exact for plain dtypes, and 20x cheaper than comparing
    return _is_native_compound(dtype)


@functools.lru_cache(maxsize=256)
def _is_native_compound(dtype: np.dtype) -> bool:
    try:
        return dtype == dtype.newbyteorder("=")
    except TypeError:  # a dtype without byte order
        return True


def _leaves(dtype: np.dtype, offset: int = 0) -> Any:
    """(offset, size) of each non-structured field of ``dtype``, nested ones included."""
    for name in dtype.names:
        field, start = dtype.fields[name][:2]
        if field.base.fields is not None:
            for i in range(prod(field.shape)):
                yield from _leaves(field.base, offset + start + i * field.base.itemsize)
        else:
            yield offset + start, field.itemsize


def _fields_disjoint(dtype: np.dtype) -> bool:
    end = 0
    for start, size in sorted(_leaves(dtype)):
        if start < end:
            return False
        end = start + size
    return True


def _swap_fields(arr: np.ndarray) -> None:
    """Byte-swap, in place, every non-native field of the structured ``arr``."""
    for name in arr.dtype.names:
        field = arr[name]
        if field.dtype.fields is not None:
            _swap_fields(field)
        elif not field.dtype.isnative:
            field.byteswap(inplace=True)


@hookimpl
def arraypickle_register_wrappers() -> list[ArrayWrapper]:
    return [NumpyWrapper()]
