"""An independent reading of the container layout, for tests that look at file bytes.

Written from the format description (16-byte header; records of a 16-byte header,
zero padding, payload, 8-byte checksum; a GROUP record's payload: a table of buffer
lengths, then each buffer at the next multiple of 64), not from arraypickle's reader,
so that a test using it checks the bytes on disk rather than the reader's own opinion
of them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"\x89APK\r\n\x1a\n"
HEADER_SIZE = 16
RECORD = struct.Struct("<cBHQI")
TRAILER_SIZE = 8


@dataclass(frozen=True)
class Record:
    kind: bytes
    flags: int
    offset: int  # of the payload, from the first byte of the container
    length: int


def records(data: bytes) -> list[Record]:
    """The records of the uncompressed container ``data``, up to and including END."""
    assert data[:8] == MAGIC, "not an uncompressed container"
    found = []
    pos = HEADER_SIZE
    while True:
        kind, pad, flags, length, _crc = RECORD.unpack_from(data, pos)
        start = pos + RECORD.size + pad
        found.append(Record(kind, flags, start, length))
        pos = start + length + TRAILER_SIZE
        if kind == b"E":
            return found


def group_members(data: bytes, group: Record) -> list[Record]:
    """The buffers of a GROUP record, each as a Record of kind ``G`` (its flags 0)."""
    count, reserved = struct.unpack_from("<II", data, group.offset)
    assert reserved == 0
    lengths = struct.unpack_from(f"<{count}Q", data, group.offset + 8)
    members = []
    end = 8 + 8 * count + 8  # the table's own checksum closes it
    for length in lengths:
        start = end + (-end % 64)
        members.append(Record(b"G", 0, group.offset + start, length))
        end = start + length
    assert end == group.length
    return members


def buffers(data: bytes) -> list[Record]:
    """Every buffer of ``data``, in order: BUFFER records, and the buffers of GROUP
    records (see :func:`group_members`)."""
    found = []
    for r in records(data):
        if r.kind == b"B":
            found.append(r)
        elif r.kind == b"G":
            found += group_members(data, r)
    return found


def pickled(data: bytes) -> bytes:
    """The opcode stream: every PICKLE payload, concatenated."""
    return b"".join(data[r.offset : r.offset + r.length] for r in records(data) if r.kind == b"P")
