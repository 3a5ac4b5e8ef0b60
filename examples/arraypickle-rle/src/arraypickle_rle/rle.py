"""Run-length coding of bytes in blocks: the compression "library" the codec wraps.

A block is a little-endian uint32 ``n``, then ``n`` run lengths (1..255), then ``n``
byte values. Each block codes at most :data:`PIECE` bytes; the block with ``n = 0``
(:data:`END`) ends a stream.
"""

from __future__ import annotations

import numpy as np

PIECE = 1 << 16
END = bytes(4)


def encode(data: np.ndarray) -> bytes:
    """The blocks coding ``data`` (a 1-D uint8 array), runs longer than 255 split."""
    out = []
    for start in range(0, len(data), PIECE):
        block = data[start : start + PIECE]
        starts = np.flatnonzero(np.diff(block, prepend=~block[:1]))
        lengths = np.diff(np.append(starts, len(block)))
        pieces = (lengths + 254) // 255
        counts = np.full(pieces.sum(), 255, np.uint8)
        counts[np.cumsum(pieces) - 1] = lengths - 255 * (pieces - 1)
        values = np.repeat(block[starts], pieces)
        out += [len(counts).to_bytes(4, "little"), counts.tobytes(), values.tobytes()]
    return b"".join(out)


def block_size(buf: bytes) -> int | None:
    """The size of the block at the start of ``buf``, or None when it is incomplete."""
    if len(buf) < 4:
        return None
    n = int.from_bytes(buf[:4], "little")
    if n > PIECE:
        raise ValueError(f"an RLE block of {n} runs")
    return 4 + 2 * n if len(buf) >= 4 + 2 * n else None


def decode(block: bytes) -> bytes:
    """The bytes one whole block codes."""
    n = (len(block) - 4) // 2
    runs = np.frombuffer(block, np.uint8, offset=4)
    counts, values = runs[:n], runs[n:]
    if not counts.all() or counts.sum() > PIECE:
        raise ValueError("an RLE block with bad run lengths")
    return np.repeat(values, counts).tobytes()
