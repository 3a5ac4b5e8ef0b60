"""The ``rle`` codec: run-length coding, the worked example of an arraypickle codec plugin."""

from __future__ import annotations

from typing import Any

import numpy as np

from arraypickle.codec import Codec, CompressWriter, DecompressReader, skip_magic

from . import rle

MAGIC = b"RLE1"


class RleCompressor:
    """``compress``/``flush``, as ``bz2.BZ2Compressor``: what CompressWriter drives."""

    _head = MAGIC  # written before the first block

    def compress(self, data: Any) -> bytes:
        out, self._head = self._head + rle.encode(np.frombuffer(data, np.uint8)), b""
        return out

    def flush(self) -> bytes:
        return self._head + rle.END


class RleDecompressor:
    """``decompress(data, max_length)``, ``needs_input``, ``eof``, ``unused_data``, as bz2's."""

    def __init__(self) -> None:
        self._in, self._out, self.eof, self.unused_data = b"", b"", False, b""

    @property
    def needs_input(self) -> bool:
        return not self._out and rle.block_size(self._in) is None

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        self._in += data
        size = rle.block_size(self._in)
        if not self._out and size is not None:  # decode one block, keep the rest
            self._out, self._in = rle.decode(self._in[:size]), self._in[size:]
            self.eof, self.unused_data = size == len(rle.END), self._in
        take = len(self._out) if max_length < 0 else max_length
        out, self._out = self._out[:take], self._out[take:]
        return out


class RleCodec(Codec):
    name = "rle"
    magic = MAGIC
    extensions = (".rle",)
    default_level = 1  # RLE has no levels: every level writes the same stream
    distribution = "arraypickle-rle"

    def open_writer(self, fileobj: Any, level: int) -> CompressWriter:
        return CompressWriter(fileobj, RleCompressor())

    def open_reader(self, fileobj: Any) -> DecompressReader:
        skip_magic(fileobj, MAGIC, self.name)  # matched by arraypickle; reads may be short
        return DecompressReader(fileobj, RleDecompressor, codec=self.name, multistream=False)
