"""Objects of many small arrays: small buffers in GROUP records, records joined into few
writes, read whole.

The writer gathers buffers of up to 16 KiB into GROUP records of up to 64 KiB, and
collects record headers, trailers and small payloads to write them joined; the reader
takes a group's padding, payload and checksum in one read. These tests pin the
behaviour on both sides of that threshold, and what a reader refuses of a group.
"""

from __future__ import annotations

import io
import lzma
import pickle
import struct
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError
from arraypickle import _format as fmt
from checks import assert_same
from cli_support import run_cli
from layout import buffers, group_members, records
from peak_rss import PEAK_SCRIPT, run_measured
from test_integrity_corpus import OneWay, container

THRESHOLD = 16 << 10


class CountingFile(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def write(self, data):  # type: ignore[override]
        self.calls += 1
        return super().write(data)


def test_many_small_arrays_take_few_writes():
    value = [np.arange(i % 7, dtype=np.float64) for i in range(5000)]
    out = CountingFile()
    ap.dump(value, out)
    # About 450 KB in all: a write or two per 64 KiB (a group record; a frame of
    # opcodes, written from its own memory), not three per array.
    assert out.calls <= 2 * (len(out.getvalue()) // (64 << 10)) + 2
    assert_same(ap.loads(out.getvalue()), value)


@pytest.mark.parametrize("nbytes", [0, 8, THRESHOLD - 8, THRESHOLD, THRESHOLD + 8, 3 * THRESHOLD])
@pytest.mark.parametrize("compress", [0, 3])
def test_sizes_around_the_threshold(tmp_path, nbytes, compress):
    rng = np.random.default_rng(nbytes)
    value = {
        "a": rng.random(nbytes // 8),
        "fortran": np.asfortranarray(rng.random((2, nbytes // 16))),
        "strided": rng.random(nbytes // 4)[::2],
        "tiny": np.arange(3, dtype=np.int16),
    }
    path = tmp_path / "f.pkl"
    ap.dump(value, path, compress=compress)
    assert_same(ap.load(path), value)
    assert_same(ap.load(path, verify=False), value)
    if not compress:
        assert_same(ap.load(path, mmap_mode="r"), value, mapped=True)


def _small_buffer_file() -> tuple[bytes, int]:
    """An uncompressed container holding one 64-byte array, and its bytes' offset."""
    arr = np.arange(8, dtype=np.int64) + 1000
    data = ap.dumps(arr)
    return data, data.index(arr.tobytes())


def test_small_buffers_go_in_group_records():
    value = [np.arange(n, dtype=np.uint8) for n in (0, 1, 63, 64, 65, THRESHOLD)]
    value += [np.arange(THRESHOLD + 1, dtype=np.uint8), np.arange(3, dtype=np.int16)]
    data = ap.dumps(value)
    kinds = [r.kind for r in records(data)]
    # The empty one in a record of its own (groups hold none); the next five small ones
    # in one group; the large one in a record of its own, before which the group is
    # closed; the last small one in a group of its own, after it.
    assert kinds[:4] == [b"B", b"G", b"B", b"G"], kinds
    found = buffers(data)
    assert [b.length for b in found] == [a.nbytes for a in value]
    for arr, b in zip(value, found, strict=True):
        assert b.offset % 64 == 0
        assert data[b.offset : b.offset + b.length] == arr.tobytes()
    assert_same(ap.loads(data), value)


def test_a_group_stays_within_64_kib():
    value = [np.full(n, n % 251, dtype=np.uint8) for n in range(1, 3000, 7)]
    data = ap.dumps(value)
    groups = [r for r in records(data) if r.kind == b"G"]
    assert len(groups) > 3
    assert all(r.length <= 64 << 10 for r in groups)
    assert sum(len(group_members(data, r)) for r in groups) == len(value)
    assert_same(ap.loads(data), value)


def test_next_buffer_buffers_keep_records_of_their_own():
    value = [np.arange(4.0), pickle.PickleBuffer(bytearray(b"abc")), np.arange(3)]
    data = ap.dumps(value, protocol=5)
    kinds = [(r.kind, r.flags) for r in records(data)]
    assert kinds.index((b"B", fmt.FLAG_NEXT_BUFFER)) > kinds.index((b"G", 0))
    out = ap.loads(data)
    assert bytes(out[1]) == b"abc"
    assert_same([out[0], out[2]], [value[0], value[2]])


def test_changed_byte_in_a_small_buffer_is_caught():
    data, at = _small_buffer_file()
    damaged = bytearray(data)
    damaged[at + 3] ^= 0x10
    with pytest.raises(CorruptFileError, match=r"record 0 \('G' at offset 16\).*checksum"):
        ap.loads(bytes(damaged))
    # Unverified, the changed value comes back: the check is what catches it.
    assert ap.loads(bytes(damaged), verify=False)[0] != 1000


def test_nonzero_padding_before_a_group_is_caught():
    data, _at = _small_buffer_file()
    damaged = bytearray(data)
    damaged[63] = 1  # the record's padding: its header at 16, its payload at 64
    with pytest.raises(CorruptFileError, match="padding of record 0"):
        ap.loads(bytes(damaged))


def test_nonzero_gap_in_a_group_is_caught_unverified():
    data, at = _small_buffer_file()
    damaged = bytearray(data)
    damaged[at - 1] = 1  # between the table and the buffer
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        ap.loads(bytes(damaged))
    with pytest.raises(CorruptFileError, match=r"padding in record 0 \('G' at offset 16\)"):
        ap.loads(bytes(damaged), verify=False)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_a_damaged_group_table_is_caught_however_loaded(tmp_path, mmap_mode):
    """The table has a checksum of its own: unverified and mapped loads check it too."""
    data, _at = _small_buffer_file()
    path = tmp_path / "f.pkl"
    for offset in range(64, 64 + 24):  # count, reserved, the one length, the checksum
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path.write_bytes(damaged)
        with pytest.raises(CorruptFileError, match=r"record 0 \('G' at offset 16\)"):
            ap.load(path, mmap_mode=mmap_mode, verify=False)
        with pytest.raises(CorruptFileError, match="offset 16"):
            ap.get_untrusted_types(path)


def _group_file(*, count: int, lengths: list[int], reserved: int = 0, extra: int = 0) -> bytes:
    """A container whose first record is a group made as the arguments say (its
    table's checksum right), then a pickle of the int 1."""
    body = fmt.GROUP_HEAD.pack(count, reserved) + struct.pack(f"<{len(lengths)}Q", *lengths)
    payload = bytearray(body + fmt.TRAILER.pack(fmt.digest(body, seed=0)))
    for n in lengths:
        payload += bytes(-len(payload) % 64) + bytes(min(n, 1 << 16))  # as much as is
    payload += bytes(extra)
    opcodes = b"\x80\x05K\x01."
    return container(
        (b"G", 0, len(payload), bytes(payload)),
        (b"P", 0, len(opcodes), opcodes),
        end=(2, len(lengths)),
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"count": 0, "lengths": []}, "starts with 0, 0"),
        ({"count": 1, "lengths": [8], "reserved": 1}, "starts with 1, 1"),
        ({"count": 1, "lengths": [8], "extra": 1}, "end at byte 72 of its payload, which holds 73"),
        ({"count": 200, "lengths": [8]}, "declares 200 buffers: more than it can hold"),
        ({"count": 3, "lengths": [4000, 0, 8]}, "lists an empty buffer"),
        ({"count": 2, "lengths": [4000, 2**64 - 1]}, "does not fit its payload"),
        ({"count": 2, "lengths": [4000]}, "table is damaged"),
    ],
)
def test_groups_made_wrong_are_refused(table, problem, tmp_path):
    data = _group_file(**table)
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    for load in (
        lambda: ap.loads(data),
        lambda: ap.load(path, mmap_mode="r"),
        lambda: ap.get_untrusted_types(path),
    ):
        with pytest.raises(CorruptFileError, match=problem):
            load()


def test_a_group_whose_buffers_are_never_used_is_refused():
    # The crafting helper makes groups the reader accepts, as this shows.
    with pytest.raises(CorruptFileError, match="2 buffers were never used"):
        ap.loads(_group_file(count=2, lengths=[8, 1]))


def test_a_group_in_a_version_1_container_is_refused():
    data = bytearray(_small_buffer_file()[0])
    data[8] = 1  # major version 1, header CRC fixed up
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[:12])))
    with pytest.raises(CorruptFileError, match="unknown kind"):
        ap.loads(bytes(data))
    with pytest.raises(CorruptFileError, match="unknown kind"):
        ap.get_untrusted_types(io.BytesIO(bytes(data)))


def test_a_group_longer_than_a_mib_is_refused_before_it_is_read():
    header = fmt.pack_record(b"G", 32, 0, (1 << 20) + 1)
    data = fmt.pack_header() + header + bytes(32) + bytes(100)
    with pytest.raises(CorruptFileError, match="more than a group record may hold"):
        ap.load(OneWay(data))


def test_truncated_small_buffer_names_the_record():
    data, at = _small_buffer_file()
    with pytest.raises(CorruptFileError, match=r"truncated: record 0 \('G' at offset 16\)"):
        ap.load(OneWay(data[: at + 10]))
    # With the size known, the declared length is refused before anything is read.
    with pytest.raises(CorruptFileError, match=r"record 0 \('G' at offset 16\) declares 128 bytes"):
        ap.loads(data[: at + 10])


def test_a_table_of_more_buffers_than_the_payload_can_hold_is_refused_at_once():
    """Each buffer but the last takes 64 bytes of the payload at least: a table of many
    empty (or one-byte) buffers, which compresses to nothing, cannot hold a loader's
    memory at many times the file's size (a few KB of xz had held 885 MB)."""
    count = (fmt.GROUP_MAX - 16) // 8
    data = _group_file(count=count, lengths=[0] * count)
    for load in (lambda: ap.loads(data), lambda: ap.get_untrusted_types(io.BytesIO(data))):
        with pytest.raises(CorruptFileError, match=f"declares {count} buffers: more than"):
            load()


def test_a_version_1_reader_skips_what_it_skipped():
    """In a version-1 container, ``G`` is a kind its reader does not know: a skippable
    one is skipped, with any padding under 64, as version 1 specifies."""
    header = bytearray(fmt.pack_header())
    header[8] = 1  # major version 1, header CRC fixed up
    struct.pack_into("<I", header, 12, zlib.crc32(bytes(header[:12])))
    opcodes = b"\x80\x05K\x01."
    data = bytes(header)
    for index, (kind, flags, payload) in enumerate(
        [(b"G", fmt.FLAG_SKIPPABLE, b"abc"), (b"P", 0, opcodes)]
    ):
        data += fmt.pack_record(kind, 0, flags, len(payload)) + payload  # no padding
        data += fmt.TRAILER.pack(fmt.record_checksum(payload, index))
    end = fmt.END.pack(2, 0)
    data += fmt.pack_record(b"E", 0, 0, len(end)) + end
    data += fmt.TRAILER.pack(fmt.record_checksum(end, 2))
    assert ap.loads(data) == 1
    assert ap.get_untrusted_types(io.BytesIO(data)) == []


def _resealed(data: bytes) -> bytes:
    """``data`` with its first record's payload checksum made right again (a file
    crafted so, not damaged)."""
    first = records(data)[0]
    payload = data[first.offset : first.offset + first.length]
    trailer = fmt.TRAILER.pack(fmt.record_checksum(payload, 0))
    end = first.offset + first.length
    return data[:end] + trailer + data[end + fmt.TRAILER.size :]


@pytest.mark.parametrize("mapped_writable", [False, True])
def test_convert_refuses_a_group_with_a_gap_every_load_refuses(tmp_path, capsys, mapped_writable):
    """``convert`` must not seal into a fresh copy what every load refuses: gap bytes
    that are not zero, whether the payload's checksum was crafted to match or no longer
    binds (a file mapped for writing)."""
    path = tmp_path / "f.pkl"
    ap.dump([np.arange(i) for i in range(1, 6)], path)
    if mapped_writable:
        del ap.load(path, mmap_mode="r+")[0]  # sets the header flag
    data = bytearray(path.read_bytes())
    gap = buffers(bytes(data))[0].offset - 1  # the byte before the first buffer
    data[gap] = 1
    path.write_bytes(data if mapped_writable else _resealed(bytes(data)))
    with pytest.raises(CorruptFileError, match=r"padding in record 0 \('G' at offset 16\)"):
        ap.load(path)
    code, _out, err = run_cli(capsys, "convert", str(path), str(tmp_path / "copy.pkl"))
    assert code == 1
    assert "padding in record 0 ('G' at offset 16)" in err


def densest_groups(count: int) -> bytes:
    """A container of ``count`` GROUP records of 1 MiB at most, each listing as many
    one-byte buffers as fit (every buffer but the last takes 64 bytes), none of them
    used: the most buffers a file of its size can make a loader hold."""
    out = bytearray(fmt.pack_header())
    total = 0
    for index in range(count):
        n = 1
        while fmt.aligned(fmt.group_table_size(n + 1)) + 64 * n + 1 <= fmt.GROUP_MAX:
            n += 1
        body = fmt.GROUP_HEAD.pack(n, 0) + struct.pack(f"<{n}Q", *[1] * n)
        payload = bytearray(body + fmt.TRAILER.pack(fmt.digest(body, seed=index)))
        for _ in range(n):
            payload += bytes(-len(payload) % 64) + b"\0"
        pad = fmt.padding(len(out))
        out += fmt.pack_record(b"G", pad, 0, len(payload)) + bytes(pad) + payload
        out += fmt.TRAILER.pack(fmt.record_checksum(bytes(payload), index))
        total += n
    opcodes = pickle.dumps(None, protocol=5)
    for kind, payload in ((b"P", opcodes), (b"E", fmt.END.pack(count + 1, total))):
        out += fmt.pack_record(kind, 0, 0, len(payload)) + payload
        out += fmt.TRAILER.pack(fmt.record_checksum(payload, count + (kind == b"E")))
    return bytes(out)


DENSEST_LOAD = (
    PEAK_SCRIPT
    + """
import arraypickle as ap
path, size = sys.argv[1], int(sys.argv[2])
peak = Peak()
try:
    ap.load(path)
    outcome = "loaded"
except ap.CorruptFileError as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "extra": peak.extra(), "size": size}))
"""
)


def test_groups_of_the_most_buffers_hold_memory_in_proportion_to_their_size(tmp_path):
    """Buffers wait in memory until the pickle takes them (here: never), as views of
    their group's payload. A crafted file's compressed size bounds nothing (these 10 MB
    of groups take a few KB of xz); what it decompresses to does. Measured: about 5.4
    times that size (a file of as many empty BUFFER records: 9.6 times); an empty
    buffer in a table, allowed, had made it 28 times."""
    data = densest_groups(10)
    path = tmp_path / "dense.pkl.xz"
    path.write_bytes(lzma.compress(data, preset=9))
    assert path.stat().st_size < 16 << 10
    result = run_measured(DENSEST_LOAD, str(path), str(len(data)))
    assert "buffers were never used" in result["outcome"]
    assert result["extra"] < 8 * len(data), result
