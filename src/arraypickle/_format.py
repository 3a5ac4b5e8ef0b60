"""The byte layout of an arraypickle container (``docs/format.md`` is the prose spec).

A container is a 16-byte header followed by records. Each record is a 16-byte record
header, zero padding (so that buffer payloads start 64-byte aligned, counting from the
first byte of the container), the payload, and an 8-byte xxh3-64 checksum of the payload.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"\x89APK\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0
CHECKSUM_XXH3_64 = 1
ALIGNMENT_LOG2 = 6
ALIGNMENT = 1 << ALIGNMENT_LOG2

# magic, major, minor, checksum algorithm, log2(alignment), CRC-32 of the first 12 bytes
HEADER = struct.Struct("<8sBBBBI")
# kind, pad, flags, payload length, CRC-32 of the first 12 bytes
RECORD = struct.Struct("<cBHQI")
TRAILER = struct.Struct("<Q")
# END payload: number of records before END, number of buffer records
END = struct.Struct("<QQ")

KIND_PICKLE = b"P"
KIND_BUFFER = b"B"
KIND_END = b"E"

# A BUFFER record with this flag is consumed by the pickle NEXT_BUFFER opcode (a
# PickleBuffer some object's own __reduce_ex__ returned); without it, by its index.
FLAG_NEXT_BUFFER = 0x0001
# Records of a kind a reader does not know may be skipped when this flag is set.
FLAG_SKIPPABLE = 0x8000

DEFAULT_PROTOCOL = 5


def pack_header() -> bytes:
    body = HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, CHECKSUM_XXH3_64, ALIGNMENT_LOG2, 0)
    return body[:12] + struct.pack("<I", zlib.crc32(body[:12]))


def pack_record(kind: bytes, pad: int, flags: int, length: int) -> bytes:
    body = RECORD.pack(kind, pad, flags, length, 0)
    return body[:12] + struct.pack("<I", zlib.crc32(body[:12]))


def padding(offset: int) -> int:
    """Zero bytes needed after a record header at ``offset`` to align its payload."""
    return -(offset + RECORD.size) % ALIGNMENT


# The global that opcode streams name to rebuild a wrapped object; a loader binds it
# (through find_class) to its own reader. Called directly, it can only complain.
REBUILD_MODULE = __name__
REBUILD_NAME = "rebuild"


def rebuild(wrapper: str, meta: object, first: int, count: int) -> object:
    """Stand-in for the loader-bound rebuild; reached only by a foreign unpickler."""
    from ._errors import ArrayPickleError

    raise ArrayPickleError(
        "this pickle stream comes from an arraypickle container; load it with arraypickle.load"
    )
