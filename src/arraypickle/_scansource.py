"""The sources the opcode walk (:mod:`._scan`) reads a pickle stream from.

A source hands the walk bytes through ``more(rest, need)`` (``rest`` plus at least
``need`` bytes in all, unless the input ends), ``more_line(rest)`` (up to a newline)
and ``skip(n)`` (past a payload the walk does not keep), and counts in ``handed``
where the input stands. :class:`BlockSource` reads a file in blocks (seeking past
skipped payloads when it can); :class:`ExactSource` never reads past what the walk
consumes and copies what it reads aside (for pipes, whose bytes the load needs again);
:class:`ChunkReader` reads in-memory chunks (a container's PICKLE payloads);
:class:`Resume` is what a format's ``on_build`` hook reads from, mid-walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._scanvalues import ScanError

# A line argument (GLOBAL's names, protocol 0's values) longer than this is refused,
# or skipped when it may be data (see OpcodeScanner._line).
LINE_MAX = 1 << 20
BLOCK = 1 << 20


class BlockSource:
    """Reads ``read`` in blocks; ``skip_raw(n)`` (seek) skips without reading, if given."""

    def __init__(
        self,
        read: Callable[[int], Any],
        skip_raw: Callable[[int], None] | None = None,
        block: int = BLOCK,
    ) -> None:
        self._read = read
        self._skip_raw = skip_raw
        self._block = block
        self.handed = 0  # bytes handed to the walk or skipped: where the input stands

    def more(self, rest: bytes, need: int) -> bytes:
        """``rest`` plus more input: at least ``need`` bytes in all, unless at EOF."""
        parts = [rest]
        have = len(rest)
        want = max(need, self._block)
        while have < need:
            data = self._read(want - have)
            if not data:
                break
            parts.append(bytes(data))
            have += len(data)
        self.handed += have - len(rest)
        return b"".join(parts)

    def more_line(self, rest: bytes) -> bytes:
        """``rest`` plus input up to and including a newline (or EOF, or LINE_MAX)."""
        buf = rest
        while b"\n" not in buf and len(buf) < LINE_MAX:
            grown = self.more(buf, len(buf) + 1)
            if len(grown) == len(buf):
                break
            buf = grown
        return buf

    def skip(self, n: int) -> None:
        """Skip ``n`` bytes past what was handed out; ScanError if the input ends first."""
        self.handed += n
        if self._skip_raw is not None:
            self._skip_raw(n)
            return
        while n:
            data = self._read(min(n, self._block))
            if not data:
                raise ScanError("truncated: the stream ends inside an opcode's data")
            n -= len(data)


class ExactSource(BlockSource):
    """Never reads past what the scan consumes; copies everything read into ``tee``."""

    def __init__(self, read: Callable[[int], Any], readline: Any, tee: Callable[[Any], Any]):
        super().__init__(read, None, block=0)
        self._readline = readline
        self._tee = tee

    def more(self, rest: bytes, need: int) -> bytes:
        parts = [rest]
        have = len(rest)
        while have < need:
            data = self._read(need - have)
            if not data:
                break
            self._tee(data)
            parts.append(bytes(data))
            have += len(data)
        self.handed += have - len(rest)
        return b"".join(parts)

    def more_line(self, rest: bytes) -> bytes:
        if b"\n" in rest:
            return rest
        line = self._readline(LINE_MAX) if self._readline is not None else b""
        if line:
            self._tee(line)
            self.handed += len(line)
            return rest + bytes(line)
        return super().more_line(rest)

    def skip(self, n: int) -> None:
        self.handed += n
        while n:
            data = self._read(min(n, BLOCK))
            if not data:
                raise ScanError("truncated: the stream ends inside an opcode's data")
            self._tee(data)
            n -= len(data)


class ChunkReader:
    """``read``/``skip`` over in-memory chunks (a container's PICKLE payloads)."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self._chunks = iter(chunks)
        self._cur = memoryview(b"")
        self._pos = 0

    def _next(self) -> bool:
        for chunk in self._chunks:
            view = memoryview(chunk).cast("B")
            if len(view):
                self._cur, self._pos = view, 0
                return True
        return False

    def read(self, n: int) -> bytes:
        if self._pos >= len(self._cur) and not self._next():
            return b""
        out = self._cur[self._pos : self._pos + n]
        self._pos += len(out)
        return bytes(out)

    def skip(self, n: int) -> None:
        while n:
            if self._pos >= len(self._cur) and not self._next():
                raise ScanError("truncated: the stream ends inside an opcode's data")
            take = min(n, len(self._cur) - self._pos)
            self._pos += take
            n -= take


class Resume(BlockSource):
    """What an ``on_build`` hook reads from: the walk's unread bytes, then the source."""

    def __init__(self, source: BlockSource, rest: bytes) -> None:
        self._source = source
        self.leftover = rest

    @property  # type: ignore[override]
    def handed(self) -> int:
        return self._source.handed - len(self.leftover)

    def _take(self, rest: bytes) -> bytes:
        if self.leftover:
            rest, self.leftover = rest + self.leftover, b""
        return rest

    def more(self, rest: bytes, need: int) -> bytes:
        data = self._take(rest)
        return data if len(data) >= need else self._source.more(data, need)

    def more_line(self, rest: bytes) -> bytes:
        data = self._take(rest)
        return data if b"\n" in data else self._source.more_line(data)

    def read(self, n: int) -> bytes:
        """Up to ``n`` raw bytes (short only at EOF)."""
        if len(self.leftover) < n:
            self.leftover = self._source.more(self.leftover, n)
        out, self.leftover = self.leftover[:n], self.leftover[n:]
        return out

    def skip(self, n: int) -> None:
        if n <= len(self.leftover):
            self.leftover = self.leftover[n:]
            return
        n -= len(self.leftover)
        self.leftover = b""
        self._source.skip(n)

    def push_back(self, data: bytes) -> None:
        """Hand back bytes read too far (what a nested :meth:`OpcodeScanner.scan` returns)."""
        self.leftover = data + self.leftover
