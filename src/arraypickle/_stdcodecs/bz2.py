"""bzip2 (``.bz2``), readable by ``bzip2 -d``.

Magic ``42 5A 68`` (``BZh``). Levels are bzip2's block sizes 1..9 (x 100 kB); the
default is 9, as in joblib and the ``bzip2`` tool. Concatenated streams read as one.
"""

from __future__ import annotations

import bz2
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._stream import CompressWriter, DecompressReader


class Bz2Codec(Codec):
    name = "bz2"
    magic = b"BZh"
    extensions = (".bz2",)
    default_level = 9

    def open_writer(self, fileobj: Any, level: int) -> CompressWriter:
        return CompressWriter(fileobj, bz2.BZ2Compressor(level))

    def open_reader(self, fileobj: Any) -> DecompressReader:
        return DecompressReader(fileobj, bz2.BZ2Decompressor, codec=self.name, multistream=True)


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [Bz2Codec()]
