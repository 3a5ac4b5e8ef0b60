"""Helpers over the caller's file objects: sniffing the first bytes without losing them."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from typing import Any

from ._errors import ArrayPickleError, CorruptFileError


class Prefixed(io.RawIOBase):
    """Reads ``head`` first, then the rest of ``src`` (for streams that cannot seek back)."""

    def __init__(self, head: bytes, src: Any) -> None:
        super().__init__()
        self._head = head
        self._src = src
        self.name = getattr(src, "name", None)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._head:
            take = min(len(view), len(self._head))
            view[:take] = self._head[:take]
            self._head = self._head[take:]
            return take
        readinto = getattr(self._src, "readinto", None)
        if readinto is not None:
            return readinto(view) or 0
        data = self._src.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._head and 0 <= size <= len(self._head):
            out, self._head = self._head[:size], self._head[size:]
            return out
        if self._head:
            out, self._head = self._head, b""
            rest = self._src.read(-1 if size < 0 else size - len(out))
            return out + (rest or b"")
        return self._src.read(size)

    def peek(self, size: int = 0) -> bytes:
        if self._head:
            return self._head
        peek = getattr(self._src, "peek", None)
        return peek(size) if peek is not None else b""

    def readline(self, size: int | None = -1) -> bytes:
        if self._head or not hasattr(self._src, "readline"):
            return super().readline(size)
        return self._src.readline(size)


def is_seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def sniff(stream: Any, magics: Iterable[bytes]) -> tuple[bytes, Any]:
    """Read enough of ``stream`` to tell which magic (if any) it starts with.

    Returns what was read and a stream positioned back where ``stream`` was: the same
    object, sought back, or a :class:`Prefixed` one. A non-seekable stream is read
    one byte at a time, never further than the longest magic it could still match,
    so that objects written back to back can be read one by one.
    """
    magics = [m for m in magics if m]
    longest = max(map(len, magics), default=0)
    if is_seekable(stream):
        head = stream.read(longest) or b""
        stream.seek(-len(head), os.SEEK_CUR)
        return head, stream
    head = b""
    while len(head) < longest and any(m.startswith(head) and m != head for m in magics):
        if any(head == m for m in magics):
            break
        byte = stream.read(1)
        if not byte:
            break
        head += byte
    return head, Prefixed(head, stream)


def _is_plain_file(stream: Any) -> bool:
    """Whether ``stream`` reads its file descriptor's bytes as they are.

    Decompressing readers (``gzip.GzipFile``, ``bz2.BZ2File``...) also answer
    ``fileno()``, with the descriptor of the compressed file: its size says nothing
    about how many bytes they will give.
    """
    if isinstance(stream, (io.BufferedReader, io.BufferedRandom)):
        stream = stream.raw
    return isinstance(stream, io.FileIO)


def remaining_size(stream: Any) -> int | None:
    """Bytes left in ``stream`` from its position, when that can be known cheaply."""
    if _is_plain_file(stream):
        try:
            st = os.fstat(stream.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size:
                return st.st_size - stream.tell()
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
    if isinstance(stream, io.BytesIO):
        # Not getbuffer(): exporting a buffer unshares the bytes BytesIO was made from,
        # copying them all.
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return end - here
    # fsspec's files (and arraypickle's own wrappers) state their total size.
    size = getattr(stream, "size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        try:
            return size - stream.tell()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            pass
    return None


class Guarded(io.RawIOBase):
    """A codec's reader whose failures surface as :class:`CorruptFileError`.

    Third-party readers raise what their library raises on a damaged stream
    (``RuntimeError``, ``EOFError``, ``OSError``...); callers should see one type.
    """

    def __init__(self, src: Any, name: str, codec: str) -> None:
        super().__init__()
        self._src = src
        self._where = f"{name}: {codec} stream"
        self.name = getattr(src, "name", None)

    def readable(self) -> bool:
        return True

    def _call(self, method: Any, arg: Any) -> Any:
        try:
            return method(arg)
        except (ArrayPickleError, MemoryError):
            raise
        except Exception as exc:
            raise CorruptFileError(f"{self._where} is damaged: {exc!r}") from exc

    def readinto(self, b: Any) -> int:
        readinto = getattr(self._src, "readinto", None)
        if readinto is None:
            view = memoryview(b).cast("B")
            data = self._call(self._src.read, len(view))
            view[: len(data)] = data
            return len(data)
        return self._call(readinto, b) or 0

    def read(self, size: int = -1) -> bytes:
        return self._call(self._src.read, size)


class FullReads:
    """``src`` with reads that come back short only at its end.

    The C unpickler takes a short ``read(n)`` or ``readinto`` for the end of the
    data; pipes, sockets and raw files return what has arrived so far.
    """

    def __init__(self, src: Any) -> None:
        self._src = src
        peek = getattr(src, "peek", None)
        if peek is not None:
            self.peek = peek

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size) or b""
        if size is None or size < 0 or len(data) >= size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = self._src.read(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        # In place when the source can: in-band buffers (BYTEARRAY8) can be large.
        readinto = getattr(self._src, "readinto", None)
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            if readinto is not None:
                step = readinto(view[done:]) or 0
            else:
                data = self._src.read(len(view) - done) or b""
                step = len(data)
                view[done : done + step] = data
            if not step:
                break
            done += step
        return done

    def readline(self, size: int = -1) -> bytes:
        readline = getattr(self._src, "readline", None)
        if readline is not None:
            return readline(size)
        line = bytearray()
        while size < 0 or len(line) < size:
            byte = self._src.read(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return bytes(line)
