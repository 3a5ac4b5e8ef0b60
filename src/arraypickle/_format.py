"""The byte layout of an arraypickle container (``docs/format.md`` is the prose spec).

A container is a 16-byte header followed by records. Each record is a 16-byte record
header, zero padding (so that buffer payloads start 64-byte aligned, counting from the
first byte of the container), the payload, and an 8-byte xxh3-64 checksum of the payload
seeded with the record's index. From version 2, a GROUP record holds several small
buffers, each 64-byte aligned, after a table of their lengths.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

from ._checksum import Hasher, digest

MAGIC = b"\x89APK\r\n\x1a\n"
VERSION_MAJOR = 2
VERSION_MINOR = 0
# Major versions this module reads: version 1 is version 2 without GROUP records.
READABLE_MAJORS = (1, 2)
CHECKSUM_XXH3_64 = 1
ALIGNMENT = 64

# magic, major, minor, checksum algorithm, flags, CRC-32 of the first 12 bytes
HEADER = struct.Struct("<8sBBBBI")
HEADER_FLAGS_OFFSET = 11
# Set by a load that memory-maps the file for writing ('r+'): its buffers may have
# been changed in place since they were written, so their checksums no longer bind.
HEADER_FLAG_MAPPED_WRITABLE = 0x01
# kind, pad, flags, payload length, CRC-32 of the first 12 bytes
RECORD = struct.Struct("<cBHQI")
# The first 12 bytes of a record header, and the CRC-32 that follows them.
_RECORD_BODY = struct.Struct("<cBHQ")
_CRC = struct.Struct("<I")
TRAILER = struct.Struct("<Q")
# END payload: number of records before END, number of buffers (in B and G records)
END = struct.Struct("<QQ")

KIND_PICKLE = b"P"
KIND_BUFFER = b"B"
KIND_GROUP = b"G"
KIND_END = b"E"
# Kinds whose payload the writer aligns (the others have no padding).
ALIGNED_KINDS = (KIND_BUFFER, KIND_GROUP)

# GROUP payload: its table (buffer count, reserved zero, each buffer's length, the
# table's own checksum), then each buffer at the next multiple of ALIGNMENT.
GROUP_HEAD = struct.Struct("<II")
_GROUP_LENGTH = struct.Struct("<Q")
# A reader refuses a GROUP record longer than this: it reads one whole, before
# checking it (arraypickle writes them up to 64 KiB, tables included).
GROUP_MAX = 1 << 20

# A BUFFER record with this flag is consumed by the pickle NEXT_BUFFER opcode (a
# PickleBuffer some object's own __reduce_ex__ returned); without it, by its index.
FLAG_NEXT_BUFFER = 0x0001
# Records of a kind a reader does not know may be skipped when this flag is set.
FLAG_SKIPPABLE = 0x8000

DEFAULT_PROTOCOL = 5


class FormatError(ValueError):
    """A header that is not what this module writes; the text says what is wrong.

    Readers turn it into :class:`~arraypickle.CorruptFileError` naming their file.
    """


class Header(NamedTuple):
    major: int
    minor: int
    checksum: int
    flags: int


def pack_header(flags: int = 0) -> bytes:
    body = HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, CHECKSUM_XXH3_64, flags, 0)
    return body[:12] + struct.pack("<I", zlib.crc32(body[:12]))


def parse_header(raw: bytes) -> Header:
    """The fields of a container header, checked; :class:`FormatError` if it is not one."""
    if len(raw) < HEADER.size or raw[:8] != MAGIC:
        raise FormatError("not an arraypickle container (bad magic)")
    _magic, major, minor, checksum, flags, crc = HEADER.unpack(raw[: HEADER.size])
    if zlib.crc32(raw[:12]) != crc:
        raise FormatError("the container header is damaged (CRC mismatch)")
    if major not in READABLE_MAJORS:
        raise FormatError(
            f"format version {major}.{minor} is not supported by this arraypickle "
            f"(reads versions {READABLE_MAJORS[0]} to {READABLE_MAJORS[-1]}); "
            "upgrade arraypickle"
        )
    if checksum != CHECKSUM_XXH3_64:
        raise FormatError(f"unknown checksum algorithm {checksum}")
    return Header(major, minor, checksum, flags)


def pack_record(kind: bytes, pad: int, flags: int, length: int) -> bytes:
    body = _RECORD_BODY.pack(kind, pad, flags, length)
    return body + _CRC.pack(zlib.crc32(body))


def parse_record(raw: bytes) -> tuple[bytes, int, int, int]:
    """``(kind, pad, flags, length)`` of a record header, checked; :class:`FormatError`
    if damaged. (A plain tuple: this runs once per record, for every small array.)"""
    kind, pad, flags, length, crc = RECORD.unpack(raw)
    if zlib.crc32(raw[:12]) != crc:
        raise FormatError("a record header is damaged (CRC mismatch)")
    return kind, pad, flags, length


def record_checksum(payload: object, index: int) -> int:
    """The checksum of record ``index``'s payload (the first record is 0).

    Seeding with the index makes a record moved to another place fail its check.
    """
    return digest(payload, seed=index)


def record_hasher(index: int) -> Hasher:
    """An incremental :func:`record_checksum` for payloads hashed a piece at a time."""
    return Hasher(seed=index)


def padding(offset: int) -> int:
    """Zero bytes needed after a record header at ``offset`` to align its payload."""
    return -(offset + RECORD.size) % ALIGNMENT


def padding_ok(kind: bytes, pad: int, offset: int, groups: bool = True) -> bool:
    """Whether a record header at ``offset`` declares the padding the format prescribes
    (unknown kinds: any below the alignment). ``groups``: whether the container's
    version has GROUP records (in version 1, ``G`` is a kind it does not know)."""
    if kind == KIND_BUFFER or (groups and kind == KIND_GROUP):
        return pad == padding(offset)
    if kind in (KIND_PICKLE, KIND_END):
        return pad == 0
    return pad < ALIGNMENT


def padding_problem(
    kind: bytes, pad: int, offset: int, pad_bytes: bytes, groups: bool = True
) -> str | None:
    """What is wrong with the padding of a record whose header is at ``offset``, as the
    loader would refuse it ("declares 8 bytes of padding"), or None; ``pad_bytes``: the
    ``pad`` bytes that follow the header. For the walks that read no payload (``info``,
    ``get_untrusted_types``): what they accept, the load accepts."""
    if not padding_ok(kind, pad, offset, groups):
        return f"declares {pad} bytes of padding"
    if any(pad_bytes):
        return "has padding that is not zero"
    return None


def aligned(offset: int) -> int:
    """``offset`` rounded up to the format's alignment."""
    return offset + (-offset % ALIGNMENT)


def group_table_size(count: int) -> int:
    """The bytes of a GROUP table listing ``count`` buffers, its checksum included."""
    return GROUP_HEAD.size + _GROUP_LENGTH.size * count + TRAILER.size


def pack_group_table(lengths: list[int], index: int) -> bytes:
    """The table of a GROUP record ``index`` whose buffers have ``lengths``."""
    body = GROUP_HEAD.pack(len(lengths), 0) + struct.pack(f"<{len(lengths)}Q", *lengths)
    return body + TRAILER.pack(digest(body, seed=index))


def group_count(head: bytes, length: int) -> int:
    """The number of buffers a GROUP record of ``length`` bytes declares in ``head``
    (its first :data:`GROUP_HEAD` bytes), checked against ``length``;
    :class:`FormatError` if it cannot be."""
    count, reserved = GROUP_HEAD.unpack(head)
    if count == 0 or reserved:
        raise FormatError(f"a group record's table starts with {count}, {reserved}")
    # Each buffer holds a byte at least, so all but the last take 64 bytes or more: a
    # table cannot list more buffers than its payload has room for (a crafted table of
    # empty ones would cost a loader far more memory than the file's size).
    least = aligned(group_table_size(count)) + ALIGNMENT * (count - 1) + 1
    if least > length:
        raise FormatError(
            f"a group record of {length} bytes declares {count} buffers: "
            f"more than it can hold ({least} bytes at least)"
        )
    return count


def group_layout(table: bytes, index: int, length: int) -> list[tuple[int, int]]:
    """``(offset, length)`` in the payload of each buffer of GROUP record ``index``,
    whose ``length``-byte payload begins with ``table`` (its whole table, as
    :func:`group_count` sized it); :class:`FormatError` unless the table is intact and
    its buffers fill the payload exactly."""
    body = table[: -TRAILER.size]
    if digest(body, seed=index) != TRAILER.unpack_from(table, len(body))[0]:
        raise FormatError("a group record's table is damaged (checksum mismatch)")
    count = GROUP_HEAD.unpack_from(body)[0]
    lengths = struct.unpack_from(f"<{count}Q", body, GROUP_HEAD.size)
    layout = []
    end = len(table)
    for size in lengths:
        start = end + (-end % ALIGNMENT)  # aligned(end), inline: once per small array
        end = start + size
        if not size or end > length:  # as it goes: a damaged length is no allocation
            raise FormatError(
                f"a group record's buffer {len(layout)} of {size} bytes at byte {start} "
                f"does not fit its payload of {length} bytes"
                if size
                else f"a group record lists an empty buffer (buffer {len(layout)})"
            )
        layout.append((start, size))
    if end != length:
        raise FormatError(
            f"a group record's buffers end at byte {end} of its payload, which holds {length} bytes"
        )
    return layout


def read_group_table(
    read: Callable[[int], bytes], index: int, length: int
) -> tuple[bytes, list[tuple[int, int]]]:
    """The table of GROUP record ``index`` (a payload of ``length`` bytes), read through
    ``read(n)`` (its next ``n`` bytes), and the layout :func:`group_layout` finds in it;
    :class:`FormatError` if either is wrong."""
    if not GROUP_HEAD.size <= length <= GROUP_MAX:
        raise FormatError(
            f"a group record of {length} bytes (a group holds {GROUP_HEAD.size} to {GROUP_MAX})"
        )
    head = read(GROUP_HEAD.size)
    table = head + read(group_table_size(group_count(head, length)) - len(head))
    return table, group_layout(table, index, length)


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
