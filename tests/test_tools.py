"""Interoperability with the standard command-line compressors.

Our compressed files are the tools' own formats: ``gzip -d``, ``bzip2 -d``, ``xz -d``
and ``xz --format=lzma -d`` turn them into a container that loads and memory-maps,
and a container compressed by the tools loads without any flag. A ``.z`` file is one
RFC 1950 zlib stream. Tests of a tool that is not installed are skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
import zlib

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_mapped, assert_same, iter_arrays

TOOLS = {
    # codec: (extension, decompress command, compress command)
    "gzip": (".gz", ["gzip", "-d"], ["gzip"]),
    "bz2": (".bz2", ["bzip2", "-d"], ["bzip2"]),
    "xz": (".xz", ["xz", "-d"], ["xz"]),
    "lzma": (".lzma", ["xz", "--format=lzma", "-d"], ["xz", "--format=lzma"]),
}


def sample():
    a = np.arange(10_000.0).reshape(100, 100)
    return {
        "a": a,
        "strided": a[::3, ::-7],
        "F": np.asfortranarray(a[:20]),
        "big": np.arange(100, dtype=">i8"),
        "masked": np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        "objects": np.array([None, "x"], dtype=object),
    }


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"the {tool} command is not installed (Debian: gzip, bzip2, xz-utils)")


def run(command, path):
    subprocess.run([*command, str(path)], check=True, capture_output=True, timeout=120)


def assert_loads_and_maps(path, obj):
    assert path.read_bytes()[:8] == b"\x89APK\r\n\x1a\n"
    assert_same(ap.load(path), obj)
    mapped = ap.load(path, mmap_mode="r")
    for got, want in zip(iter_arrays(mapped), iter_arrays(obj), strict=True):
        if type(want) is np.ndarray and want.dtype != object:
            assert_mapped(got, str(path), "r")
    assert_same(mapped, obj, mapped=True)


@pytest.mark.parametrize("codec", list(TOOLS))
@pytest.mark.parametrize("how", ["extension", "name", "tuple"])
def test_the_tool_decompresses_our_files(tmp_path, codec, how):
    ext, decompress, _ = TOOLS[codec]
    need(decompress[0])
    obj = sample()
    path = tmp_path / f"obj.pkl{ext}"
    compress = {"extension": 0, "name": codec, "tuple": (codec, 1)}[how]
    ap.dump(obj, path, compress=compress)
    run(decompress, path)
    assert not path.exists()
    assert_loads_and_maps(tmp_path / "obj.pkl", obj)


@pytest.mark.parametrize("codec", list(TOOLS))
def test_a_container_compressed_by_the_tool_loads(tmp_path, codec):
    ext, _, compress = TOOLS[codec]
    need(compress[0])
    obj = sample()
    path = tmp_path / "obj.pkl"
    ap.dump(obj, path)
    run(compress, path)
    packed = tmp_path / f"obj.pkl{ext}"
    assert packed.exists()
    assert_same(ap.load(packed), obj)
    renamed = packed.rename(tmp_path / "no-extension")  # told by the magic, not the name
    with open(renamed, "rb") as f:
        assert_same(ap.load(f), obj)


def test_several_gzip_members_read_as_one(tmp_path):
    # What `cat a.gz b.gz` and pigz produce: gzip -d gives the concatenation.
    need("gzip")
    data = ap.dumps(sample())
    half = len(data) // 2
    (tmp_path / "a").write_bytes(data[:half])
    (tmp_path / "b").write_bytes(data[half:])
    run(["gzip"], tmp_path / "a")
    run(["gzip"], tmp_path / "b")
    joined = tmp_path / "joined.gz"
    joined.write_bytes((tmp_path / "a.gz").read_bytes() + (tmp_path / "b.gz").read_bytes())
    assert_same(ap.load(joined), sample())


@pytest.mark.parametrize("compress", [True, 1, 9, "zlib", ("zlib", 4)])
def test_a_z_file_is_exactly_one_zlib_stream(tmp_path, compress):
    obj = sample()
    path = tmp_path / "obj.z"
    ap.dump(obj, path, compress=compress)
    raw = path.read_bytes()
    inflater = zlib.decompressobj()
    container = inflater.decompress(raw) + inflater.flush()
    assert inflater.eof and inflater.unused_data == b""  # one stream, nothing after it
    assert container == zlib.decompress(raw)
    assert container == ap.dumps(obj)
    (tmp_path / "plain.pkl").write_bytes(container)
    assert_loads_and_maps(tmp_path / "plain.pkl", obj)


def test_compress_true_is_a_zlib_stream_too(tmp_path):
    path = tmp_path / "obj.pkl"
    ap.dump(sample(), path, compress=True)
    assert zlib.decompress(path.read_bytes()) == ap.dumps(sample())
