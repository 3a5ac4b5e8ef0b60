"""gzip (``.gz``): RFC 1952 members, readable by ``gzip -d``.

Magic ``1F 8B``. Levels map directly to deflate's 1..9; the default is 3, as in joblib.
The header carries no file name and a zero time stamp, so equal input gives equal
output. Files of several members (``cat a.gz b.gz``, pigz) read as one stream.

The codec is ``parallel``: 1 MiB chunks are deflated on ``threads`` threads and joined
into one member, with the CRC-32 combined from the chunks' (see ``_deflate``).
Reading decodes in one sequence (a deflate stream cannot be split without decoding
it), on a helper thread ahead of the reader when ``threads`` > 1.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._deflate import DeflateWriter
from ._stream import DecompressReader, Inflater

_GZIP_WBITS = 16 + zlib.MAX_WBITS


class GzipCodec(Codec):
    name = "gzip"
    magic = b"\x1f\x8b"
    extensions = (".gz",)
    default_level = 3
    parallel = True

    def open_writer(self, fileobj: Any, level: int, threads: int = 1) -> DeflateWriter:
        return DeflateWriter(fileobj, level, "gzip", threads)

    def open_reader(self, fileobj: Any, threads: int = 1) -> DecompressReader:
        return DecompressReader(
            fileobj,
            lambda: Inflater(_GZIP_WBITS),
            codec=self.name,
            multistream=True,
            threads=threads,
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [GzipCodec()]
