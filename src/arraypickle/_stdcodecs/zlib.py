"""zlib: one RFC 1950 stream (``.z``), what ``compress=True`` and ``compress=3`` write.

Magic ``78`` (the CMF byte of a 32 KiB deflate window). Levels map directly to zlib's
1..9; the default is 3, as in joblib.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._stream import CompressWriter, DecompressReader, Inflater


class ZlibCodec(Codec):
    name = "zlib"
    magic = b"\x78"
    extensions = (".z",)
    default_level = 3

    def open_writer(self, fileobj: Any, level: int) -> CompressWriter:
        return CompressWriter(fileobj, zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS))

    def open_reader(self, fileobj: Any) -> DecompressReader:
        return DecompressReader(
            fileobj, lambda: Inflater(zlib.MAX_WBITS), codec=self.name, multistream=False
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [ZlibCodec()]
