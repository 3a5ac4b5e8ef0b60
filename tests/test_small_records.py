"""Objects of many small arrays: records joined into few writes, small buffers read whole.

The writer collects record headers, trailers and payloads up to 16 KiB and writes them
joined; the reader takes a small buffer's padding, payload and checksum in one read.
These tests pin the behaviour on both sides of that threshold.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError
from checks import assert_same
from test_integrity_corpus import OneWay

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
    # About 440 KB in all: one write per 64 KiB, not three per array.
    assert out.calls <= len(out.getvalue()) // (64 << 10) + 2
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
    """An uncompressed container holding one 64-byte array, and its payload's offset."""
    arr = np.arange(8, dtype=np.int64) + 1000
    data = ap.dumps(arr)
    return data, data.index(arr.tobytes())


def test_changed_byte_in_a_small_buffer_is_caught():
    data, at = _small_buffer_file()
    damaged = bytearray(data)
    damaged[at + 3] ^= 0x10
    with pytest.raises(CorruptFileError, match=r"record 0 \('B' at offset 16\).*checksum"):
        ap.loads(bytes(damaged))
    # Unverified, the changed value comes back: the check is what catches it.
    assert ap.loads(bytes(damaged), verify=False)[0] != 1000


def test_nonzero_padding_before_a_small_buffer_is_caught():
    data, at = _small_buffer_file()
    damaged = bytearray(data)
    damaged[at - 1] = 1
    with pytest.raises(CorruptFileError, match="padding of record 0"):
        ap.loads(bytes(damaged))


def test_truncated_small_buffer_names_the_record():
    data, at = _small_buffer_file()
    with pytest.raises(CorruptFileError, match=r"truncated: record 0 \('B' at offset 16\)"):
        ap.load(OneWay(data[: at + 10]))
    # With the size known, the declared length is refused before anything is read.
    with pytest.raises(CorruptFileError, match=r"record 0 \('B' at offset 16\) declares 64 bytes"):
        ap.loads(data[: at + 10])
