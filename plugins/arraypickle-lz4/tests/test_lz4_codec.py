"""What is particular to the lz4 codec: its levels, its frames, concatenated frames."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("arraypickle_lz4", reason="arraypickle-lz4 is not installed")

import lz4.frame
from arraypickle_lz4 import Lz4Codec
from arraypickle_lz4.codec import CHUNK

import arraypickle
from arraypickle.testing import sample_object


def pixels(n: int = 200_000) -> np.ndarray:
    """float32 values of 8-bit pixels / 255, as in image datasets."""
    rng = np.random.default_rng(0)
    return (np.repeat(rng.integers(0, 256, n // 4), 4) / 255).astype(np.float32)


def test_registered_through_its_entry_point():
    codec = arraypickle.codecs()["lz4"]
    assert isinstance(codec, Lz4Codec)
    assert codec.distribution == "arraypickle-lz4"
    assert codec.default_level == 1


def test_levels_1_and_2_are_fast_mode_and_3_up_are_hc():
    data = pixels()
    sizes = {lvl: len(arraypickle.dumps(data, compress=("lz4", lvl))) for lvl in (1, 2, 3, 9)}
    assert sizes[1] == sizes[2]
    assert sizes[3] < sizes[1]
    assert sizes[9] <= sizes[3]


def test_level_is_lz4_frame_compression_level_as_in_joblib():
    # The same level through lz4.frame directly, one frame per 512 KiB chunk: the same
    # bytes; and within 1% of one frame of everything (joblib's way).
    plain = arraypickle.dumps(pixels())
    for level in (1, 3, 6):
        ours = arraypickle.dumps(pixels(), compress=("lz4", level))
        frames = b"".join(
            lz4.frame.compress(plain[i : i + CHUNK], compression_level=level, store_size=True)
            for i in range(0, len(plain), CHUNK)
        )
        assert ours == frames, level
        direct = lz4.frame.compress(plain, compression_level=level, block_linked=True)
        assert abs(len(ours) - len(direct)) <= 0.01 * len(direct), level


def test_frame_descriptor():
    blob = arraypickle.dumps(pixels(), compress="lz4")  # several blocks
    assert blob[:4] == b"\x04\x22\x4d\x18"
    flg, bd = blob[4], blob[5]
    assert flg >> 6 == 0b01  # frame version 1
    assert not flg & 0x20  # linked blocks (LZ4 unlinks a frame of one block)
    assert flg & 0x08  # the content size, which lets frames decode in parallel
    assert not flg & 0x04  # no content checksum: the container checks itself
    assert (bd >> 4) & 0x7 == 4  # 64 KiB blocks


def test_concatenated_frames_read_as_one():
    plain = arraypickle.dumps(sample_object())
    half = len(plain) // 2
    blob = lz4.frame.compress(plain[:half]) + lz4.frame.compress(plain[half:])
    out = arraypickle.loads(blob)
    np.testing.assert_array_equal(out["floats"], sample_object()["floats"])


def test_frames_with_content_checksum_and_big_blocks_load():
    # The lz4 command's defaults: 4 MiB blocks and a content checksum.
    plain = arraypickle.dumps(sample_object())
    blob = lz4.frame.compress(
        plain, block_size=lz4.frame.BLOCKSIZE_MAX4MB, content_checksum=True, block_checksum=True
    )
    assert arraypickle.loads(blob)["text"] == sample_object()["text"]


def test_bad_content_checksum_is_corrupt():
    plain = arraypickle.dumps({"x": 1})
    blob = bytearray(lz4.frame.compress(plain, content_checksum=True))
    blob[-1] ^= 0xFF
    with pytest.raises(arraypickle.CorruptFileError):
        arraypickle.loads(bytes(blob))


def test_writer_emits_frame_header_even_when_empty():
    out = io.BytesIO()
    Lz4Codec().open_writer(out, 1).close()
    assert lz4.frame.decompress(out.getvalue()) == b""


def test_a_frame_larger_than_its_stated_size_allows_is_streamed_not_buffered():
    """A header stating 16 bytes followed by 600 stored 64 KiB blocks (37.5 MiB): the
    reader must not buffer the whole frame to find its end."""
    import struct

    import xxhash

    header = struct.pack("<IBBQ", 0x184D2204, 0x40 | 0x20 | 0x08, 4 << 4, 16)
    header += bytes([(xxhash.xxh32(header[4:]).intdigest() >> 8) & 0xFF])
    block = struct.pack("<I", 0x80000000 | 65536) + b"\1" * 65536
    source = io.BytesIO(header + block * 600 + bytes(4))
    reader = Lz4Codec().open_reader(source, threads=1)
    assert reader.read(16) == b"\1" * 16
    assert source.tell() < 4 << 20
    reader.close()


@pytest.mark.parametrize("stated", [0, 1])
def test_a_frame_decoding_past_its_stated_size_stops_there(stated):
    """A header stating 0 or 1 byte over 200 blocks of 4 MiB of zeros (3 MB, within the
    walk's bound for one 4 MiB block): decoding stops past the stated size, where
    lz4.frame.decompress went on for hundreds of MiB before comparing (cramjam, which
    decodes into the caller's buffer, says the frame overflows it)."""
    import struct
    import tracemalloc

    import lz4.block
    import xxhash

    header = struct.pack("<IBBQ", 0x184D2204, 0x40 | 0x20 | 0x08, 7 << 4, stated)
    header += bytes([(xxhash.xxh32(header[4:]).intdigest() >> 8) & 0xFF])
    zeros = lz4.block.compress(bytes(4 << 20), store_size=False, mode="high_compression")
    block = struct.pack("<I", len(zeros)) + zeros
    reader = Lz4Codec().open_reader(io.BytesIO(header + block * 200 + bytes(4)), threads=1)
    tracemalloc.start()
    try:
        with pytest.raises(arraypickle.CorruptFileError, match=r"stated size|failed to write"):
            reader.read(1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_the_default_level_is_joblibs_fast_mode():
    # joblib's compress='lz4' leaves lz4.frame at level 0: LZ4's fast mode, as level 1.
    data = {"a": pixels()}
    assert arraypickle.dumps(data, compress="lz4") == arraypickle.dumps(data, compress=("lz4", 1))
    assert len(arraypickle.dumps(data, compress=("lz4", 3))) != len(
        arraypickle.dumps(data, compress="lz4")
    )
