"""The ``lz4`` codec: the LZ4 frame format, as the ``lz4`` command reads and writes it.

Magic ``04 22 4D 18``, extension ``.lz4``. Levels go to ``lz4.frame``'s
``compression_level`` unchanged, as joblib does: 1 and 2 are LZ4's fast mode (the
same speed and size), 3..9 are LZ4 HC at that level, slower and smaller. The default
is 1, LZ4's fast mode, which is what ``compress='lz4'`` gives in joblib (it leaves
``lz4.frame`` at its default level, 0: the same fast mode).

The stream is a sequence of frames, one per 512 KiB chunk of the container, each with
64 KiB linked blocks (the library's defaults, and joblib's), its content size in the
header and no content checksum (the container inside checks every record itself).
The ``lz4`` command reads concatenated frames as one stream. The codec is
``parallel``: chunks are compressed on ``threads`` threads, and on load frames of
known size are decoded on ``threads`` threads, each straight into its place in the
caller's buffer by cramjam's ``lz4.decompress_into`` (python-lz4, 4.4, has no such
API: decoding each frame into a buffer of its own and copying it took twice as long,
a fresh 512 KiB buffer's page faults included). Frames without a content size (the
``lz4`` command's) are streamed in one thread, by python-lz4.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import cramjam
import lz4.frame

from arraypickle.codec import ChunkedWriter, Codec, Frame, FramedReader

if TYPE_CHECKING:  # the annotations' types: the plugin still loads with cores before them
    from arraypickle.codec import Readable, Writable

#: ``compress=('lz4', level)`` -> ``lz4.frame`` compression level.
LEVELS = {level: level for level in range(1, 10)}
MAGIC = b"\x04\x22\x4d\x18"
#: Bytes of the container per frame. Not 1 MiB: python-lz4 4.4 allocates (and glibc
#: maps and unmaps afresh, page-faulting it in) about twice a frame's size per decoded
#: frame at 1 MiB, which made loads 3x slower; at 512 KiB its buffers are reused.
CHUNK = 512 << 10
_BLOCK_MAX = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
_SKIPPABLE = range(0x184D2A50, 0x184D2A60)
_U32 = struct.Struct("<I")


class Lz4Writer(ChunkedWriter):
    """Writes one LZ4 frame per chunk, compressed on ``threads`` threads."""

    chunk_size = CHUNK

    def __init__(self, fileobj: Writable, level: int, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._level = LEVELS[level]
        self._frames = 0

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        if last and not len(chunk) and self._frames:
            return lambda: None
        self._frames += 1
        return functools.partial(
            lz4.frame.compress,
            chunk,
            compression_level=self._level,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=True,
            content_checksum=False,
            store_size=True,
        )


class Lz4Reader(FramedReader):
    """Reads LZ4 frames: those of known size in parallel, the others streamed."""

    codec_name = "lz4"
    frame_size = CHUNK
    frames_per_read = 8

    def next_frame(self) -> Frame | None:
        while True:
            if self.at_end():
                return None
            (magic,) = _U32.unpack(self.peek(0, 4, "a frame's magic number"))
            if magic in _SKIPPABLE:
                (size,) = _U32.unpack(self.take(8, "a skippable frame")[4:])
                while size:
                    size -= len(self.take(min(size, self.read_piece), "a skippable frame"))
                continue
            if magic != 0x184D2204:
                raise self.corrupt("has unexpected data where a frame should start")
            flg, bd = self.peek(4, 2, "a frame header")
            if flg >> 6 != 1 or flg & 0x02 or bd & 0x8F or (bd >> 4) not in _BLOCK_MAX:
                raise self.corrupt("has an invalid frame header")
            if not flg & 0x08:  # no content size: stream it
                return Frame(None, None)
            (size,) = struct.unpack("<Q", self.peek(6, 8, "a frame header"))
            if size > self.max_frame:
                return Frame(None, None)
            end = 6 + 8 + (4 if flg & 0x01 else 0) + 1
            block_max, block_check = _BLOCK_MAX[bd >> 4], 4 if flg & 0x10 else 0
            # What an encoder writes for ``size`` bytes at most (incompressible blocks are
            # stored raw). Beyond it, the frame is streamed rather than buffered whole, so
            # a header stating a small size cannot make the walk buffer a huge frame.
            bound = end + (size // block_max + 1) * (4 + block_max + block_check) + 8
            while True:  # walk the blocks to the end mark
                if end > bound:
                    return Frame(None, None)
                (word,) = self.unpack(end, _U32, "a block header")
                end += 4
                if not word:
                    break
                if word & 0x7FFFFFFF > block_max:
                    raise self.corrupt("has a block larger than its frame allows")
                end += (word & 0x7FFFFFFF) + block_check
            end += 4 if flg & 0x04 else 0
            return Frame(size, self.take(end, "a frame"))

    def decode_into(self, frame: Frame, out: memoryview) -> None:
        # Into ``out`` alone, without the GIL: a frame holding more than its stated
        # size fails when ``out`` is full, not after decoding all of it (a frame stating
        # 0 bytes over 4 MB of blocks would otherwise decode to gigabytes first).
        try:
            got = cramjam.lz4.decompress_into(frame.payload, out)
        except cramjam.DecompressionError as exc:
            raise self.corrupt(f"is damaged: {exc}") from exc
        if got != len(out):
            raise self.corrupt("has a frame whose content disagrees with its stated size")

    def stream(self, frame: Frame) -> Iterator[bytes]:
        decoder = lz4.frame.LZ4FrameDecompressor()
        try:
            while not decoder.eof:
                data = b""
                if decoder.needs_input:
                    data = self.read_input(self.read_piece)
                    if not data:
                        raise self.corrupt("is truncated (inside a frame)")
                out = decoder.decompress(data, max_length=self.read_piece)
                if out:
                    yield out
        except RuntimeError as exc:
            raise self.corrupt(f"is damaged: {exc}") from exc
        self.unread(decoder.unused_data or b"")


class Lz4Codec(Codec):
    """LZ4 frames (``.lz4``), readable by ``lz4 -d``."""

    name = "lz4"
    magic = MAGIC
    extensions = (".lz4",)
    default_level = 1
    distribution = "arraypickle-lz4"
    parallel = True

    def open_writer(self, fileobj: Writable, level: int, threads: int | None = 1) -> Lz4Writer:
        """A writer of LZ4 frames into ``fileobj`` (left open when it closes).

        Parameters:
            fileobj: where the frames go.
            level: 1..9, ``lz4.frame``'s compression level.
            threads: threads compressing frames (1: the calling thread only).
        """
        return Lz4Writer(fileobj, level, threads)

    def open_reader(self, fileobj: Readable, threads: int | None = 1) -> Lz4Reader:
        """A reader of the LZ4 frames starting at ``fileobj``'s position.

        Parameters:
            fileobj: the stream, at the first byte of the magic.
            threads: threads decoding frames of known size.
        """
        return Lz4Reader(fileobj, threads)
