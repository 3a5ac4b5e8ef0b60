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

Chunks are compressed on arraypickle's thread pipeline (``threads`` threads, Blosc
itself in one thread per call, with the GIL released), and on load decompressed by
``threads`` threads straight into the destination array (``decompress_ptr``).
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any

import blosc
import numpy as np
import xxhash

from arraypickle.codec import ChunkedWriter, Frame, FramedReader

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
CHUNK = 1 << 20
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


class _Settings:
    """Blosc's process-wide settings while any stream is open, put back after the last.

    The stream's threads are arraypickle's: each Blosc call runs in one thread
    (``set_nthreads(1)``) with the GIL released (``set_releasegil(True)``, which makes
    python-blosc use Blosc's thread-safe ``_ctx`` functions), on several chunks at once.
    The settings are global, so streams open at the same time share them: the first to
    open saves the user's values and the last to close restores them, in whatever
    order the streams close.
    """

    _lock = threading.Lock()
    _open = 0
    _saved: tuple[int, bool] = (1, False)

    def __init__(self) -> None:
        with _Settings._lock:
            if _Settings._open == 0:
                _Settings._saved = (blosc.set_nthreads(1), blosc.set_releasegil(True))
            _Settings._open += 1
        self._active = True

    def restore(self) -> None:
        if not self._active:
            return
        self._active = False
        with _Settings._lock:
            _Settings._open -= 1
            if _Settings._open == 0:
                nthreads, gil = _Settings._saved
                blosc.set_nthreads(nthreads)
                blosc.set_releasegil(gil)


def _frame(kind: bytes, payload: bytes, data_len: int) -> tuple[bytes, bytes, bytes]:
    head = _with_crc(FRAME.pack(kind, 0, 0, len(payload), data_len))
    return head, payload, CHECKSUM.pack(digest(payload))


def _compress(view: memoryview, typesize: int, level: int) -> tuple[bytes, bytes, bytes]:
    """One ``C`` frame of ``view`` (on a worker thread)."""
    return _frame(KIND_CHUNK, blosc.compress(view, typesize, level, SHUFFLE, CNAME), len(view))


class BloscWriter(ChunkedWriter):
    """Writes a blosc stream into ``fileobj``; ``write_array`` tells it element sizes."""

    chunk_size = CHUNK
    # Arrays of more than one chunk are compressed in place (Blosc runs near memory
    # speed, so a copy would cost as much as the compression).
    copy_limit = CHUNK

    def __init__(self, fileobj: Any, level: int, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._level = level
        self._chunks = 0
        self._settings = _Settings()
        try:
            self.start(_with_crc(HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, 0)))
        except BaseException:
            self._settings.restore()
            raise

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        if not len(chunk):
            return lambda: None
        self._chunks += 1
        return functools.partial(_compress, chunk, itemsize, self._level)

    def write_array(self, data: Any, itemsize: int) -> int:
        """Write array bytes whose elements are ``itemsize`` bytes (shuffled by element)."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if len(view) < SMALL_ARRAY:
            return self.write(view)
        typesize = itemsize if 1 <= itemsize <= blosc.MAX_TYPESIZE else 1
        return self.write_elements(view, typesize)

    def finish(self) -> None:
        self.emit(_frame(KIND_END, END.pack(self.total, self._chunks), 0))

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._settings.restore()


class BloscReader(FramedReader):
    """Reads the blosc stream that starts at ``fileobj``'s position.

    Chunks that fit in the caller's buffer are decompressed straight into it, on
    ``threads`` threads at once.
    """

    codec_name = "blosc"
    frame_size = CHUNK

    def __init__(self, fileobj: Any, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._total = 0
        self._chunks = 0
        raw = self.take(HEADER.size + CRC.size, "the stream header")
        magic, major, _minor, _reserved = HEADER.unpack(raw[: HEADER.size])
        if magic != MAGIC:
            raise self.corrupt("does not start with the blosc stream magic")
        if CRC.unpack(raw[HEADER.size :])[0] != zlib.crc32(raw[: HEADER.size]):
            raise self.corrupt("has a damaged header (CRC mismatch)")
        if major != VERSION_MAJOR:
            raise self.corrupt(f"has format version {major}, this reader knows 1")
        self._settings = _Settings()  # once nothing can fail: close() restores it

    def close(self) -> None:
        try:
            super().close()
        finally:
            if hasattr(self, "_settings"):
                self._settings.restore()

    def next_frame(self) -> Frame | None:
        raw = self.take(FRAME.size + CRC.size, "a frame header")
        if CRC.unpack(raw[FRAME.size :])[0] != zlib.crc32(raw[: FRAME.size]):
            raise self.corrupt("has a damaged frame header (CRC mismatch)")
        kind, _reserved, flags, payload_len, data_len = FRAME.unpack(raw[: FRAME.size])
        if kind == KIND_CHUNK:
            if not 1 <= data_len <= MAX_CHUNK or payload_len > data_len + BLOSC_OVERHEAD:
                raise self.corrupt(f"has a chunk of bad size ({payload_len} -> {data_len})")
        elif kind == KIND_END:
            if payload_len != END.size or data_len:
                raise self.corrupt("has an END frame of the wrong size")
        else:
            raise self.corrupt(f"has a frame of unknown kind {kind!r}")
        if flags:
            raise self.corrupt(f"has a frame with unknown flags {flags:#x}")
        payload = self.take(payload_len, "a frame payload")
        (expected,) = CHECKSUM.unpack(self.take(CHECKSUM.size, "a frame checksum"))
        if kind == KIND_END:
            if digest(payload) != expected:
                raise self.corrupt("has a damaged frame (checksum mismatch)")
            self._end(payload)
            return None
        self._total += data_len
        self._chunks += 1
        return Frame(data_len, payload, expected)

    def _end(self, payload: bytes) -> None:
        total, chunks = END.unpack(payload)
        if (total, chunks) != (self._total, self._chunks):
            raise self.corrupt(
                f"ends after {self._total} bytes in {self._chunks} chunks, "
                f"its END frame counts {total} in {chunks}"
            )
        # After finish_stream, never look past the END frame: the sender may be waiting.
        if not self.final and not self.at_end():
            raise self.corrupt("is followed by unexpected data")

    def end_of_stream(self) -> None:
        """The END frame, checked (it counts the stream's bytes and chunks)."""
        if self.next_frame() is not None:
            raise self.corrupt("holds data after the object")

    def decode_into(self, frame: Frame, out: memoryview) -> None:
        payload = frame.payload
        if digest(payload) != frame.info:
            raise self.corrupt("has a damaged frame (checksum mismatch)")
        # What blosc.cbuffer_validate checks, without it: python-blosc 1.11.4's keeps
        # a reference to every buffer it is given, so each payload would leak.
        try:  # from the chunk's 16-byte header (python-blosc wants it read-only)
            nbytes, cbytes, _ = blosc.get_cbuffer_sizes(bytes(payload[:BLOSC_OVERHEAD]))
        except Exception as exc:  # python-blosc raises its own error type
            raise self.corrupt(f"has a bad Blosc chunk: {exc}") from exc
        if nbytes != len(out) or cbytes != len(payload):
            raise self.corrupt("has a Blosc chunk that disagrees with its frame")
        if out.readonly:
            raise ValueError("readinto needs a writable buffer")
        try:
            blosc.decompress_ptr(payload, _address(out))
        except Exception as exc:
            raise self.corrupt(f"has a Blosc chunk that does not decompress: {exc}") from exc
