"""Reading a container: records in one forward pass, buffers read into their final memory.

Buffers always precede the opcodes that use them (the writer emits a buffer while the
pickler still holds the opcodes that refer to it), so one pass suffices: the reader
serves opcode bytes to the C unpickler and keeps buffers it meets on the way until
the object that owns them is rebuilt.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from math import prod
from typing import Any, NamedTuple

import numpy as np

from . import _format as fmt
from ._allowlist import numpy_alias
from ._checksum import Hasher
from ._damage import data_follows, unpickler_failure
from ._errors import (
    ArrayPickleError,
    CorruptFileError,
    InvalidArgumentError,
    UnknownWrapperError,
)
from ._helper import HelperThread
from ._memory import WholeFileMapping, aligned_empty, memmap_over
from ._numpy import NumpyWrapper
from ._opcodes import OpcodeWalker
from ._splitread import PIECE as SPLIT_PIECE
from ._splitread import SplitRead, positional_fd
from ._streams import readinto_of, refusing_nothing_yet

# Reads of declared lengths go in pieces of at most this much (see _read).
READ_PIECE = 8 << 20
# A buffer under BACKGROUND_MIN being verified is read in pieces this small, each hashed
# right after it is read, while it is still in the CPU's cache (L2 is 512 KiB to 2 MiB
# per core). Measured on the project's 2-core machine (docs/integrity.md), a helper
# thread does not pay for such buffers: handing each piece over costs more than the hash.
HASH_PIECE = 512 << 10
# Buffers at least this big are hashed on a helper thread while the next piece is read
# (see _helper.HelperThread), in pieces of BACKGROUND_PIECE: there the overlap wins.
BACKGROUND_MIN = 4 << 20
BACKGROUND_PIECE = 2 << 20
# Buffers at least this big of a regular file are read on two threads (see _splitread).
SPLIT_MIN = 2 * SPLIT_PIECE
# A declared size beyond this from a stream of unknown length is not believed.
MAX_STREAM_RECORD = 1 << 44
# A PICKLE record at least this big is read straight into the object the unpickler
# makes of it, when it asks for that much at once (see ContainerReader.opcodes_into).
DIRECT_MIN = 1 << 20

# Bound once: _next_record and _read_inline_buffer run once per array.
_unpack_record = fmt.RECORD.unpack
_crc32 = zlib.crc32
_RECORD_SIZE = fmt.RECORD.size
_unpack_trailer = fmt.TRAILER.unpack_from
_digest = fmt.digest
_TRAILER_SIZE = fmt.TRAILER.size
_ZERO_PADS = [bytes(n) for n in range(fmt.ALIGNMENT)]
# The P record holding STOP is the last one; another, even an empty one, is not the
# writer's (its record checks pass, so only a crafted file has it).
_P_AFTER_STOP = "a pickle record (P) follows the one that ends with the pickle STOP"


class Unpickler(pickle.Unpickler):
    """The C unpickler, with arraypickle's rebuild global bound to one reader.

    ``bindings`` maps further ``(module, name)`` globals to objects of the loader's
    own (joblib's array wrappers, for instance), looked up before anything is imported;
    ``policy`` (safe loading) decides every other global.
    """

    def __init__(
        self,
        file: Any,
        *,
        rebuild: Callable[..., Any],
        bindings: Mapping[tuple[str, str], Any] | None = None,
        policy: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(file, **kwargs)
        self._rebuild = rebuild
        self._bindings = bindings or {}
        self._policy = policy

    def find_class(self, module: str, name: str) -> Any:
        if name == fmt.REBUILD_NAME and module == fmt.REBUILD_MODULE:
            return self._rebuild
        bound = self._bindings.get((module, name))
        if bound is not None:
            return bound
        if self._policy is not None:  # safe loading: only allow-listed or trusted globals
            return self._policy.find_class(module, name, super().find_class)
        # The allow-list knows numpy's objects by the names of numpy 1.x and 2.x, so a
        # file loads under either (numpy 2's numpy.rec.recarray does not import under
        # numpy 1), and without the warnings importing the other's names gives (numpy
        # 2's DeprecationWarning for numpy.core.*, numpy 1.26's FutureWarning for
        # numpy.bool): the user can change nothing about them.
        same = numpy_alias(module, name)
        if same is not None:
            return same
        return super().find_class(module, name)


_BYTE = np.dtype(np.uint8)
_ACCESS = {"r": mmap.ACCESS_READ, "r+": mmap.ACCESS_WRITE, "c": mmap.ACCESS_COPY}


class FileSlot(NamedTuple):
    """A wrapper's buffer in a memory-mapped file, mapped when the wrapper takes it:
    the ``numpy`` wrapper maps its array there directly (one memmap, not a uint8 one
    and the array over it)."""

    target: MmapTarget
    offset: int
    length: int

    def mapped(self) -> np.memmap:
        return self.target.map(self.offset, self.length)


class MmapTarget:
    """Where and how arrays of an uncompressed file are memory-mapped.

    The file is mapped once, whole, when the first array is: ``np.memmap`` would open
    and map it again for each (about 50 us apiece, most of a mapped load of an object
    of many small arrays). Each array keeps the mapping alive, as np.memmap's do; being
    whole, the mapping places each array at its file offset (``mapping_position``).

    ``fileobj`` is the file the load reads, open (``'r+b'`` for mode ``'r+'``): it is
    what is mapped, and what the header flag is written to. Opened again by name, the
    path could by then name another file (a dump renamed over it): its arrays were
    mapped at the old file's offsets, and 'r+' marked the new file's header.
    """

    __slots__ = ("_mm", "filename", "fileobj", "mode", "path")

    def __init__(self, path: str, mode: str, fileobj: Any) -> None:
        self.path = path
        self.mode = mode
        self.fileobj = fileobj
        self.filename = os.path.abspath(path)
        self._mm: mmap.mmap | None = None

    def _mapping(self) -> mmap.mmap:
        if self._mm is None:
            try:
                self._mm = WholeFileMapping(self.fileobj.fileno(), 0, access=_ACCESS[self.mode])
            except OSError as exc:  # 'r+' of a read-only file: name it, as open() does
                raise type(exc)(exc.errno, exc.strerror, self.path) from exc
        return self._mm

    def map(self, offset: int, length: int) -> np.memmap:
        """The ``length`` bytes at ``offset`` of the file, as a uint8 ``np.memmap``."""
        return self.array(offset, (length,), _BYTE, "C")

    def array(self, offset: int, shape: Any, dtype: np.dtype, order: str) -> np.memmap:
        """An ``np.memmap`` of ``shape`` and ``dtype`` at ``offset`` of the file;
        ``ValueError`` if it runs past the file's end."""
        mm = self._mapping()
        if offset + dtype.itemsize * prod(shape) > len(mm):
            raise ValueError("the array runs past the end of the file")
        file = (self.filename, offset, self.mode)
        return memmap_over(mm, offset, shape, dtype, order, file)

    def mark_writable(self, header: bytes) -> None:
        """Record in the file's header (currently ``header``) that its buffers are
        mapped for writing: from now on they may change legitimately, and their
        checksums stop binding (the opcodes' still do)."""
        flags = header[fmt.HEADER_FLAGS_OFFSET] | fmt.HEADER_FLAG_MAPPED_WRITABLE
        body = header[: fmt.HEADER_FLAGS_OFFSET] + bytes([flags])
        data = body + zlib.crc32(body).to_bytes(4, "little")
        # Through the file being loaded (read to its end by now), not the path again.
        self.fileobj.flush()
        if hasattr(os, "pwrite"):
            os.pwrite(self.fileobj.fileno(), data, 0)  # its read position stays
            return
        position = self.fileobj.tell()
        self.fileobj.seek(0)
        self.fileobj.write(data)
        self.fileobj.flush()
        self.fileobj.seek(position)


class ContainerReader:
    """Reads one container from ``src``, positioned at its first byte.

    ``size`` is the number of bytes left in ``src`` when known (bounds declared sizes);
    ``mmap`` maps buffers in place instead of reading them (``src`` must be seekable);
    ``piece`` caps each ``readinto`` call (None: whole buffers at once).
    """

    def __init__(
        self,
        src: Any,
        name: str,
        *,
        wrappers: dict[str, Any],
        size: int | None = None,
        mmap: MmapTarget | None = None,
        piece: int | None = None,
        verify: bool = True,
        policy: Any = None,
        threads: int = 1,
    ) -> None:
        if readinto_of(src) is None:
            # A source with read() alone is read through a view that gives it readinto
            # (reading and copying), so every read below can go into place.
            src = refusing_nothing_yet(src)
        self._src = src
        self._readinto = src.readinto
        self.name = name
        self._wrappers = wrappers
        self._size = size
        self._mmap = mmap
        self._piece = piece
        # Buffers up to this size are read by _read_inline_buffer: in one read call,
        # hashed whole right after it while in cache (as _fill's pieces are). None
        # while mapping (or scanning: see scan).
        self._inline_max = None if mmap is not None else min(piece or HASH_PIECE, HASH_PIECE)
        self._verify = verify and mmap is None  # buffers' checksums
        self._verify_skipped = verify  # skippable records', mapped or not
        self._policy = policy
        # Set when large buffers can be read on two threads (see _splitread).
        self._fd = positional_fd(src) if threads > 1 and mmap is None else None
        self._scanning = False
        self._record_start = 0
        self._record_kind = b"?"
        self._helper = HelperThread()
        # True when the file was memory-mapped for writing: buffer checksums may be stale.
        self.buffers_unverifiable = False
        # The header of a file mapped for writing, until the load marks it so: a load
        # that fails (a damaged file, or one safe loading refuses) leaves it unchanged.
        self._unmarked: bytes | None = None
        self._flagged = 0
        self.offset = 0
        self.buffer_bytes = 0
        self._records = 0
        self._nbuffers = 0
        self._groups = True  # whether the container's version has GROUP records
        self._ended = False
        self._opcodes: deque[memoryview] = deque()
        # Set by opcodes_into while it reads records: where a PICKLE payload may go.
        self._into: memoryview | None = None
        self._filled = 0
        self._indexed: dict[int, np.ndarray | FileSlot] = {}
        self._next: deque[np.ndarray] = deque()
        # Objects built by wrappers other than numpy's, by their first buffer: see rebuild.
        self._built: dict[int, tuple[str, Any, int, Any]] = {}

    # -- errors -------------------------------------------------------------------

    def corrupt(self, what: str, offset: int | None = None) -> CorruptFileError:
        at = self.offset if offset is None else offset
        return CorruptFileError(f"{self.name}: {what} (container offset {at})")

    # -- raw input ----------------------------------------------------------------

    def _read(self, n: int, what: str | None, part: str = "") -> bytes | bytearray:
        """Read exactly ``n`` bytes of ``what`` (None: ``part``, such as "the padding
        of", of the record being read; the name is built only for a message).

        Large reads go in pieces into a growing buffer, so a length a damaged or
        crafted header declares costs memory only for bytes that actually arrive.
        """
        try:
            data = self._src.read(n if n <= READ_PIECE else READ_PIECE)
        except CorruptFileError as exc:  # from a codec's reader: say where we were
            raise self._while(exc, what or self._part(part)) from exc
        if data is None or len(data) != n:
            return self._read_rest(data, n, what or self._part(part))
        self.offset += n
        return data

    def _part(self, part: str) -> str:
        return f"{part} {self._describe()}" if part else self._describe()

    def _read_rest(self, data: bytes | None, n: int, what: str) -> bytes | bytearray:
        """The rest of :meth:`_read`, after a first read that gave ``data``, not ``n`` bytes."""
        if data is None:
            raise self._starved(what)
        buf = bytearray(data)
        while len(buf) < n:
            more = self._src_read(min(n - len(buf), max(READ_PIECE, len(buf))), what, len(buf))
            if not more:
                self.offset += len(buf)
                raise self.corrupt(f"truncated: {what} needs {n} bytes, {len(buf)} remain")
            buf += more
        self.offset += n
        return buf

    def _src_read(self, n: int, what: str, done: int = 0) -> bytes:
        """Up to ``n`` bytes of ``what``, of which ``done`` were read already."""
        try:
            data = self._src.read(min(n, READ_PIECE))
        except CorruptFileError as exc:  # from a codec's reader: say where we were
            raise self._while(exc, what) from exc
        if data is None:
            raise self._starved(what, done)
        return data

    def _starved(self, what: str, done: int = 0) -> InvalidArgumentError:
        """The error for a source with nothing to give after ``done`` bytes of ``what``."""
        # Not CorruptFileError: the file is not at fault (a cache would delete it).
        return InvalidArgumentError(
            f"{self.name}: the stream gave no data for {what}, as a file object in "
            f"non-blocking mode does (container offset {self.offset + done}); load needs "
            "a blocking one"
        )

    def _while(self, exc: CorruptFileError, what: str) -> CorruptFileError:
        return CorruptFileError(f"{exc}, reading {what}")

    def _fill(
        self, view: memoryview, what: str, hasher: Hasher | None, background: bool = False
    ) -> None:
        """Read exactly ``len(view)`` bytes into ``view``, hashing as it goes (with
        ``background``, on the helper thread, waiting for it before returning)."""
        total = len(view)
        piece = self._piece or total
        hash_piece = BACKGROUND_PIECE if background else HASH_PIECE
        if hasher is not None and piece <= BACKGROUND_PIECE:
            piece = min(piece, hash_piece)
        # A larger piece is a codec's read_size: its reader decodes whole frames straight
        # into ``view`` (in parallel) only when the reads are that big, so the reads keep
        # that size and the hash takes each read in slices.
        try:
            self._fill_pieces(view, what, hasher, background, piece, hash_piece)
        except BaseException:
            if background:
                # The helper may still be hashing ``view``, which need not keep its
                # memory alive (the unpickler's bytes object, freed once we raise):
                # it must be done first. Its own error would say less than this one.
                with contextlib.suppress(Exception):
                    self._helper.wait()
            raise
        if background:
            self._helper.wait()
        self.offset += total

    def _fill_pieces(
        self,
        view: memoryview,
        what: str,
        hasher: Hasher | None,
        background: bool,
        piece: int,
        hash_piece: int,
    ) -> None:
        total = len(view)
        done = 0
        while done < total:
            end = min(done + piece, total)
            part = view[done:end]
            got = 0
            while got < len(part):
                step = self._readinto_some(part[got:], what, done + got)
                if not step:
                    self.offset += done + got
                    raise self.corrupt(f"truncated: {what} needs {total} bytes, {done + got} read")
                got += step
            if hasher is not None:
                for start in range(0, len(part), hash_piece):
                    if background:
                        self._helper.submit(hasher.update, part[start : start + hash_piece])
                    else:
                        hasher.update(part[start : start + hash_piece])
            done = end

    def _fill_split(self, view: memoryview, what: str, hasher: Hasher | None) -> None:
        """:meth:`_fill` on two threads, for a large buffer of a regular file."""
        start = self._src.tell()
        job = SplitRead(self._fd, start, view, hasher)
        try:
            self._helper.submit(job.run, 1)
            job.run(0)
        except BaseException:
            # The helper must not wait for a piece this thread will never read, and
            # its own error (if any) must not replace this one (a Ctrl-C, say).
            job.stop()
            with contextlib.suppress(Exception):
                self._helper.wait()
            raise
        self._helper.wait()
        got = len(view)
        if job.short is not None:
            # Where the file ends: a thread stopped by the other may have left a piece
            # before job.short unread.
            got = min(job.short, max(0, os.fstat(self._fd).st_size - start))
        # preadv left the file's position alone; the object's buffered bytes are stale.
        self._src.seek(start + got)
        self.offset += got
        if job.short is not None:
            raise self.corrupt(f"truncated: {what} needs {len(view)} bytes, {got} read")

    def _readinto_some(self, view: memoryview, what: str | None, done: int) -> int:
        """One read into ``view``; ``what`` (None: the record being read) names it in
        errors, ``done``: the bytes of it read already (where a starved read stopped)."""
        try:
            got = self._readinto(view)
        except CorruptFileError as exc:
            raise self._while(exc, what or self._describe()) from exc
        if got is None:  # an io.RawIOBase with nothing to give yet: not the end
            raise self._starved(what or self._describe(), done)
        return got

    # -- records ------------------------------------------------------------------

    def read_header(self) -> None:
        raw = self._read(fmt.HEADER.size, "the container header")
        try:
            header = fmt.parse_header(raw)
        except fmt.FormatError as exc:
            raise self.corrupt(str(exc), 0) from None
        self._groups = header.major >= 2
        if self._mmap is not None and self._mmap.mode == "r+":
            if not header.flags & fmt.HEADER_FLAG_MAPPED_WRITABLE:
                self._unmarked = bytes(raw)  # marked once the load succeeds
            self.buffers_unverifiable = True
        elif header.flags & fmt.HEADER_FLAG_MAPPED_WRITABLE:
            # Mapped for writing once: the buffers may hold legitimate changes.
            self.buffers_unverifiable = True
            self._verify = False

    def _check_size(self, length: int, what: str, skip: int = 0) -> None:
        """Refuse a declared ``length`` the file cannot hold after ``skip`` more bytes."""
        left = None if self._size is None else self._size - self.offset - skip
        if left is not None and left < 0:  # the file ends before the payload starts
            raise self.corrupt(
                f"truncated: the padding of {what} needs {skip} bytes, {left + skip} remain"
            )
        limit = MAX_STREAM_RECORD if left is None else left
        if length > limit:
            raise self.corrupt(f"{what} declares {length} bytes, more than the file holds")

    def _trailer(self, payload: Any, what: str) -> None:
        """Read the record's checksum; check it against ``payload`` (None: unchecked)."""
        self._expect(None if payload is None else fmt.record_checksum(payload, self._records), what)

    def _expect(self, digest: int | None, what: str) -> None:
        """Read the record's checksum; check it against ``digest`` (None: unchecked)."""
        (expected,) = fmt.TRAILER.unpack(self._read(fmt.TRAILER.size, f"the checksum of {what}"))
        if digest is not None and digest != expected:
            raise self.corrupt(f"{what} is damaged (checksum mismatch)")

    def _describe(self) -> str:
        """The record being read, as messages name it (built only for a message: this
        runs once per record, and objects of many small arrays feel every call)."""
        kind = self._record_kind.decode("latin-1")
        return f"record {self._records} ({kind!r} at offset {self._record_start})"

    def _next_record(self) -> None:
        """Read one record and file its content where the consumers will look."""
        if self._ended:
            raise self.corrupt("the object refers to data beyond the END record")
        start = self._record_start = self.offset
        raw = self._read(_RECORD_SIZE, "a record header")
        # parse_record's work, inline: this runs once per record, and objects of many
        # small arrays (forests) feel every call (5% of loading 20,000 tiny arrays).
        kind, pad, flags, length, crc = _unpack_record(raw)
        if _crc32(raw[:12]) != crc:
            raise self.corrupt("a record header is damaged (CRC mismatch)", start)
        self._record_kind = kind
        if not fmt.padding_ok(kind, pad, start, self._groups):
            # The header's CRC catches a damaged pad: a wrong one that checks was made
            # so, and would hand out arrays off the alignment the format promises.
            raise self.corrupt(f"{self._describe()} declares {pad} bytes of padding", start)
        if kind == fmt.KIND_BUFFER and self._inline_max and length <= self._inline_max:
            self._read_inline_buffer(pad, flags, length)
            return
        if kind == fmt.KIND_GROUP and self._groups:
            self._read_group(pad, length)
            return
        what = self._describe()
        if pad and any(self._read(pad, f"the padding of {what}")):
            raise self.corrupt(f"the padding of {what} is not zero")
        self._check_size(length, what)
        if kind == fmt.KIND_PICKLE:
            self._read_opcodes(length, what)
        elif kind == fmt.KIND_BUFFER:
            self._read_buffer(flags, length, what)
        elif kind == fmt.KIND_END:
            if length != fmt.END.size:
                raise self.corrupt(f"{what}: END record of the wrong size")
            payload = self._read(length, what)
            self._trailer(payload, what)
            records, buffers = fmt.END.unpack(payload)
            if records != self._records or buffers != self._nbuffers:
                raise self.corrupt(
                    f"records are missing: END counts {records} records and {buffers} "
                    f"buffers, the file holds {self._records} and {self._nbuffers}"
                )
            self._ended = True
            return
        elif flags & fmt.FLAG_SKIPPABLE:
            # Read and checked under mmap_mode too (unlike buffers, which are mapped):
            # a damaged record is damage, whatever a reader makes of its kind.
            self._pass_through(length, what, self._verify_skipped or self._scanning)
        else:
            raise self.corrupt(f"{what} has an unknown kind")
        self._records += 1

    def _pass_through(self, length: int, what: str, check: bool) -> None:
        """Read a payload in bounded pieces without keeping it; check its checksum."""
        scratch = memoryview(bytearray(min(length, HASH_PIECE)))
        hasher = fmt.record_hasher(self._records) if check else None
        done = 0
        while done < length:
            view = scratch[: length - done]
            self._fill(view, what, hasher)  # hashes in line: scratch is free again after
            done += len(view)
        self._expect(None if hasher is None else hasher.intdigest(), what)

    def _read_inline_buffer(self, pad: int, flags: int, length: int) -> None:
        """Read a buffer of at most one hash piece (the most common kind) with its
        padding and checksum in one ``readinto``, straight into memory where the payload
        falls on the alignment, and hash it whole right after, while it is in cache.
        What the general path does, in fewer calls; messages are built only on failure
        (objects of many small arrays, such as forests, feel every call)."""
        total = pad + length + _TRAILER_SIZE
        start = self.offset
        if self._size is not None and total > self._size - start:
            self._check_size(length, self._describe(), pad)
        try:
            region = aligned_empty(total, lead=pad)  # the payload on the alignment
        except MemoryError:
            raise self.corrupt(
                f"{self._describe()} declares {length} bytes: cannot allocate"
            ) from None
        view = memoryview(region)
        try:
            got = self._readinto(view)
        except CorruptFileError as exc:  # from a codec's reader: say where we were
            raise self._while(exc, self._describe()) from exc
        if got != total:
            self._fill_rest(view, got)
        self.offset = start + total
        self.buffer_bytes += length
        if pad and view[:pad] != _ZERO_PADS[pad]:
            raise self.corrupt(f"the padding of {self._describe()} is not zero", start)
        end = pad + length
        if self._verify:
            (expected,) = _unpack_trailer(view, end)
            if _digest(view[pad:end], seed=self._records) != expected:
                raise self.corrupt(f"{self._describe()} is damaged (checksum mismatch)")
        # Not an empty region[i:i]: numpy gives it the parent's address, off the alignment.
        self._file_buffer(flags, region[pad:end] if length else region[pad:][:0])
        self._records += 1

    def _read_group(self, pad: int, length: int) -> None:
        """A GROUP record: read whole with its padding and checksum, as a small buffer
        is (see :meth:`_read_inline_buffer`), then its buffers filed as views of it, or,
        memory-mapped, its table read and its buffers mapped in place."""
        start = self.offset
        what = self._describe()  # once a group, not once an array
        if length > fmt.GROUP_MAX:
            raise self.corrupt(
                f"{what} declares {length} bytes, more than a group record may hold "
                f"({fmt.GROUP_MAX})",
                start,
            )
        self._check_size(length, what, pad)
        if self._mmap is not None:
            self._map_group(pad, length, what)
            return
        region = aligned_empty(pad + length + _TRAILER_SIZE, lead=pad)
        view = memoryview(region)
        self._fill(view, what, None)
        if pad and view[:pad] != _ZERO_PADS[pad]:
            raise self.corrupt(f"the padding of {what} is not zero", start)
        end = pad + length
        check = self._verify or (self._scanning and not self.buffers_unverifiable)
        if check:
            (expected,) = _unpack_trailer(view, end)
            if _digest(view[pad:end], seed=self._records) != expected:
                raise self.corrupt(f"{what} is damaged (checksum mismatch)")
        payload = view[pad:end]
        read_from = 0

        def read(n: int) -> bytes:
            nonlocal read_from
            read_from += n
            return bytes(payload[read_from - n : read_from])

        layout = self._group_layout(read, length)
        # One pass: each gap checked, each buffer filed (a scan files none) as a view.
        indexed = None if self._scanning else self._indexed
        index = self._nbuffers
        gap_from = fmt.group_table_size(len(layout))
        total = 0
        for at, size in layout:
            if payload[gap_from:at] != _ZERO_PADS[at - gap_from]:
                raise self.corrupt(f"the padding in {what} is not zero", start)
            gap_from = at + size
            total += size
            if indexed is not None:
                indexed[index] = region[pad + at : pad + gap_from]  # none is empty
            index += 1
        self.buffer_bytes += total
        self._nbuffers = index
        self._records += 1

    def _group_layout(self, read: Callable[[int], bytes], length: int) -> list[tuple[int, int]]:
        """The layout of the GROUP record being read (``length`` bytes), whose table
        ``read(n)`` gives, ``n`` bytes at a time."""
        try:
            return fmt.read_group_table(read, self._records, length)[1]
        except fmt.FormatError as exc:
            raise self.corrupt(f"{self._describe()}: {exc}") from None

    def _map_group(self, pad: int, length: int, what: str) -> None:
        """A GROUP record of a memory-mapped file: its table read (and checked, its
        own checksum: the payload's is skipped, as mapped buffers' are), its buffers
        mapped."""
        if pad and any(self._read(pad, f"the padding of {what}")):
            raise self.corrupt(f"the padding of {what} is not zero")
        payload_at = self.offset
        layout = self._group_layout(lambda n: bytes(self._read(n, what)), length)
        self._src.seek(payload_at + length - self.offset, 1)
        self.offset = payload_at + length
        self._trailer(None, what)
        for at, size in layout:
            self.buffer_bytes += size
            self._file_buffer(0, FileSlot(self._mmap, payload_at + at, size))  # type: ignore[arg-type]
        self._records += 1

    def _fill_rest(self, view: memoryview, got: int | None) -> None:
        """The rest of a read into ``view`` whose first ``readinto`` gave ``got`` bytes
        (None: nothing yet): sources that give less than asked, or nothing."""
        got = got or 0
        total = len(view)
        while got < total:
            step = self._readinto_some(view[got:], None, got)
            if not step:
                self.offset += got
                raise self.corrupt(f"truncated: {self._describe()} needs {total} bytes, {got} read")
            got += step

    def _file_buffer(self, flags: int, buf: np.ndarray | FileSlot) -> None:
        if flags & fmt.FLAG_NEXT_BUFFER:
            self._next.append(buf)
        else:
            self._indexed[self._nbuffers] = buf
        self._nbuffers += 1

    def _read_buffer(self, flags: int, length: int, what: str) -> None:
        self.buffer_bytes += length
        if self._scanning:
            self._pass_through(length, what, not self.buffers_unverifiable)
            self._nbuffers += 1
            self._flagged += bool(flags & fmt.FLAG_NEXT_BUFFER)
            return
        if self._mmap is not None:
            offset = self.offset
            # Stat-free skip; a short file is caught when the trailer read hits EOF.
            self._src.seek(length, 1)
            self.offset += length
            self._trailer(None, what)
            if flags & fmt.FLAG_NEXT_BUFFER:  # the unpickler's: a buffer now
                buf = self._mmap.map(offset, length)
            else:  # a wrapper's: mapped when it takes it
                buf = FileSlot(self._mmap, offset, length)
        else:
            try:
                buf = aligned_empty(length)
            except MemoryError:
                raise self.corrupt(f"{what} declares {length} bytes: cannot allocate") from None
            self._fill_checked(memoryview(buf), what, self._verify)
        self._file_buffer(flags, buf)

    def _fill_checked(self, view: memoryview, what: str, verify: bool, helped: bool = True) -> None:
        """Read a record's whole payload into ``view``, then its trailer; with
        ``verify``, the checksum is checked before this returns. ``helped``: the helper
        thread may read or hash part of it (not when ``view`` does not keep its memory
        alive: an interrupt could then leave the helper on memory already freed)."""
        hasher = fmt.record_hasher(self._records) if verify else None
        if not helped:
            self._fill(view, what, hasher)
        elif self._fd is not None and len(view) >= SPLIT_MIN:
            self._fill_split(view, what, hasher)
        else:
            self._fill(view, what, hasher, hasher is not None and len(view) >= BACKGROUND_MIN)
        self._expect(None if hasher is None else hasher.intdigest(), what)

    def _read_opcodes(self, length: int, what: str) -> None:
        """A PICKLE record's payload: into :meth:`opcodes_into`'s view when it fits
        there, else queued for :meth:`next_opcodes`. Checked either way (opcodes always
        are), before anything reads them."""
        into = self._into
        if into is not None and DIRECT_MIN <= length <= len(into):
            # The unpickler's memory, which the view does not own: read on this thread.
            self._fill_checked(into[:length], what, True, helped=False)
            self._filled = length
        elif length > READ_PIECE and self._size is not None:
            # The file holds the declared length (_check_size): allocated once, not
            # grown piece by piece as for a stream that may stop short.
            payload = memoryview(bytearray(length))
            self._fill_checked(payload, what, True)
            self._opcodes.append(payload)
        else:
            payload = memoryview(self._read(length, what))
            self._trailer(payload, what)
            self._opcodes.append(payload)

    # -- consumers ----------------------------------------------------------------

    def next_opcodes(self) -> memoryview | None:
        while not self._opcodes:
            if self._ended:
                return None
            self._next_record()
        return self._opcodes.popleft()

    def opcodes_into(self, view: memoryview) -> int | None:
        """The next opcodes, read straight into ``view`` when they are one PICKLE
        record of at least :data:`DIRECT_MIN` bytes that fits it.

        The C pickler hands a big ``bytes``, ``bytearray`` or ``str`` payload to its
        file in a write of its own, so a record of its own, and the unpickler reads it
        into the object it makes: that object is then its only copy in memory, checked
        before this returns. Returns the bytes put into ``view``; 0 when the next
        opcodes were queued instead (:meth:`next_opcodes` has them); None at the end.
        """
        self._into = view
        try:
            while not self._opcodes and not self._filled:
                if self._ended:
                    return None
                self._next_record()
        finally:
            self._into = None
        filled, self._filled = self._filled, 0
        return filled

    def take(self, index: int) -> np.ndarray:
        buf = self.take_slot(index)
        return buf.mapped() if type(buf) is FileSlot else buf

    def take_slot(self, index: int) -> np.ndarray | FileSlot:
        """Buffer ``index``, or where it lies in a mapped file, not mapped yet."""
        while index not in self._indexed:
            if index < self._nbuffers or self._ended:
                raise self.corrupt(f"buffer {index} is missing or used twice")
            self._next_record()
        return self._indexed.pop(index)

    def next_buffers(self) -> Iterator[np.ndarray]:
        while True:
            while not self._next:
                self._next_record()
            yield self._next.popleft()

    def rebuild(self, wrapper: str, meta: Any, first: int, count: int) -> Any:
        """The loader-side body of the ``rebuild`` global: build one wrapped object."""
        try:
            impl = self._wrappers[wrapper]
        except KeyError:
            raise UnknownWrapperError(
                f"{self.name}: the file holds objects of array wrapper {wrapper!r}, "
                f"which no installed plugin provides"
            ) from None
        try:
            if type(impl) is NumpyWrapper:
                if count == 1:  # the common case, without the list comprehension's frame
                    if self._mmap is not None:
                        # Its own way with a mapped file's bytes: see FileSlot.
                        return impl.rebuild_one(meta, self.take_slot(first))
                    return impl.rebuild(meta, [self.take(first)])
                return impl.rebuild(meta, [self.take(first + i) for i in range(count)])
            return self._rebuild_once(wrapper, impl, meta, first, count)
        except CorruptFileError as exc:
            if str(exc).startswith(self.name):
                raise
            raise self._rebuild_failed(wrapper, first, count, str(exc)) from None
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            # A plugin wrapper's own complaint that meta and buffers disagree (a shape
            # too big for its buffer, a buffer missing): what the file holds is wrong.
            if isinstance(exc, ArrayPickleError):
                raise
            what = f"{type(exc).__name__}: {exc}"
            raise self._rebuild_failed(wrapper, first, count, what) from exc

    def _rebuild_once(self, wrapper: str, impl: Any, meta: Any, first: int, count: int) -> Any:
        """A wrapper's object, built once. For an object whose meta leads back to it,
        the pickle calls rebuild twice with the same arguments (the C pickler writes
        the outer reduction, then drops it for the inner one): the second call gets the
        first's object, not a second use of its buffers. (numpy's wrapper is left
        out: its view and masked forms have no buffers, and a plain array whose dtype's
        metadata leads back to it is written twice, under two firsts.)"""
        if count:
            built = self._built.get(first)
            if built is not None and built[0] == wrapper and built[1] is meta and built[2] == count:
                return built[3]
        obj = impl.rebuild(meta, [self.take(first + i) for i in range(count)])
        if count:
            self._built[first] = (wrapper, meta, count, obj)
        return obj

    def _rebuild_failed(self, wrapper: str, first: int, count: int, what: str) -> Exception:
        # A wrapper knows its meta and buffers, not where they came from.
        taken = (
            f"buffers {first} to {first + count - 1}"
            if count > 1
            else f"buffer {first}"
            if count
            else "its meta"
        )
        return self.corrupt(f"rebuilding a {wrapper!r} object from {taken}: {what}")

    def load(self) -> Any:
        """Read the header, unpickle the object, then check the END record."""
        try:
            return self._load()
        finally:
            self._helper.close()

    def _load(self) -> Any:
        self.read_header()
        if self._policy is not None:
            # Safe loading: every record first (buffers into their final memory, as a
            # normal load would), then the opcodes are scanned before any of them runs.
            while not self._ended:
                self._next_record()
            self._policy.check_opcodes(self._opcodes, self.name)
        stream = OpcodeStream(self)
        unpickler = Unpickler(
            stream, rebuild=self.rebuild, policy=self._policy, buffers=self.next_buffers()
        )
        try:
            obj = unpickler.load()
        except Exception as exc:
            # The opcodes passed their checksums, so only a crafted file gets here.
            error = unpickler_failure(exc, self.name, f"at container offset {self.offset}, ")
            if error is None:
                raise
            raise error from exc
        self._finish(stream)
        if self._unmarked is not None and self._nbuffers:
            if self._size is not None and self.offset < self._size:
                # A mapped load reads a whole file, which data after the object fails:
                # refused before the mark, so that the file stays unchanged.
                raise data_follows(self.name, self.offset)
            # Before any array mapped for writing reaches the caller (none: no change).
            self._mmap.mark_writable(self._unmarked)  # type: ignore[union-attr]
        return obj

    def _finish(self, stream: OpcodeStream) -> None:
        """After the pickle's STOP: read up to END, which nothing but records may precede."""
        if stream.remaining():
            raise self.corrupt("opcodes follow the pickle STOP")
        self._records_to_end()
        if self._indexed or self._next:
            raise self.corrupt(f"{len(self._indexed) + len(self._next)} buffers were never used")

    def _records_to_end(self) -> None:
        """Past the pickle's STOP: read records up to END, refusing a P record."""
        while not self._opcodes and not self._ended:
            self._next_record()
        if self._opcodes:
            raise self.corrupt(_P_AFTER_STOP)

    def scan(self) -> tuple[int, int]:
        """Check the whole container without unpickling it; return (records, buffers).

        Every record header, padding and checksum is checked (buffers are read in
        bounded pieces and dropped), the opcodes are walked, never executed, to check
        they form one pickle ending at STOP, and the END record's counts must match.
        """
        self._scanning = True
        self._inline_max = None
        self.read_header()
        walker = OpcodeWalker()
        while not walker.stopped:
            payload = self.next_opcodes()
            if payload is None:
                raise self.corrupt("the pickle stream ends before its STOP opcode")
            try:
                after_stop = walker.feed(payload)
            except ValueError as exc:
                raise self.corrupt(f"the pickle stream is invalid: {exc}") from None
            if after_stop:
                raise self.corrupt("opcodes follow the pickle STOP")
        self._records_to_end()
        if walker.next_buffers != self._flagged:
            raise self.corrupt(
                f"the pickle takes {walker.next_buffers} buffers in order (NEXT_BUFFER), "
                f"the container holds {self._flagged}"
            )
        return self._records, self._nbuffers


class OpcodeStream:
    """The file the C unpickler reads opcodes from: PICKLE payloads, back to back.

    It offers ``peek`` so that the unpickler prefetches instead of calling ``read``
    once per opcode, and it never reads past what the unpickler consumes.
    """

    def __init__(self, reader: ContainerReader) -> None:
        self._reader = reader
        self._cur = memoryview(b"")
        self._pos = 0

    def remaining(self) -> int:
        return len(self._cur) - self._pos

    def _advance(self) -> bool:
        payload = self._reader.next_opcodes()
        if payload is None:
            return False
        self._cur, self._pos = payload, 0
        return True

    def peek(self, n: int = 0) -> memoryview:
        if self._pos >= len(self._cur) and not self._advance():
            return memoryview(b"")
        return self._cur[self._pos :]

    def read(self, n: int = -1) -> memoryview | bytes:
        if n < 0:
            raise ValueError("OpcodeStream.read needs a size")
        end = self._pos + n
        if end <= len(self._cur):
            out = self._cur[self._pos : end]
            self._pos = end
            return out
        if n >= DIRECT_MIN and self._pos >= len(self._cur):
            # A big str's payload (the unpickler reads those, and reads into the rest):
            # one allocation, filled in place. Left unwritten (a bytearray would be
            # zeroed): a crafted length costs memory only for the bytes that arrive.
            buf = memoryview(np.empty(n, np.uint8))
            return buf[: self.readinto(buf)]
        parts = []
        while n:
            if self._pos >= len(self._cur) and not self._advance():
                break
            take = min(n, len(self._cur) - self._pos)
            parts.append(self._cur[self._pos : self._pos + take])
            self._pos += take
            n -= take
        return b"".join(parts)

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view):
            if self._pos >= len(self._cur):
                if len(view) - done >= DIRECT_MIN:
                    filled = self._reader.opcodes_into(view[done:])
                    if filled is None:
                        break
                    if filled:
                        done += filled
                        continue
                if not self._advance():
                    break
            take = min(len(view) - done, len(self._cur) - self._pos)
            view[done : done + take] = self._cur[self._pos : self._pos + take]
            self._pos += take
            done += take
        return done

    def readline(self) -> bytes:
        parts = []
        while True:
            if self._pos >= len(self._cur) and not self._advance():
                break
            rest = self._cur[self._pos :]
            nl = _find_newline(rest)
            if nl >= 0:
                parts.append(rest[: nl + 1])
                self._pos += nl + 1
                break
            parts.append(rest)
            self._pos = len(self._cur)
        return b"".join(parts)


def _find_newline(view: memoryview, window: int = 4096) -> int:
    """Index of the first newline in ``view``, looking no further than needed."""
    for start in range(0, len(view), window):
        hit = bytes(view[start : start + window]).find(b"\n")
        if hit >= 0:
            return start + hit
    return -1
