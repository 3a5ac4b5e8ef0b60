"""The ``lz4`` codec: the LZ4 frame format, as the ``lz4`` command reads and writes it.

Magic ``04 22 4D 18``, extension ``.lz4``. Levels go to ``lz4.frame``'s
``compression_level`` unchanged, as joblib does: 1 and 2 are LZ4's fast mode (the
same speed and size), 3..9 are LZ4 HC at that level, slower and smaller. The default
is 3 (LZ4 HC 3), as ``compress='lz4'`` is in joblib, so files come out the same size.

Frames use 64 KiB linked blocks (the library's defaults, and joblib's) and no content
checksum: the container inside checks every record itself. Concatenated frames read
as one stream, as with ``lz4 -d``.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import lz4.frame

from arraypickle.codec import Codec, CompressWriter, DecompressReader

#: ``compress=('lz4', level)`` -> ``lz4.frame`` compression level.
LEVELS = {level: level for level in range(1, 10)}


class _FrameCompressor:
    """``LZ4FrameCompressor`` with the ``compress``/``flush`` interface of zlib's."""

    def __init__(self, level: int) -> None:
        self._lz4 = lz4.frame.LZ4FrameCompressor(
            compression_level=LEVELS[level],
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=True,
            content_checksum=False,
        )
        self._head = self._lz4.begin()

    def compress(self, data: Any) -> bytes:
        out = self._lz4.compress(data)
        if self._head:
            out, self._head = self._head + out, b""
        return out

    def flush(self) -> bytes:
        out, self._head = self._head + self._lz4.flush(), b""
        return out


class _FrameDecompressor:
    """``LZ4FrameDecompressor`` whose ``unused_data`` is bytes (it may be None)."""

    def __init__(self) -> None:
        self._lz4 = lz4.frame.LZ4FrameDecompressor()

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self._lz4.decompress(data, max_length)

    @property
    def eof(self) -> bool:
        return self._lz4.eof

    @property
    def needs_input(self) -> bool:
        return self._lz4.needs_input

    @property
    def unused_data(self) -> bytes:
        return self._lz4.unused_data or b""


class Lz4Codec(Codec):
    """LZ4 frames (``.lz4``), readable by ``lz4 -d``."""

    name = "lz4"
    magic = b"\x04\x22\x4d\x18"
    extensions = (".lz4",)
    default_level = 3
    distribution = "arraypickle-lz4"

    def open_writer(self, fileobj: BinaryIO, level: int) -> CompressWriter:
        """A writer of one LZ4 frame into ``fileobj`` (left open when it closes)."""
        return CompressWriter(fileobj, _FrameCompressor(level))

    def open_reader(self, fileobj: BinaryIO) -> DecompressReader:
        """A reader of the LZ4 frames starting at ``fileobj``'s position."""
        return DecompressReader(fileobj, _FrameDecompressor, codec=self.name, multistream=True)
