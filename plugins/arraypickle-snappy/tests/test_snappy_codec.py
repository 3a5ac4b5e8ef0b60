"""What is particular to the snappy codec: chunking, chunk types, interop with python-snappy."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("arraypickle_snappy", reason="arraypickle-snappy is not installed")

import snappy
from arraypickle_snappy import SnappyCodec
from arraypickle_snappy.framing import STREAM_IDENTIFIER

import arraypickle
from arraypickle.testing import assert_same, sample_bytes, sample_object


def chunks(stream: bytes) -> list[tuple[int, bytes]]:
    """The (type, data) chunks of a framed stream."""
    out, pos = [], 0
    while pos < len(stream):
        kind, length = stream[pos], int.from_bytes(stream[pos + 1 : pos + 4], "little")
        out.append((kind, stream[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    assert pos == len(stream)
    return out


def encode(data: bytes, pieces: int = 1) -> bytes:
    out = io.BytesIO()
    writer = SnappyCodec().open_writer(out, 3)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
    writer.close()
    return out.getvalue()


def decode(stream: bytes) -> bytes:
    return SnappyCodec().open_reader(io.BytesIO(stream)).read()


def test_registered_through_its_entry_point():
    codec = arraypickle.codecs()["snappy"]
    assert isinstance(codec, SnappyCodec)
    assert codec.distribution == "arraypickle-snappy"


def test_every_level_writes_the_same_stream():
    blobs = {arraypickle.dumps(sample_object(), compress=("snappy", n)) for n in range(1, 10)}
    assert len(blobs) == 1


def test_small_writes_still_make_full_chunks():
    data = sample_bytes(300_000).tobytes()
    stream = encode(data, pieces=3000)
    found = chunks(stream)
    assert found[0] == (0xFF, b"sNaPpY")
    sizes = [len(snappy.uncompress(d[4:])) if k == 0 else len(d) - 4 for k, d in found[1:]]
    assert sizes[:-1] == [65536] * (len(sizes) - 1)
    assert sum(sizes) == len(data)


def test_incompressible_data_goes_in_uncompressed_chunks():
    data = np.random.default_rng(0).bytes(200_000)
    stream = encode(data)
    assert 0x01 in {kind for kind, _ in chunks(stream)}
    assert decode(stream) == data


def test_python_snappy_reads_ours_and_we_read_theirs():
    plain = arraypickle.dumps(sample_object())
    ours = arraypickle.dumps(sample_object(), compress="snappy")
    theirs = io.BytesIO()
    snappy.stream_decompress(io.BytesIO(ours), theirs)
    assert theirs.getvalue() == plain
    packed = io.BytesIO()
    snappy.stream_compress(io.BytesIO(plain), packed)
    assert_same(sample_object(), arraypickle.loads(packed.getvalue()))


def test_concatenated_streams_and_skippable_chunks():
    plain = arraypickle.dumps(sample_object())
    half = len(plain) // 2
    padding = b"\xfe\x03\x00\x00abc"
    stream = encode(plain[:half]) + padding + encode(plain[half:]) + padding
    assert_same(sample_object(), arraypickle.loads(stream))


def test_empty_stream_is_the_identifier():
    assert encode(b"") == STREAM_IDENTIFIER
    assert decode(STREAM_IDENTIFIER) == b""


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"\x02\x01\x00\x00x", "reserved type"),
        (b"\xff\x06\x00\x00sNaPpX", "stream identifier"),
        (b"\x00\x03\x00\x00abc", "bad length"),
        (b"\x00\x09\x00\x00abcd\xff\xff\xff\xff\x0f", "more than 64 KiB"),
        (b"\x01\x10\x00\x00abc", "truncated"),
        (b"\x01\x10", "truncated"),
    ],
)
def test_bad_chunks_are_corrupt(tail, message):
    stream = encode(b"hello") + tail
    with pytest.raises(arraypickle.CorruptFileError, match=message):
        decode(stream)


def test_bad_crc_is_corrupt():
    stream = bytearray(encode(b"hello world" * 100))
    stream[len(STREAM_IDENTIFIER) + 4] ^= 1  # the first byte of the first chunk's CRC
    with pytest.raises(arraypickle.CorruptFileError, match="damaged"):
        decode(bytes(stream))
