"""Reading Zstandard frames one block at a time, with bounded memory and exact ends.

``zstandard``'s readers either return all the output of their input at once (a
128 KiB block of a run-length frame can expand to gigabytes) or stop quietly at a
truncated frame. This reader walks the frame layout of RFC 8878 itself: it feeds the
decompressor one block at a time (at most 128 KiB of output each), so memory stays
bounded, and it knows exactly where each frame ends, so a stream cut anywhere (even
inside the final checksum) is reported as truncated. Skippable frames are skipped and
frames that follow one another read as one stream, as ``zstd -d`` does.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import zstandard

from arraypickle import CorruptFileError

MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MIN, SKIPPABLE_MAX = 0x184D2A50, 0x184D2A5F
MAX_BLOCK = 128 << 10
# Compressed bytes read from the file per call.
READ_PIECE = 256 << 10
# The largest window accepted (zstd's own default limit; `zstd --long` needs it).
MAX_WINDOW = 1 << 27

_FCS_SIZES = (0, 2, 4, 8)
_DID_SIZES = (0, 1, 2, 4)


def _name(fileobj: Any) -> str:
    name = getattr(fileobj, "name", None)
    return repr(name) if isinstance(name, str) and name else f"<{type(fileobj).__name__}>"


class ZstdReader(io.RawIOBase):
    """Decompresses the zstd frames that start at ``fileobj``'s position."""

    def __init__(self, fileobj: Any) -> None:
        super().__init__()
        self._fp = fileobj
        self._dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        self._in = bytearray()
        self._in_pos = 0
        self._frame: Any = None  # the decompressor of the frame being read
        self._checksum = False
        self._frames = 0
        self._eof = False
        self._out = b""
        self._out_pos = 0
        self.name = getattr(fileobj, "name", None)

    def readable(self) -> bool:
        return True

    def _corrupt(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{_name(self._fp)}: zstd stream {what}")

    # -- input --------------------------------------------------------------------

    def _have(self, n: int) -> bool:
        """Whether ``n`` unread input bytes are buffered, reading more as needed."""
        while len(self._in) - self._in_pos < n:
            more = self._fp.read(max(READ_PIECE, n))
            if not more:
                return False
            if self._in_pos:
                del self._in[: self._in_pos]
                self._in_pos = 0
            self._in += more
        return True

    def _take(self, n: int, what: str) -> bytes:
        if not self._have(n):
            raise self._corrupt(f"is truncated ({what})")
        start = self._in_pos
        self._in_pos += n
        return bytes(self._in[start : start + n])

    # -- frames -------------------------------------------------------------------

    def _feed(self, data: bytes) -> bytes:
        try:
            return self._frame.decompress(data)
        except zstandard.ZstdError as exc:
            raise self._corrupt(f"is damaged: {exc}") from exc

    def _start_frame(self) -> bool:
        """Read up to the next frame's first block; False at the clean end of the stream."""
        while True:
            if not self._have(1):
                if self._frames == 0:
                    raise self._corrupt("is empty")
                return False
            magic = self._take(4, "a frame's magic number")
            (number,) = struct.unpack("<I", magic)
            if SKIPPABLE_MIN <= number <= SKIPPABLE_MAX:
                (size,) = struct.unpack("<I", self._take(4, "a skippable frame's size"))
                while size:
                    step = min(size, READ_PIECE)
                    self._take(step, "a skippable frame")
                    size -= step
                continue
            if magic != MAGIC:
                raise self._corrupt(f"has unexpected data where a frame should start: {magic!r}")
            descriptor = self._take(1, "a frame header")
            fhd = descriptor[0]
            if fhd & 0x08:
                raise self._corrupt("has a frame header with the reserved bit set")
            single_segment = bool(fhd & 0x20)
            fcs = _FCS_SIZES[fhd >> 6] or (1 if single_segment else 0)
            rest = (0 if single_segment else 1) + _DID_SIZES[fhd & 3] + fcs
            header = magic + descriptor + self._take(rest, "a frame header")
            self._frame = self._dctx.decompressobj()
            self._checksum = bool(fhd & 0x04)
            self._frames += 1
            if self._feed(header):
                raise self._corrupt("produced data from a frame header")
            return True

    def _next_block(self) -> bytes:
        """The decompressed bytes of the next block (b'' once every frame is read)."""
        while not self._eof:
            if self._frame is None and not self._start_frame():
                self._eof = True
                break
            head = self._take(3, "a block header")
            (value,) = struct.unpack("<I", head + b"\0")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3 or size > MAX_BLOCK:
                raise self._corrupt(f"has an invalid block header (type {kind}, size {size})")
            out = self._feed(head + self._take(1 if kind == 1 else size, "a block"))
            if last:
                if self._checksum:
                    out += self._feed(self._take(4, "a frame checksum"))
                if not self._frame.eof:
                    raise self._corrupt("has a frame that does not end where its blocks do")
                self._frame = None
            if out:
                return out
        return b""

    # -- file interface -----------------------------------------------------------

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            if self._out_pos >= len(self._out):
                self._out, self._out_pos = self._next_block(), 0
                if not self._out:
                    break
            take = min(len(view) - done, len(self._out) - self._out_pos)
            view[done : done + take] = self._out[self._out_pos : self._out_pos + take]
            self._out_pos += take
            done += take
        return done
