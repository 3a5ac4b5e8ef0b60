"""xz (``.xz``), readable by ``xz -d``.

Magic ``FD 37 7A 58 5A 00``. Levels are xz presets 1..9; the default is 6, as in joblib
and xz. Streams carry a CRC-64 check; concatenated streams read as one.
"""

from __future__ import annotations

import lzma
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._stream import CompressWriter, DecompressReader


class XzCodec(Codec):
    name = "xz"
    magic = b"\xfd7zXZ\x00"
    extensions = (".xz",)
    default_level = 6

    def open_writer(self, fileobj: Any, level: int) -> CompressWriter:
        compressor = lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level)
        return CompressWriter(fileobj, compressor)

    def open_reader(self, fileobj: Any) -> DecompressReader:
        return DecompressReader(
            fileobj,
            lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ),
            codec=self.name,
            multistream=True,
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [XzCodec()]
