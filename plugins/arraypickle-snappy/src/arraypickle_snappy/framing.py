"""File objects over the snappy framing format, with bounded memory.

The format (github.com/google/snappy, ``framing_format.txt``) is a sequence of chunks,
each a 1-byte type, a 3-byte little-endian length and the data: ``FF`` the stream
identifier ``sNaPpY`` (first, and again wherever streams were concatenated), ``00``
compressed data, ``01`` uncompressed data (both with a masked CRC-32C of the
uncompressed bytes and at most 64 KiB of them), ``80``..``FE`` skippable, and ``02``..
``7F`` reserved (an error). It has no end marker: the stream ends with the file.

python-snappy compresses and checks CRCs; these classes cut the input and output into
bounded pieces around it, and find truncated chunks and reserved types themselves.
"""

from __future__ import annotations

import io
from typing import Any

import snappy

from arraypickle import CorruptFileError

STREAM_IDENTIFIER = b"\xff\x06\x00\x00sNaPpY"
MAX_CHUNK_DATA = 1 << 16
# Bytes handed to the compressor per call: whole 64 KiB chunks, so only the last
# chunk of a stream is short.
WRITE_PIECE = 16 * MAX_CHUNK_DATA
# Compressed bytes read per call, and chunks decompressed per call (<= 1 MiB out).
READ_PIECE = 256 << 10
CHUNKS_PER_CALL = 16


def _name(fileobj: Any) -> str:
    name = getattr(fileobj, "name", None)
    return repr(name) if isinstance(name, str) and name else f"<{type(fileobj).__name__}>"


class SnappyWriter(io.RawIOBase):
    """Writes everything written to it as one snappy framed stream into ``fileobj``."""

    def __init__(self, fileobj: Any) -> None:
        super().__init__()
        self._fp = fileobj
        self._compressor = snappy.StreamCompressor()
        self._pending = bytearray()
        self._started = False

    def writable(self) -> bool:
        return True

    def _emit(self, piece: Any) -> None:
        # python-snappy takes bytes only: one bounded copy per piece.
        out = self._compressor.compress(bytes(piece))
        if out:
            self._started = True
            self._fp.write(out)

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        if self._pending:
            take = min(n, WRITE_PIECE - len(self._pending))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < WRITE_PIECE:
                return n
            self._emit(self._pending)
            self._pending.clear()
        while len(view) >= WRITE_PIECE:
            self._emit(view[:WRITE_PIECE])
            view = view[WRITE_PIECE:]
        self._pending += view
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pending:
                self._emit(self._pending)
                self._pending.clear()
            if not self._started:  # an empty stream is the identifier alone
                self._fp.write(STREAM_IDENTIFIER)
        finally:
            super().close()


class SnappyReader(io.RawIOBase):
    """Reads the snappy framed stream that starts at ``fileobj``'s position."""

    def __init__(self, fileobj: Any) -> None:
        super().__init__()
        self._fp = fileobj
        self._decompressor = snappy.StreamDecompressor()
        self._in = bytearray()
        self._in_pos = 0
        self._seen_identifier = False
        self._out = b""
        self._out_pos = 0
        self.name = getattr(fileobj, "name", None)

    def readable(self) -> bool:
        return True

    def _corrupt(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{_name(self._fp)}: snappy stream {what}")

    def _have(self, n: int) -> bool:
        while len(self._in) - self._in_pos < n:
            more = self._fp.read(READ_PIECE)
            if not more:
                return False
            if self._in_pos:
                del self._in[: self._in_pos]
                self._in_pos = 0
            self._in += more
        return True

    def _buffered(self, n: int) -> bool:
        return len(self._in) - self._in_pos >= n

    def _next_complete(self, batch: list[bytes], wanted: int) -> bool:
        """Whether another chunk should join ``batch``, whose chunks decode to fewer
        than ``wanted`` bytes so far: the first one is waited for; later ones only if
        they are already read and not a stream identifier, so that a reader never
        waits for input it does not need (a socket's sender may be waiting for an
        answer) nor decodes a stream that follows its own. The format has no end mark:
        no chunk is taken once ``wanted`` is covered, since the object may end there
        and what follows it be the next one's (even if it looks like a chunk)."""
        if not batch:
            return self._have(4)
        if wanted <= 0 or len(batch) >= CHUNKS_PER_CALL or not self._buffered(4):
            return False
        start = self._in_pos
        if self._in[start] == 0xFF:
            # A stream identifier: maybe the start of whatever follows the object (the
            # next one sent back to back), which must not be decoded with this batch.
            return False
        length = int.from_bytes(self._in[start + 1 : start + 4], "little")
        return self._buffered(4 + length)

    def _next_chunks(self, wanted: int) -> bytes:
        """Decompress the next few chunks, for ``wanted`` bytes at most unless one
        chunk holds more; b'' at the end of the stream."""
        while True:
            batch: list[bytes] = []
            while self._next_complete(batch, wanted):
                start = self._in_pos
                kind = self._in[start]
                length = int.from_bytes(self._in[start + 1 : start + 4], "little")
                if not self._have(4 + length):
                    raise self._corrupt(f"is truncated (a chunk of {length} bytes)")
                start = self._in_pos  # _have may have moved the buffer
                chunk = bytes(self._in[start : start + 4 + length])
                self._in_pos += 4 + length
                if kind == 0xFF:
                    if chunk != STREAM_IDENTIFIER:
                        raise self._corrupt("has a bad stream identifier")
                    if not self._seen_identifier:
                        self._seen_identifier = True
                        batch.append(chunk)
                elif kind in (0x00, 0x01):
                    if not self._seen_identifier:
                        raise self._corrupt("does not start with its stream identifier")
                    if length < 5 or length > MAX_CHUNK_DATA + 4:
                        raise self._corrupt(f"has a data chunk of bad length {length}")
                    size = _varint(chunk, 8) if kind == 0x00 else length - 4
                    if size > MAX_CHUNK_DATA:
                        raise self._corrupt("has a chunk of more than 64 KiB")
                    batch.append(chunk)
                    wanted -= size
                elif kind < 0x80:
                    raise self._corrupt(f"has a chunk of reserved type {kind:#04x}")
            if not batch:
                if self._in_pos < len(self._in):
                    raise self._corrupt("is truncated (a chunk header)")
                if not self._seen_identifier:
                    raise self._corrupt("is empty")
                return b""
            try:
                out = self._decompressor.decompress(b"".join(batch))
            except Exception as exc:  # python-snappy raises what its backend raises
                raise self._corrupt(f"is damaged: {exc}") from exc
            if out:
                return out

    def finish_stream(self) -> int:
        """After the object's last byte (arraypickle's ``finish_stream``): the stream
        has no end mark, so nothing more is read. Returns the input bytes read past it.

        Raises:
            CorruptFileError: a chunk already decoded holds data after the object.
        """
        if self._out_pos < len(self._out):
            raise self._corrupt("holds data after the object")
        return len(self._in) - self._in_pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            if self._out_pos >= len(self._out):
                self._out, self._out_pos = self._next_chunks(len(view) - done), 0
                if not self._out:
                    break
            take = min(len(view) - done, len(self._out) - self._out_pos)
            view[done : done + take] = self._out[self._out_pos : self._out_pos + take]
            self._out_pos += take
            done += take
        return done


def _varint(data: bytes, start: int) -> int:
    """The little-endian base-128 varint at ``data[start:]`` (snappy's length preamble)."""
    value = shift = 0
    for byte in data[start : start + 5]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    return 1 << 32  # runs off the end or is too long: surely more than a chunk holds
