"""The ``blosc`` codec: Blosc chunks, shuffled by element size, in arraypickle's framed stream.

Magic ``89 42 4C 46 0D 0A 1A 0A`` (``\\x89BLF\\r\\n\\x1a\\n``), extension ``.blosc``; the
stream is specified byte by byte in ``docs/format.md``. Array buffers are compressed
with Blosc's byte shuffle over their element size (arraypickle passes it through the
writer's ``write_array``), everything else with element size 1, by Blosc's LZ4
compressor at Blosc level ``level`` (1..9, the same numbers); the default is 5, as in
numcodecs. No standard command-line tool reads the stream.

The codec is ``parallel``: ``threads=n`` compresses (and decompresses) n chunks at
once on arraypickle's threads, each by Blosc in one thread with the GIL released.
Those two Blosc settings are process-wide: a stream sets them until it is closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arraypickle.codec import Codec

from .stream import MAGIC, BloscReader, BloscWriter

if TYPE_CHECKING:  # the annotations' types: the plugin still loads with cores before them
    from arraypickle.codec import Readable, Writable


class BloscCodec(Codec):
    """Blosc-compressed chunks in arraypickle's blosc stream (``.blosc``)."""

    name = "blosc"
    magic = MAGIC
    extensions = (".blosc",)
    default_level = 5
    distribution = "arraypickle-blosc"
    parallel = True

    def open_writer(self, fileobj: Writable, level: int, threads: int | None = 1) -> BloscWriter:
        """A writer of one blosc stream into ``fileobj`` (left open when it closes).

        Parameters:
            fileobj: where the stream goes.
            level: Blosc's compression level, 1..9.
            threads: chunks compressed at once (1: in the calling thread only).
        """
        return BloscWriter(fileobj, level, threads)

    def open_reader(self, fileobj: Readable, threads: int | None = 1) -> BloscReader:
        """A reader of the blosc stream starting at ``fileobj``'s position.

        Parameters:
            fileobj: the stream, at the first byte of the magic.
            threads: chunks decompressed at once, straight into the caller's buffer.
        """
        return BloscReader(fileobj, threads)
