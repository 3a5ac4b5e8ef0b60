"""Helpers over the caller's file objects: sniffing the first bytes without losing them."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from typing import Any

from ._damage import renamed
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
    (``RuntimeError``, ``EOFError``, ``OSError``, ``MemoryError`` for a damaged size
    in a header...); callers should see one type, naming the file as they know it
    and the offset in the decompressed data where the damage showed.
    """

    def __init__(self, src: Any, name: str, codec: str) -> None:
        super().__init__()
        self._src = src
        self._name = name
        self._where = f"{name}: {codec} stream"
        self._offset = 0
        self.name = getattr(src, "name", None)

    def readable(self) -> bool:
        return True

    @property
    def offset(self) -> int:
        """Decompressed bytes delivered so far."""
        return self._offset

    def _damaged(self, text: str) -> CorruptFileError:
        return CorruptFileError(f"{text} (at or after decompressed offset {self._offset})")

    def _call(self, method: Any, arg: Any) -> Any:
        try:
            return method(arg)
        except CorruptFileError as exc:
            raise self._damaged(str(renamed(exc, self._name))) from exc
        except ArrayPickleError:
            raise
        except MemoryError as exc:
            text = f"{self._where} needs more memory than there is: a damaged header?"
            raise self._damaged(text) from exc
        except Exception as exc:
            raise self._damaged(f"{self._where} is damaged: {exc!r}") from exc

    def readinto(self, b: Any) -> int:
        readinto = getattr(self._src, "readinto", None)
        if readinto is None:
            view = memoryview(b).cast("B")
            data = self._call(self._src.read, len(view))
            view[: len(data)] = data
            done = len(data)
        else:
            done = self._call(readinto, b) or 0
        self._offset += done
        return done

    def read(self, size: int = -1) -> bytes:
        data = self._call(self._src.read, size)
        self._offset += len(data)
        return data
