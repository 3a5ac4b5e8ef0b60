"""What is particular to the zstd codec: levels, frame walking, bounded output, threads."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("arraypickle_zstd", reason="arraypickle-zstd is not installed")

import zstandard
from arraypickle_zstd import ZstdCodec
from arraypickle_zstd.codec import LEVELS
from arraypickle_zstd.frames import ZstdReader

import arraypickle
from arraypickle.testing import assert_same, sample_object


def rle_frame(blocks: int, byte: int = 0) -> bytes:
    """A valid zstd frame of ``blocks`` run-length blocks of 128 KiB each."""
    out = [b"\x28\xb5\x2f\xfd", bytes([0x00, 7 << 3])]  # no checksum; 128 KiB window
    for i in range(blocks):
        last = int(i == blocks - 1)
        out.append(struct.pack("<I", (128 << 10) << 3 | 1 << 1 | last)[:3] + bytes([byte]))
    return b"".join(out)


def read_all(data: bytes, piece: int = 1 << 20, threads: int = 1) -> bytes:
    reader = ZstdCodec().open_reader(io.BytesIO(data), threads=threads)
    buf, parts = bytearray(piece), []
    while n := reader.readinto(buf):
        parts.append(bytes(buf[:n]))
    return b"".join(parts)


def test_registered_through_its_entry_point():
    codec = arraypickle.codecs()["zstd"]
    assert isinstance(codec, ZstdCodec)
    assert (codec.distribution, codec.default_level, codec.parallel) == (
        "arraypickle-zstd",
        3,
        True,
    )


def test_levels_map_onto_zstd_levels():
    assert [LEVELS[n] for n in range(1, 10)] == [1, 2, 3, 5, 7, 9, 12, 15, 19]
    plain = arraypickle.dumps(sample_object())
    for level in (1, 3, 9):
        ours = arraypickle.dumps(sample_object(), compress=("zstd", level))
        # Under one chunk: exactly zstd's own frame of the container at that level.
        c = zstandard.ZstdCompressor(level=LEVELS[level], write_checksum=True)
        assert ours == c.compress(plain), level
        assert zstandard.ZstdDecompressor().decompress(ours, max_output_size=len(plain)) == plain


def test_frames_carry_a_content_checksum():
    blob = arraypickle.dumps([1, 2], compress="zstd")
    assert blob[4] & 0x04


def test_skippable_and_concatenated_frames_read_as_one():
    plain = arraypickle.dumps(sample_object())
    half = len(plain) // 2
    c = zstandard.ZstdCompressor()
    skippable = struct.pack("<II", 0x184D2A53, 5) + b"hello"
    blob = c.compress(plain[:half]) + skippable + c.compress(plain[half:]) + skippable
    assert_same(sample_object(), arraypickle.loads(blob))


def test_run_length_blocks_expand_one_at_a_time():
    # 1 GiB of output from 4 KiB of input: reading 1 MiB must not expand the rest.
    data = rle_frame(8192)
    assert len(data) < 40_000
    reader = ZstdCodec().open_reader(io.BytesIO(data))
    tracemalloc.start()
    try:
        buf = bytearray(1 << 20)
        assert reader.readinto(buf) == len(buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert not any(buf)


def test_a_frame_longer_than_its_stated_size_is_streamed_block_by_block():
    # A 1 MB frame stating 1 MiB of content over 262,200 run-length blocks of 128 KiB:
    # past the walk's limit the frame is streamed, and from its header, not with every
    # block walked handed to the decoder at once (which asked for 32 GiB).
    header = b"\x28\xb5\x2f\xfd" + bytes([0x80, 7 << 3]) + struct.pack("<I", 1 << 20)
    block = struct.pack("<I", (128 << 10) << 3 | 1 << 1)[:3] + b"\x00"
    last = struct.pack("<I", 1 << 3 | 1 << 1 | 1)[:3] + b"\x00"
    reader = ZstdCodec().open_reader(io.BytesIO(header + block * 262_200 + last))
    buf = bytearray(1 << 20)
    tracemalloc.start()
    try:
        assert reader.readinto(buf) == len(buf)  # the first MiB, in bounded memory
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20 and not any(buf)


def test_a_frame_of_many_small_blocks_with_a_stated_size_loads():
    # zstd's streaming API with a pledged size, flushing a block every 200 bytes of
    # random data: the frame is longer than the walk allows for its size, so it is
    # streamed (it was refused as "produced data from a frame header").
    obj = {"a": np.random.default_rng(0).random(20_000)}
    plain = arraypickle.dumps(obj)
    out = io.BytesIO()
    writer = zstandard.ZstdCompressor(write_content_size=True).stream_writer(
        out, size=len(plain), closefd=False
    )
    for i in range(0, len(plain), 200):
        writer.write(plain[i : i + 200])
        writer.flush(zstandard.FLUSH_BLOCK)
    writer.close()
    assert zstandard.get_frame_parameters(out.getvalue()).content_size == len(plain)
    assert_same(obj, arraypickle.loads(out.getvalue()))


def test_exact_frame_ends():
    data = rle_frame(3, byte=7)
    assert read_all(data) == b"\x07" * (3 << 17)
    for cut in (5, 6, len(data) - 4, len(data) - 1):
        with pytest.raises(arraypickle.CorruptFileError, match="truncated"):
            read_all(data[:cut])


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"\x28\xb5\x2f\xfd\x08\x38", "reserved bit"),
        (rle_frame(1)[:6] + struct.pack("<I", 3 << 1 | 1)[:3], "invalid block"),
        (rle_frame(1)[:6] + struct.pack("<I", (200 << 10) << 3 | 1)[:3], "invalid block"),
        (rle_frame(1) + b"\x00\x00\x00\x00", "unexpected data"),
    ],
)
def test_bad_frames_are_corrupt(stream, message):
    with pytest.raises(arraypickle.CorruptFileError, match=message):
        read_all(stream)


def test_threads_write_the_same_frames_any_reader_reads():
    plain = arraypickle.dumps(sample_object()) * 30  # several 2 MiB frames
    blobs = []
    for threads in (1, 2, 3):
        out = io.BytesIO()
        writer = ZstdCodec().open_writer(out, 3, threads=threads)
        writer.write(plain)
        writer.close()
        blobs.append(out.getvalue())
    assert blobs[0] == blobs[1] == blobs[2]
    reader = zstandard.ZstdDecompressor().stream_reader(blobs[0], read_across_frames=True)
    assert reader.read(len(plain) + 1) == plain
    for threads in (1, 2):
        assert read_all(blobs[0], threads=threads) == plain


def test_reader_is_a_file():
    reader = ZstdCodec().open_reader(io.BytesIO(rle_frame(1, 1)))
    assert isinstance(reader, ZstdReader) and reader.readable()
    assert reader.read(5) == b"\x01" * 5
