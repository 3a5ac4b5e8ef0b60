"""Loading pickle streams, including the ones joblib wrote, without joblib installed.

Every stream that is neither an arraypickle container nor compressed is a pickle; it
may come from ``pickle.dump`` or from ``joblib.dump``. joblib >= 0.10 writes each array
as a ``joblib.numpy_pickle.NumpyArrayWrapper`` object (its ``subclass``, ``shape``,
``order``, ``dtype``, ``allow_mmap`` and, since joblib 1.2, the
``numpy_array_alignment_bytes`` it padded to) whose ``BUILD`` opcode is followed,
outside the pickle, by:

* for an array of objects, a complete nested pickle of the array;
* otherwise, when the wrapper announces an alignment, one byte ``n`` and ``n`` padding
  bytes, then the array's bytes in the wrapper's ``order``, in the dtype's byte order.

:class:`PickleLoad` runs the C unpickler over a :class:`~._joblib_stream.PickleView`,
binds joblib's wrapper classes (through ``find_class``) to placeholders whose
``__setstate__`` reads the array at that point, straight into its final aligned memory
(or maps it), then injects ``POP NONE BINPERSID`` so that ``persistent_load`` puts the
array on the stack in the wrapper's place. joblib 0.8.4-0.9 wrappers that point at
companion files are read by :mod:`._joblib_legacy`.

Pickles of protocol 2 and below may come from Python 2, whose ``str`` is bytes. The C
unpickler reads them with ``encoding='latin1'``, numpy's own route for Python 2
pickles: every byte maps to one character, so array data, text and binary blobs come
back whole (a blob as a ``str`` whose ``.encode('latin1')`` gives its bytes back).

Every unpickler of one load, the nested ones included, is made by one factory: the
caller's, which carries its ``find_class`` policy (a nested object-array pickle once
escaped such a policy in joblib, GHSA-m62q-453p-gv66).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from ._damage import unpickler_failure
from ._errors import CorruptFileError, EmptyFileError
from ._joblib_legacy import deprecation, read_ndarray_wrapper, read_zndarray_wrapper
from ._joblib_stream import PickleView, Source
from ._joblib_zf import open_zf
from ._memory import aligned_empty
from ._names import JOBLIB_WRAPPER_MODULES
from ._numpy import _rebuild_array
from ._reader import MAX_STREAM_RECORD, MmapTarget
from ._streams import Guarded, LiveLoad, ShortReads, finish_live, is_seekable
from ._warnings import warn_caller

# (module, name) -> object, consulted by find_class before anything is imported.
Bindings = Mapping[tuple[str, str], Any]
# Makes a C unpickler reading ``file`` under the caller's find_class policy; keyword
# arguments (``encoding``) go to ``pickle.Unpickler``.
UnpicklerFactory = Callable[..., pickle.Unpickler]

# POP (the wrapper) NONE BINPERSID: persistent_load(None) pushes the array read.
_SWAP = b"0NQ"
_ORDERS = ("C", "F")


@dataclass
class Outcome:
    """What a load found, for the caller's warnings."""

    value: Any
    wrappers: int = 0  # joblib array wrappers met (any kind)
    legacy: bool = False  # joblib < 0.10 wrappers (companion files) met
    arrays: int = 0  # numpy array makers named (counted under mmap_mode only)


class WrapperState:
    """A validated ``NumpyArrayWrapper`` state."""

    __slots__ = ("alignment", "allow_mmap", "dtype", "order", "shape", "subclass")

    def __init__(
        self,
        subclass: type,
        shape: tuple[int, ...],
        order: str,
        dtype: np.dtype,
        allow_mmap: bool,
        alignment: int | None,
    ) -> None:
        self.subclass = subclass
        self.shape = shape
        self.order = order
        self.dtype = dtype
        self.allow_mmap = allow_mmap
        self.alignment = alignment


class PickleLoad:
    """One load of one pickle stream from ``stream`` (positioned at its first byte).

    ``new_unpickler`` makes every unpickler of this load; ``path`` (the file's name)
    serves memory mapping and joblib 0.9's companion files; ``inner``: ``stream`` is
    a decompressed stream, which must end with the object. ``live``: the file under
    that stream cannot seek and may be a socket whose sender waits for an answer, so
    nothing past the object is asked of the decompressor (a read ahead past the end of
    its stream would wait for the next one). ``guard``: refuse a damaged memo index
    before the unpickler allocates for it (see ``_joblib_stream``); safe loading's scan
    already does.
    """

    def __init__(
        self,
        stream: Any,
        name: str,
        *,
        new_unpickler: UnpicklerFactory,
        path: str | None = None,
        mmap_mode: str | None = None,
        mapfile: Any = None,
        size: int | None = None,
        piece: int | None = None,
        inner: bool = False,
        live: bool = False,
        dirname: str | None = None,
        policy: Any = None,
        guard: bool = False,
    ) -> None:
        self.name = name
        self.guard = guard
        self.policy = policy  # safe loading: nested pickles read from files are scanned
        self.path = path
        self.dirname = (
            dirname if dirname is not None else _dirname(path or getattr(stream, "name", None))
        )
        self.mmap_mode = mmap_mode if path else None
        # The loaded file's own mapping (see MmapTarget: never the path opened again).
        self.mapping = MmapTarget(path, mmap_mode, mapfile) if path and mmap_mode else None
        self.new_unpickler = new_unpickler
        self.size = size
        self.inner = inner
        buffered = (inner and not live) or is_seekable(stream)
        self.source = Source(stream, name, buffered=buffered, piece=piece)
        self.outcome = Outcome(None)
        self.py2 = False
        self._ready: list[Any] = []
        self._unmappable_warned = False

    # -- the load -----------------------------------------------------------------

    def load(self) -> Outcome:
        """Unpickle the object, then give back what was read beyond it."""
        head = bytes(self.source.read(2))
        if not head:
            raise EmptyFileError(f"{self.name}: the file is empty")
        # PROTO 0..2, or no PROTO (protocols 0 and 1): possibly Python 2.
        self.py2 = not (head[0] == 0x80 and len(head) > 1 and head[1] > 2)
        view = PickleView(self.source, guard=self.guard, decompressed=self.inner)
        view.give_back(head)
        unpickler = self._unpickler(view, self._bindings(view))
        self.outcome.value = self._run(unpickler)
        left = self.source.finish()
        if left and self.inner:
            raise CorruptFileError(f"{self.name}: data follows the object in the compressed stream")
        # The loader stays in a reference cycle (the classes standing for joblib's
        # wrappers hold it) until the garbage collector runs: it must not hold the
        # object, or a joblib file's arrays would outlive the caller's last reference.
        outcome, self.outcome = self.outcome, Outcome(None)
        return outcome

    def _run(self, unpickler: Any) -> Any:
        try:
            return unpickler.load()
        except Exception as exc:
            error = unpickler_failure(
                exc, self.name, "not an arraypickle container (no magic at offset 0), and "
            )
            if error is None:
                raise
            raise error from exc

    def _unpickler(self, file: Any, bindings: Bindings) -> Any:
        # numpy's route for Python 2 pickles: a Python 2 str is decoded as latin1.
        options = {"encoding": "latin1"} if self.py2 else {}
        unpickler = self.new_unpickler(file, bindings, **options)
        unpickler.persistent_load = self._persistent_load
        if self.mmap_mode:
            # Arrays named are counted, to warn that they could not be mapped only when
            # there were some (the C unpickler looks find_class up on the instance).
            find_class = unpickler.find_class

            def counting(module: str, name: str) -> Any:
                self.outcome.arrays += (module, name) in _ARRAY_MAKERS
                return find_class(module, name)

            unpickler.find_class = counting
        return unpickler

    def unpickle_nested(self, stream: Any, what: str, scan: bool = False) -> Any:
        """Unpickle one nested pickle (an object array) from ``stream``'s position.

        Same factory, policy and Python 2 handling as the outer stream; joblib's
        wrappers cannot appear inside. ``scan``: under safe loading, the stream (a
        companion file, which the outer scan did not walk) is scanned first.
        """
        if scan and self.policy is not None:
            from ._safe import checked_plain

            checked_plain(stream, f"{self.name}: {what}", self.policy)  # seeks back
        source = stream if isinstance(stream, Source) else Source(stream, self.name, buffered=False)
        view = PickleView(source, guard=self.guard, decompressed=self.inner and source is stream)
        refusal = f"{self.name}: {what}: {_NestedWrapper._REFUSAL}"  # names the file
        refusing = type("NestedWrapper", (_NestedWrapper,), {"_REFUSAL": refusal})
        bindings = dict.fromkeys(self._wrapper_keys(), refusing)
        value = self._run(self._unpickler(view, bindings))
        if not isinstance(value, np.ndarray):
            raise CorruptFileError(
                f"{self.name}: {what} holds a {type(value).__name__}, not an array"
            )
        return value

    def _persistent_load(self, pid: Any) -> Any:
        if pid is None and self._ready:
            return self._ready.pop()
        raise pickle.UnpicklingError(f"persistent IDs are not supported, found {pid!r}")

    # -- joblib's wrappers --------------------------------------------------------

    @staticmethod
    def _wrapper_keys() -> list[tuple[str, str]]:
        return [(m, cls) for cls, modules in JOBLIB_WRAPPER_MODULES.items() for m in modules]

    def _bindings(self, view: PickleView) -> dict[tuple[str, str], Any]:
        readers = {
            "NumpyArrayWrapper": read_numpy_wrapper,
            "NDArrayWrapper": read_ndarray_wrapper,
            "ZNDArrayWrapper": read_zndarray_wrapper,
        }
        bindings = {}
        for cls_name, modules in JOBLIB_WRAPPER_MODULES.items():
            placeholder = _placeholder(cls_name, self, view, readers[cls_name])
            for module in modules:
                bindings[(module, cls_name)] = placeholder
        return bindings

    def on_build(self, view: PickleView, kind: str, reader: Callable[..., Any], state: Any) -> None:
        """A joblib wrapper's ``BUILD``: read its array and swap it in."""
        view.after_build(kind)
        self.outcome.wrappers += 1
        self._ready.append(reader(self, state))
        view.inject(_SWAP)

    def read_raw(self, meta: WrapperState) -> np.ndarray:
        """The bytes of a non-object array, after their padding: read, or mapped."""
        source = self.source
        if meta.alignment is not None:
            pad = bytes(source.read(1))
            if not pad:
                raise CorruptFileError(f"{self.name}: truncated before a joblib array")
            source.skip(pad[0], "the padding of a joblib array")
        nbytes = meta.dtype.itemsize * prod(meta.shape)
        self.check_size(nbytes, meta.shape, meta.dtype)
        if self.mmap_mode and meta.allow_mmap:
            if source.offset is not None:
                array = map_array(self, meta.dtype, meta.shape, meta.order, source.offset)
                source.skip(nbytes, "a joblib array")
                return array
            if not self._unmappable_warned:
                self._unmappable_warned = True
                warn_caller(
                    f"{self.name} cannot be sought in: its arrays cannot be memory-mapped "
                    "and are loaded into memory instead",
                    UserWarning,
                )
        try:
            buf = aligned_empty(nbytes)
        except MemoryError:
            raise CorruptFileError(
                f"{self.name}: a joblib array at offset {source.consumed} declares "
                f"{nbytes} bytes: cannot allocate"
            ) from None
        source.readinto_exact(buf, "a joblib array")
        return _rebuild_array(meta.dtype, meta.shape, meta.order, buf)

    def check_size(self, nbytes: int, shape: Any, dtype: Any) -> None:
        """Refuse a declared size larger than what the file can hold."""
        limit = MAX_STREAM_RECORD if self.size is None else self.size - self.source.consumed
        if nbytes > limit:
            raise CorruptFileError(
                f"{self.name}: a joblib array of shape {shape} and dtype {dtype} at offset "
                f"{self.source.consumed} declares {nbytes} bytes, more than the file holds"
            )


def map_array(
    load: PickleLoad,
    dtype: np.dtype,
    shape: tuple[int, ...],
    order: str,
    offset: int,
    path: str | None = None,
) -> np.ndarray:
    """``np.memmap`` of ``path`` (default: the loaded file) at ``offset``, in the load's mode."""
    own = path is None and load.mapping is not None
    path = path or load.path
    if dtype.hasobject or dtype.itemsize == 0:
        # joblib writes neither raw: over a file, objects' items would be its bytes as
        # pointers, and 0-byte items let a shape's element count overflow.
        raise CorruptFileError(f"{path!r}: an array of {dtype} cannot be mapped from a file")
    try:
        if own:
            array = load.mapping.array(offset, shape, dtype, order)  # type: ignore[union-attr]
        else:  # a companion file of joblib < 0.10: the file itself is what is named
            array = np.memmap(
                path, dtype=dtype, mode=load.mmap_mode, offset=offset, shape=shape, order=order
            )
    except (ValueError, TypeError, OverflowError) as exc:
        # Beyond the end of the file, or a shape a damaged .npy header gives (a bool,
        # a dimension past 2**63): np.memmap's own complaints, about the file.
        raise CorruptFileError(f"{path!r}: cannot map the array at offset {offset}: {exc}") from exc
    if not array.flags.aligned:
        warn_caller(
            f"{load.name}: the array at offset {offset} is memory-mapped unaligned for its "
            f"dtype {dtype} (joblib < 1.2 did not pad arrays); some libraries need aligned "
            "data: load without mmap_mode, or re-save the file",
            UserWarning,
        )
    return array


def read_numpy_wrapper(load: PickleLoad, state: Any) -> np.ndarray:
    """A ``NumpyArrayWrapper``: its array follows it in the stream."""
    meta = wrapper_state(state, load.name)
    if meta.dtype.hasobject:
        array = load.unpickle_nested(load.source, "a joblib object array")
    else:
        array = load.read_raw(meta)
    return restore_subclass(array, meta.subclass)


def wrapper_state(state: Any, name: str) -> WrapperState:
    """Check a ``NumpyArrayWrapper`` state and return it typed."""
    if not isinstance(state, dict):
        raise CorruptFileError(
            f"{name}: a joblib array wrapper has a state of type {type(state).__name__}"
        )
    try:
        subclass = state["subclass"]
        shape = state["shape"]
        order = state["order"]
        dtype = state["dtype"]
    except KeyError as missing:
        raise CorruptFileError(
            f"{name}: a joblib array wrapper lacks its {missing.args[0]!r}"
        ) from None
    alignment = state.get("numpy_array_alignment_bytes")
    check_array_meta(name, subclass, shape, dtype)
    if order not in _ORDERS or not (alignment is None or type(alignment) is int):
        raise CorruptFileError(
            f"{name}: a joblib array wrapper has order {order!r}, alignment {alignment!r}"
        )
    return WrapperState(subclass, shape, order, dtype, bool(state.get("allow_mmap")), alignment)


def check_array_meta(name: str, subclass: Any, shape: Any, dtype: Any) -> None:
    """Refuse anything but an ndarray subclass, a tuple of sizes and a dtype."""
    check_subclass(name, subclass)
    if not isinstance(dtype, np.dtype):
        raise CorruptFileError(f"{name}: a joblib array has the dtype {dtype!r}")
    if type(shape) is not tuple or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise CorruptFileError(f"{name}: a joblib array has the shape {shape!r}")


def check_subclass(name: str, subclass: Any) -> None:
    if subclass is not np.ndarray and not (
        isinstance(subclass, type) and issubclass(subclass, np.ndarray)
    ):
        raise CorruptFileError(
            f"{name}: a joblib array claims the class {subclass!r}, not an ndarray"
        )


def restore_subclass(array: np.ndarray, subclass: type) -> np.ndarray:
    """``array`` as ``subclass`` (``np.matrix``...); memmaps and ndarrays stay as they are."""
    if subclass is np.ndarray or subclass is np.memmap or isinstance(array, subclass):
        return array
    return array.view(subclass)


def _placeholder(kind: str, load: PickleLoad, view: PickleView, reader: Callable[..., Any]) -> type:
    """A class standing for joblib's ``kind``: its ``BUILD`` reads the array."""

    def __setstate__(self: Any, state: Any) -> None:
        load.on_build(view, kind, reader, state)

    return type(kind, (), {"__slots__": (), "__setstate__": __setstate__, "__module__": __name__})


class _NestedWrapper:
    """joblib's wrappers inside a nested pickle: joblib never writes them there.

    Refused however one is made: its ``__new__`` raises, and one made without it
    (``copyreg._reconstructor(cls, object, None)`` calls ``object.__new__``) refuses
    its state. A scan takes a wrapper's BUILD as the start of its array's bytes and
    walks on after them; the load must not run those bytes as opcodes instead."""

    _REFUSAL = "a joblib array wrapper inside a nested object-array pickle"

    def __new__(cls, *_args: Any) -> Any:
        raise CorruptFileError(cls._REFUSAL)

    def __setstate__(self, _state: Any) -> None:
        raise CorruptFileError(self._REFUSAL)


# The globals numpy's own array pickles name (masked arrays' too).
_ARRAY_MAKERS = frozenset(
    [(f"numpy.{c}.multiarray", "_reconstruct") for c in ("core", "_core")]
    + [(f"numpy.{c}.numeric", "_frombuffer") for c in ("core", "_core")]
    + [("numpy.ma.core", "_mareconstruct")]
)


def _dirname(path: Any) -> str | None:
    return os.path.dirname(os.path.abspath(path)) if isinstance(path, str) and path else None


def load_pickle(
    stream: Any,
    name: str,
    *,
    path: str | None = None,
    mmap_mode: str | None = None,
    inner: bool = False,
    **kwargs: Any,
) -> Any:
    """Load one pickle stream (joblib's included) from ``stream``; see :class:`PickleLoad`.

    Warns as joblib does for joblib < 0.10 files, and when ``mmap_mode`` was asked for
    of a plain pickle holding arrays (which cannot be mapped).
    """
    outcome = PickleLoad(stream, name, path=path, mmap_mode=mmap_mode, inner=inner, **kwargs).load()
    if outcome.legacy:
        deprecation(name)
    if mmap_mode is not None and path and outcome.arrays and not outcome.wrappers:
        warn_caller(
            f"{name} is a plain pickle: its arrays are not stored apart and cannot be "
            "memory-mapped; it is loaded into memory instead",
            UserWarning,
        )
    return outcome.value


def load_zf(
    stream: Any,
    name: str,
    *,
    new_unpickler: UnpicklerFactory,
    path: str | None = None,
    mmap_mode: str | None = None,
    piece: int | None = 4 << 20,
    live: LiveLoad | None = None,
    policy: Any = None,
    guard: bool = False,
) -> Any:
    """Load a joblib 0.8.4-0.9 ``ZF`` file (its companions beside ``path``), warning.

    ``live``: ``stream`` cannot seek; the load stops at the end of the zlib stream, as
    for a codec's (see ``_streams.finish_live``). ``policy``: safe loading; the pickle
    inside is scanned first (read up to its STOP and kept aside, then loaded)."""
    if mmap_mode is not None:
        warn_caller(
            f"{name} is compressed with joblib's zlib framing: it cannot be memory-mapped "
            "and is loaded into memory instead",
            UserWarning,
        )
    dirname = _dirname(path or getattr(stream, "name", None))
    reader = open_zf(stream if live is None else ShortReads(stream), name)
    close = None
    try:
        guarded = Guarded(reader, name, "joblib zlib")
        pickled: Any = guarded
        if policy is not None:
            from ._safe import checked_plain

            pickled, close = checked_plain(guarded, name, policy)
        load = PickleLoad(
            pickled,
            name,
            new_unpickler=new_unpickler,
            inner=True,
            live=live is not None,
            piece=piece,
            dirname=dirname,
            policy=policy,
            guard=guard,
        )
        outcome = load.load()
        # Also when nothing was read past the STOP (a pickle ending on a read's
        # boundary): the read at the end checks the declared length.
        if live is None and guarded.read(1):
            raise CorruptFileError(f"{name}: data after the pickle in its joblib zlib stream")
        if live is not None:
            finish_live(guarded, reader, live)
    finally:
        if close is not None:
            close()
        reader.close()
    deprecation(name)
    return outcome.value
