"""The blosc stream: element-size shuffling, its frames, and every way it can be damaged."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

pytest.importorskip("arraypickle_blosc", reason="arraypickle-blosc is not installed")

import blosc
import xxhash
from arraypickle_blosc import BloscCodec
from arraypickle_blosc.stream import CHUNK, MAGIC

import arraypickle
from arraypickle.testing import assert_same, sample_object


def frames(stream: bytes) -> list[tuple[bytes, bytes, int]]:
    """(kind, payload, data_len) of every frame after the 16-byte header."""
    out, pos = [], 16
    while pos < len(stream):
        kind, _, flags, plen, dlen = struct.unpack("<cBHII", stream[pos : pos + 12])
        assert not flags
        out.append((kind, stream[pos + 16 : pos + 16 + plen], dlen))
        pos += 16 + plen + 8
    assert pos == len(stream)
    return out


def frame(kind: bytes, payload: bytes, data_len: int, flags: int = 0) -> bytes:
    head = struct.pack("<cBHII", kind, 0, flags, len(payload), data_len)
    return (
        head
        + struct.pack("<I", zlib.crc32(head))
        + payload
        + struct.pack("<Q", xxhash.xxh3_64_intdigest(payload))
    )


def header(major: int = 1) -> bytes:
    body = MAGIC + bytes([major, 0, 0, 0])
    return body + struct.pack("<I", zlib.crc32(body))


def decode(stream: bytes) -> bytes:
    return BloscCodec().open_reader(io.BytesIO(stream)).read()


def test_registered_through_its_entry_point():
    codec = arraypickle.codecs()["blosc"]
    assert isinstance(codec, BloscCodec)
    assert (codec.distribution, codec.default_level) == ("arraypickle-blosc", 5)
    assert codec.parallel


def test_stream_header_bytes():
    blob = arraypickle.dumps(1, compress="blosc")
    assert blob[:8] == b"\x89BLF\r\n\x1a\n"
    assert blob[8:12] == b"\x01\x00\x00\x00"
    assert blob[12:16] == struct.pack("<I", zlib.crc32(blob[:12]))
    assert frames(blob)[-1][0] == b"E"


def test_array_buffers_are_shuffled_by_element_size():
    obj = {"f4": np.arange(200_000, dtype=np.float32), "c16": np.ones(10_000, np.complex128)}
    found = frames(arraypickle.dumps(obj, compress="blosc"))
    typesizes = {}
    for kind, payload, _ in found:
        if kind == b"C":
            assert payload[2] & 0x1  # Blosc's byte-shuffle flag
            assert blosc.get_clib(payload) == "LZ4"
            typesizes[payload[3]] = typesizes.get(payload[3], 0) + 1
    assert typesizes.keys() == {1, 4, 16}


def test_big_elements_and_small_arrays():
    obj = [np.zeros(1000, "V300"), np.arange(100, dtype=np.int64)]
    found = frames(arraypickle.dumps(obj, compress="blosc"))
    # V300 (300 KB) is its own frame with element size 1; the small array joins the bytes.
    assert [p[3] for k, p, _ in found if k == b"C"] == [1, 1, 1]
    assert_same(obj, arraypickle.loads(arraypickle.dumps(obj, compress="blosc")))


def test_chunks_and_end_counts():
    arr = np.arange(3 * CHUNK // 8 + 5, dtype=np.float64)
    found = frames(arraypickle.dumps(arr, compress=("blosc", 1)))
    sizes = [dlen for kind, _, dlen in found if kind == b"C"]
    assert max(sizes) == CHUNK
    total, count = struct.unpack("<QQ", found[-1][1])
    assert (total, count) == (sum(sizes), len(sizes))


def test_level_is_blosc_clevel():
    data = np.arange(100_000, dtype=np.int32)
    out = io.BytesIO()
    writer = BloscCodec().open_writer(out, 7)
    writer.write_array(data.view(np.uint8), 4)
    writer.close()
    payload = frames(out.getvalue())[0][1]
    assert payload == blosc.compress(data.tobytes(), 4, 7, blosc.SHUFFLE, "lz4")


def test_threads_are_set_for_the_stream_and_restored():
    before = blosc.nthreads
    writer = BloscCodec().open_writer(io.BytesIO(), 3, threads=1)
    assert blosc.nthreads == 1
    writer.close()
    assert blosc.nthreads == before


def test_chunks_decompress_into_the_callers_buffer():
    data = np.arange(CHUNK // 8, dtype=np.float64)
    out = io.BytesIO()
    writer = BloscCodec().open_writer(out, 5)
    writer.write_array(data.view(np.uint8), 8)
    writer.close()
    reader = BloscCodec().open_reader(io.BytesIO(out.getvalue()))
    dest = np.empty(CHUNK, np.uint8)
    tracemalloc.start()
    try:
        assert reader.readinto(dest) == CHUNK
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(out.getvalue()) + (1 << 20)  # the compressed frame, not a copy
    assert np.array_equal(dest.view(np.float64), data)


def good_stream() -> bytes:
    return arraypickle.dumps(sample_object(), compress="blosc")


def test_damaged_frame_header_and_payload():
    stream = bytearray(good_stream())
    first = 16
    bad = bytearray(stream)
    bad[first + 5] ^= 1
    with pytest.raises(arraypickle.CorruptFileError, match="CRC mismatch"):
        decode(bytes(bad))
    bad = bytearray(stream)
    bad[first + 16 + 20] ^= 1
    with pytest.raises(arraypickle.CorruptFileError, match="checksum mismatch"):
        decode(bytes(bad))


def test_missing_frames_and_end():
    stream = good_stream()
    found = frames(stream)
    chunks = [frame(k, p, d) for k, p, d in found]
    with pytest.raises(arraypickle.CorruptFileError, match="truncated"):
        decode(header() + b"".join(chunks[:-1]))  # cut right before END
    with pytest.raises(arraypickle.CorruptFileError, match="END frame counts"):
        decode(header() + b"".join(chunks[1:]))  # a whole chunk missing


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (header(major=2) + frame(b"E", bytes(16), 0), "format version 2"),
        (header() + frame(b"X", b"", 0), "unknown kind"),
        (header() + frame(b"E", bytes(16), 0, flags=1), "unknown flags"),
        (header() + frame(b"E", bytes(8), 0), "wrong size"),
        (header() + frame(b"C", bytes(40), 64 << 20), "bad size"),
        (header() + frame(b"C", bytes(40), 0), "bad size"),
        (header() + frame(b"C", bytes(40), 100), "Blosc chunk"),
        (header() + frame(b"E", bytes(16), 0) + b"x", "unexpected data"),
        (MAGIC + bytes(8), "damaged header"),
    ],
)
def test_bad_streams_are_corrupt(stream, message):
    with pytest.raises(arraypickle.CorruptFileError, match=message):
        decode(stream)


def test_chunk_that_disagrees_with_its_frame():
    payload = blosc.compress(bytes(1000), 1, 5, blosc.SHUFFLE, "lz4")
    stream = header() + frame(b"C", payload, 999) + frame(b"E", struct.pack("<QQ", 999, 1), 0)
    with pytest.raises(arraypickle.CorruptFileError, match="disagrees"):
        decode(stream)


def test_reading_keeps_no_payload_alive():
    # python-blosc's cbuffer_validate leaks its argument; the reader must not use it.
    data = np.random.default_rng(0).integers(0, 40, 48 << 20, dtype=np.uint8)
    out = io.BytesIO()
    writer = BloscCodec().open_writer(out, 5)
    writer.write_array(data, 1)
    writer.close()
    reader = BloscCodec().open_reader(io.BytesIO(out.getvalue()))
    dest = memoryview(np.empty(len(data), np.uint8))
    tracemalloc.start()
    try:
        done = 0
        while n := reader.readinto(dest[done : done + (4 << 20)]):
            done += n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done == len(data)
    assert peak < 16 << 20, f"reading held {peak >> 20} MiB"


def test_a_bad_header_leaves_the_thread_count_alone():
    before = blosc.nthreads
    with pytest.raises(arraypickle.CorruptFileError):
        BloscCodec().open_reader(io.BytesIO(MAGIC + bytes(8)), threads=1)
    assert blosc.nthreads == before
    reader = BloscCodec().open_reader(io.BytesIO(header() + frame(b"E", bytes(16), 0)), threads=1)
    assert blosc.nthreads == 1
    reader.close()
    assert blosc.nthreads == before


def test_a_failing_file_fails_cleanly():
    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError("disk full")

    before = blosc.nthreads
    with pytest.raises(OSError, match="disk full"):
        BloscCodec().open_writer(Full(), 5, threads=1)
    assert blosc.nthreads == before
    with pytest.raises(OSError, match="disk full"):
        arraypickle.dump(np.arange(10), Full(), compress="blosc")


def test_overlapping_streams_restore_the_users_blosc_settings():
    """Blosc's thread count is process-wide: streams open at once share arraypickle's
    setting, and the user's comes back after the last one closes, in any order."""
    import io

    import blosc
    from arraypickle_blosc import BloscCodec

    before = blosc.set_nthreads(3)
    try:
        first = BloscCodec().open_writer(io.BytesIO(), 5, threads=2)
        second = BloscCodec().open_writer(io.BytesIO(), 5, threads=2)
        first.close()
        assert blosc.set_nthreads(1) == 1  # still arraypickle's while `second` is open
        second.close()
        assert blosc.set_nthreads(3) == 3
    finally:
        blosc.set_nthreads(before)
