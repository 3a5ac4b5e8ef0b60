"""One gzip or zlib stream, compressed in parallel chunks (the design pigz made known).

Each chunk of the input is compressed on its own into raw deflate blocks, primed with
the last 32 KiB of the chunk before it as a preset dictionary (so matches reach back
across the cut and the ratio stays that of a single stream), and ended by a sync flush
(an empty stored block that brings it to a byte boundary); the last chunk ends with a
final block instead. The chunks' outputs, written in order between the format's
header and trailer, are one ordinary deflate stream. The trailer's check value
(gzip's CRC-32, zlib's Adler-32) is combined from per-chunk values computed on the
worker threads, with the combination rules of the two checksums
(:func:`crc32_combine`, :func:`adler32_combine`), so no thread reads the data twice.

The output depends on the chunking only, never on the number of threads.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from typing import Any

from .._parallel import ChunkedWriter

#: deflate's window: how far back a match may reach, hence the dictionary each chunk gets.
WINDOW = 32 << 10
#: Input bytes per chunk (1 MiB: about 10 ms of zlib level 3, far above a job's cost).
CHUNK = 1 << 20

# -- check values ---------------------------------------------------------------------

_CRC_POLY = 0xEDB88320  # CRC-32 (gzip's), bit-reflected


def _multmodp(a: int, b: int) -> int:
    """The product of polynomials ``a`` and ``b`` modulo CRC-32's, bit-reflected."""
    if not a:
        return 0
    m = 1 << 31
    product = 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _powers() -> list[int]:
    """x^(2^k) modulo the polynomial, for k = 0..66 (lengths up to 2^64 bytes)."""
    table = [1 << 30]  # x^1, bit-reflected
    for _ in range(66):
        table.append(_multmodp(table[-1], table[-1]))
    return table


_X2K = _powers()


@functools.lru_cache(maxsize=64)
def _shift(nbytes: int) -> int:
    """x^(8 * nbytes) modulo the polynomial: what appending ``nbytes`` does to a CRC."""
    power, k = 1 << 31, 3  # x^0; bytes are 2^3 bits
    while nbytes:
        if nbytes & 1:
            power = _multmodp(_X2K[k], power)
        nbytes >>= 1
        k += 1
    return power


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``.

    Example::

        >>> crc32_combine(zlib.crc32(b"ab"), zlib.crc32(b"cd"), 2) == zlib.crc32(b"abcd")
        True
    """
    return _multmodp(_shift(len2), crc1) ^ crc2


_ADLER_BASE = 65521


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from ``adler32(A)``, ``adler32(B)`` and ``len(B)``.

    Example::

        >>> adler32_combine(zlib.adler32(b"ab"), zlib.adler32(b"cd"), 2) == zlib.adler32(b"abcd")
        True
    """
    rem = len2 % _ADLER_BASE
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    low = (a1 + a2 - 1) % _ADLER_BASE
    high = (b1 + b2 + rem * (a1 - 1)) % _ADLER_BASE
    return low | high << 16


# -- the writer -----------------------------------------------------------------------


def _deflate_chunk(
    chunk: memoryview, zdict: bytes, level: int, last: bool, check: Callable[[Any], int]
) -> tuple[bytes, bytes, int, int]:
    """Raw deflate blocks of one chunk (on a worker thread) and the chunk's check value."""
    if zdict:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, 0, zdict)
    else:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = comp.compress(chunk)
    end = comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return body, end, check(chunk), len(chunk)


class DeflateWriter(ChunkedWriter):
    """Writes one gzip (RFC 1952) or zlib (RFC 1950) stream, chunks compressed in parallel.

    Parameters:
        fileobj: where the stream goes (left open by close).
        level: deflate level 1..9.
        fmt: ``"gzip"`` or ``"zlib"``.
        threads: worker threads.
    """

    chunk_size = CHUNK

    def __init__(self, fileobj: Any, level: int, fmt: str, threads: int | None = 1) -> None:
        super().__init__(fileobj, threads)
        self._level = level
        self._gzip = fmt == "gzip"
        self._dict = b""
        self._check = 0 if self._gzip else 1  # crc32(b""), adler32(b"")
        self._size = 0
        # The header zlib itself writes for this level (gzip: no name, no time stamp).
        wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        header = zlib.compressobj(level, zlib.DEFLATED, wbits).flush()[: 10 if self._gzip else 2]
        self.start(header)

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        zdict = self._dict
        if len(chunk) >= WINDOW:
            self._dict = bytes(chunk[-WINDOW:])
        elif len(chunk):
            self._dict = (zdict + bytes(chunk))[-WINDOW:]
        check = zlib.crc32 if self._gzip else zlib.adler32
        return functools.partial(_deflate_chunk, chunk, zdict, self._level, last, check)

    def emit(self, result: Any) -> None:
        body, end, check, n = result
        super().emit((body, end))
        combine = crc32_combine if self._gzip else adler32_combine
        self._check = combine(self._check, check, n)
        self._size += n

    def finish(self) -> None:
        if self._gzip:
            trailer = struct.pack("<II", self._check, self._size & 0xFFFFFFFF)
        else:
            trailer = struct.pack(">I", self._check)
        super().emit(trailer)
