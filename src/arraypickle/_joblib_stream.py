"""The byte stream a pickle is unpickled from when raw array bytes may sit inside it.

joblib (>= 0.10) writes each array as a ``NumpyArrayWrapper`` object whose ``BUILD``
opcode is followed, outside the pickle, by the array's bytes. The C unpickler calls
the wrapper's ``__setstate__`` at that ``BUILD``; from there the loader must read the
array bytes at the position right after the opcode, then let unpickling go on.

Three things make that possible without a pure-Python unpickler:

* Once a joblib wrapper's class name (``...ArrayWrapper``) has gone by, the windows
  :class:`PickleView` hands out by ``peek`` end at the first ``0x62`` byte (the
  ``BUILD`` opcode) they hold, and ``read(n)`` returns exactly ``n`` bytes. When a
  ``BUILD`` runs, its byte is therefore the last byte of the most recent chunk handed
  out (joblib ends its pickle frames right after a wrapper's ``BUILD``), and the
  stream position after the opcode is known exactly: :meth:`PickleView.after_build`.
  Before any such name, windows are large (a plain pickle reads at full speed): a
  wrapper's ``BUILD`` always comes after its class name.
* The C unpickler advances a file it peeked at lazily, by calling ``read(consumed)``
  before its next peek. After a hook consumed the window itself, that one call is
  answered without consuming anything again.
* A hook may *inject* opcodes (:meth:`PickleView.inject`), served before the rest of
  the stream: joblib's loader injects ``POP NONE BINPERSID`` to swap the wrapper left
  on the unpickler's stack for the array it read.

Several views may read one :class:`Source` in turn (a nested pickle, such as joblib's
object arrays, is read by a second unpickler through a second view).

A view may *guard* the unpickler: every byte of the stream it hands out is walked
first (:class:`OpcodeWalker` with ``memo_guard``), and a memo store far beyond the
entries stored is refused before the C unpickler would allocate for it (CPython
before gh-115952 sizes its memo table by the index a ``PUT`` names). Plain pickles and
joblib files carry no checksums: one flipped bit makes such an index.
"""

from __future__ import annotations

import io
import os
from typing import Any

from ._errors import CorruptFileError
from ._opcodes import OpcodeWalker
from ._streams import given, is_seekable, readinto_of

BUILD = 0x62
# Opcode lookahead read from the caller's stream at a time (a buffered source).
LOOKAHEAD = 64 << 10
# The most one peek hands out.
MAX_WINDOW = 128 << 10
# In the name of every joblib wrapper class (NumpyArrayWrapper, NDArrayWrapper, ...).
NEEDLE = b"ArrayWrapper"


class Source:
    """Forward reads over the caller's stream, with the absolute offset when known.

    ``buffered``: read ahead :data:`LOOKAHEAD` bytes at a time (for a seekable stream,
    whose position :meth:`finish` restores, or a decompressed stream that must end
    with the object). Otherwise nothing is read that the unpickler does not consume:
    peeks go to the stream's own ``peek`` when it has one, and what it shows is
    searched for a wrapper name as it goes by.
    ``piece`` caps each ``readinto`` of array data (bounds a decompressor's buffers).
    """

    def __init__(self, src: Any, name: str, *, buffered: bool, piece: int | None = None) -> None:
        self._src = src
        self.name = name
        self._readinto = readinto_of(src)
        self._peek = None if buffered else getattr(src, "peek", None)
        self._buffered = buffered
        self._piece = piece
        self._data = b""
        self._mv = memoryview(b"")
        self._pos = 0
        self._eof = False
        self.consumed = 0
        # Offset (in consumed bytes) just past the first wrapper name read from the
        # stream; windows reaching it end at BUILD bytes.
        self._careful_from: int | None = None
        self._tail = b""  # the last bytes scanned, for a name cut across two reads
        self._scanned = 0  # unbuffered: the offset (in consumed bytes) scanned up to
        self.cut = False  # the last window ends at the first BUILD byte it held
        self._origin: int | None = None
        if is_seekable(src):
            try:
                self._origin = src.tell()
            except (OSError, ValueError):
                self._origin = None

    @property
    def offset(self) -> int | None:
        """Absolute offset of the next unconsumed byte in the file, when known."""
        return None if self._origin is None else self._origin + self.consumed

    def _available(self) -> int:
        return len(self._data) - self._pos

    def _src_read(self, n: int) -> bytes:
        # None: a non-blocking source with nothing yet, not damage (given says so).
        return given(self._src.read(n), self._src)

    def _scan(self, chunk: bytes, at: int) -> None:
        """Look for a wrapper name in ``chunk``, read from the stream at offset ``at``."""
        if self._careful_from is not None:
            return
        joint = self._tail + chunk[: len(NEEDLE) - 1]
        hit = joint.find(NEEDLE)
        if hit >= 0:
            self._careful_from = at - len(self._tail) + hit + len(NEEDLE)
            return
        hit = chunk.find(NEEDLE)
        if hit >= 0:
            self._careful_from = at + hit + len(NEEDLE)
            return
        self._tail = (self._tail + chunk[-(len(NEEDLE) - 1) :])[-(len(NEEDLE) - 1) :]

    def _see(self, data: Any, at: int) -> None:
        """Unbuffered: scan what of ``data`` (at offset ``at``) is past ``_scanned``.

        Only windows need the name: without them, the unpickler reads each opcode
        exactly, and a BUILD is always the last byte it read."""
        end = at + len(data)
        if end <= self._scanned or self._careful_from is not None or self._peek is None:
            return
        if at > self._scanned:
            self._tail = b""  # array bytes a hook read went by unscanned: no name spans them
        else:
            data = data[self._scanned - at :]
            at = self._scanned
        self._scan(bytes(data), at)
        self._scanned = end

    def _fill(self, want: int) -> bool:
        """Read ahead until ``want`` bytes are available; False if the stream ends first."""
        while self._available() < want and not self._eof:
            more = self._src_read(max(LOOKAHEAD, want - self._available()))
            if not more:
                self._eof = True
                break
            self._scan(more, self.consumed + self._available())
            rest = self._mv[self._pos :]
            self._data = bytes(rest) + more if len(rest) else more
            self._mv = memoryview(self._data)
            self._pos = 0
        return self._available() >= want

    # -- reads --------------------------------------------------------------------

    def window(self, limit: int) -> Any:
        """Upcoming bytes, not consumed: at least one unless at EOF, None if unknown.

        Past a wrapper name, the window ends at the first ``BUILD`` byte it holds;
        ``cut`` then says so (a window that ends with ``0x62`` for another reason, its
        size or the data buffered, may hold an earlier one).
        """
        self.cut = False
        if not self._buffered:
            return self._peek_window(limit)
        if len(self._data) - self._pos < min(limit, LOOKAHEAD // 2):
            self._fill(min(limit, LOOKAHEAD))
        data, pos = self._data, self._pos
        stop = min(len(data), pos + limit)
        careful = self._careful_from
        if careful is not None:
            ahead = careful - self.consumed
            if ahead > 0:
                stop = min(stop, pos + ahead)
            else:
                end = data.find(b"b", pos, stop)
                if end < 0 and stop - pos < limit and not self._eof:
                    # No BUILD in what is buffered: read ahead rather than hand out crumbs.
                    self._fill(min(limit, stop - pos + LOOKAHEAD))
                    data, pos = self._data, self._pos
                    stop = min(len(data), pos + limit)
                    end = data.find(b"b", pos, stop)
                if end >= 0:
                    stop = end + 1
                    self.cut = True
        return self._mv[pos:stop]

    def _peek_window(self, limit: int) -> Any:
        """Unbuffered: the window the stream's own ``peek`` shows, cut as above."""
        if self._peek is None:
            return None
        data = self._peek(limit)[:limit]
        if not len(data):
            # Nothing to show, though the stream may not have ended (a wrapper's peek
            # over a raw stream shows nothing): from now on, unpicklers read exactly, as
            # from a stream without peek, rather than peek before every read.
            self._peek = None
            return None
        self._see(data, self.consumed)
        careful = self._careful_from
        if careful is None:
            return data
        ahead = careful - self.consumed
        if ahead > 0:
            return data[:ahead]
        end = data.find(b"b")
        self.cut = end >= 0
        return data[: end + 1] if end >= 0 else data

    def read(self, n: int) -> Any:
        """Consume and return ``n`` bytes (fewer only at EOF)."""
        if not self._buffered:
            data = self._src_read(n)
            if 0 < len(data) < n:  # raw pipes and sockets return what has arrived
                parts = [data]
                got = len(data)
                while got < n:
                    more = self._src_read(n - got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
            self._see(data, self.consumed)
            self.consumed += len(data)
            return data
        pos = self._pos
        if len(self._data) - pos >= n or (n <= LOOKAHEAD and self._fill(n)):
            pos = self._pos
            out = self._mv[pos : pos + n]
            self._pos = pos + n
            self.consumed += n
            return out
        parts = [bytes(self._mv[self._pos :])]
        got = len(parts[0])
        self._data, self._mv, self._pos = b"", memoryview(b""), 0
        while got < n:
            more = self._src_read(n - got)
            if not more:
                break
            self._scan(more, self.consumed + got)
            parts.append(more)
            got += len(more)
        self.consumed += got
        return b"".join(parts)

    def readline(self) -> bytes:
        """Consume and return one line (up to and including ``\\n``, or to EOF)."""
        if not self._buffered:
            line = self._src.readline()
            self._see(line, self.consumed)
            self.consumed += len(line)
            return line
        parts = []
        while True:
            if not self._available():
                self._fill(1)
                if not self._available():
                    break
            nl = self._data.find(b"\n", self._pos)
            end = len(self._data) if nl < 0 else nl + 1
            parts.append(self._data[self._pos : end])
            self.consumed += end - self._pos
            self._pos = end
            if nl >= 0:
                break
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        """Fill as much of ``b`` as the stream holds; returns the count."""
        view = memoryview(b).cast("B")
        done = min(self._available(), len(view))
        if done:
            view[:done] = self._mv[self._pos : self._pos + done]
            self._pos += done
        piece = self._piece or len(view)
        while done < len(view):
            part = view[done : min(len(view), done + piece)]
            if self._readinto is not None:
                step = given(self._readinto(part), self._src)
            else:
                data = self._src_read(len(part))
                step = len(data)
                part[:step] = data
            if not step:
                break
            done += step
        self.consumed += done
        return done

    def readinto_exact(self, b: Any, what: str) -> None:
        """Fill all of ``b`` or raise :class:`CorruptFileError` naming ``what``."""
        start = self.consumed
        need = memoryview(b).nbytes
        got = self.readinto(b)
        if got < need:
            raise CorruptFileError(
                f"{self.name}: truncated: {what} at offset {start} needs {need} bytes, {got} remain"
            )

    def skip(self, n: int, what: str) -> None:
        """Consume ``n`` bytes without keeping them (seeking when the file can)."""
        take = min(self._available(), n)
        self._pos += take
        self.consumed += take
        n -= take
        if n and self._origin is not None:
            self._src.seek(n, os.SEEK_CUR)
            self.consumed += n
            return
        while n:
            got = len(self.read(min(n, 1 << 20)))
            if not got:
                raise CorruptFileError(f"{self.name}: truncated: {what} is cut short")
            n -= got

    def finish(self) -> int:
        """Give back what was read ahead: seek back when possible, else return its size."""
        left = self._available()
        if left and self._origin is not None:
            self._src.seek(-left, os.SEEK_CUR)
            left = 0
        self._data, self._mv, self._pos = b"", memoryview(b""), 0
        return left


class PickleView(io.RawIOBase):
    """The file one unpickler reads from: see the module docstring.

    It offers ``peek``, so that the C unpickler reads in windows rather than one call
    per opcode. ``guard``: walk every byte handed out first (see the module docstring).
    ``decompressed``: the source is a codec's output, whose offsets messages say so.
    """

    def __init__(self, source: Source, *, guard: bool = False, decompressed: bool = False) -> None:
        super().__init__()
        self._source = source
        self._where = " (offsets in the decompressed stream)" if decompressed else ""
        self._guard = None
        if guard:
            # Offsets in messages, and a reused pickler's numbering, count from the
            # start of the file when its position is known.
            origin = source.offset if source.offset is not None else source.consumed
            self._guard = OpcodeWalker(
                strict=False, memo_guard=True, origin=origin - source.consumed
            )
        # The guard has walked the stream up to this offset (in consumed bytes) and
        # counts its offsets in those too; the bytes a hook consumes (array data, a
        # nested pickle) are passed over.
        self._walked = source.consumed
        if self._guard is not None:
            self._guard.offset = source.consumed
        self._inject = b""
        self._owed: Any = None  # a window a hook consumed: the next read(len) gets it
        self._last: Any = b""  # the last chunk handed to the unpickler...
        self._last_kind = ""  # ...and how: "peek", "read" or "inject"
        self._last_cut = False  # a peeked window cut at its first BUILD byte

    def readable(self) -> bool:
        return True

    # -- what unpicklers call -----------------------------------------------------

    def peek(self, n: int = 1) -> Any:
        if self._inject:
            self._last, self._last_kind = self._inject, "inject"
            return self._inject
        data = self._source.window(min(max(n, 1), MAX_WINDOW))
        if data is None:
            # The C unpickler stops peeking on NotImplementedError and reads exactly.
            raise NotImplementedError("peek")
        self._walk(data, self._source.consumed)
        self._last, self._last_kind, self._last_cut = data, "peek", self._source.cut
        return data

    def read(self, n: int = -1) -> Any:
        if n is None or n < 0:
            raise ValueError("PickleView.read needs a size")
        if self._owed is not None:
            owed, self._owed = self._owed, None
            if n != len(owed):
                raise CorruptFileError(
                    f"{self._source.name}: the unpickler read {n} bytes where it should "
                    f"skip {len(owed)}: the pickle stream is not as expected"
                )
            return owed
        if self._inject:
            take, self._inject = self._inject[:n], self._inject[n:]
            if len(take) < n:
                take += bytes(self._read(n - len(take)))
            self._last, self._last_kind = take, "inject"
            return take
        data = self._read(n)
        self._last, self._last_kind = data, "read"
        return data

    def _read(self, n: int) -> Any:
        at = self._source.consumed
        return self._walk(self._source.read(n), at)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._inject or self._owed is not None:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        at = self._source.consumed
        got = self._source.readinto(view)
        self._last, self._last_kind = self._walk(view[:got], at), "read"
        return got

    def readline(self, size: int | None = -1) -> bytes:
        if self._inject:
            nl = self._inject.find(b"\n")
            if nl >= 0:
                return bytes(self.read(nl + 1))
            return bytes(self.read(len(self._inject))) + self._readline()
        line = self._readline()
        self._last, self._last_kind = line, "read"
        return line

    def _readline(self) -> bytes:
        at = self._source.consumed
        return self._walk(self._source.readline(), at)

    def _walk(self, data: Any, at: int) -> Any:
        """Let the guard walk what of ``data`` (at stream offset ``at``) it has not."""
        guard = self._guard
        if guard is None or guard.stopped:
            return data
        end = at + len(data)
        if end > self._walked:
            self._feed(data[self._walked - at :] if self._walked > at else data, at)
            self._walked = end
        return data

    def _feed(self, data: Any, at: int | None = None) -> None:
        guard: Any = self._guard
        try:
            if at is not None and at > self._walked:
                # A hook consumed bytes that are no opcodes (an array's), which must
                # come at an opcode's end.
                guard.resync(at)
            guard.feed(data)
        except ValueError as exc:
            raise CorruptFileError(
                f"{self._source.name}: the pickle is damaged: {exc}{self._where}"
            ) from None

    # -- what hooks call ----------------------------------------------------------

    def after_build(self, what: str) -> None:
        """In a ``BUILD``: bring the source to the byte right after that opcode.

        Raises :class:`CorruptFileError` when the opcode is not the last byte handed
        out (a pickle frame that goes on after a joblib array wrapper: the file was
        not written by joblib, or is damaged).
        """
        last, kind = self._last, self._last_kind
        # A peeked window holds the running BUILD as its last byte only when it was cut
        # at its first BUILD byte: one that ends with 0x62 for another reason (its size,
        # the data buffered) may hold the running one earlier, and the rest would run
        # as opcodes while it is read as the array. A frame the unpickler read whole
        # ends with the wrapper's BUILD when joblib wrote it.
        if (
            kind not in ("peek", "read")
            or not len(last)
            or last[-1] != BUILD
            or (kind == "peek" and not self._last_cut)
        ):
            raise CorruptFileError(
                f"{self._source.name}: {what} is not followed by its data where joblib "
                "puts it (the file is damaged or was not written by joblib)"
            )
        if kind == "peek":
            # The unpickler only peeked at this window: consume it on its behalf and
            # answer its coming read(len(window)) without consuming again.
            self._source.read(len(last))
            self._owed = last
        self._last, self._last_kind = b"", ""

    def inject(self, opcodes: bytes) -> None:
        """Serve ``opcodes`` to the unpickler before the rest of the stream.

        The guard does not walk them: they are the loader's own, whole opcodes.
        """
        self._inject += opcodes

    def give_back(self, head: bytes) -> None:
        """Serve the stream's first bytes, which the loader consumed to look at them."""
        if self._guard is not None:
            self._guard.offset -= len(head)
            self._feed(head)
        self.inject(head)
