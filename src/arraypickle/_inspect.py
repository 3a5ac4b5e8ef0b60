"""What a file holds, found without executing anything in it (``arraypickle info``).

The file's format is sniffed as ``load`` does it (container, codec stream, joblib's
``ZF`` framing, plain pickle); its opcode stream is run by the symbolic unpickler of
:mod:`._symbolic`, which imports nothing and calls nothing, and the resulting skeleton
is walked for arrays: arraypickle's ``rebuild`` calls (buffers in BUFFER records),
numpy's own reductions (``_reconstruct`` + ``BUILD``, ``_frombuffer``, masked arrays:
data in the pickle stream), joblib's ``NumpyArrayWrapper`` (data after the wrapper)
and joblib < 0.10's companion files. dtypes are rebuilt only through the safe-loading
allow-list (:func:`._symbolic.materialize`).

Paths name where each array sits in the object, in Python-like notation: ``['key']``
and ``[3]`` for items, ``.name`` for attributes (an object's state dict), ``.__args__[i]``
for the arguments an object is rebuilt from, ``.__state__`` for a state that is not a
dict, ``[i, j]`` for the elements of an object array, ``.mask`` for a masked array's mask.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from . import _format as fmt
from . import _remote
from ._allowlist import allowed
from ._detect import COMPRESSED, CONTAINER, JOBLIB_ZF, decoded, detect
from ._errors import CorruptFileError
from ._joblib_zf import open_zf
from ._names import NUMPY_SCALARS
from ._numpy import MISREADS_DATETIMES, readable_dtype
from ._plugins import get_registry
from ._safe import Policy
from ._streams import Guarded, remaining_size
from ._symbolic import (
    Blob,
    ContainerSource,
    DictNode,
    DtypeCache,
    Global,
    JoblibArray,
    LegacyWrapper,
    Obj,
    SetNode,
    SymbolicError,
    as_dtype,
    materialize,
    run_container,
    run_stream,
    unwrap,
)

SCHEMA = "arraypickle-info/1"
# Dict keys longer than this are cut in paths.
KEY_MAX = 200
# Paths longer than this are cut in the middle: their first PATH_HEAD and last
# PATH_TAIL characters are kept around "...".
PATH_MAX = 1000
PATH_HEAD = 500
PATH_TAIL = PATH_MAX - PATH_HEAD - 3
# Parts of a key followed to tell whether it is a plain value (see _parts).
KEY_NODES = 1024

_RECONSTRUCT = frozenset(f"{m}.multiarray._reconstruct" for m in ("numpy.core", "numpy._core"))
_FROMBUFFER = frozenset(f"{m}.numeric._frombuffer" for m in ("numpy.core", "numpy._core"))
_MARECONSTRUCT = "numpy.ma.core._mareconstruct"
_REBUILD = f"{fmt.REBUILD_MODULE}.{fmt.REBUILD_NAME}"


@dataclass
class ArrayEntry:
    """One array of the file (``--json`` prints these fields)."""

    path: str
    cls: str  # the class the array loads as, e.g. "numpy.ndarray", "numpy.matrix"
    dtype: np.dtype | None  # None when it cannot be known without running code
    shape: tuple[int, ...] | None
    order: str | None  # "C" or "F"
    nbytes: int | None  # array.nbytes once loaded
    offset: int | None  # where its bytes start in the (decompressed) stream
    storage: str  # see docs/cli.md: buffer, pickle, pickle-text, joblib, ...
    file: str | None = None  # a joblib < 0.10 companion file holding it
    buffer: int | None = None  # index of its BUFFER record in a container

    def to_json(self, dtypes: dict[int, tuple[str, Any]] | None = None) -> dict[str, Any]:
        """``dtypes``: the str and descr of dtypes already written, by id: many arrays
        may share one (structured) dtype, costly to write."""
        text = descr = None
        if self.dtype is not None:
            hit = dtypes.get(id(self.dtype)) if dtypes is not None else None
            if hit is None:
                hit = (str(self.dtype), _descr(self.dtype))
                if dtypes is not None:
                    dtypes[id(self.dtype)] = hit
            text, descr = hit
        return {
            "path": self.path,
            "class": self.cls,
            "dtype": text,
            "descr": descr,
            "itemsize": None if self.dtype is None else self.dtype.itemsize,
            "shape": None if self.shape is None else list(self.shape),
            "order": self.order,
            "nbytes": self.nbytes,
            "offset": self.offset,
            "storage": self.storage,
            "file": self.file,
            "buffer": self.buffer,
        }


def _descr(dtype: np.dtype) -> Any:
    """The dtype as ``.npy`` headers write it: ``'<f8'``, or a list of fields."""
    if MISREADS_DATETIMES and dtype.kind in "mMV":
        dtype = readable_dtype(dtype)
    with warnings.catch_warnings():
        # numpy warns that .npy files drop a dtype's metadata; the report drops it too.
        warnings.simplefilter("ignore", UserWarning)
        try:
            descr = np.lib.format.dtype_to_descr(dtype)
        except ValueError:  # fields out of order or overlapping: no descr exists
            return str(dtype)
    return descr if isinstance(descr, str) else _lists(descr)


def _lists(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping):
        # numpy 1.x keeps a field's metadata in its descr: (type, metadata)
        return _lists(value[0])
    return [_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass
class Report:
    """Everything ``arraypickle info`` says about one file."""

    file: str
    file_size: int | None
    format: str  # "arraypickle", "joblib" or "pickle"
    description: str
    compression: str | None  # codec name, "joblib-zlib", or None
    pickle_protocol: int | None
    stream_size: int | None  # bytes of the (decompressed) container or pickle stream
    # Bytes after the object in an uncompressed file (load(path) refuses them); None
    # where that is not known (compressed files, streams).
    trailing_bytes: int | None = None
    container: dict[str, Any] | None = None
    joblib: dict[str, Any] | None = None
    python2: bool = False
    arrays: list[ArrayEntry] = field(default_factory=list)
    globals: list[tuple[str, bool]] = field(default_factory=list)  # (name, untrusted)
    names: set[str] = field(default_factory=set, repr=False)  # every global, unsorted

    @property
    def array_bytes(self) -> int:
        return sum(a.nbytes or 0 for a in self.arrays)

    @property
    def untrusted(self) -> list[str]:
        return [name for name, bad in self.globals if bad]

    def to_json(self) -> dict[str, Any]:
        dtypes: dict[int, tuple[str, Any]] = {}  # see ArrayEntry.to_json
        return {
            "schema": SCHEMA,
            "file": self.file,
            "format": self.format,
            "description": self.description,
            "container": self.container,
            "pickle_protocol": self.pickle_protocol,
            "compression": self.compression,
            "joblib": self.joblib,
            "python2": self.python2,
            "file_size": self.file_size,
            "stream_size": self.stream_size,
            "trailing_bytes": self.trailing_bytes,
            "array_bytes": self.array_bytes,
            "arrays": [a.to_json(dtypes) for a in self.arrays],
            "globals": [{"name": n, "untrusted": bad} for n, bad in self.globals],
            "untrusted": self.untrusted,
        }


# -- opening ------------------------------------------------------------------------


def inspect_path(
    path: str, trusted: Any = None, storage_options: dict[str, Any] | None = None
) -> Report:
    """Inspect the file at ``path`` (a local path or a URL), executing nothing in it.

    Parameters:
        path: the file; URLs (``s3://...``) go through fsspec as for ``load``.
        trusted: names safe loading should accept besides its allow-list; the report
            marks the other globals as untrusted.
        storage_options: options of the fsspec filesystem of a URL.

    Raises:
        CorruptFileError: the file is damaged or not in a format arraypickle reads.
        UnknownCodecError: the file is compressed by a codec that is not installed.
        OSError: the file cannot be opened (missing, a directory, no permission).

    Examples:

        >>> report = inspect_path("model.pkl")
        >>> [(a.path, a.shape) for a in report.arrays]
        [("['weights']", (1000, 1000))]
    """
    target = _remote.locate(path, storage_options)
    if not isinstance(target, str):
        with target.reading() as f:
            return inspect_stream(f, path, remaining_size(f), None, trusted)
    with open(target, "rb") as f:
        st = os.fstat(f.fileno())
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        base = os.path.dirname(os.path.abspath(target))
        return inspect_stream(f, path, size, base, trusted)


def inspect_stream(
    f: Any, file: str, file_size: int | None, base_dir: str | None, trusted: Any = None
) -> Report:
    """Inspect the file read from ``f`` (its first byte at ``f``'s position).

    ``base_dir``: where joblib < 0.10 companion files are looked for (None: not read).
    """
    name = repr(file)
    registry = get_registry()
    found = detect(f, name, registry)
    stream = found.stream
    if found.kind == JOBLIB_ZF:
        reader = open_zf(stream, name)
        try:
            report = _plain(Guarded(reader, name, "joblib zlib"), file, None, base_dir, name)
        finally:
            reader.close()
        report.compression = "joblib-zlib"
        report.format = "joblib"
        report.joblib = {"generation": "0.8.4-0.9"}
        report.description = _describe(report)
    elif found.kind == CONTAINER:
        report = _container(stream, file, file_size, name)
    elif found.kind == COMPRESSED:
        report = _compressed(stream, file, found.codec, base_dir, name, registry)
    else:
        report = _plain(stream, file, file_size, base_dir, name)
    report.file_size = file_size
    if report.compression is None and file_size is not None and report.stream_size is not None:
        report.trailing_bytes = file_size - report.stream_size
    policy = Policy(trusted)
    report.globals = [(n, not policy.is_allowed(n)) for n in sorted(report.names)]
    return report


def _compressed(
    stream: Any, file: str, codec: Any, base_dir: str | None, name: str, registry: Any
) -> Report:
    with decoded(stream, name, codec) as inner:
        found = detect(inner, name, registry, inner=True)
        if found.kind == CONTAINER:
            report = _container(found.stream, file, None, name)
        else:
            report = _plain(found.stream, file, None, base_dir, name)
    report.compression = codec.name
    report.description = _describe(report)
    return report


# -- formats ------------------------------------------------------------------------


def _container(stream: Any, file: str, size: int | None, name: str) -> Report:
    try:
        machine, root, source = run_container(stream, name, size)
    except SymbolicError as exc:
        raise CorruptFileError(f"{name}: {exc}") from None
    report = Report(
        file=file,
        file_size=size,
        format="arraypickle",
        description="",
        compression=None,
        pickle_protocol=machine.proto if machine.proto is not None else machine.max_proto,
        stream_size=source.offset,
        python2=machine.python2,
        names=machine.names,
    )
    report.container = _container_json(source)
    report.arrays = Walker(source, None).walk(root)
    report.description = _describe(report)
    return report


def _container_json(source: ContainerSource) -> dict[str, Any]:
    major, minor = source.version
    return {
        "version": f"{major}.{minor}",
        "checksum": "xxh3-64" if source.checksum == fmt.CHECKSUM_XXH3_64 else source.checksum,
        "alignment": source.alignment,
        "buffers_mapped_for_writing": source.mapped_writable,
        "records": source.records,
        "pickle_records": source.pickle_records,
        "buffer_records": len(source.buffers),
    }


def _plain(stream: Any, file: str, size: int | None, base_dir: str | None, name: str) -> Report:
    try:
        machine, root, reader = run_stream(stream, size)
    except SymbolicError as exc:
        raise CorruptFileError(
            f"{name}: not a valid arraypickle, pickle or joblib file: {exc}"
        ) from None
    joblib = machine.joblib_wrappers or machine.joblib_legacy
    report = Report(
        file=file,
        file_size=size,
        format="joblib" if joblib else "pickle",
        description="",
        compression=None,
        pickle_protocol=machine.proto if machine.proto is not None else machine.max_proto,
        stream_size=reader.offset(),
        python2=machine.python2,
        names=machine.names,
    )
    if joblib:
        if machine.joblib_legacy:
            generation = "0.8.4-0.9"
        elif machine.joblib_aligned:
            generation = ">=1.2"
        else:
            generation = "0.10-1.1"
        report.joblib = {"generation": generation}
    report.arrays = Walker(None, base_dir).walk(root)
    report.description = _describe(report)
    return report


_GENERATIONS = {">=1.2": ">= 1.2", "0.10-1.1": "0.10 to 1.1", "0.8.4-0.9": "0.8.4 to 0.9"}


def _describe(report: Report) -> str:
    if report.format == "arraypickle":
        assert report.container is not None
        text = f"arraypickle container v{report.container['version']}"
        text += f", pickle protocol {report.pickle_protocol}"
    elif report.format == "joblib":
        assert report.joblib is not None
        generation = report.joblib["generation"]
        text = f"joblib file (written by joblib {_GENERATIONS.get(generation, generation)})"
        text += f", pickle protocol {report.pickle_protocol}"
    else:
        text = f"plain pickle, protocol {report.pickle_protocol}"
    if report.python2:
        # Python 3 also writes Python 2's module names (__builtin__, copy_reg) at
        # protocols 0-2, for Python 2 to read: the names cannot tell the two apart.
        text += ", written by or for Python 2"
    if report.compression == "joblib-zlib":
        text += ", compressed with joblib's zlib framing"
    elif report.compression:
        text += f", compressed with {report.compression}"
    return text


# -- walking the skeleton -------------------------------------------------------------


class _KeyCache:
    """What is known of the dict keys of one walk, by the id of their node (each entry
    keeps its node alive): a key the memo shares between many pairs is rendered once."""

    def __init__(self) -> None:
        self.steps: dict[tuple[str, int], tuple[Any, str]] = {}  # the path step of a key
        self.parts: dict[int, tuple[Any, int]] = {}  # see _parts
        self.reprs: dict[int, tuple[Any, str]] = {}  # see _head


class _Path:
    """Where a node sits: its parent's path and one step, rendered only for an array
    found there. Each child holding a copy of its parent's path took memory of the
    depth times the width (dicts nested thousands deep under a memoized long key)."""

    __slots__ = ("head", "keys", "parent", "size", "step")

    def __init__(self, parent: _Path | None, step: str, keys: _KeyCache) -> None:
        self.parent = parent
        self.step = step
        self.keys = keys
        self.size: int = len(step) + (parent.size if parent is not None else 0)
        self.head: str | None = None  # the first PATH_HEAD characters, once known

    def child(self, step: str) -> _Path:
        return _Path(self, step, self.keys) if step else self

    def keyed(self, prefix: str, key: Any) -> _Path:
        """The path of a dict's value: ``[key]`` after ``prefix``."""
        return self.child(self._step(prefix, key))

    def attr(self, key: Any) -> _Path:
        """The path of an attribute a state dict sets."""
        return self.child(self._step(".", key))

    def _step(self, prefix: str, key: Any) -> str:
        steps = self.keys.steps
        hit = steps.get((prefix, id(key)))
        if hit is not None and hit[0] is key:
            return hit[1]
        plain = unwrap(key)
        if prefix != ".":
            step = f"{prefix}[{_key(plain, self.keys)}]"
        elif type(plain) is str and plain.isidentifier():
            step = f".{plain}"
        else:
            step = f".__dict__[{_key(plain, self.keys)}]"
        steps[(prefix, id(key))] = (key, step)
        return step

    def __str__(self) -> str:
        """The path, its middle cut to ``...`` past :data:`PATH_MAX` characters (so the
        arrays of a small file take little memory however deep they sit)."""
        if self.size <= PATH_MAX:
            return self._tail(self.size)
        tail = self._tail(PATH_TAIL)
        return self._head() + "..." + tail[len(tail) - PATH_TAIL :]

    def _tail(self, n: int) -> str:
        """The last steps of the path, at least ``n`` characters of it (or all)."""
        steps = []
        node: _Path | None = self
        have = 0
        while node is not None and have < n:
            steps.append(node.step)
            have += len(node.step)
            node = node.parent
        return "".join(reversed(steps))

    def _head(self) -> str:
        """The first PATH_HEAD characters, shared by all the paths below the first node
        past that length (each node is walked up from once: linear in all)."""
        below = []
        node = self
        while node.head is None:
            parent = node.parent
            if parent is None or parent.size < PATH_HEAD:
                start = parent._tail(parent.size) if parent is not None else ""
                node.head = (start + node.step)[:PATH_HEAD]
                break
            below.append(node)
            node = parent
        for n in below:
            n.head = node.head
        return node.head


class Walker:
    """Finds the arrays of a skeleton, each at the first path that reaches it."""

    def __init__(self, container: ContainerSource | None, base_dir: str | None) -> None:
        self._container = container
        self._base_dir = base_dir
        self.arrays: list[ArrayEntry] = []
        self._dtypes: DtypeCache = {}  # see as_dtype

    def walk(self, root: Any) -> list[ArrayEntry]:
        seen: set[int] = set()
        todo: list[tuple[Any, _Path]] = [(root, _Path(None, "", _KeyCache()))]
        while todo:
            node, path = todo.pop()
            t = type(node)
            if t not in _CONTAINERS:
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            children = self._children(node, path)
            todo.extend(reversed(children))
        return self.arrays

    def _children(self, node: Any, path: _Path) -> list[tuple[Any, _Path]]:
        t = type(node)
        if t is list or t is tuple:
            return [(v, path.child(f"[{i}]")) for i, v in enumerate(node)]
        if t is DictNode:
            return [(v, path.keyed("", k)) for k, v in node.pairs]
        if t is SetNode:
            return [(v, path.child(f"{{{i}}}")) for i, v in enumerate(node.items)]
        if t is JoblibArray:
            return self._joblib(node, path)
        if t is LegacyWrapper:
            self._legacy(node, path)
            return []
        return self._obj(node, path)

    # -- objects --------------------------------------------------------------------

    def _obj(self, obj: Obj, path: _Path) -> list[tuple[Any, _Path]]:
        name = obj.name
        if name == _REBUILD:
            return self._rebuild(obj, path)
        if name in _RECONSTRUCT:
            return self._reconstruct(obj, path)
        if name in _FROMBUFFER:
            self._frombuffer(obj, path)
            return []
        if name == _MARECONSTRUCT:
            return self._masked(obj, path)
        if name in NUMPY_SCALARS:
            return []
        return _generic_children(obj, path)

    def _add(self, entry: ArrayEntry) -> None:
        self.arrays.append(entry)

    def _rebuild(self, obj: Obj, path: _Path) -> list[tuple[Any, _Path]]:
        args = obj.args
        if type(args) is not tuple or len(args) != 4:
            return _generic_children(obj, path)
        wrapper, meta, first, count = (unwrap(a) for a in args)
        if wrapper == "numpy" and type(meta) is tuple and meta:
            kind = unwrap(meta[0])
            if kind == "a" and len(meta) == 4:
                self._add(self._buffer_array(meta, first, path, "numpy.ndarray"))
                return []
            if kind == "v" and len(meta) == 4:
                cls = _class_name(meta[1])
                base = self._plain_rebuild(meta[2])
                if base is not None:
                    self._add(self._buffer_array(base[0], base[1], path, cls))
                    return _state_children(meta[3], path)
                return [(meta[2], path)]
            if kind == "m" and len(meta) == 6:
                cls = _class_name(meta[1])
                out = []
                for part, suffix, kls in ((meta[2], "", cls), (meta[3], ".mask", "numpy.ndarray")):
                    base = self._plain_rebuild(part)
                    if base is not None:
                        self._add(self._buffer_array(base[0], base[1], path.child(suffix), kls))
                    elif part is not None:
                        out.append((part, path.child(suffix)))
                return out
        buffers = len(self._container.buffers) if self._container else 0
        if type(first) is int and type(count) is int and 0 <= count <= buffers:
            # Another wrapper's object: its buffers, of a layout only its plugin knows.
            for i in range(count):
                rec = self._container.indexed.get(first + i) if self._container else None
                self._add(
                    ArrayEntry(
                        path=str(path if count == 1 else path.child(f"<buffer {i}>")),
                        cls=f"{wrapper} (array wrapper)",
                        dtype=None,
                        shape=None,
                        order=None,
                        nbytes=rec.length if rec else None,
                        offset=rec.offset if rec else None,
                        storage="buffer",
                        buffer=first + i,
                    )
                )
            return []
        return _generic_children(obj, path)

    @staticmethod
    def _plain_rebuild(node: Any) -> tuple[tuple[Any, ...], int] | None:
        """(meta, first) of a ``rebuild('numpy', ('a', ...), first, 1)`` node."""
        if type(node) is not Obj or node.name != _REBUILD or type(node.args) is not tuple:
            return None
        if len(node.args) != 4 or unwrap(node.args[0]) != "numpy":
            return None
        meta = node.args[1]
        if type(meta) is tuple and len(meta) == 4 and unwrap(meta[0]) == "a":
            return meta, unwrap(node.args[2])
        return None

    def _buffer_array(self, meta: tuple[Any, ...], first: Any, path: _Path, cls: str) -> ArrayEntry:
        dtype = as_dtype(meta[1], self._dtypes)
        shape = _shape(meta[2])
        order = unwrap(meta[3])
        rec = None
        if self._container is not None and type(first) is int:
            rec = self._container.indexed.get(first)
        return ArrayEntry(
            path=str(path),
            cls=cls,
            dtype=dtype,
            shape=shape,
            order=order if order in ("C", "F") else None,
            nbytes=_nbytes(dtype, shape, rec.length if rec else None),
            offset=rec.offset if rec else None,
            storage="buffer",
            buffer=first if type(first) is int else None,
        )

    def _reconstruct(self, obj: Obj, path: _Path) -> list[tuple[Any, _Path]]:
        args = obj.args if type(obj.args) is tuple else ()
        cls = _class_name(args[0] if args else None)
        state = obj.state
        extra: list[tuple[Any, _Path]] = []
        if type(state) is tuple and len(state) == 2 and type(state[0]) is tuple:
            extra = [(state[1], path.child(".__state__[1]"))]
            state = state[0]
        if type(state) is tuple and len(state) == 4:
            state = (1, *state)
        if type(state) is not tuple or len(state) != 5:
            return _generic_children(obj, path)
        *_, elements = self._state_array(path, cls, *state[1:])
        return elements + extra

    def _state_array(
        self, path: _Path, cls: str, shape_node: Any, dtype_node: Any, fortran: Any, raw: Any
    ) -> tuple[Any, tuple[int, ...] | None, str, list[tuple[Any, _Path]]]:
        """List the array an ndarray state describes (shape, dtype, Fortran flag, data);
        returns its dtype, shape and order, and the object elements left to walk."""
        dtype = as_dtype(dtype_node, self._dtypes)
        shape = _shape(shape_node)
        order = "F" if unwrap(fortran) else "C"
        offset, storage = _raw_location(raw)
        self._add(
            ArrayEntry(str(path), cls, dtype, shape, order, _nbytes(dtype, shape), offset, storage)
        )
        if dtype is not None and dtype.hasobject and type(raw) is list:
            return dtype, shape, order, _element_children(raw, shape, order, path)
        return dtype, shape, order, []

    def _frombuffer(self, obj: Obj, path: _Path) -> None:
        args = obj.args if type(obj.args) is tuple else ()
        if len(args) != 4:
            return
        buf, dtype_node, shape_node, order = args
        dtype = as_dtype(dtype_node, self._dtypes)
        shape = _shape(shape_node)
        order = unwrap(order)
        offset, storage = _raw_location(buf)
        self._add(
            ArrayEntry(
                str(path),
                "numpy.ndarray",
                dtype,
                shape,
                order if order in ("C", "F") else None,
                _nbytes(dtype, shape),
                offset,
                storage,
            )
        )

    def _masked(self, obj: Obj, path: _Path) -> list[tuple[Any, _Path]]:
        args = obj.args if type(obj.args) is tuple else ()
        cls = _class_name(args[0] if args else None, "numpy.ma.MaskedArray")
        state = obj.state
        if type(state) is not tuple or len(state) != 7:
            return _generic_children(obj, path)
        _version, shape_node, dtype_node, fortran, raw, mask, _fill = state
        dtype, shape, order, elements = self._state_array(
            path, cls, shape_node, dtype_node, fortran, raw
        )
        mask_dtype = np.ma.make_mask_descr(dtype) if dtype is not None else None
        m_offset, m_storage = _raw_location(mask)
        self._add(
            ArrayEntry(
                str(path.child(".mask")),
                "numpy.ndarray",
                mask_dtype,
                shape,
                order,
                _nbytes(mask_dtype, shape),
                m_offset,
                m_storage,
            )
        )
        return elements

    # -- joblib -----------------------------------------------------------------------

    def _joblib(self, node: JoblibArray, path: _Path) -> list[tuple[Any, _Path]]:
        cls = _class_name(Global(node.subclass)) if node.subclass else "numpy.ndarray"
        obj_array = node.dtype.hasobject
        self._add(
            ArrayEntry(
                str(path),
                cls,
                node.dtype,
                node.shape,
                node.order,
                _nbytes(node.dtype, node.shape),
                node.offset,
                "joblib-pickle" if obj_array else "joblib",
            )
        )
        elements = node.elements
        if obj_array and type(elements) is Obj and elements.name in _RECONSTRUCT:
            state = elements.state
            if type(state) is tuple and len(state) in (4, 5) and type(state[-1]) is list:
                return _element_children(state[-1], node.shape, node.order, path)
        return []

    def _legacy(self, node: LegacyWrapper, path: _Path) -> None:
        state = node.state if type(node.state) is DictNode else DictNode()
        filename = unwrap(state.get("filename"))
        if type(filename) is not str:
            filename = None
        if node.kind == "ZNDArrayWrapper":
            init = state.get("init_args")
            inner = state.get("state")
            cls = _class_name(init[0] if type(init) is tuple and init else None)
            dtype = shape = order = None
            if type(inner) is tuple and len(inner) == 4:
                dtype = as_dtype(inner[2], self._dtypes)
                shape = _shape(inner[1])
                order = "F" if unwrap(inner[3]) else "C"
            self._add(
                ArrayEntry(
                    str(path),
                    cls,
                    dtype,
                    shape,
                    order,
                    _nbytes(dtype, shape),
                    None,
                    "npy.z",
                    filename,
                )
            )
            return
        sub = state.get("subclass")
        cls = _class_name(sub, "numpy.ndarray")
        dtype, shape, order, offset = self._npy_header(filename)
        self._add(
            ArrayEntry(
                str(path), cls, dtype, shape, order, _nbytes(dtype, shape), offset, "npy", filename
            )
        )

    def _npy_header(self, filename: str | None) -> tuple[Any, Any, Any, Any]:
        """dtype, shape, order and data offset from a companion ``.npy`` file's header."""
        if (
            filename is None
            or self._base_dir is None
            or os.path.basename(filename) != filename
            or filename in ("", ".", "..")
        ):
            return None, None, None, None
        try:
            with open(os.path.join(self._base_dir, filename), "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    return None, None, None, None
                return dtype, tuple(shape), "F" if fortran else "C", f.tell()
        except (OSError, ValueError):
            return None, None, None, None


_CONTAINERS = frozenset({list, tuple, DictNode, SetNode, Obj, JoblibArray, LegacyWrapper})


def _generic_children(obj: Obj, path: _Path) -> list[tuple[Any, _Path]]:
    """Where arrays may hide in an object rebuilt by a call of something unknown."""
    out: list[tuple[Any, _Path]] = []
    name = obj.name
    args = obj.args
    if type(args) is tuple:
        if name == "copyreg._reconstructor":
            args = args[2:]  # (cls, base, base state): only the base state holds data
            out.extend((a, path.child(f".__args__[{i + 2}]")) for i, a in enumerate(args))
        elif name == "copyreg.__newobj__":
            out.extend((a, path.child(f".__args__[{i}]")) for i, a in enumerate(args[1:]))
        else:
            out.extend((a, path.child(f".__args__[{i}]")) for i, a in enumerate(args))
    elif args is not None:
        out.append((args, path.child(".__args__")))
    if type(obj.kwargs) is DictNode:
        out.extend((v, path.keyed(".__kwargs__", k)) for k, v in obj.kwargs.pairs)
    out.extend(_state_children(obj.state, path))
    if obj.items:
        out.extend((v, path.child(f"[{i}]")) for i, v in enumerate(obj.items))
    if obj.pairs:
        out.extend((v, path.keyed("", k)) for k, v in obj.pairs)
    if obj.adds:
        out.extend((v, path.child(f"{{{i}}}")) for i, v in enumerate(obj.adds))
    return out


def _state_children(state: Any, path: _Path) -> list[tuple[Any, _Path]]:
    """The attributes a BUILD state sets: ``.name`` for a dict (and the slots of a
    ``(dict, slots)`` pair), ``.__state__`` for anything else."""
    if state is None:
        return []
    if type(state) is DictNode:
        return [(v, path.attr(k)) for k, v in state.pairs]
    if (
        type(state) is tuple
        and len(state) == 2
        and all(s is None or type(s) is DictNode for s in state)
    ):
        return [(v, path.attr(k)) for s in state if s is not None for k, v in s.pairs]
    return [(state, path.child(".__state__"))]


def _element_children(
    raw: list[Any], shape: tuple[int, ...] | None, order: str, path: _Path
) -> list[tuple[Any, _Path]]:
    """The elements of an object array, at ``[i]`` (or ``[i, j]``...) of its path."""
    out = []
    ndim_ok = shape is not None and prod(shape) == len(raw) and len(shape) > 1
    for flat, value in enumerate(raw):
        if type(value) not in _CONTAINERS:
            continue
        if ndim_ok:
            assert shape is not None
            index = np.unravel_index(flat, shape, order=order)
            out.append((value, path.child(f"[{', '.join(str(int(k)) for k in index)}]")))
        else:
            out.append((value, path.child(f"[{flat}]")))
    return out


def _class_name(node: Any, default: str = "?") -> str:
    """The dotted name of an array class a file names, in numpy's public spelling
    (``numpy.matrix`` for ``numpy.matrixlib.defmatrix.matrix``) when the safe-loading
    allow-list knows it under that name."""
    if type(node) is not Global:
        return default
    name = node.name
    cls = allowed().get(name)
    if isinstance(cls, type) and cls.__name__ == name.rsplit(".", 1)[-1]:
        return f"{cls.__module__}.{cls.__qualname__}"
    return name


def _key(key: Any, cache: _KeyCache) -> str:
    """A dict key as it is written in a path: its repr when it is a plain value."""
    if _parts(key, cache) <= KEY_NODES:
        try:
            text = _head_repr(key, cache, 0)
        except RecursionError:  # the call stack was deep already
            return "<?>"
        return text if len(text) <= KEY_MAX else text[: KEY_MAX - 3] + "..."
    if type(key) is Obj and key.name in NUMPY_SCALARS:
        try:
            return repr(materialize(key))
        except Exception:
            pass
    if type(key) is Obj and key.name:
        return f"<{key.name}>"
    return "<?>"


_PLAIN = (str, int, float, bool, bytes, complex)


def _parts(key: Any, cache: _KeyCache) -> int:
    """How many parts ``key`` has when it is a plain value (tuples counted once per
    place they appear), more than :data:`KEY_NODES` when it has more or is not plain
    (a tuple the memo shares with itself at every level is small in the file and huge
    to walk). Counted once per tuple node, without recursion (tuples nested thousands
    deep)."""
    if type(key) is not tuple:
        return 1 if key is None or type(key) in _PLAIN else KEY_NODES + 1
    parts = cache.parts
    hit = parts.get(id(key))
    if hit is not None and hit[0] is key:
        return hit[1]
    todo: list[tuple[tuple[Any, ...], bool]] = [(key, False)]
    while todo:
        node, ready = todo.pop()
        hit = parts.get(id(node))
        if hit is not None and hit[0] is node:
            continue  # reached through an earlier place already
        if ready:
            total = 1
            for k in node:
                total += parts[id(k)][1] if type(k) is tuple else _parts(k, cache)
                if total > KEY_NODES:
                    total = KEY_NODES + 1
                    break
            parts[id(node)] = (node, total)
            continue
        todo.append((node, True))
        for k in node:
            if type(k) is tuple:
                hit = parts.get(id(k))
                if hit is None or hit[0] is not k:
                    todo.append((k, False))
    return parts[id(key)][1]


def _head_repr(key: Any, cache: _KeyCache, depth: int) -> str:
    """The first KEY_MAX + 1 characters of ``repr(key)`` (a plain value), or more:
    ``repr`` of a tuple holding a memoized long string or tuple costs the whole of
    it, again for each such tuple."""
    if type(key) is not tuple:
        if type(key) not in (str, bytes):
            return repr(key)
        hit = cache.reprs.get(id(key))
        if hit is None or hit[0] is not key:
            hit = (key, repr(key)[: KEY_MAX + 1])
            cache.reprs[id(key)] = hit
        return hit[1]
    if depth > KEY_MAX:  # every level opens with "(": nothing of it would be shown
        return "("
    out = []
    size = 1  # len("(" + ", ".join(out))
    for k in key:
        if size > KEY_MAX:
            return "(" + ", ".join(out)
        text = _head_repr(k, cache, depth + 1)
        size += len(text) + (2 if out else 0)
        out.append(text)
    return "(" + ", ".join(out) + ("," if len(out) == 1 else "") + ")"


def _shape(node: Any) -> tuple[int, ...] | None:
    node = unwrap(node)
    if type(node) is int:
        node = (node,)
    if type(node) is tuple and all(type(n) is int and n >= 0 for n in node):
        return node
    return None


def _nbytes(dtype: np.dtype | None, shape: tuple[int, ...] | None, fallback: int | None = None):
    if dtype is None or shape is None:
        return fallback
    return dtype.itemsize * prod(shape)


def _raw_location(raw: Any) -> tuple[int | None, str]:
    """Where an array's data sits in a pickle stream: (offset, storage)."""
    if type(raw) is Blob:
        if raw.kind == "buffer":
            return raw.offset, "buffer"
        if raw.kind in ("bytes", "bytearray", "str8"):
            return raw.offset, "pickle"
        return None, "pickle-text"
    if type(raw) is list:
        return None, "pickle-objects"
    if type(raw) in (str, bytes):
        return None, "pickle"
    # protocol 0-2: _codecs.encode(text, 'latin1') of the bytes as text
    return None, "pickle-text"
