"""Reading Zstandard frames: whole frames in parallel, straight into place, or block by block.

This reader walks the frame layout of RFC 8878 itself, so it knows exactly where each
frame ends (a stream cut anywhere, even inside the final checksum, is reported as
truncated), skips skippable frames and reads frames that follow one another as one
stream, as ``zstd -d`` does.

A frame whose header states its content size (arraypickle writes one per 2 MiB chunk)
is read whole and decoded on a worker thread straight into the caller's buffer
(``stream_reader(frame).readinto``), several frames at once. Any other frame, or one
stating more than 64 MiB, is fed to the decompressor one block at a time (at most
128 KiB of output each), so memory stays bounded whatever the compression ratio.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from typing import Any

import zstandard

from arraypickle.codec import Frame, FramedReader

MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MIN, SKIPPABLE_MAX = 0x184D2A50, 0x184D2A5F
MAX_BLOCK = 128 << 10
# The largest window accepted (zstd's own default limit; `zstd --long` needs it).
MAX_WINDOW = 1 << 27
#: Bytes of the container per frame, as the writer cuts them.
CHUNK = 2 << 20

_FCS_SIZES = (0, 2, 4, 8)
_DID_SIZES = (0, 1, 2, 4)


def _dctx(local: threading.local) -> zstandard.ZstdDecompressor:
    """This thread's decompressor for one stream (they are not shared between threads,
    and are kept per stream so that none outlives its load)."""
    dctx = getattr(local, "dctx", None)
    if dctx is None:
        dctx = local.dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    return dctx


class ZstdReader(FramedReader):
    """Decompresses the zstd frames that start at ``fileobj``'s position."""

    codec_name = "zstd"
    frame_size = CHUNK

    def __init__(self, fileobj: Any, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._frames = 0
        self._local = threading.local()

    def _header(self) -> tuple[int, int | None, bool]:
        """Parse the frame header at the input position: its length, content size, checksum."""
        fhd = self.peek(4, 1, "a frame header")[0]
        if fhd & 0x08:
            raise self.corrupt("has a frame header with the reserved bit set")
        single_segment = bool(fhd & 0x20)
        fcs_len = _FCS_SIZES[fhd >> 6] or (1 if single_segment else 0)
        start = 5 + (0 if single_segment else 1) + _DID_SIZES[fhd & 3]
        size = None
        if fcs_len:
            raw = self.peek(start, fcs_len, "a frame header")
            size = int.from_bytes(raw, "little") + (256 if fcs_len == 2 else 0)
        return start + fcs_len, size, bool(fhd & 0x04)

    def _block(self, offset: int) -> tuple[int, bool]:
        """The block at ``offset``: its length on disk (header included), whether last."""
        head = self.peek(offset, 3, "a block header")
        (value,) = struct.unpack("<I", head + b"\0")
        last, kind, size = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3 or size > MAX_BLOCK:
            raise self.corrupt(f"has an invalid block header (type {kind}, size {size})")
        return 3 + (1 if kind == 1 else size), bool(last)

    def next_frame(self) -> Frame | None:
        while True:
            if self.at_end():
                if self._frames == 0:
                    raise self.corrupt("is empty")
                return None
            magic = self.peek(0, 4, "a frame's magic number")
            (number,) = struct.unpack("<I", magic)
            if SKIPPABLE_MIN <= number <= SKIPPABLE_MAX:
                (size,) = struct.unpack("<I", self.take(8, "a skippable frame")[4:])
                while size:
                    size -= len(self.take(min(size, self.read_piece), "a skippable frame"))
                continue
            if magic != MAGIC:
                raise self.corrupt(f"has unexpected data where a frame should start: {magic!r}")
            self._frames += 1
            header, size, checksum = self._header()
            if size is None or size > self.max_frame:
                return Frame(None, None, (header, checksum))
            # Walk to the frame's end; a frame far longer than its content is streamed,
            # from its header on (block by block: the walk only peeked at them).
            limit = size + 3 * (size // MAX_BLOCK + 2) + 64
            end, last = header, False
            while not last and end <= limit:
                length, last = self._block(end)
                end += length
            if not last:
                return Frame(None, None, (header, checksum))
            end += 4 if checksum else 0
            return Frame(size, self.take(end, "a frame"))

    def decode_into(self, frame: Frame, out: memoryview) -> None:
        try:
            reader = _dctx(self._local).stream_reader(frame.payload, read_across_frames=False)
            done = 0
            while done < len(out):
                step = reader.readinto(out[done:])
                if not step:
                    break
                done += step
            extra = reader.read(1)  # reaches the frame's end: its checksum is checked
        except zstandard.ZstdError as exc:
            raise self.corrupt(f"is damaged: {exc}") from exc
        if done != len(out) or extra:
            raise self.corrupt("has a frame whose content disagrees with its stated size")

    def stream(self, frame: Frame) -> Iterator[bytes]:
        header_len, checksum = frame.info
        decoder = _dctx(self._local).decompressobj()
        if self._feed(decoder, self.take(header_len, "a frame header")):
            raise self.corrupt("produced data from a frame header")
        last = False
        while not last:
            length, last = self._block(0)
            out = self._feed(decoder, self.take(length, "a block"))
            if last:
                if checksum:
                    out += self._feed(decoder, self.take(4, "a frame checksum"))
                if not decoder.eof:
                    raise self.corrupt("has a frame that does not end where its blocks do")
            if out:
                yield out

    def _feed(self, decoder: Any, data: bytes) -> bytes:
        try:
            return decoder.decompress(data)
        except zstandard.ZstdError as exc:
            raise self.corrupt(f"is damaged: {exc}") from exc
