"""LZMA "alone" (``.lzma``), readable by ``xz --format=lzma -d``.

Magic ``5D 00 00`` (the default properties byte and the low bytes of a preset's
dictionary size). Levels are xz presets 1..9; the default is 6, as in joblib and xz.

Not ``parallel``: "concatenation and padding are not allowed with .lzma files" (xz's
manual; ``xz --format=lzma -d`` calls a second stream corrupt data), and one LZMA
stream cannot be cut into independent parts, so it is compressed and read in one
thread. Use ``xz`` for parallel compression.
"""

from __future__ import annotations

import lzma
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._stream import CompressWriter, DecompressReader, lzma_decompressor


class LzmaCodec(Codec):
    name = "lzma"
    magic = b"\x5d\x00\x00"
    extensions = (".lzma",)
    default_level = 6

    def open_writer(self, fileobj: Any, level: int) -> CompressWriter:
        return CompressWriter(fileobj, lzma.LZMACompressor(lzma.FORMAT_ALONE, preset=level))

    def open_reader(self, fileobj: Any) -> DecompressReader:
        return DecompressReader(
            fileobj,
            lambda: lzma_decompressor(lzma.FORMAT_ALONE),
            codec=self.name,
            multistream=False,
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [LzmaCodec()]
