"""xz (``.xz``), readable by ``xz -d``.

Magic ``FD 37 7A 58 5A 00``. Levels are xz presets 1..9; the default is 6, as in joblib
and xz. Streams carry a CRC-64 check; concatenated streams read as one.

The codec is ``parallel``: each chunk (the preset's dictionary size, 4 to 16 MiB)
becomes a complete xz stream, compressed on one of ``threads`` threads; the streams
follow one another, which ``xz -d`` and every xz reader take as one. Each thread holds
an encoder of the preset's size (94 MiB at the default 6, see ``xz --help``); presets 8
and 9 use a 16 MiB dictionary, the chunk's size (186 MiB per thread instead of 370/674).
Reading decodes in one sequence, on a helper thread ahead of the reader when
``threads`` > 1.
"""

from __future__ import annotations

import functools
import lzma
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._members import MembersWriter
from ._stream import DecompressReader, lzma_decompressor

MiB = 1 << 20
# xz's dictionary size for each preset (xz(1)): a chunk of at least that size loses
# almost nothing to the cut; 16 MiB at most bounds the memory of a chunk in flight.
_DICT = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 7: 16, 8: 32, 9: 64}


def chunk_size(level: int) -> int:
    return min(max(4, _DICT[level]), 16) * MiB


class XzCodec(Codec):
    name = "xz"
    magic = b"\xfd7zXZ\x00"
    extensions = (".xz",)
    default_level = 6
    parallel = True

    def open_writer(self, fileobj: Any, level: int, threads: int = 1) -> MembersWriter:
        size = chunk_size(level)
        # Presets 8 and 9 would allocate 32/64 MiB dictionaries (370/674 MiB encoders)
        # for chunks of 16 MiB: a dictionary the size of the chunk compresses the same.
        filters = [
            {"id": lzma.FILTER_LZMA2, "preset": level, "dict_size": min(size, _DICT[level] * MiB)}
        ]
        compress = functools.partial(
            lzma.compress, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=filters
        )
        return MembersWriter(fileobj, compress, size, threads)

    def open_reader(self, fileobj: Any, threads: int = 1) -> DecompressReader:
        return DecompressReader(
            fileobj,
            lambda: lzma_decompressor(lzma.FORMAT_XZ),
            codec=self.name,
            multistream=True,
            threads=threads,
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [XzCodec()]
