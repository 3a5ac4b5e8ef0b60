"""joblib's own zlib framing (joblib 0.8.4-0.9): ``ZF`` files.

Layout: ``ZF``, the length of the uncompressed data as ``0x``-prefixed lowercase hex,
left-justified in 19 characters with spaces (joblib 0.8.4 under Python 2 wrote one
space more), then one zlib stream (RFC 1950) of exactly that many bytes. A zlib stream
never starts with a space, so the extra space is told apart by its value.

The main file of a compressed joblib 0.9 dump holds a pickle; its ``.npy.z`` companions
hold raw array bytes. Both are read here as streams, in bounded memory.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import Any

from ._errors import CorruptFileError
from ._stdcodecs._stream import DecompressReader, Inflater
from ._streams import Prefixed, read_full

MAGIC = b"ZF"
HEADER_SIZE = 2 + 19
_LENGTH = re.compile(rb"0x([0-9a-fA-F]{1,17}) *")
_READ_PIECE = 1 << 20


class ZFReader(io.RawIOBase):
    """The decompressed content of a ``ZF`` file; checks the declared length."""

    def __init__(self, inner: Any, length: int, name: str) -> None:
        super().__init__()
        self._inner = inner
        self.length = length
        self._name = name
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        got = self._inner.readinto(view) or 0
        self._done += got
        if self._done > self.length or (not got and len(view) and self._done != self.length):
            raise CorruptFileError(
                f"{self._name}: joblib's zlib framing declares {self.length} bytes, "
                f"the stream holds {'more' if self._done > self.length else self._done}"
            )
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        # In pieces: a damaged length in the pickle (1.4 GB from 637 bytes) claims
        # memory only as the stream delivers.
        parts = []
        total = 0
        while total < size:
            buf = bytearray(min(size - total, _READ_PIECE))
            got = self.readinto(buf)
            if not got:
                break
            del buf[got:]
            parts.append(buf)
            total += got
        return b"".join(parts)

    def finish_stream(self) -> int | None:
        """The codec contract's ``finish_stream``, for a load from a stream that cannot
        seek: the rest of the zlib stream (its checksum), nothing after it."""
        overread = self._inner.finish_stream()
        if self._done != self.length:
            raise CorruptFileError(
                f"{self._name}: joblib's zlib framing declares {self.length} bytes, "
                f"the object ends after {self._done}"
            )
        return overread

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def open_zf(stream: Any, name: str) -> ZFReader:
    """Read the header of a ``ZF`` stream positioned at its ``Z``; return its content."""
    header = read_full(stream, HEADER_SIZE)  # a socket's reads may be short
    match = _LENGTH.fullmatch(header[2:]) if header[:2] == MAGIC else None
    if match is None or len(header) < HEADER_SIZE:
        raise CorruptFileError(f"{name}: not a joblib zlib file (bad ZF header {header!r})")
    first = stream.read(1)
    if first == b" ":
        first = b""
    inner = DecompressReader(
        Prefixed(first, stream),
        lambda: Inflater(zlib.MAX_WBITS),
        codec="joblib zlib",
        multistream=False,
    )
    return ZFReader(inner, int(match.group(1), 16), name)
