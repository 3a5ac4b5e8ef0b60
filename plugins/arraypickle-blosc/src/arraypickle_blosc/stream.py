"""The arraypickle blosc stream: Blosc chunks in checked frames (see ``docs/format.md``).

Blosc compresses buffers, not streams, and is fastest when told the element size so it
can shuffle bytes by position within an element. This stream cuts what is written into
chunks of at most :data:`CHUNK` bytes, compresses each with the element size of the
array it came from (``write_array``) and frames them:

    header  = magic(8) major(1) minor(1) reserved(2) crc32(4)
    frame   = kind(1) reserved(1) flags(2) payload_len(4) data_len(4) crc32(4)
              payload checksum(8)
    stream  = header "C"-frame* "E"-frame

Each ``C`` payload is one Blosc-1 chunk; the ``E`` payload counts the bytes and chunks.
Headers carry a CRC-32 of their first 12 bytes, payloads an xxh3-64 checksum, so damage
is found before Blosc sees the data.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import blosc
import numpy as np
import xxhash

from arraypickle import CorruptFileError

MAGIC = b"\x89BLF\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0
HEADER = struct.Struct("<8sBBH")  # + CRC-32
FRAME = struct.Struct("<cBHII")  # + CRC-32
CRC = struct.Struct("<I")
CHECKSUM = struct.Struct("<Q")
END = struct.Struct("<QQ")
KIND_CHUNK, KIND_END = b"C", b"E"

#: Largest decompressed chunk a reader accepts, and what the writer produces.
MAX_CHUNK = 16 << 20
CHUNK = 4 << 20
#: Blosc's worst-case growth of a chunk (its header).
BLOSC_OVERHEAD = 16
#: Array pieces smaller than this join the byte stream instead of a frame of their own.
SMALL_ARRAY = 64 << 10
#: Blosc's internal compressor, and the shuffle used for every chunk.
CNAME = "lz4"
SHUFFLE = blosc.SHUFFLE

digest = xxhash.xxh3_64_intdigest


def _with_crc(body: bytes) -> bytes:
    return body + CRC.pack(zlib.crc32(body))


def _address(view: memoryview) -> int:
    return np.frombuffer(view, np.uint8).__array_interface__["data"][0]


def _name(fileobj: Any) -> str:
    name = getattr(fileobj, "name", None)
    return repr(name) if isinstance(name, str) and name else f"<{type(fileobj).__name__}>"


class _Threads:
    """Blosc's thread count is process-wide: set it for one stream, then put it back."""

    def __init__(self, threads: int | None) -> None:
        self._old = blosc.set_nthreads(threads) if threads else None

    def restore(self) -> None:
        if self._old is not None:
            blosc.set_nthreads(self._old)
            self._old = None


class BloscWriter(io.RawIOBase):
    """Writes a blosc stream into ``fileobj``; ``write_array`` tells it element sizes."""

    def __init__(self, fileobj: Any, level: int, threads: int | None = None) -> None:
        super().__init__()
        self._fp = fileobj
        self._level = level
        self._pending = bytearray()
        self._total = 0
        self._chunks = 0
        self._threads = _Threads(threads)
        try:
            self._fp.write(_with_crc(HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, 0)))
        except BaseException:
            self._threads.restore()
            super().close()  # so that nothing more is written when it is collected
            raise

    def writable(self) -> bool:
        return True

    def _frame(self, kind: bytes, payload: bytes, data_len: int) -> None:
        head = _with_crc(FRAME.pack(kind, 0, 0, len(payload), data_len))
        self._fp.write(head)
        self._fp.write(payload)
        self._fp.write(CHECKSUM.pack(digest(payload)))

    def _chunk(self, view: Any, typesize: int) -> None:
        payload = blosc.compress(view, typesize, self._level, SHUFFLE, CNAME)
        self._frame(KIND_CHUNK, payload, len(view))
        self._total += len(view)
        self._chunks += 1

    def _flush_pending(self) -> None:
        if self._pending:
            self._chunk(self._pending, 1)
            self._pending.clear()

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        if len(self._pending) + n < CHUNK:
            self._pending += view
            return n
        self._flush_pending()
        while len(view) >= CHUNK:
            self._chunk(view[:CHUNK], 1)
            view = view[CHUNK:]
        self._pending += view
        return n

    def write_array(self, data: Any, itemsize: int) -> int:
        """Write array bytes whose elements are ``itemsize`` bytes (shuffled by element)."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        if n < SMALL_ARRAY:
            return self.write(view)
        typesize = itemsize if 1 <= itemsize <= blosc.MAX_TYPESIZE else 1
        step = CHUNK - CHUNK % typesize
        self._flush_pending()
        for start in range(0, n, step):
            self._chunk(view[start : start + step], typesize)
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._flush_pending()
            self._frame(KIND_END, END.pack(self._total, self._chunks), 0)
        finally:
            self._threads.restore()
            super().close()


class BloscReader(io.RawIOBase):
    """Reads the blosc stream that starts at ``fileobj``'s position.

    Chunks that fit in the caller's buffer are decompressed straight into it.
    """

    def __init__(self, fileobj: Any, threads: int | None = None) -> None:
        super().__init__()
        self._fp = fileobj
        self._total = 0
        self._chunks = 0
        self._eof = False
        self._out = b""
        self._out_pos = 0
        self.name = getattr(fileobj, "name", None)
        raw = self._exact(HEADER.size + CRC.size, "the stream header")
        magic, major, _minor, _reserved = HEADER.unpack(raw[: HEADER.size])
        if magic != MAGIC:
            raise self._corrupt("does not start with the blosc stream magic")
        if CRC.unpack(raw[HEADER.size :])[0] != zlib.crc32(raw[: HEADER.size]):
            raise self._corrupt("has a damaged header (CRC mismatch)")
        if major != VERSION_MAJOR:
            raise self._corrupt(f"has format version {major}, this reader knows 1")
        self._threads = _Threads(threads)  # once nothing can fail: close() restores it

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if hasattr(self, "_threads"):
            self._threads.restore()
        super().close()

    def _corrupt(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{_name(self._fp)}: blosc stream {what}")

    def _exact(self, n: int, what: str) -> bytes:
        data = self._fp.read(n)
        while len(data) < n:
            more = self._fp.read(n - len(data))
            if not more:
                raise self._corrupt(f"is truncated ({what})")
            data += more
        return data

    def _next_frame(self) -> tuple[bytes, bytes, int]:
        """The next frame's kind, checked payload and decompressed length."""
        raw = self._exact(FRAME.size + CRC.size, "a frame header")
        if CRC.unpack(raw[FRAME.size :])[0] != zlib.crc32(raw[: FRAME.size]):
            raise self._corrupt("has a damaged frame header (CRC mismatch)")
        kind, _reserved, flags, payload_len, data_len = FRAME.unpack(raw[: FRAME.size])
        if kind == KIND_CHUNK:
            if not 1 <= data_len <= MAX_CHUNK or payload_len > data_len + BLOSC_OVERHEAD:
                raise self._corrupt(f"has a chunk of bad size ({payload_len} -> {data_len})")
        elif kind == KIND_END:
            if payload_len != END.size or data_len:
                raise self._corrupt("has an END frame of the wrong size")
        else:
            raise self._corrupt(f"has a frame of unknown kind {kind!r}")
        if flags:
            raise self._corrupt(f"has a frame with unknown flags {flags:#x}")
        payload = self._exact(payload_len, "a frame payload")
        (expected,) = CHECKSUM.unpack(self._exact(CHECKSUM.size, "a frame checksum"))
        if digest(payload) != expected:
            raise self._corrupt("has a damaged frame (checksum mismatch)")
        if kind == KIND_CHUNK:
            # What blosc.cbuffer_validate checks, without it: python-blosc 1.11.4's keeps
            # a reference to every buffer it is given, so each payload would leak.
            try:
                nbytes, cbytes, _ = blosc.get_cbuffer_sizes(payload)
            except Exception as exc:  # python-blosc raises its own error type
                raise self._corrupt(f"has a bad Blosc chunk: {exc}") from exc
            if nbytes != data_len or cbytes != payload_len:
                raise self._corrupt("has a Blosc chunk that disagrees with its frame")
        return kind, payload, data_len

    def _end(self, payload: bytes) -> None:
        total, chunks = END.unpack(payload)
        if (total, chunks) != (self._total, self._chunks):
            raise self._corrupt(
                f"ends after {self._total} bytes in {self._chunks} chunks, "
                f"its END frame counts {total} in {chunks}"
            )
        if self._fp.read(1):
            raise self._corrupt("is followed by unexpected data")
        self._eof = True

    def _decompress(self, payload: bytes, into: memoryview | None) -> bytes:
        try:
            if into is not None:
                blosc.decompress_ptr(payload, _address(into))
                return b""
            return blosc.decompress(payload)
        except Exception as exc:
            raise self._corrupt(f"has a Blosc chunk that does not decompress: {exc}") from exc

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        if self._out_pos < len(self._out):
            take = min(len(view), len(self._out) - self._out_pos)
            view[:take] = self._out[self._out_pos : self._out_pos + take]
            self._out_pos += take
            done = take
        while done < len(view) and not self._eof:
            kind, payload, data_len = self._next_frame()
            if kind == KIND_END:
                self._end(payload)
                break
            self._total += data_len
            self._chunks += 1
            room = len(view) - done
            if data_len <= room:
                self._decompress(payload, view[done : done + data_len])
                done += data_len
            else:
                self._out, self._out_pos = self._decompress(payload, None), room
                view[done:] = self._out[:room]
                done += room
        return done
