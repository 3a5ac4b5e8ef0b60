"""LZ4 and Zstandard streams that begin with skippable frames (pzstd writes one) load:
the codec is found by the first frame after them, and its reader passes over them."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest

import arraypickle as ap
from arraypickle.testing import Unseekable
from checks import assert_same

OBJ = {"x": np.arange(50_000), "names": ["a", "b"]}


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    magic = (0x184D2A50 + nibble).to_bytes(4, "little")
    return magic + len(payload).to_bytes(4, "little") + payload


def installed(codec: str) -> str:
    if codec not in ap.codecs():
        pytest.skip(f"the {codec} codec is not installed")
    return codec


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize(
    "frames",
    [[b"\x00\x00\x02\x00"], [b""], [b"note", b"x" * 5000]],
    ids=["pzstd's", "empty", "two"],
)
def test_leading_skippable_frames(codec, frames, tmp_path):
    data = b"".join(skippable(f, i) for i, f in enumerate(frames))
    data += ap.dumps(OBJ, compress=installed(codec))
    path = tmp_path / "obj.bin"
    path.write_bytes(data)
    assert_same(ap.load(path), OBJ)
    assert_same(ap.loads(data), OBJ)
    assert_same(ap.load(Unseekable(data)), OBJ)
    assert ap.get_untrusted_types(path) == []


def test_files_from_pzstd_load(tmp_path):
    installed("zstd")
    if shutil.which("pzstd") is None:
        pytest.skip("pzstd (zstd's parallel tool) is not installed")
    plain = tmp_path / "plain.pkl"
    ap.dump(OBJ, plain)
    packed = subprocess.run(
        ["pzstd", "-q", "-p", "2", "-c", str(plain)], capture_output=True, check=True
    ).stdout
    assert packed[:4] == b"\x50\x2a\x4d\x18"  # the skippable frame this is about
    assert_same(ap.loads(packed), OBJ)


@pytest.mark.parametrize(
    "after",
    [b"\x1f\x8b\x08\x00" + bytes(20), b"\x80\x04K\x01.", b""],
    ids=["gzip", "pickle", "nothing"],
)
def test_only_lz4_or_zstd_may_follow(after):
    with pytest.raises(ap.CorruptFileError):
        ap.loads(skippable(b"abcd") + after)


def test_a_huge_skippable_frame_is_not_read_to_find_the_codec():
    # A frame declaring 4 GiB is not taken in to look past it.
    data = (0x184D2A50).to_bytes(4, "little") + (0xFFFFFFFF).to_bytes(4, "little") + bytes(100)
    tracemalloc.start()
    try:
        with pytest.raises(ap.CorruptFileError):
            ap.load(Unseekable(data))
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_convert_copies_the_container_behind_skippable_frames(tmp_path, capsys):
    # convert told a container from its first bytes on its own and missed one behind
    # skippable frames: it loaded and dumped it again instead of copying its records.
    from arraypickle._cli.convert import _is_container
    from arraypickle._plugins import get_registry
    from cli_support import run_cli

    src, dst = tmp_path / "obj.zst", tmp_path / "obj.pkl"
    src.write_bytes(skippable(b"note") + ap.dumps(OBJ, compress=installed("zstd")))
    assert _is_container(str(src), get_registry())
    assert run_cli(capsys, "convert", str(src), str(dst))[0] == 0
    assert_same(ap.load(dst), OBJ)
