"""Helpers over the caller's file objects: sniffing the first bytes without losing them."""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import weakref
from collections.abc import Iterable
from typing import Any

from ._damage import raised_by_the_system, renamed
from ._errors import (
    ArrayPickleError,
    CorruptFileError,
    InvalidArgumentError,
    ResourceLimitError,
    describe,
)
from ._memory import byte_view

# What io.RawIOBase subclasses inherit when they implement read() alone.
_UNIMPLEMENTED = io.RawIOBase.readinto


def readinto_of(src: Any) -> Any:
    """``src.readinto``, or None when ``src`` has none of its own: an io.RawIOBase that
    implements only ``read`` inherits a ``readinto`` that raises NotImplementedError
    (io.UnsupportedOperation from the pure-Python ``_pyio.RawIOBase``). ``Readable``
    promises ``read`` alone, so such a file must load."""
    readinto = getattr(src, "readinto", None)
    if readinto is None:
        return None
    inherited = getattr(type(src), "readinto", None)
    # Only a subclass of _pyio's class can inherit its method, and it imported _pyio.
    pyio = sys.modules.get("_pyio")
    if inherited is _UNIMPLEMENTED or (pyio is not None and inherited is pyio.RawIOBase.readinto):
        return None
    return readinto


def read_into(src: Any, readinto: Any, b: Any) -> int:
    """One read of ``src`` into ``b``: with ``readinto`` (``readinto_of(src)``), else
    with ``read`` and a copy; ``None`` refused (see :func:`given`)."""
    if readinto is not None:
        return given(readinto(b), src)
    view = memoryview(b).cast("B")
    data = given(src.read(len(view)), src)
    view[: len(data)] = data
    return len(data)


def is_plain_file(src: Any) -> bool:
    """Whether ``src`` is what ``open()`` returns for reading: an ``io.FileIO``, or io's
    buffered reader over one (not a subclass, nor a raw file of another kind)."""
    return type(src) is io.FileIO or (
        type(src) in _OPEN_BUFFERED and type(getattr(src, "raw", None)) is io.FileIO
    )


_OPEN_BUFFERED = (io.BufferedReader, io.BufferedRandom)


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
        return read_into(self._src, readinto_of(self._src), view)

    def read(self, size: int | None = -1) -> bytes:
        if size is None:  # "all of it", as io's readers take it
            size = -1
        if self._head and 0 <= size <= len(self._head):
            out, self._head = self._head[:size], self._head[size:]
            return out
        if self._head:
            out, self._head = self._head, b""
            rest = self._src.read(-1 if size < 0 else size - len(out))
            return out + (rest or b"")
        return self._src.read(size)

    def read1(self, size: int = -1) -> bytes:
        """What is at hand: the rest of the head, else one read of the source (``read1``
        when it has one), so that a live stream's reader never waits for more."""
        if self._head:
            return self.read(len(self._head) if size < 0 else min(size, len(self._head)))
        read1 = getattr(self._src, "read1", None)
        return given((read1 if read1 is not None else self._src.read)(size), self._src)

    def readinto1(self, b: Any) -> int:
        if self._head:
            return self.readinto(b)
        return read_some_into(self._src, b)

    def peek(self, size: int = 0) -> bytes:
        if self._head:
            return self._head
        peek = getattr(self._src, "peek", None)
        return peek(size) if peek is not None else b""

    def readline(self, size: int | None = -1) -> bytes:
        if self._head or not hasattr(self._src, "readline"):
            return super().readline(size)
        return self._src.readline(size)


def given(got: Any, src: Any) -> Any:
    """What a read of ``src`` gave; ``None`` is a raw file in non-blocking mode with
    nothing to give yet, not the end of the input (which a truncated file looks like)."""
    if got is None:
        # Not CorruptFileError: the file is not at fault (a cache would delete it).
        raise InvalidArgumentError(
            f"{describe(src)} gave no data{_at(src)}, as a file object in non-blocking "
            "mode does: load needs a blocking one"
        )
    return got


def _at(src: Any) -> str:
    """`` at offset N`` where ``src`` stopped, when it can tell."""
    try:
        return f" at offset {int(src.tell())}" if src.seekable() else ""
    except Exception:  # the message must not fail in a source's own way
        return ""


def refusing_nothing_yet(src: Any) -> Any:
    """``src``, or a view of it whose reads refuse ``None`` (see :func:`given`) for every
    reader behind the load: codecs, the safe scan, joblib's reader, progress counting.

    A raw file answers ``None`` in non-blocking mode, and so does an io buffered reader
    over one. Files that ``open()`` returns, whose descriptor the load has checked is
    in blocking mode, and ``io.BytesIO`` never do: they are returned as they are, so
    the common file objects pay nothing.
    """
    if type(src) is io.BytesIO or is_plain_file(src):
        return src
    return _NothingYetRefused(src)


class _NothingYetRefused:
    """What :func:`refusing_nothing_yet` returns: the reads checked, the rest ``src``'s."""

    def __init__(self, src: Any) -> None:
        self._src = src
        self._readinto = readinto_of(src)

    def read(self, size: int | None = -1) -> bytes:
        return given(self._src.read(size), self._src)

    def readinto(self, b: Any) -> int:
        return read_into(self._src, self._readinto, b)

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._src, "read1", None)
        return given((read1 or self._src.read)(size), self._src)

    def readinto1(self, b: Any) -> int:
        readinto1 = getattr(self._src, "readinto1", None)
        if readinto1 is None:
            return self.readinto(b)
        return given(readinto1(b), self._src)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)


def read_some_into(src: Any, b: Any) -> int:
    """Fill some of ``b`` from ``src`` without waiting for more than its first byte:
    ``readinto1`` or ``read1`` when ``src`` has them (a ``BufferedReader`` over a socket
    or a pipe), else ``readinto``/``read``. 0 only at the end of the input."""
    view = memoryview(b).cast("B")
    if not len(view):
        return 0
    readinto1 = getattr(src, "readinto1", None)
    if readinto1 is not None:
        return given(readinto1(view), src)
    read1 = getattr(src, "read1", None)
    if read1 is None:
        return read_into(src, readinto_of(src), view)
    data = given(read1(len(view)), src)
    view[: len(data)] = data
    return len(data)


class ShortReads(io.RawIOBase):
    """A non-seekable source whose reads return what has arrived, not what was asked.

    ``read(n)`` and ``readinto(b)`` wait for one byte at least, never for ``n`` (a
    ``BufferedReader`` over a socket waits for all ``n`` or the end of the input: a
    sender that keeps the connection open would hang the load forever). b'' means the
    end of the input; a short read means nothing. Codec readers get this object when
    ``load`` reads a file object that cannot seek.
    """

    def __init__(self, src: Any) -> None:
        super().__init__()
        self._src = src
        self.name = getattr(src, "name", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return read_some_into(self._src, b)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._src.read()  # to the end of the input, by the caller's choice
        if not size:
            return b""
        read1 = getattr(self._src, "read1", None)
        return given((read1 if read1 is not None else self._src.read)(size), self._src)

    read1 = read
    readinto1 = readinto


def read_full(stream: Any, n: int) -> bytes:
    """``n`` bytes of ``stream``, fewer only at its end, however short its reads are
    (a socket's hand out what has arrived); a stream with nothing to give yet is
    refused (:func:`given`), not taken for one at its end."""
    data = b""
    while len(data) < n:
        more = given(stream.read(n - len(data)), stream)
        if not more:
            break
        data += more
    return bytes(data)


def is_seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


# LZ4 and Zstandard streams may begin with skippable frames (magic 50..5F 2A 4D 18, a
# 4-byte little-endian size, that many bytes; pzstd writes one before its data), which
# their readers pass over: the first frame after them names the codec.
SKIPPABLE_MAGICS = frozenset(n.to_bytes(4, "little") for n in range(0x184D2A50, 0x184D2A60))
FRAMED_MAGICS = frozenset({b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd"})  # LZ4, Zstandard
# Skippable bytes read, at most, to find the frame after them (pzstd's frame holds 4).
SKIPPABLE_SNIFF_MAX = 64 << 10


def after_skippable(head: bytes) -> tuple[bool, int]:
    """Where the first frame after ``head``'s leading skippable frames starts:
    ``(True, offset)`` (offset 0 when there are none), or ``(False, n)`` when ``head``
    ends before that frame's magic does, ``n`` being the bytes needed to go on."""
    pos = 0
    while head[pos : pos + 4] in SKIPPABLE_MAGICS:
        if len(head) < pos + 8:
            return False, pos + 8
        pos += 8 + int.from_bytes(head[pos + 4 : pos + 8], "little")
    return (True, pos) if len(head) >= pos + 4 else (False, pos + 4)


def sniff(stream: Any, magics: Iterable[bytes]) -> tuple[bytes, Any]:
    """Read enough of ``stream`` to tell which magic (if any) it starts with.

    Returns what was read and a stream positioned back where ``stream`` was: the same
    object, sought back, or a :class:`Prefixed` one. A non-seekable stream is read
    one byte at a time, never further than the longest magic it could still match,
    so that objects written back to back can be read one by one. Among ``magics``, an
    LZ4 or Zstandard one also matches after skippable frames (:func:`after_skippable`):
    the head then holds them too, and nothing after the next frame's magic.
    """
    magics = [m for m in magics if m]
    if FRAMED_MAGICS.intersection(magics):
        magics += SKIPPABLE_MAGICS
    head = _read_head(stream, magics)
    while head[:4] in SKIPPABLE_MAGICS:
        done, need = after_skippable(head)
        if done or need > SKIPPABLE_SNIFF_MAX:
            break
        more = read_full(stream, need - len(head))
        head += more
        if len(head) < need:  # the end of the input
            break
    if is_seekable(stream):
        stream.seek(-len(head), os.SEEK_CUR)
        return head, stream
    return head, Prefixed(head, stream)


def _read_head(stream: Any, magics: list[bytes]) -> bytes:
    longest = max(map(len, magics), default=0)
    if is_seekable(stream):
        return read_full(stream, longest)
    head = b""
    while len(head) < longest and any(m.startswith(head) and m != head for m in magics):
        if any(head == m for m in magics):
            break
        byte = given(stream.read(1), stream)  # None: not the end, but a non-blocking file
        if not byte:
            break
        head += byte
    return head


def _reads_its_descriptor(stream: Any) -> bool:
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
    if _reads_its_descriptor(stream):
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
        self._readinto = readinto_of(src)
        self.name = getattr(src, "name", None)

    def readable(self) -> bool:
        return True

    @property
    def offset(self) -> int:
        """Decompressed bytes delivered so far."""
        return self._offset

    def _damaged(self, text: str, kind: type[CorruptFileError] = CorruptFileError) -> Any:
        return kind(f"{text} (at or after decompressed offset {self._offset})")

    def _call(self, method: Any, arg: Any) -> Any:
        try:
            return method(arg)
        except CorruptFileError as exc:
            # A refusal by limit stays one; an inner EmptyFileError is damage here (an
            # EOFError would end a caller's loop over objects as if all were read).
            kind = ResourceLimitError if isinstance(exc, ResourceLimitError) else CorruptFileError
            raise self._damaged(str(renamed(exc, self._name)), kind) from exc
        except ArrayPickleError:
            raise
        except MemoryError as exc:
            text = f"{self._where} needs more memory than there is: a damaged header?"
            raise self._damaged(text) from exc
        except Exception as exc:
            if raised_by_the_system(exc):
                raise  # the caller's file or disk failed (EIO, a timeout): not damage
            raise self._damaged(f"{self._where} is damaged: {exc!r}") from exc

    def call(self, fn: Any) -> Any:
        """``fn()`` (a member of the codec's reader), its failures converted likewise."""
        return self._call(lambda _: fn(), None)

    def bug(self, text: str) -> ArrayPickleError:
        """The error for a codec's reader breaking its contract: not the file's fault,
        so not CorruptFileError, which would send a cache to delete a good file."""
        return ArrayPickleError(f"{self._where}: the codec's reader {text} (a bug in the codec)")

    def _oversized(self, got: int, asked: int) -> None:
        if got > asked:
            raise self.bug(f"returned {got} bytes when asked for {asked}")

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._readinto is None:
            data = self._call(self._src.read, len(view))
            self._oversized(len(data), len(view))
            view[: len(data)] = data
            done = len(data)
        else:
            done = self._call(self._readinto, b) or 0
            self._oversized(done, len(view))
        self._offset += done
        return done

    def read(self, size: int = -1) -> bytes:
        data = self._call(self._src.read, size)
        if size is not None and size >= 0:
            self._oversized(len(data), size)
        self._offset += len(data)
        return data

    def close_reader(self) -> None:
        """Close the codec's reader; its failure, a bug in the codec, names the file."""
        try:
            self._src.close()
        except ArrayPickleError:
            raise
        except Exception as exc:
            raise ArrayPickleError(f"{self._where}: closing its reader failed: {exc!r}") from exc


class WholeWrites:
    """The caller's file object, every ``write`` carried out in full.

    Raw files may write less than they are given, and codecs from plugins may not loop
    (their ``write`` calls are the caller's file's): the rest is written here. ``None``
    from an :class:`io.RawIOBase` means a non-blocking file accepted nothing.
    """

    def __init__(self, fileobj: Any) -> None:
        self._f = fileobj
        self._raw = isinstance(fileobj, io.RawIOBase)

    def write(self, data: Any) -> int:
        view = byte_view(data)
        total = len(view)
        done = self._f.write(view)
        while done is not None and done < total:
            step = self._f.write(view[done:])
            if not step:
                if step is None and self._raw:
                    break
                raise OSError(f"{describe(self._f)}: short write, {done} of {total} bytes")
            done += step
        if done is None and not self._raw:
            return total  # a duck-typed writer that returns nothing wrote it all
        if done is None or done < total:
            raise BlockingIOError(
                errno.EAGAIN,
                f"{describe(self._f)} is non-blocking and took {done or 0} of {total} "
                "bytes: dump needs a blocking file object",
            )
        return total

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class LiveLoad:
    """What one load from a file object that cannot seek learnt about where it stopped.

    Such a source may be a live stream: a socket whose sender waits for an answer, a
    pipe whose writer goes on. The load stops at the container's end record; for a
    compressed object, at the end of the codec stream that holds it (when the codec's
    reader has ``finish_stream``). A decoder may still have read input past that end,
    which belongs to whatever follows (the next object): ``overread`` counts it.
    """

    def __init__(self) -> None:
        self.compressed = False
        #: Input bytes read past the object's codec stream (None: not known).
        self.overread: int | None = 0


def finish_live(guarded: Guarded, reader: Any, live: LiveLoad) -> None:
    """After the object's end, from a source that cannot seek: read the rest of the
    codec stream that held it (its trailer, checked) when ``reader`` can
    (``finish_stream``), and never look for more (no trailing-data check, no search
    for a further stream). ``guarded`` wraps ``reader``."""
    live.compressed = True
    finish = getattr(reader, "finish_stream", None)
    if finish is None:
        live.overread = None
        return
    overread = guarded.call(finish)
    live.overread = overread if isinstance(overread, int) else None


def finish_seekable(guarded: Guarded, reader: Any) -> int | None:
    """After the object's end, from a file object that can seek: end the read with
    the codec stream that held it, as :func:`finish_live` does, and return how many
    input bytes ``reader`` read past that stream's end (for the caller to seek back
    over). None: ``reader`` cannot tell (it has no ``finish_stream``, or that answers
    None), and the stream is to be checked for trailing data instead."""
    finish = getattr(reader, "finish_stream", None)
    if finish is None:
        return None
    overread = guarded.call(finish)
    if overread is not None and (type(overread) is not int or overread < 0):
        raise guarded.bug(f"finish_stream answered {overread!r}, not a count of bytes")
    return overread


# File objects whose last load lost input (an int) or may have (None): the next load
# from them explains itself rather than failing on what looks like a damaged file.
_LOST: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()

_BACK_TO_BACK = (
    "compressed objects sent back to back cannot be loaded one by one from a stream "
    "that cannot seek: the decoder of one reads ahead into the next (send each after "
    "the receiver answered, or send them uncompressed, or compress the whole stream)"
)


def check_resumable(src: Any, name: str) -> None:
    """Refuse to load from ``src`` when its previous load read into what follows."""
    try:
        lost = _LOST.get(src)
    except TypeError:  # not weakly referenceable
        return
    if lost:
        raise CorruptFileError(
            f"{name}: the previous load of a compressed object from this stream read "
            f"{lost} bytes past the end of its codec stream: {_BACK_TO_BACK}"
        )


def remember(src: Any, live: LiveLoad) -> None:
    """Record where ``live``'s load from ``src`` left the stream (see check_resumable)."""
    try:
        if live.compressed and live.overread != 0:
            _LOST[src] = live.overread
        else:
            _LOST.pop(src, None)
    except TypeError:
        pass


def explain(src: Any, exc: CorruptFileError) -> CorruptFileError:
    """``exc``, with the likely cause when the previous load from ``src`` may have read
    past its object (a codec without ``finish_stream``)."""
    try:
        suspect = src in _LOST
    except TypeError:
        return exc
    if not suspect:
        return exc
    return type(exc)(  # an EmptyFileError stays one: a loop's `except EOFError` stops
        f"{exc} (the previous load from this stream, of a compressed object, may have "
        f"read past its end: {_BACK_TO_BACK})"
    )
