"""The ``zstd`` codec: Zstandard frames (RFC 8878), as the ``zstd`` command reads and writes them.

Magic ``28 B5 2F FD``, extension ``.zst``. Levels 1..9 spread over zstd's 1..19 (its
levels above 19 need windows of 64 MiB and more): 1, 2 and 3 are zstd's own (3 is
zstd's default and ours), then 5, 7, 9, 12, 15 and 19. Frames carry zstd's content
checksum, as the ``zstd`` command writes them.

The codec is ``parallel``: ``threads=n`` (n > 1) compresses with n zstd worker threads
(the output is still ordinary frames); decompression is single-threaded in zstd.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import zstandard

from arraypickle.codec import Codec

from .frames import MAGIC, ZstdReader

#: ``compress=('zstd', level)`` -> zstd compression level.
LEVELS = {1: 1, 2: 2, 3: 3, 4: 5, 5: 7, 6: 9, 7: 12, 8: 15, 9: 19}


class ZstdCodec(Codec):
    """Zstandard frames (``.zst``), readable by ``zstd -d``."""

    name = "zstd"
    magic = MAGIC
    extensions = (".zst",)
    default_level = 3
    distribution = "arraypickle-zstd"
    parallel = True

    def open_writer(self, fileobj: BinaryIO, level: int, threads: int | None = None) -> Any:
        """A writer of one zstd frame into ``fileobj`` (left open when it closes).

        Parameters:
            fileobj: where the frame goes.
            level: 1..9, mapped through :data:`LEVELS`.
            threads: zstd worker threads; None or 1 compresses in the calling thread.
        """
        compressor = zstandard.ZstdCompressor(
            level=LEVELS[level],
            write_checksum=True,
            threads=threads if threads and threads > 1 else 0,
        )
        return compressor.stream_writer(fileobj, closefd=False, write_return_read=True)

    def open_reader(self, fileobj: BinaryIO, threads: int | None = None) -> ZstdReader:
        """A reader of the zstd frames starting at ``fileobj``'s position.

        ``threads`` is accepted for the ``parallel`` contract; zstd decompresses in
        one thread.
        """
        return ZstdReader(fileobj)
