"""The run-length coder itself, and its codec's stream layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("arraypickle_rle", reason="arraypickle-rle is not installed")

from arraypickle_rle import RleCodec, rle

import arraypickle


@pytest.mark.parametrize(
    "data",
    [b"", b"a", b"ab", b"a" * 255, b"a" * 256, b"a" * 1000 + b"b" * 3, bytes(range(256)) * 300],
)
def test_blocks_round_trip(data):
    encoded = rle.encode(np.frombuffer(data, np.uint8))
    out, pos = [], 0
    while pos < len(encoded):
        size = rle.block_size(encoded[pos:])
        out.append(rle.decode(encoded[pos : pos + size]))
        pos += size
    assert b"".join(out) == data


def test_runs_compress():
    blob = arraypickle.dumps(np.zeros(1 << 20, np.uint8), compress="rle")
    assert blob.startswith(b"RLE1") and blob.endswith(rle.END)
    assert len(blob) < 50_000


@pytest.mark.parametrize("block", [b"\x01\x00\x00\x00\x00a", b"\xff\xff\xff\x00"])
def test_bad_blocks(block):
    with pytest.raises(ValueError):
        rle.block_size(block) is not None and rle.decode(block)


def test_codec_attributes():
    codec = arraypickle.codecs()["rle"]
    assert isinstance(codec, RleCodec)
    assert (codec.magic, codec.extensions, codec.distribution) == (
        b"RLE1",
        (".rle",),
        "arraypickle-rle",
    )
