"""A symbolic unpickler: runs a pickle opcode stream without executing anything in it.

:class:`Machine` interprets every opcode of protocols 0 to 5 the way the unpickler does
(stack, marks, memo), but a global is never imported and nothing is ever called: a
global becomes a :class:`Global` (its dotted name), a call of it (``REDUCE``, ``NEWOBJ``,
``OBJ``, ``INST``) an :class:`Obj` that records the callable, its arguments and what
``BUILD``, ``APPEND`` and ``SETITEM`` later give it. The result is a *skeleton* of the
object that ``arraypickle info`` walks to find arrays and their paths.

Bounded memory: byte and string payloads longer than :data:`KEEP_MAX` are never read;
they become a :class:`Blob` that records where the payload starts in the stream and
its length, and the reader skips them (by seeking when the input can). The skeleton
holds the rest of the data: as much as the object's non-array part.

Input comes from a *source* (``chunk``/``skip``/``next_offset``): :class:`StreamSource`
over a plain (possibly decompressed) stream, or :class:`ContainerSource`, which serves
the PICKLE payloads of an arraypickle container and records where each BUFFER record's
payload lies instead of reading it. :class:`Reader` buffers a source and maps every
position back to its offset in the stream.

joblib's files interrupt the opcodes with raw array bytes after the ``BUILD`` of each
``NumpyArrayWrapper``; the machine recognises that ``BUILD`` and skips the array (or
walks the nested pickle of an object array), leaving a :class:`JoblibArray` in the
wrapper's place.
"""

from __future__ import annotations

import codecs
import copyreg
import os
import pickletools
import struct
import warnings
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from . import _format as fmt
from ._allowlist import allowed, normalize
from ._buildcheck import rebuilt_dtype
from ._names import JOBLIB_LEGACY_WRAPPERS, JOBLIB_NUMPY_WRAPPERS, UNRESOLVED
from ._opcodes import run_of
from ._streams import is_seekable

# Payloads up to this size are read and kept as values; longer ones are skipped.
KEEP_MAX = 4096
BLOCK = 1 << 20
LINE_MAX = 1 << 16
# Skeleton depth the materializer follows before giving up (dtypes nest a few levels).
MATERIALIZE_DEPTH = 32
# Nodes one materialize() call may visit: a tuple the memo shares with itself at every
# level, 40 deep, is a few hundred bytes and 2**40 nodes.
MATERIALIZE_NODES = 4096

# Module names only Python 2 pickles use (the unpickler renames them for Python 3).
PY2_MODULES = frozenset({"__builtin__", "copy_reg", "exceptions"})


class SymbolicError(Exception):
    """The stream is not a pickle the unpickler would accept (truncated, bad opcode...)."""


# -- the skeleton -------------------------------------------------------------------


class Global:
    """A global the stream names (dotted, after Python 2 renames); never imported."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Global({self.name!r})"


class Obj:
    """What calling ``cls`` would have made: arguments, and what was done to it after."""

    __slots__ = ("adds", "args", "cls", "items", "kwargs", "pairs", "state", "via")

    def __init__(self, cls: Any, args: Any, via: str, kwargs: Any = None) -> None:
        self.cls = cls
        self.args = args
        self.via = via
        self.kwargs = kwargs
        self.state: Any = None
        self.items: list[Any] | None = None  # APPEND(S)
        self.pairs: list[tuple[Any, Any]] | None = None  # SETITEM(S)
        self.adds: list[Any] | None = None  # ADDITEMS

    @property
    def name(self) -> str | None:
        """The dotted name of the class or function called, when a global."""
        return self.cls.name if type(self.cls) is Global else None

    def __repr__(self) -> str:
        return f"Obj({self.name or '?'}, {self.via})"


class DictNode:
    """A dict of the stream: its pairs in order (keys may be skeleton nodes)."""

    __slots__ = ("_index", "_indexed", "pairs")

    def __init__(self, pairs: list[tuple[Any, Any]] | None = None) -> None:
        self.pairs = pairs if pairs is not None else []
        # The first value of each str key, over pairs[:_indexed]: a state dict the
        # memo shares between many objects is looked up for each (pairs only grow).
        self._index: dict[str, Any] = {}
        self._indexed = 0

    def get(self, key: str, default: Any = None) -> Any:
        pairs = self.pairs
        if type(key) is not str:
            for k, v in pairs:
                if unwrap(k) == key:
                    return v
            return default
        index = self._index
        if self._indexed < len(pairs):
            for k, v in pairs[self._indexed :]:
                k = unwrap(k)
                if type(k) is str and k not in index:
                    index[k] = v
            self._indexed = len(pairs)
        return index.get(key, default)


class SetNode:
    """A set or frozenset of the stream, its items in order."""

    __slots__ = ("frozen", "items")

    def __init__(self, items: list[Any], frozen: bool) -> None:
        self.items = items
        self.frozen = frozen


class Blob:
    """A bytes, bytearray or string payload: where it starts and its length.

    ``value`` holds the payload (decoded for strings) when it is at most
    :data:`KEEP_MAX` bytes long, else None (it was skipped, never read). ``offset`` is
    the payload's offset in the stream (None when unknown); ``kind`` is ``'bytes'``,
    ``'bytearray'``, ``'str'``, ``'str8'`` (a Python 2 str) or ``'buffer'`` (an
    out-of-band buffer, ``NEXT_BUFFER``).
    """

    __slots__ = ("kind", "length", "offset", "value")

    def __init__(self, kind: str, offset: int | None, length: int, value: Any = None) -> None:
        self.kind = kind
        self.offset = offset
        self.length = length
        self.value = value

    def __repr__(self) -> str:
        return f"Blob({self.kind}, offset={self.offset}, length={self.length})"


class Persistent:
    """What ``persistent_load`` would have been asked for."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid


class JoblibArray:
    """A joblib ``NumpyArrayWrapper`` and the array that followed it in the stream.

    ``offset`` is where the array's bytes (or, for an object array, its nested pickle)
    start; ``elements`` the skeleton of an object array's nested pickle.
    """

    __slots__ = ("dtype", "elements", "length", "offset", "order", "shape", "subclass")

    def __init__(
        self,
        subclass: str | None,
        dtype: np.dtype,
        shape: tuple[int, ...],
        order: str,
        offset: int | None,
        length: int | None,
        elements: Any = None,
    ) -> None:
        self.subclass = subclass
        self.dtype = dtype
        self.shape = shape
        self.order = order
        self.offset = offset
        self.length = length
        self.elements = elements


class LegacyWrapper:
    """A joblib < 0.10 ``NDArrayWrapper``/``ZNDArrayWrapper``: its array is in a
    companion file named by its state."""

    __slots__ = ("kind", "state")

    def __init__(self, kind: str, state: Any) -> None:
        self.kind = kind
        self.state = state


def unwrap(value: Any) -> Any:
    """A kept :class:`Blob`'s value, anything else as it is."""
    if type(value) is Blob and value.value is not None:
        return value.value
    return value


# -- materializing dtypes -------------------------------------------------------------


class NotMaterializable(Exception):
    """A skeleton node that cannot be turned into a value without running untrusted code."""


def _materializable() -> dict[str, Any]:
    """The callables :func:`materialize` may call: dtype and scalar constructors, taken
    from the safe-loading allow-list (calling them runs no code of the file's choosing)."""
    table = allowed()
    keep = {}
    for name, obj in table.items():
        if (
            name == "numpy.dtype"
            or name.startswith("numpy.dtypes.")
            or name.endswith("._convert_to_stringdtype_kwargs")
            or name.endswith("multiarray.scalar")
            or name == "_codecs.encode"  # the allow-list's latin-1 substitute
        ):
            keep[name] = obj
    return keep


_MATERIALIZABLE: dict[str, Any] | None = None


def materialize(node: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """The value of a small skeleton node: literals, containers, and calls of numpy's
    dtype and scalar constructors (through the allow-list). Raises
    :class:`NotMaterializable` for anything else, or past :data:`MATERIALIZE_NODES`."""
    global _MATERIALIZABLE
    if budget is None:
        budget = [MATERIALIZE_NODES]
    budget[0] -= 1
    if depth > MATERIALIZE_DEPTH or budget[0] < 0:
        raise NotMaterializable("too deep or too big")
    t = type(node)
    if node is None or t in (int, float, bool, str, complex):
        return node
    if t is Blob:
        if node.value is None:
            raise NotMaterializable("a skipped payload")
        return node.value
    if t is tuple:
        return tuple(materialize(v, depth + 1, budget) for v in node)
    if t is list:
        return [materialize(v, depth + 1, budget) for v in node]
    if t is DictNode:
        return {
            materialize(k, depth + 1, budget): materialize(v, depth + 1, budget)
            for k, v in node.pairs
        }
    if t is Global:
        # numpy's scalar types, as the dtype of a record array names numpy.record: a
        # class from the allow-list is returned, never called here.
        scalar_type = allowed().get(node.name)
        if isinstance(scalar_type, type) and issubclass(scalar_type, np.generic):
            return scalar_type
        raise NotMaterializable(node.name)
    if t is Obj and node.via in ("reduce", "newobj") and node.kwargs is None:
        if _MATERIALIZABLE is None:
            _MATERIALIZABLE = _materializable()
        func = _MATERIALIZABLE.get(node.name or "")
        if func is None or node.items or node.pairs or node.adds:
            raise NotMaterializable(node.name or "a call")
        args = materialize(node.args, depth + 1, budget)
        if type(args) is not tuple:
            raise NotMaterializable("arguments")
        if node.name.endswith("multiarray.scalar") and not _plain_scalar(args):
            # numpy trusts them: scalar(dtype([('o', 'O')])) crashes it (SIGSEGV).
            raise NotMaterializable("scalar arguments numpy's pickles never hold")
        try:
            # A warning means arguments numpy only tolerates (a damaged file's): not
            # materialized, and nothing printed to the user of `arraypickle info`.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                value = func(*args)
                if node.state is not None:
                    if not isinstance(value, np.dtype):
                        raise NotMaterializable(f"a state for {node.name}")
                    value = rebuilt_dtype(args, materialize(node.state, depth + 1, budget))
        except NotMaterializable:
            raise
        except Exception as exc:
            raise NotMaterializable(repr(exc)) from None
        return value
    raise NotMaterializable(type(node).__name__)


def _plain_scalar(args: tuple[Any, ...]) -> bool:
    """``scalar(dtype, data)`` as numpy pickles a number: no objects, the bytes given
    (a str from Python 2's pickles, which numpy encodes as latin-1)."""
    return (
        len(args) == 2
        and isinstance(args[0], np.dtype)
        and not args[0].hasobject
        and type(args[1]) in (bytes, str)
    )


# Dtypes already made, by the id of their node (kept alive with them): see as_dtype.
DtypeCache = dict[int, tuple[Any, np.dtype | None]]


def as_dtype(node: Any, cache: DtypeCache | None = None) -> np.dtype | None:
    """The numpy dtype a skeleton node stands for, or None; kept in ``cache``, since
    a dtype the memo shares between many arrays is small in the file and costly to
    make."""
    if isinstance(node, np.dtype):
        return node
    if cache is None:
        cache = {}
    hit = cache.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    try:
        value = materialize(node)
    except NotMaterializable:
        value = None
    dtype = value if isinstance(value, np.dtype) else None
    cache[id(node)] = (node, dtype)
    return dtype


# -- sources --------------------------------------------------------------------------


class StreamSource:
    """A plain stream from its current position; offsets count from there."""

    def __init__(self, f: Any, size: int | None = None) -> None:
        self._f = f
        self.offset = 0
        self._seek = is_seekable(f)
        self._size = size

    def chunk(self, n: int) -> tuple[int, bytes]:
        data = self._f.read(n) or b""
        at = self.offset
        self.offset += len(data)
        return at, bytes(data)

    def skip(self, n: int) -> None:
        if self._seek and self._size is not None:
            if self.offset + n > self._size:
                raise SymbolicError(
                    f"truncated: {n} bytes to skip at offset {self.offset}, "
                    f"{self._size - self.offset} remain"
                )
            self._f.seek(n, os.SEEK_CUR)
            self.offset += n
            return
        while n:
            data = self._f.read(min(n, BLOCK))
            if not data:
                raise SymbolicError(f"truncated: the stream ends {n} bytes early")
            self.offset += len(data)
            n -= len(data)

    def next_offset(self) -> int | None:
        return self.offset


class BufferRecord:
    """Where a BUFFER record's payload lies in the container."""

    __slots__ = ("flags", "index", "length", "offset", "record")

    def __init__(self, index: int, record: int, offset: int, length: int, flags: int) -> None:
        self.index = index
        self.record = record
        self.offset = offset
        self.length = length
        self.flags = flags


class ContainerSource:
    """The opcode bytes of a container, read from its first byte: PICKLE payloads back
    to back. Buffers are listed (:attr:`buffers`) and skipped unread (a GROUP record's
    table is read, to list them). Record
    headers are CRC-checked (a damaged length must not send the walk astray); payload
    checksums are left to ``arraypickle verify``.

    ``list_buffers=False`` counts BUFFER records without listing them (the safe scan
    needs no more, and a crafted file may hold millions of empty ones).
    """

    def __init__(
        self, f: Any, name: str, size: int | None = None, *, list_buffers: bool = True
    ) -> None:
        self._f = f
        self.name = name
        self._seek = is_seekable(f)
        self._size = size
        self._list_buffers = list_buffers
        self.offset = 0
        self._left = 0
        self.ended = False
        self.records = 0
        self.pickle_records = 0
        self.nbuffers = 0
        self.buffers: list[BufferRecord] = []  # every BUFFER record, in order
        self.indexed: dict[int, BufferRecord] = {}  # by the index rebuild() names
        self._next: deque[BufferRecord] = deque()  # the ones NEXT_BUFFER takes
        try:
            header = fmt.parse_header(self._exact(fmt.HEADER.size, "the container header"))
        except fmt.FormatError as exc:
            raise SymbolicError(str(exc)) from None
        self.version = (header.major, header.minor)
        self._groups = header.major >= 2  # GROUP records come from version 2
        self.checksum = header.checksum
        self.alignment = fmt.ALIGNMENT
        self.mapped_writable = bool(header.flags & fmt.HEADER_FLAG_MAPPED_WRITABLE)

    def _exact(self, n: int, what: str) -> bytes:
        data = self._f.read(n) or b""
        while len(data) < n:
            more = self._f.read(n - len(data))
            if not more:
                raise SymbolicError(
                    f"truncated: {what} at offset {self.offset} needs {n} bytes, {len(data)} remain"
                )
            data += more
        self.offset += n
        return bytes(data)

    def _drop(self, n: int, what: str) -> None:
        if not n:
            return
        if self._seek:
            if self._size is not None and self.offset + n > self._size:
                raise SymbolicError(
                    f"truncated: {what} at offset {self.offset} needs {n} bytes, "
                    f"{self._size - self.offset} remain"
                )
            try:
                # Of unknown size (a remote file, say), a truncation shows at the next
                # record header, read past the end.
                self._f.seek(n, os.SEEK_CUR)
            except (OSError, OverflowError, ValueError):  # a length no file holds
                raise SymbolicError(
                    f"truncated: {what} at offset {self.offset} needs {n} bytes"
                ) from None
            self.offset += n
            return
        while n:
            got = self._f.read(min(n, BLOCK))
            if not got:
                raise SymbolicError(f"truncated: {what} is cut short at offset {self.offset}")
            self.offset += len(got)
            n -= len(got)

    def _advance(self) -> bool:
        """Move to the next non-empty PICKLE payload; False at the END record."""
        while not self.ended:
            start = self.offset
            raw = self._exact(fmt.RECORD.size, "a record header")
            try:
                kind, pad, flags, length = fmt.parse_record(raw)
            except fmt.FormatError as exc:
                raise SymbolicError(f"{exc} (offset {start})") from None
            problem = fmt.padding_problem(
                kind, pad, start, self._exact(pad, "record padding"), self._groups
            )
            if problem is not None:
                raise SymbolicError(f"the record at offset {start} {problem}")
            if kind == fmt.KIND_PICKLE:
                self.records += 1
                self.pickle_records += 1
                if length:
                    self._left = length
                    return True
                self._drop(fmt.TRAILER.size, "a record trailer")
            elif kind == fmt.KIND_BUFFER:
                if self._list_buffers:
                    buf = BufferRecord(self.nbuffers, self.records, self.offset, length, flags)
                    self.buffers.append(buf)
                    if flags & fmt.FLAG_NEXT_BUFFER:
                        self._next.append(buf)
                    else:
                        # rebuild() names buffers by the writer's count of every BUFFER record
                        self.indexed[buf.index] = buf
                self.nbuffers += 1
                self.records += 1
                self._drop(length + fmt.TRAILER.size, "a buffer record")
            elif kind == fmt.KIND_GROUP and self._groups:
                self._group(start, length)
            elif kind == fmt.KIND_END:
                if length != fmt.END.size:
                    raise SymbolicError(f"the END record at offset {start} has a wrong size")
                records, buffers = fmt.END.unpack(self._exact(length, "the END record"))
                self._drop(fmt.TRAILER.size, "the END record's checksum")
                if records != self.records or buffers != self.nbuffers:
                    raise SymbolicError(
                        f"records are missing: END counts {records} records and {buffers} "
                        f"buffers, the file holds {self.records} and {self.nbuffers}"
                    )
                self.ended = True
            elif flags & fmt.FLAG_SKIPPABLE:
                self.records += 1
                self._drop(length + fmt.TRAILER.size, "a skippable record")
            else:
                raise SymbolicError(f"the record at offset {start} has an unknown kind {kind!r}")
        return False

    def _group(self, start: int, length: int) -> None:
        """List (or count) the buffers of the GROUP record at ``start``, whose payload
        comes next: its table is read and checked, the rest skipped unread."""
        at = self.offset
        try:
            table, layout = fmt.read_group_table(
                lambda n: self._exact(n, "a group record's table"), self.records, length
            )
        except fmt.FormatError as exc:
            raise SymbolicError(f"{exc} (offset {start})") from None
        for offset, size in layout:
            if self._list_buffers:
                buf = BufferRecord(self.nbuffers, self.records, at + offset, size, 0)
                self.buffers.append(buf)
                self.indexed[buf.index] = buf
            self.nbuffers += 1
        self.records += 1
        self._drop(length - len(table) + fmt.TRAILER.size, "a group record")

    def _consumed(self, n: int) -> None:
        self._left -= n
        if self._left == 0:
            self._drop(fmt.TRAILER.size, "a record trailer")

    def read(self, n: int) -> bytes:
        """Up to ``n`` opcode bytes; ``b""`` after the last PICKLE record."""
        return self.chunk(n)[1]

    def chunk(self, n: int) -> tuple[int, bytes]:
        if self._left == 0 and not self._advance():
            return self.offset, b""
        at = self.offset
        data = self._exact(min(n, self._left), "a pickle record")
        self._consumed(len(data))
        return at, data

    def skip(self, n: int) -> None:
        while n:
            if self._left == 0 and not self._advance():
                raise SymbolicError("truncated: the opcodes end inside an opcode's data")
            take = min(n, self._left)
            self._drop(take, "a pickle record")
            self._consumed(take)
            n -= take

    def next_offset(self) -> int | None:
        if self._left == 0 and not self._advance():
            return None
        return self.offset

    def next_buffer(self) -> BufferRecord | None:
        """The buffer the next ``NEXT_BUFFER`` opcode takes (it precedes the opcode)."""
        return self._next.popleft() if self._next else None

    def finish(self) -> None:
        """Read the records after the pickle's STOP, up to and including END."""
        if self._left:
            raise SymbolicError("opcodes follow the pickle STOP")
        if self._advance():
            raise SymbolicError("opcodes follow the pickle STOP")


class Reader:
    """Buffered reads over a source, each position mapped back to its stream offset."""

    def __init__(self, source: Any) -> None:
        self.src = source
        self.buf = b""
        self.pos = 0
        # Where each contiguous piece of buf starts (increasing) and its stream offset.
        self._starts: list[int] = []
        self._offsets: list[int] = []

    def fill(self, need: int, newline: bool = False) -> bool:
        """Make ``need`` bytes available from ``pos``; False when the input ends first.

        ``newline``: stop as soon as a piece holding a newline arrives (True then).
        The pieces are gathered and joined once: a source of tiny pieces (1-byte
        records) must not copy the buffer again for each.
        """
        have = len(self.buf) - self.pos
        pieces: list[bytes] = []
        starts: list[int] = []
        offsets: list[int] = []
        ok = True
        while have < need:
            at, chunk = self.src.chunk(max(need - have, BLOCK))
            if not chunk:
                ok = False
                break
            starts.append(have)
            offsets.append(at)
            pieces.append(chunk)
            have += len(chunk)
            if newline and b"\n" in chunk:
                break
        if pieces:
            pos = self.pos
            if pos < len(self.buf):
                k = bisect_right(self._starts, pos) - 1  # the piece holding pos
                starts[:0] = [s - pos for s in self._starts[k:]]
                offsets[:0] = self._offsets[k:]
            self._starts = starts
            self._offsets = offsets
            self.buf = self.buf[pos:] + b"".join(pieces)
            self.pos = 0
        return ok

    def read(self, n: int, what: str) -> bytes:
        if len(self.buf) - self.pos < n and not self.fill(n):
            raise SymbolicError(f"truncated: {what} needs {n} bytes")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def _newline(self, what: str) -> int:
        """Where the next newline is in ``buf``; -1 once more than :data:`LINE_MAX`
        bytes after ``pos`` hold none."""
        while True:
            nl = self.buf.find(b"\n", self.pos)
            if nl >= 0:
                return nl
            have = len(self.buf) - self.pos
            if have > LINE_MAX:
                return -1
            if not self.fill(LINE_MAX + 1, newline=True):
                self._no_newline(what)

    @staticmethod
    def _no_newline(what: str) -> NoReturn:
        raise SymbolicError(f"truncated: {what} needs a newline-terminated argument")

    def _take_line(self, nl: int) -> bytes:
        line = self.buf[self.pos : nl]
        self.pos = nl + 1
        return line

    def readline(self, what: str) -> bytes:
        nl = self._newline(what)
        if nl < 0:
            self._no_newline(what)
        return self._take_line(nl)

    def line_or_length(self, what: str) -> bytes | int:
        """A newline-terminated argument that may be data (a protocol-0 string): the
        line when at most :data:`LINE_MAX` bytes, else its length, skipped a chunk at a
        time and never held."""
        nl = self._newline(what)
        if 0 <= nl - self.pos <= LINE_MAX:
            return self._take_line(nl)
        length = 0
        while nl < 0:
            length += len(self.buf) - self.pos
            self.pos = len(self.buf)
            if not self.fill(1):
                self._no_newline(what)
            nl = self.buf.find(b"\n", self.pos)
        length += nl - self.pos
        self.pos = nl + 1
        return length

    def skip(self, n: int) -> None:
        take = min(n, len(self.buf) - self.pos)
        self.pos += take
        if n > take:
            self.src.skip(n - take)

    def offset(self) -> int | None:
        """The stream offset of the next unread byte (None when unknown)."""
        if self.pos < len(self.buf):
            k = bisect_right(self._starts, self.pos) - 1
            return self._offsets[k] + self.pos - self._starts[k]
        return self.src.next_offset()


# -- the machine ----------------------------------------------------------------------

# Opcodes that push one plain value and consume nothing: runs of one of them (lists of
# floats, of ints...) are decoded at once. opcode -> (size, decoder of the run's bytes)
_RUN_DECODERS: dict[int, tuple[int, Callable[[bytes], list[Any]]]] = {
    ord("G"): (9, lambda b: [v for (v,) in struct.iter_unpack(">xd", b)]),
    ord("J"): (5, lambda b: [v for (v,) in struct.iter_unpack("<xi", b)]),
    ord("K"): (2, lambda b: list(b[1::2])),
    ord("M"): (3, lambda b: [v for (v,) in struct.iter_unpack("<xH", b)]),
    ord("N"): (1, lambda b: [None] * len(b)),
    0x88: (1, lambda b: [True] * len(b)),
    0x89: (1, lambda b: [False] * len(b)),
    ord(")"): (1, lambda b: [()] * len(b)),
}
_RUNS = {code: (run_of(code, size), size, decode) for code, (size, decode) in _RUN_DECODERS.items()}
_PROTO_OF = [0] * 256
for _op in pickletools.opcodes:
    _PROTO_OF[ord(_op.code)] = _op.proto


class Machine:
    """Runs one pickle stream symbolically; :meth:`run` returns the skeleton of its object.

    ``names`` collects the dotted names of every global the stream names (a nested
    machine, for a joblib object array, adds to its parent's).
    """

    def __init__(self, reader: Reader, parent: Machine | None = None) -> None:
        self.r = reader
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto: int | None = None
        self.max_proto = 0
        self.opcodes = 0
        root = parent.root if parent is not None else self
        self.root: Machine = root
        if parent is None:
            self.names: set[str] = set()
            self.python2 = False
            self.joblib_wrappers = 0
            # dtypes of joblib wrappers by node (see as_dtype): their state may be shared
            self.dtypes: DtypeCache = {}
            self.joblib_aligned = False
            self.joblib_legacy = False

    # -- helpers --------------------------------------------------------------------

    def _pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _global(self, module: str, qualname: str) -> Global:
        root = self.root
        if module in PY2_MODULES:
            root.python2 = True
        dotted = normalize(module, qualname)
        root.names.add(dotted)
        return Global(dotted)

    def _payload(self, kind: str, length: int) -> Blob:
        r = self.r
        if length < 0:
            raise SymbolicError("a negative payload length")
        if length <= KEEP_MAX:
            offset = r.offset() if length else None
            raw = r.read(length, f"a {kind} payload")
            if kind == "str":
                return Blob(kind, offset, length, raw.decode("utf-8", "surrogatepass"))
            if kind == "str8":
                return Blob(kind, offset, length, raw.decode("ascii") if raw.isascii() else raw)
            return Blob(kind, offset, length, raw if kind == "bytes" else bytearray(raw))
        offset = r.offset()
        r.skip(length)
        return Blob(kind, offset, length)

    def _length(self, n: int, fmt_: str) -> int:
        return struct.unpack(fmt_, self.r.read(n, "a length"))[0]

    # -- the walk -------------------------------------------------------------------

    def run(self) -> Any:
        """Interpret opcodes up to and including STOP; return the object's skeleton."""
        try:
            return self._run()
        except (IndexError, KeyError) as exc:
            what = "a missing memo entry" if isinstance(exc, KeyError) else "stack underflow"
            raise SymbolicError(f"{what} at opcode {self.opcodes}") from None
        except UnicodeDecodeError:
            raise SymbolicError(f"a string that is not UTF-8 at opcode {self.opcodes}") from None

    def _run(self) -> Any:
        # The most frequent opcodes are handled inline on local variables (a dict of a
        # million floats is three million opcodes); the others through _HANDLERS.
        r = self.r
        handlers = _HANDLERS
        runs = _RUNS
        proto_of = _PROTO_OF
        memo = self.memo
        stack = self.stack
        unpack_from = struct.unpack_from
        buf = r.buf
        i = r.pos
        end = len(buf)
        count = 0
        binary = False
        try:
            while True:
                if i + 16 > end:
                    r.pos = i
                    r.fill(16)
                    buf, i = r.buf, r.pos
                    end = len(buf)
                    if i >= end:
                        raise SymbolicError("truncated: the pickle stream ends before STOP")
                code = buf[i]
                count += 1
                if i + 16 > end:
                    pass  # the last bytes of the input: the checked handlers only
                elif code == 0x8C:  # SHORT_BINUNICODE
                    j = i + 2 + buf[i + 1]
                    if j <= end:
                        stack.append(buf[i + 2 : j].decode("utf-8", "surrogatepass"))
                        i = j
                        continue
                elif code == 0x94:  # MEMOIZE
                    memo[len(memo)] = stack[-1]
                    i += 1
                    continue
                elif code == 0x71:  # BINPUT
                    memo[buf[i + 1]] = stack[-1]
                    i += 2
                    continue
                elif code == 0x68:  # BINGET
                    stack.append(memo[buf[i + 1]])
                    i += 2
                    continue
                elif code == 0x28:  # MARK
                    self.metastack.append(stack)
                    stack = self.stack = []
                    i += 1
                    continue
                elif code in runs:
                    binary = binary or code != 0x4E
                    size = runs[code][1]
                    if i + 2 * size <= end and buf[i + size] == code:
                        m = runs[code][0](buf, i)
                        values = runs[code][2](buf[i : m.end()])
                        stack.extend(values)
                        count += len(values) - 1
                        i = m.end()
                        continue
                    if code == 0x47:  # BINFLOAT
                        stack.append(unpack_from(">d", buf, i + 1)[0])
                    elif code == 0x4B:  # BININT1
                        stack.append(buf[i + 1])
                    elif code == 0x4A:  # BININT
                        stack.append(unpack_from("<i", buf, i + 1)[0])
                    elif code == 0x4D:  # BININT2
                        stack.append(unpack_from("<H", buf, i + 1)[0])
                    elif code == 0x4E:
                        stack.append(None)
                    elif code == 0x88:
                        stack.append(True)
                    elif code == 0x89:
                        stack.append(False)
                    else:
                        stack.append(())
                    i += size
                    continue
                # Everything else, and the inline opcodes at the end of the buffer.
                r.pos = i + 1
                self.opcodes += count
                count = 0
                handler = handlers[code]
                if handler is None:
                    raise SymbolicError(
                        f"invalid opcode 0x{code:02x} at offset {_offset_or_q(r, -1)}"
                    )
                if self.proto is None:
                    self.max_proto = max(self.max_proto, proto_of[code])
                done = handler(self)
                stack = self.stack
                buf, i = r.buf, r.pos
                end = len(buf)
                if done:
                    return stack.pop()
        finally:
            r.pos = i
            self.opcodes += count
            if binary and self.proto is None:
                self.max_proto = max(self.max_proto, 1)

    # -- opcode handlers (return True at STOP) --------------------------------------

    def op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def op_stop(self) -> bool:
        if not self.stack:
            raise IndexError
        return True

    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    def op_pop_mark(self) -> None:
        self._pop_mark()

    def op_dup(self) -> None:
        self.stack.append(self.stack[-1])

    def op_float(self) -> None:
        line = self.r.readline("FLOAT")
        try:
            self.stack.append(float(line))
        except ValueError:
            raise SymbolicError(f"FLOAT with a bad argument {line[:40]!r}") from None

    def op_int(self) -> None:
        line = self.r.readline("INT")
        if line == b"00":
            self.stack.append(False)
        elif line == b"01":
            self.stack.append(True)
        else:
            self.stack.append(_int(line, "INT"))

    def op_long(self) -> None:
        line = self.r.readline("LONG")
        self.stack.append(_int(line[:-1] if line.endswith(b"L") else line, "LONG"))

    def op_binint(self) -> None:
        self.stack.append(self._length(4, "<i"))

    def op_binint1(self) -> None:
        self.stack.append(self.r.read(1, "BININT1")[0])

    def op_binint2(self) -> None:
        self.stack.append(self._length(2, "<H"))

    def _long_n(self, n: int) -> None:
        if n < 0:
            raise SymbolicError("LONG4 with a negative length")
        if n > KEEP_MAX:
            self.stack.append(self._payload("long", n))
        else:
            self.stack.append(int.from_bytes(self.r.read(n, "LONG"), "little", signed=True))

    def op_long1(self) -> None:
        self._long_n(self.r.read(1, "LONG1")[0])

    def op_long4(self) -> None:
        self._long_n(self._length(4, "<i"))

    def op_none(self) -> None:
        self.stack.append(None)

    def op_true(self) -> None:
        self.stack.append(True)

    def op_false(self) -> None:
        self.stack.append(False)

    def op_binfloat(self) -> None:
        self.stack.append(struct.unpack(">d", self.r.read(8, "BINFLOAT"))[0])

    def op_persid(self) -> None:
        line = self.r.readline("PERSID")
        self.stack.append(Persistent(line.decode("ascii", "replace")))

    def op_binpersid(self) -> None:
        self.stack.append(Persistent(self.stack.pop()))

    def op_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = Obj(self.stack[-1], args, "reduce")

    def op_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(Obj(cls, args, "newobj"))

    def op_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(Obj(cls, args, "newobj", kwargs))

    def op_string(self) -> None:
        self.root.python2 = True
        line = self.r.line_or_length("STRING")
        if type(line) is int:  # escaped, quoted: about this many bytes
            self.stack.append(Blob("str8", None, line))
            return
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            try:
                raw = codecs.escape_decode(line[1:-1])[0]
            except ValueError:
                raise SymbolicError("STRING with a bad escape") from None
            self.stack.append(
                Blob("str8", None, len(raw), raw.decode("ascii") if raw.isascii() else raw)
            )
            return
        raise SymbolicError("STRING: the argument is not a quoted string")

    def op_binstring(self) -> None:
        self.root.python2 = True
        self.stack.append(self._payload("str8", self._length(4, "<i")))

    def op_short_binstring(self) -> None:
        self.root.python2 = True
        self.stack.append(self._payload("str8", self.r.read(1, "SHORT_BINSTRING")[0]))

    def op_unicode(self) -> None:
        line = self.r.line_or_length("UNICODE")
        if type(line) is int:  # raw-unicode-escaped: about this many characters
            self.stack.append(Blob("str", None, line))
            return
        try:
            self.stack.append(line.decode("raw-unicode-escape"))
        except UnicodeDecodeError:
            raise SymbolicError("UNICODE with a bad escape") from None

    def _unicode(self, length: int) -> None:
        blob = self._payload("str", length)
        self.stack.append(blob.value if blob.value is not None else blob)

    def op_binunicode(self) -> None:
        self._unicode(self._length(4, "<I"))

    def op_short_binunicode(self) -> None:
        self._unicode(self.r.read(1, "SHORT_BINUNICODE")[0])

    def op_binunicode8(self) -> None:
        self._unicode(self._length(8, "<Q"))

    def op_binbytes(self) -> None:
        self.stack.append(self._payload("bytes", self._length(4, "<I")))

    def op_short_binbytes(self) -> None:
        self.stack.append(self._payload("bytes", self.r.read(1, "SHORT_BINBYTES")[0]))

    def op_binbytes8(self) -> None:
        self.stack.append(self._payload("bytes", self._length(8, "<Q")))

    def op_bytearray8(self) -> None:
        self.stack.append(self._payload("bytearray", self._length(8, "<Q")))

    def op_next_buffer(self) -> None:
        take = getattr(self.r.src, "next_buffer", None)
        buf = take() if take is not None else None
        if buf is None:
            self.stack.append(Blob("buffer", None, 0))
        else:
            self.stack.append(Blob("buffer", buf.offset, buf.length))

    def op_readonly_buffer(self) -> None:
        if not self.stack:
            raise IndexError

    def op_append(self) -> None:
        value = self.stack.pop()
        _extend(self.stack[-1], [value])

    def op_appends(self) -> None:
        items = self._pop_mark()
        _extend(self.stack[-1], items)

    # (Pop the mark before naming self.stack: popping replaces it.)
    def op_list(self) -> None:
        items = self._pop_mark()
        self.stack.append(items)

    def op_empty_list(self) -> None:
        self.stack.append([])

    def op_tuple(self) -> None:
        items = tuple(self._pop_mark())
        self.stack.append(items)

    def op_empty_tuple(self) -> None:
        self.stack.append(())

    def op_tuple1(self) -> None:
        self.stack[-1] = (self.stack[-1],)

    def op_tuple2(self) -> None:
        b = self.stack.pop()
        self.stack[-1] = (self.stack[-1], b)

    def op_tuple3(self) -> None:
        c = self.stack.pop()
        b = self.stack.pop()
        self.stack[-1] = (self.stack[-1], b, c)

    def op_dict(self) -> None:
        items = self._pop_mark()
        self.stack.append(DictNode(list(zip(items[0::2], items[1::2], strict=False))))

    def op_empty_dict(self) -> None:
        self.stack.append(DictNode())

    def op_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _setitems(self.stack[-1], [(key, value)])

    def op_setitems(self) -> None:
        items = self._pop_mark()
        _setitems(self.stack[-1], list(zip(items[0::2], items[1::2], strict=False)))

    def op_empty_set(self) -> None:
        self.stack.append(SetNode([], False))

    def op_additems(self) -> None:
        items = self._pop_mark()
        target = self.stack[-1]
        if type(target) is SetNode and not target.frozen:
            target.items.extend(items)
        elif type(target) is Obj:
            # In place: a copy per ADDITEMS is quadratic in a stream of many small ones.
            if target.adds is None:
                target.adds = []
            target.adds.extend(items)
        else:
            raise SymbolicError(f"ADDITEMS on a {type(target).__name__}")

    def op_frozenset(self) -> None:
        items = self._pop_mark()
        self.stack.append(SetNode(items, True))

    def _two_lines(self, what: str) -> tuple[str, str]:
        module = self.r.readline(what)
        name = self.r.readline(what)
        try:
            return module.decode("utf-8"), name.decode("utf-8")
        except UnicodeDecodeError:
            raise SymbolicError(f"{what} names a global that is not UTF-8") from None

    def op_global(self) -> None:
        self.stack.append(self._global(*self._two_lines("GLOBAL")))

    def op_inst(self) -> None:
        cls = self._global(*self._two_lines("INST"))
        args = tuple(self._pop_mark())
        self.stack.append(Obj(cls, args, "inst"))

    def op_obj(self) -> None:
        items = self._pop_mark()
        self.stack.append(Obj(items[0], tuple(items[1:]), "obj"))

    def op_stack_global(self) -> None:
        name = unwrap(self.stack.pop())
        module = unwrap(self.stack.pop())
        if type(module) is str and type(name) is str:
            self.stack.append(self._global(module, name))
        else:
            self.root.names.add(UNRESOLVED)
            self.stack.append(Global(UNRESOLVED))

    def _ext(self, code: int) -> None:
        pair = copyreg._inverted_registry.get(code)
        if pair is None:
            self.root.names.add(UNRESOLVED)
            self.stack.append(Global(UNRESOLVED))
        else:
            self.stack.append(self._global(*pair))

    def op_ext1(self) -> None:
        self._ext(self.r.read(1, "EXT1")[0])

    def op_ext2(self) -> None:
        self._ext(self._length(2, "<H"))

    def op_ext4(self) -> None:
        self._ext(self._length(4, "<i"))

    def op_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is Obj:
            wrapper = _joblib_class(inst)
            if wrapper is not None:
                if wrapper in JOBLIB_NUMPY_WRAPPERS:
                    self.stack[-1] = self._joblib_array(state)
                else:
                    self.root.joblib_legacy = True
                    self.stack[-1] = LegacyWrapper(wrapper.rsplit(".", 1)[1], state)
                return
            inst.state = state

    def op_proto(self) -> None:
        proto = self.r.read(1, "PROTO")[0]
        if proto > 5:
            raise SymbolicError(f"unsupported pickle protocol: {proto}")
        if self.proto is None:
            self.proto = proto

    def op_frame(self) -> None:
        self.r.read(8, "FRAME")

    def _put(self, idx: int) -> None:
        if idx < 0:
            raise SymbolicError("a negative memo index")
        self.memo[idx] = self.stack[-1]

    def op_put(self) -> None:
        self._put(_int(self.r.readline("PUT"), "PUT"))

    def op_binput(self) -> None:
        self._put(self.r.read(1, "BINPUT")[0])

    def op_long_binput(self) -> None:
        self._put(self._length(4, "<I"))

    def op_memoize(self) -> None:
        self._put(len(self.memo))

    def op_get(self) -> None:
        self.stack.append(self.memo[_int(self.r.readline("GET"), "GET")])

    def op_binget(self) -> None:
        self.stack.append(self.memo[self.r.read(1, "BINGET")[0]])

    def op_long_binget(self) -> None:
        self.stack.append(self.memo[self._length(4, "<I")])

    # -- joblib ---------------------------------------------------------------------

    def _joblib_array(self, state: Any) -> JoblibArray:
        """The array after a NumpyArrayWrapper's BUILD: skipped, or its nested pickle walked."""
        root = self.root
        root.joblib_wrappers += 1
        if type(state) is not DictNode:
            raise SymbolicError("a joblib array wrapper without a state dict")
        shape = materialize_or_none(state.get("shape"))
        dtype = as_dtype(state.get("dtype"), root.dtypes)
        order = unwrap(state.get("order", "C"))
        subclass = state.get("subclass")
        if (
            type(shape) is not tuple
            or not all(type(n) is int and n >= 0 for n in shape)
            or dtype is None
            or order not in ("C", "F")
        ):
            raise SymbolicError("a joblib array wrapper whose shape, dtype or order cannot be read")
        sub = subclass.name if type(subclass) is Global else None
        r = self.r
        if dtype.hasobject:
            start = r.offset()
            elements = Machine(r, self).run()
            end = r.offset()
            length = end - start if start is not None and end is not None else None
            return JoblibArray(sub, dtype, shape, order, start, length, elements)
        if state.get("numpy_array_alignment_bytes") is not None:
            root.joblib_aligned = True
            pad = r.read(1, "a joblib array's padding")[0]
            if pad > 64:
                raise SymbolicError("a joblib array with a bad alignment padding")
            r.skip(pad)
        nbytes = dtype.itemsize
        for n in shape:
            nbytes *= n
        offset = r.offset()
        r.skip(nbytes)
        return JoblibArray(sub, dtype, shape, order, offset, nbytes)


def materialize_or_none(node: Any) -> Any:
    try:
        return materialize(node)
    except NotMaterializable:
        return None


def _joblib_class(obj: Obj) -> str | None:
    """The joblib wrapper class ``obj`` is an instance of (NEWOBJ or copyreg), if any."""
    cls = obj.cls
    if type(cls) is Global and cls.name == "copyreg._reconstructor" and type(obj.args) is tuple:
        cls = obj.args[0] if obj.args else None
    if type(cls) is not Global:
        return None
    name = cls.name
    if name in JOBLIB_NUMPY_WRAPPERS or name in JOBLIB_LEGACY_WRAPPERS:
        return name
    return None


def _extend(target: Any, items: list[Any]) -> None:
    if type(target) is list:
        target.extend(items)
    elif type(target) is Obj:
        if target.items is None:
            target.items = []
        target.items.extend(items)
    else:
        raise SymbolicError(f"APPEND to a {type(target).__name__}")


def _setitems(target: Any, pairs: list[tuple[Any, Any]]) -> None:
    if type(target) is DictNode:
        target.pairs.extend(pairs)
    elif type(target) is Obj:
        if target.pairs is None:
            target.pairs = []
        target.pairs.extend(pairs)
    else:
        raise SymbolicError(f"SETITEM on a {type(target).__name__}")


def _int(line: bytes, what: str) -> int:
    try:
        return int(line)
    except ValueError:
        raise SymbolicError(f"{what} with a bad argument {line[:40]!r}") from None


def _offset_or_q(r: Reader, delta: int) -> str:
    off = r.offset()
    return "?" if off is None else str(off + delta)


def _handlers() -> list[Callable[[Machine], Any] | None]:
    table: list[Callable[[Machine], Any] | None] = [None] * 256
    for op in pickletools.opcodes:
        method = getattr(Machine, "op_" + op.name.lower(), None)
        if method is None:
            method = {
                "NEWTRUE": Machine.op_true,
                "NEWFALSE": Machine.op_false,
            }.get(op.name)
        if method is None:
            raise AssertionError(f"no handler for {op.name}")
        table[ord(op.code)] = method
    return table


_HANDLERS = _handlers()


def run_stream(f: Any, size: int | None = None) -> tuple[Machine, Any, Reader]:
    """Run the pickle at ``f``'s position; offsets count from there."""
    reader = Reader(StreamSource(f, size))
    machine = Machine(reader)
    return machine, machine.run(), reader


def run_container(
    f: Any, name: str, size: int | None = None
) -> tuple[Machine, Any, ContainerSource]:
    """Run the container at ``f``'s position (its first byte), through its END record."""
    source = ContainerSource(f, name, size)
    machine = Machine(Reader(source))
    root = machine.run()
    source.finish()
    return machine, root, source
