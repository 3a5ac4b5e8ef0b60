"""zlib: one RFC 1950 stream (``.z``), what ``compress=True`` and ``compress=3`` write.

Magic ``78`` (the CMF byte of a 32 KiB deflate window). Levels map directly to zlib's
1..9; the default is 3, as in joblib.

The codec is ``parallel``: 1 MiB chunks are deflated on ``threads`` threads and joined
into the one stream, with the Adler-32 combined from the chunks' (see ``_deflate``).
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


class ZlibCodec(Codec):
    name = "zlib"
    magic = b"\x78"
    extensions = (".z",)
    default_level = 3
    parallel = True

    def open_writer(self, fileobj: Any, level: int, threads: int = 1) -> DeflateWriter:
        return DeflateWriter(fileobj, level, "zlib", threads)

    def open_reader(self, fileobj: Any, threads: int = 1) -> DecompressReader:
        return DecompressReader(
            fileobj,
            lambda: Inflater(zlib.MAX_WBITS),
            codec=self.name,
            multistream=False,
            threads=threads,
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [ZlibCodec()]
