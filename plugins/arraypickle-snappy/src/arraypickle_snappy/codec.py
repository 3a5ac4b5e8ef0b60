"""The ``snappy`` codec: the snappy framing format (``.sz``).

Magic ``FF 06 00 00 73 4E 61 50 70 59`` (the stream identifier chunk). Snappy has no
levels: every level 1..9 writes the same stream (the default is 3, so that
``compress='snappy'`` means what it means for every codec). Chunks hold at most
64 KiB each, checked by a CRC-32C; streams that follow one another read as one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arraypickle.codec import Codec

from .framing import STREAM_IDENTIFIER, SnappyReader, SnappyWriter

if TYPE_CHECKING:  # the annotations' types: the plugin still loads with cores before them
    from arraypickle.codec import Readable, Writable


class SnappyCodec(Codec):
    """Snappy framed streams (``.sz``), readable by ``snzip -d`` and snappy libraries."""

    name = "snappy"
    magic = STREAM_IDENTIFIER
    extensions = (".sz",)
    default_level = 3
    distribution = "arraypickle-snappy"

    def open_writer(self, fileobj: Writable, level: int) -> SnappyWriter:
        """A writer of one framed stream into ``fileobj``; ``level`` changes nothing."""
        return SnappyWriter(fileobj)

    def open_reader(self, fileobj: Readable) -> SnappyReader:
        """A reader of the framed stream starting at ``fileobj``'s position."""
        return SnappyReader(fileobj)
