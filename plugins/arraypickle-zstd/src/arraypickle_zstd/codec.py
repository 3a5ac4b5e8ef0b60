"""The ``zstd`` codec: Zstandard frames (RFC 8878), as the ``zstd`` command reads and writes them.

Magic ``28 B5 2F FD``, extension ``.zst``. Levels 1..9 spread over zstd's 1..19 (its
levels above 19 need windows of 64 MiB and more): 1, 2 and 3 are zstd's own (3 is
zstd's default and ours), then 5, 7, 9, 12, 15 and 19. The stream is one frame per
2 MiB chunk of the container, each with its content size and zstd's content checksum
(as the ``zstd`` command writes them); ``zstd -d`` reads frames that follow one
another as one stream.

The codec is ``parallel``: chunks are compressed on ``threads`` threads (arraypickle's
pipeline, not zstd's own workers, so that the frames stay independent), and on load
frames of known size are decoded on ``threads`` threads straight into the
destination array.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zstandard

from arraypickle.codec import ChunkedWriter, Codec

from .frames import CHUNK, MAGIC, ZstdReader

if TYPE_CHECKING:  # the annotations' types: the plugin still loads with cores before them
    from arraypickle.codec import Readable, Writable

#: ``compress=('zstd', level)`` -> zstd compression level.
LEVELS = {1: 1, 2: 2, 3: 3, 4: 5, 5: 7, 6: 9, 7: 12, 8: 15, 9: 19}


def _compress(chunk: memoryview, level: int, local: threading.local) -> bytes:
    """One frame of ``chunk``, by this thread's compressor for the stream (compressors
    are not shared between threads; kept per stream, so none outlives its dump: at
    level 9 one holds about 38 MiB)."""
    cctx = getattr(local, "cctx", None)
    if cctx is None:
        cctx = local.cctx = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
        )
    return cctx.compress(chunk)


class ZstdWriter(ChunkedWriter):
    """Writes one zstd frame per chunk, compressed on ``threads`` threads."""

    chunk_size = CHUNK

    def __init__(self, fileobj: Writable, level: int, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._level = LEVELS[level]
        self._frames = 0
        self._local = threading.local()

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        if last and not len(chunk) and self._frames:
            return lambda: None
        self._frames += 1
        level, local = self._level, self._local
        return lambda: _compress(chunk, level, local)


class ZstdCodec(Codec):
    """Zstandard frames (``.zst``), readable by ``zstd -d``."""

    name = "zstd"
    magic = MAGIC
    extensions = (".zst",)
    default_level = 3
    distribution = "arraypickle-zstd"
    parallel = True

    def open_writer(self, fileobj: Writable, level: int, threads: int | None = 1) -> ZstdWriter:
        """A writer of zstd frames into ``fileobj`` (left open when it closes).

        Parameters:
            fileobj: where the frames go.
            level: 1..9, mapped through :data:`LEVELS`.
            threads: threads compressing frames (1: the calling thread only).
        """
        return ZstdWriter(fileobj, level, threads)

    def open_reader(self, fileobj: Readable, threads: int | None = 1) -> ZstdReader:
        """A reader of the zstd frames starting at ``fileobj``'s position.

        Parameters:
            fileobj: the stream, at the first byte of the magic.
            threads: threads decoding frames of known size.
        """
        return ZstdReader(fileobj, threads)
