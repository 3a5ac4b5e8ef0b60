"""bzip2 (``.bz2``), readable by ``bzip2 -d``.

Magic ``42 5A 68`` (``BZh``). Levels are bzip2's block sizes 1..9 (x 100 kB); the
default is 9, as in joblib and the ``bzip2`` tool. Concatenated streams read as one.

The codec is ``parallel``: each 4 MiB chunk becomes a complete bzip2 stream, compressed
on one of ``threads`` threads; the streams follow one another, which ``bzip2 -d`` and
every bzip2 reader take as one. Reading decodes in one sequence (where a stream ends
is only known by decoding it), on a helper thread ahead of the reader when ``threads``
> 1.
"""

from __future__ import annotations

import bz2
import functools
from typing import Any

from ..codec import Codec
from ..hookspecs import hookimpl
from ._members import MembersWriter
from ._stream import DecompressReader

CHUNK = 4 << 20


class Bz2Codec(Codec):
    name = "bz2"
    magic = b"BZh"
    extensions = (".bz2",)
    default_level = 9
    parallel = True

    def open_writer(self, fileobj: Any, level: int, threads: int = 1) -> MembersWriter:
        return MembersWriter(
            fileobj, functools.partial(bz2.compress, compresslevel=level), CHUNK, threads
        )

    def open_reader(self, fileobj: Any, threads: int = 1) -> DecompressReader:
        return DecompressReader(
            fileobj, bz2.BZ2Decompressor, codec=self.name, multistream=True, threads=threads
        )


@hookimpl
def arraypickle_register_codecs() -> list[Codec]:
    return [Bz2Codec()]
