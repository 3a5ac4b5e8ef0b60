"""File objects over the standard library's incremental compressors and decompressors.

One writer and one reader serve zlib, gzip, bz2, lzma and xz. Both hold bounded memory
whatever the size of a single ``write`` or ``readinto``: input is fed and output taken
in pieces. ``gzip.GzipFile`` and friends are not used because their ``write`` returns
the compressed form of the whole argument at once, and there is no zlib file in the
standard library.
"""

from __future__ import annotations

import collections
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from .._damage import raised_by_the_system
from .._errors import ArrayPickleError, CorruptFileError, ResourceLimitError, describe
from .._memory import byte_view
from .._parallel import ReadAhead, copy_into
from .._streams import is_seekable
from .._writer import write_all

# Input fed to a compressor per call: its output for one piece is held in memory.
WRITE_PIECE = 1 << 20
# Compressed bytes read per call, and decompressed bytes produced per call at most.
READ_PIECE = 256 << 10
OUTPUT_PIECE = 4 << 20
# With threads, decompression moves to a helper thread at the first read into a buffer
# at least AHEAD_READ big (an array's payload) once AHEAD_AFTER bytes were decoded
# (small loads start no thread), and hands out pieces of AHEAD_PIECE. Not at smaller
# reads: while the caller unpickles, it holds the GIL, and a helper decoding ahead only
# contends for it (measured: zlib loads of a random forest and of a dict of floats,
# pickle opcodes and arrays under 256 KB, were 6-15% slower with the helper than
# without, while big arrays gain from it).
AHEAD_READ = 512 << 10
AHEAD_AFTER = 1 << 20
AHEAD_PIECE = 1 << 20

DECOMPRESS_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)

# liblzma allocates the dictionary a stream's header declares (up to 1.5 GiB for xz,
# 4 GiB for .lzma) before decoding a byte: a 156 KB file took 1.07 GB to load. xz's
# largest preset decodes in 65 MiB (xz(1)); dictionaries over four times its 64 MiB are
# refused (the decoder needs a little more than its dictionary: 257 MiB for 256 MiB).
LZMA_DICT_LIMIT_MIB = 256
LZMA_MEMLIMIT = (LZMA_DICT_LIMIT_MIB + 16) << 20


def lzma_decompressor(format: int) -> lzma.LZMADecompressor:
    """A decoder of ``format`` (``lzma.FORMAT_XZ`` or ``FORMAT_ALONE``), held to
    ``LZMA_MEMLIMIT``."""
    return lzma.LZMADecompressor(format, memlimit=LZMA_MEMLIMIT)


class CompressWriter(io.RawIOBase):
    """Feeds everything written through ``compressor`` into ``fileobj``, after
    ``magic`` (for a codec whose compressor does not write the magic itself)."""

    def __init__(self, fileobj: Any, compressor: Any, *, magic: bytes = b"") -> None:
        super().__init__()
        self._fp = fileobj
        self._compressor = compressor
        if magic:
            try:
                write_all(fileobj.write, magic)
            except BaseException:
                # Nothing to finish: without this, the finalizer's close() would write
                # the compressor's trailer to the failing file (Python 3.13 reports it).
                super().close()
                raise

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = byte_view(data)
        for start in range(0, len(view), WRITE_PIECE):
            out = self._compressor.compress(view[start : start + WRITE_PIECE])
            if out:
                write_all(self._fp.write, out)
        return len(view)

    def close(self) -> None:
        if not self.closed:
            try:
                write_all(self._fp.write, self._compressor.flush())
            finally:
                super().close()


class Inflater:
    """zlib's decompressobj with the ``needs_input`` interface of bz2 and lzma."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._tail:
            data = self._tail + data if data else self._tail
        out = self._d.decompress(data, max_length)
        self._tail = self._d.unconsumed_tail
        return out


class _Decoder:
    """The decompression of a :class:`DecompressReader`: bytes of ``fp`` in, data out."""

    def __init__(
        self, fp: Any, new_decompressor: Callable[[], Any], codec: str, multistream: bool
    ) -> None:
        self.fp = fp
        self._name = describe(fp)
        self._new = new_decompressor
        self._d = new_decompressor()
        self._codec = codec
        self._multistream = multistream
        self._eof = False
        #: Set by :meth:`DecompressReader.finish_stream`: end with the current stream.
        self.final = False
        #: Bytes taken from ``fp`` and bytes decompressed, so far.
        self.taken = 0
        self.produced = 0
        #: Where streams ended, as (decompressed, input) byte counts, from the one the
        #: reader is in on: where an object ending with a stream leaves the file. The
        #: helper thread appends, the reader forgets (a deque: both at once is safe).
        self.ends: collections.deque[tuple[int, int]] = collections.deque()

    def _damaged(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{self._name}: {self._codec} stream {what}")

    def more(self, max_length: int) -> bytes:
        """The next decompressed bytes (at most ``max_length``); b'' at the end."""
        try:
            while not self._eof:
                d = self._d
                if d.eof:
                    self.ends.append((self.produced, self.taken - len(d.unused_data)))
                    if self.final:  # never look past it: the sender may be waiting
                        self._eof = True
                        break
                    if not self._next_stream(d.unused_data):
                        self._eof = True
                        break
                    continue
                data = b""
                if d.needs_input:
                    data = self._read(READ_PIECE)
                    if not data:
                        out = d.decompress(b"", max_length)
                        if out:
                            self.produced += len(out)
                            return out
                        raise self._damaged("is truncated")
                out = d.decompress(data, max_length)
                if out:
                    self.produced += len(out)
                    return out
        except DECOMPRESS_ERRORS as exc:
            # Ours: damage said elsewhere, or the source's "nothing yet" (not damage);
            # or the system's, under the source (a disk's EIO, a timeout).
            if isinstance(exc, ArrayPickleError) or raised_by_the_system(exc):
                raise
            if isinstance(exc, lzma.LZMAError) and "Memory usage limit" in str(exc):
                raise ResourceLimitError(
                    f"{self._name}: {self._codec} stream asks for a dictionary of over "
                    f"{LZMA_DICT_LIMIT_MIB} MiB (xz's largest preset uses 64 MiB): refused "
                    "as a possible decompression bomb; decompress it with xz -d first if "
                    "you trust it"
                ) from exc
            raise self._damaged(f"is damaged: {exc}") from exc
        return b""

    def _read(self, n: int) -> bytes:
        data = self.fp.read(n)
        self.taken += len(data)
        return data

    def forget_before(self, produced: int) -> None:
        """Drop the ends noted before ``produced`` decompressed bytes (files of many
        small members would pile them up)."""
        ends = self.ends
        while ends and ends[0][0] < produced:
            ends.popleft()

    def ended_at(self, produced: int) -> int | None:
        """The input count where a stream ended after ``produced`` decompressed
        bytes; None when none did (so far)."""
        self.forget_before(produced)
        ends = self.ends
        return ends[0][1] if ends and ends[0][0] == produced else None

    def pieces(self, feed: Any) -> Iterator[bytes]:
        """From now on, read from ``feed``; yield every remaining piece (a helper's loop)."""
        self.fp = feed
        while out := self.more(AHEAD_PIECE):
            yield out

    def _next_stream(self, rest: bytes) -> bool:
        """After one stream ends: start the next, if any, fed with ``rest``."""
        if not self._multistream:
            if rest or self._read(1):
                raise self._damaged("is followed by unexpected data")
            return False
        while True:
            rest = rest.lstrip(b"\0")
            if rest:
                break
            rest = self._read(READ_PIECE)
            if not rest:
                return False
        self._d = _Primed(self._new(), rest)
        return True


class DecompressReader(io.RawIOBase):
    """Reads what ``new_decompressor()`` makes of ``fileobj``.

    With ``multistream``, streams that follow one another (gzip members, bz2 and xz
    streams, with zero padding between) read as one, as the command-line tools do.
    With ``threads`` > 1, from the first ``readinto`` of :data:`AHEAD_READ` bytes or
    more after :data:`AHEAD_AFTER` bytes were decoded, the decompressor moves to a
    helper thread that runs ahead of the reader
    (:class:`arraypickle.codec.ReadAhead`), fed by the reader's thread.
    """

    def __init__(
        self,
        fileobj: Any,
        new_decompressor: Callable[[], Any],
        *,
        codec: str,
        multistream: bool,
        threads: int = 1,
    ) -> None:
        super().__init__()
        self._fp = fileobj
        self._dec = _Decoder(fileobj, new_decompressor, codec, multistream)
        # From a source that cannot seek (maybe a socket whose sender waits for an
        # answer), decoding stays in the calling thread, which then reads exactly what
        # the decoder needs and can stop it at the end of a stream (finish_stream).
        self._threads = threads if is_seekable(fileobj) else 1
        #: Decompressed bytes handed out by _more: where the reader is in the output.
        self._given = 0
        self._ahead: ReadAhead | None = None
        self._ahead_from = 0  # input the decoder had read when the helper took over
        self._piece = memoryview(b"")
        self._piece_pos = 0
        self._buf = b""
        self._buf_pos = 0

    def readable(self) -> bool:
        return True

    def _more(self, max_length: int, big: bool = False) -> Any:
        """The next decompressed bytes (at most ``max_length``); b'' at the end.
        ``big``: they go into a buffer of at least :data:`AHEAD_READ` bytes."""
        if self._ahead is None:
            if self._threads < 2 or not big or self._given < AHEAD_AFTER:
                out = self._dec.more(max_length)
                self._given += len(out)
                self._dec.forget_before(self._given)
                return out
            self._ahead_from = self._dec.taken
            self._ahead = ReadAhead(self._fp, self._dec.pieces, piece=READ_PIECE)
        if self._piece_pos >= len(self._piece):
            self._piece, self._piece_pos = memoryview(self._ahead.next()), 0
            if not self._piece:
                return b""
        start = self._piece_pos
        self._piece_pos = min(len(self._piece), start + max_length)
        self._given += self._piece_pos - start
        self._dec.forget_before(self._given)
        return self._piece[start : self._piece_pos]

    def finish_stream(self) -> int | None:
        """End the read with the current stream, the one that held the object.

        Reads the rest of that stream (its trailer, checked) and nothing after it:
        what the codec contract's ``finish_stream`` asks. Returns how many bytes were
        read from the file past the stream's end.

        Raises:
            CorruptFileError: the stream holds decompressed data after the object.
        """
        if self._buf_pos < len(self._buf) or self._piece_pos < len(self._piece):
            raise self._dec._damaged("holds data after the object")
        if self._ahead is not None:
            return self._finish_ahead()
        dec = self._dec
        dec.final = True
        if dec.more(1):
            raise dec._damaged("holds data after the object")
        taken = dec.ended_at(self._given)
        return None if taken is None else dec.taken - taken

    def _finish_ahead(self) -> int:
        """finish_stream, the helper thread decoding (a seekable source): it may have
        gone on into the next stream, so the helper runs until the stream holding the
        object has ended, and the input it read past that end is counted."""
        ahead, dec, end = self._ahead, self._dec, self._given
        assert ahead is not None
        try:
            while (taken := dec.ended_at(end)) is None:
                try:
                    ahead.next()
                except CorruptFileError:
                    # What followed the stream is not ours to judge: the next load's.
                    if dec.ended_at(end) is None:
                        raise
                else:
                    if dec.ended_at(end) is None:
                        # The decoder notes a stream's end before it decodes what
                        # follows: these bytes (or its end) come from the object's stream.
                        raise dec._damaged("holds data after the object")
        finally:
            ahead.close()
            self._ahead = None
        return self._ahead_from + ahead.read_bytes - taken

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        super().close()

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        if self._buf_pos < len(self._buf):
            take = min(len(view), len(self._buf) - self._buf_pos)
            view[:take] = self._buf[self._buf_pos : self._buf_pos + take]
            self._buf_pos += take
            done = take
        big = len(view) >= AHEAD_READ
        while done < len(view):
            out = self._more(min(len(view) - done, OUTPUT_PIECE), big)
            if not out:
                break
            copy_into(view[done : done + len(out)], out)
            done += len(out)
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        have = len(self._buf) - self._buf_pos
        if have < size < READ_PIECE:
            # Small reads (record headers) are served from a local buffer refilled a
            # piece at a time, rather than costing a decompressor call each.
            parts = [self._buf[self._buf_pos :]]
            while have < size:
                more = self._more(READ_PIECE)
                if not more:
                    break
                parts.append(more)
                have += len(more)
            self._buf, self._buf_pos = b"".join(parts), 0
        if have >= size or size < READ_PIECE:
            out = self._buf[self._buf_pos : self._buf_pos + size]
            self._buf_pos += len(out)
            return out
        buf = bytearray(size)
        del buf[self.readinto(buf) :]
        return bytes(buf)


class _Primed:
    """A fresh decompressor that first consumes input already read from the file."""

    def __init__(self, inner: Any, pending: bytes) -> None:
        self._inner = inner
        self._pending = pending

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def needs_input(self) -> bool:
        return not self._pending and self._inner.needs_input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending + data, b""
        return self._inner.decompress(data, max_length)
