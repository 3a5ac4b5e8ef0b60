"""``arraypickle convert``: joblib and pickle files to arraypickle, re-compression."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _progress
from arraypickle._cli.convert import parse_compress
from arraypickle._writer import ContainerWriter
from cli_support import info_json, run_cli
from conftest import COMPRESS_SETTINGS
from layout import records
from peak_rss import PEAK_SCRIPT
from test_integrity_sizes import record_headers, with_pad

MiB = 1 << 20


def sample() -> dict:
    return {
        "w": np.arange(20000, dtype=np.float64).reshape(100, 200),
        "f": np.asfortranarray(np.ones((30, 40), np.float32)),
        "m": np.matrix([[1, 2]]),
        "o": np.array([1, "a", np.arange(3)], dtype=object),
        "meta": {"name": "model", "classes": ["a", "b"]},
    }


def assert_same(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray) and a[k].dtype != object:
            assert type(a[k]) is type(b[k]) and np.array_equal(a[k], b[k]), k
        elif isinstance(a[k], np.ndarray):
            assert a[k][0] == b[k][0] and np.array_equal(a[k][2], b[k][2])
        else:
            assert a[k] == b[k]


def codec_of(capsys, path: str) -> str | None:
    report = info_json(capsys, path)
    assert report["format"] == "arraypickle"
    return report["compression"]


@pytest.mark.parametrize("compress", [0, 3, "gzip", "xz"])
def test_joblib_to_arraypickle(tmp_path, capsys, compress):
    joblib = pytest.importorskip("joblib")
    src, dst = str(tmp_path / "model.joblib"), str(tmp_path / "model.pkl")
    joblib.dump(sample(), src, compress=compress)
    code, out, err = run_cli(capsys, "convert", src, dst)
    assert (code, out, err) == (0, "", "")
    assert codec_of(capsys, dst) is None
    assert_same(ap.load(dst), sample())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_to_arraypickle(tmp_path, capsys, protocol):
    src, dst = tmp_path / "data.pickle", str(tmp_path / "data.pkl.gz")
    src.write_bytes(pickle.dumps(sample(), protocol=protocol))
    assert run_cli(capsys, "convert", str(src), dst)[0] == 0
    assert codec_of(capsys, dst) == "gzip"  # from DST's extension
    assert_same(ap.load(dst), sample())


@pytest.mark.parametrize("source", COMPRESS_SETTINGS)
@pytest.mark.parametrize("target", ["none", "zlib:1", "bz2", "xz:6"])
def test_recompress(tmp_path, capsys, source, target):
    src, dst = str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")
    ap.dump(sample(), src, compress=source)
    assert run_cli(capsys, "convert", src, dst, "--compress", target)[0] == 0
    assert codec_of(capsys, dst) == (None if target == "none" else target.split(":")[0])
    assert_same(ap.load(dst), sample())
    # The container inside is copied as it was: same records, same offsets.
    before, after = info_json(capsys, src), info_json(capsys, dst)
    assert before["arrays"] == after["arrays"]
    assert before["stream_size"] == after["stream_size"]


def test_recompress_runs_nothing_and_needs_no_class(tmp_path, capsys):
    """A container naming a class that does not exist here converts all the same:
    it is never unpickled."""
    src, dst = tmp_path / "in.pkl", str(tmp_path / "out.pkl.xz")
    out = io.BytesIO()
    writer = ContainerWriter(out)
    writer.write(b"\x80\x05cnowhere_mod\nFoo\n)\x81.")
    writer.finish()
    src.write_bytes(out.getvalue())
    with pytest.raises(ModuleNotFoundError):
        ap.load(str(src))
    assert run_cli(capsys, "convert", str(src), dst)[0] == 0
    assert info_json(capsys, dst)["untrusted"] == ["nowhere_mod.Foo"]
    code, _, err = run_cli(capsys, "convert", str(src), dst + "2", "--safe")
    assert code == 1 and "nowhere_mod.Foo" in err and not os.path.exists(dst + "2")


def test_safe_refuses_untrusted_joblib_and_pickle(tmp_path, capsys):
    joblib = pytest.importorskip("joblib")
    src, dst = str(tmp_path / "in.joblib"), str(tmp_path / "out.pkl")
    joblib.dump({"when": np.datetime64("2020-01-01"), "c": Custom()}, src)
    code, _, err = run_cli(capsys, "convert", src, dst, "--safe")
    assert code == 1
    assert "test_cli_convert.Custom" in err and "Traceback" not in err
    assert err.count("\n") == 1 and not os.path.exists(dst)
    code, _, err = run_cli(capsys, "convert", src, dst, "--trusted", "test_cli_convert.Custom")
    assert code == 0, err
    assert isinstance(ap.load(dst)["c"], Custom)


class Custom:
    pass


def test_stdin_is_refused_as_a_usage_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", "-", str(tmp_path / "out.pkl"))
    assert code == 2 and "not from stdin" in err and not (tmp_path / "out.pkl").exists()


def test_stdout_is_refused_as_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ap.dump([1], "in.pkl")
    code, out, err = run_cli(capsys, "convert", "in.pkl", "-")
    assert code == 2 and "not stdout" in err and not out and not (tmp_path / "-").exists()


@pytest.mark.parametrize("source", ["arraypickle", "joblib", "pickle", "missing"])
def test_a_malformed_trusted_name_is_a_usage_error_whatever_the_source(tmp_path, capsys, source):
    src, dst = tmp_path / "in.pkl", tmp_path / "out.pkl"
    if source == "arraypickle":
        ap.dump([1], src)
    elif source == "joblib":
        pytest.importorskip("joblib").dump([1], src)
    elif source == "pickle":
        src.write_bytes(pickle.dumps([1]))
    code, _, err = run_cli(capsys, "convert", str(src), str(dst), "--trusted", "no dots")
    assert code == 2, err
    assert "trusted names look like 'module.qualname'" in err and not dst.exists()


def test_compress_specs(tmp_path, capsys):
    src = str(tmp_path / "in.pkl")
    ap.dump(sample(), src)
    cases = {
        ("x.pkl", "9"): "zlib",  # an int: zlib at that level...
        ("x.pkl.bz2", "9"): "bz2",  # ...or the extension's codec at that level
        ("x.pkl.gz", "none"): None,  # none wins over the extension
        ("x.pkl.xz", None): "xz",  # the extension decides when absent
        ("x.pkl", None): None,
        ("x.pkl", "gzip"): "gzip",
        ("x.pkl", "LZMA:2"): "lzma",
    }
    for (name, spec), expected in cases.items():
        dst = str(tmp_path / name)
        argv = ["convert", src, dst] + (["--compress", spec] if spec else [])
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert codec_of(capsys, dst) == expected, (name, spec)
        os.unlink(dst)


def test_explicit_codec_against_extension_notes_it(tmp_path, capsys):
    src, dst = str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl.xz")
    ap.dump([1], src)
    code, _, err = run_cli(capsys, "convert", src, dst, "--compress", "gzip")
    assert code == 0 and "note:" in err and "xz" in err
    assert codec_of(capsys, dst) == "gzip"


def test_parse_compress():
    assert parse_compress(None) == 0
    assert parse_compress("none") == ("zlib", 0)
    assert parse_compress("0") == ("zlib", 0)
    assert parse_compress("7") == 7
    assert parse_compress("bz2:4") == ("bz2", 4)
    assert parse_compress("gzip") == ("gzip", 3)


def test_in_place_recompression(tmp_path, capsys):
    path = str(tmp_path / "f.pkl")
    ap.dump(sample(), path)
    assert run_cli(capsys, "convert", path, path, "--compress", "xz")[0] == 0
    assert codec_of(capsys, path) == "xz"
    assert_same(ap.load(path), sample())
    assert [p for p in os.listdir(tmp_path) if p != "f.pkl"] == []


@pytest.mark.parametrize(
    "where", ["buffer", "opcodes", "truncated", "junk", "two objects", "padding"]
)
def test_damaged_container_is_not_propagated(tmp_path, capsys, where):
    src, dst = tmp_path / "in.pkl", tmp_path / "out.pkl.gz"
    ap.dump(sample(), str(src))
    data = bytearray(src.read_bytes())
    if where == "buffer":
        data[200] ^= 1  # inside the first buffer
    elif where == "opcodes":
        data[-200] ^= 1
    elif where == "truncated":
        del data[len(data) // 2 :]
    elif where == "padding":  # made so: header CRCs pass, the buffers are off alignment
        kinds = [kind for _pos, kind, *_rest in record_headers(bytes(data))]
        data = bytearray(with_pad(bytes(data), kinds.index(b"B"), 63))
    else:  # as load refuses them: a DST of the first object alone would lose the rest
        data += b"junk" if where == "junk" else bytes(data)
    src.write_bytes(bytes(data))
    dst.write_bytes(b"the old file")
    code, _, err = run_cli(capsys, "convert", str(src), str(dst))
    assert code == 1
    assert "in.pkl" in err and err.count("\n") == 1
    assert dst.read_bytes() == b"the old file"
    assert sorted(os.listdir(tmp_path)) == ["in.pkl", "out.pkl.gz"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need os.mkfifo")
def test_a_pipe_as_src_is_refused_at_once(tmp_path, capsys):
    # SRC is opened twice (its first bytes choose the route): a FIFO would wait forever
    # for a second writer, or give the second open nothing. Nothing opens it here.
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    code, _, err = run_cli(capsys, "convert", str(fifo), str(tmp_path / "out.pkl"))
    assert code == 1
    assert "not a regular file" in err and "in.fifo" in err
    assert sorted(os.listdir(tmp_path)) == ["in.fifo"]


def test_progress_bar(tmp_path, capsys, monkeypatch):
    src, dst = str(tmp_path / "in.joblib"), str(tmp_path / "out.pkl")
    ap.dump(sample(), src)
    monkeypatch.setattr(_progress, "BAR_THRESHOLD", 0)
    code, _, err = run_cli(capsys, "convert", src, dst, "--progress")
    assert code == 0 and "convert in.joblib" in err
    code, _, err = run_cli(capsys, "convert", src, dst, "--no-progress")
    assert (code, err) == (0, "")
    code, _, err = run_cli(capsys, "convert", src, dst)  # stderr is not a terminal here
    assert (code, err) == (0, "")
    pickle_src = tmp_path / "p.pickle"
    pickle_src.write_bytes(pickle.dumps(sample()))
    code, _, err = run_cli(capsys, "convert", str(pickle_src), dst, "--progress")
    assert code == 0 and "load p.pickle" in err and "dump out.pkl" in err


# -- bounded memory -------------------------------------------------------------------

MEMORY_SCRIPT = (
    PEAK_SCRIPT
    + r"""
import numpy as np
import arraypickle as ap
from arraypickle._cli import main

kind, src, dst, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
a = np.empty(size // 8)
a[:] = np.arange(a.size) % 251
if kind == "joblib":
    import joblib
    joblib.dump({"a": a}, src)
elif kind == "pickle":
    import pickle
    with open(src, "wb") as f:
        pickle.dump({"a": a}, f, protocol=5)
else:
    ap.dump({"a": a}, src, compress=("gzip", 1) if kind == "ap-gzip" else 0)
del a
ap.dump([1], dst + ".warm", compress="xz")
assert main(["convert", dst + ".warm", dst + ".warm2", "--compress", "zlib:1"]) == 0
peak = Peak()
assert main(["convert", src, dst, "--compress", "zlib:1"]) == 0
print(json.dumps({"extra": peak.extra()}))
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ap", "ap-gzip", "joblib", "pickle"])
def test_convert_memory(tmp_path, kind):
    if kind == "joblib":
        pytest.importorskip("joblib")
    size = 160 * MiB
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            kind,
            str(tmp_path / "src"),
            str(tmp_path / "dst"),
            str(size),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    extra = json.loads(done.stdout)["extra"]
    if kind.startswith("ap"):
        # Record by record: nothing of the data is held.
        assert extra < 32 * MiB, extra
    else:
        # Loaded, then dumped: the data plus a bounded overhead.
        assert size <= extra < size + 48 * MiB, extra


# -- array-aware codecs, remote stores ---------------------------------------------------


class ArrayAwareCodec:
    """A test codec that records the element sizes ``write_array`` is given."""

    name = "awtest"
    magic = b"AWTEST\x00\x01"
    extensions = (".awtest",)
    seen: list[tuple[int, int]] = []

    def open_writer(self, fileobj, level):
        codec = self

        class Writer:
            def __init__(self):
                fileobj.write(codec.magic)

            def write(self, data):
                return fileobj.write(data)

            def write_array(self, data, itemsize):
                # As the core calls it (arraypickle.testing's conformance kit says so)
                assert isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1
                codec.seen.append((memoryview(data).nbytes, itemsize))
                fileobj.write(data)

            def close(self):
                pass

        return Writer()

    def open_reader(self, fileobj):
        fileobj.read(len(self.magic))
        return fileobj


def test_array_aware_codec_gets_element_sizes(tmp_path, capsys, fresh_registry):
    codec = ArrayAwareCodec()
    ap.register_codec(codec)
    src, dst = str(tmp_path / "in.pkl.gz"), str(tmp_path / "out.pkl")
    obj = {"a": np.arange(10, dtype=np.int16), "b": np.ones((3, 3)), "c": np.zeros(5, "S3")}
    ap.dump(obj, src)
    codec.seen.clear()
    assert run_cli(capsys, "convert", src, dst, "--compress", "awtest:1")[0] == 0
    assert sorted(codec.seen) == [(15, 3), (20, 2), (72, 8)]
    out = ap.load(dst)
    assert all(np.array_equal(out[k], obj[k]) for k in obj)


def test_a_dump_groups_small_arrays_for_an_array_aware_codec_as_convert_does(
    tmp_path, capsys, fresh_registry
):
    # Small buffers go into GROUP records whatever the codec; an array-aware one gets each
    # with its element size, the group's table and gaps as bytes. So convert does too:
    # both write the same bytes.
    codec = ArrayAwareCodec()
    ap.register_codec(codec)
    obj = [np.arange(i).astype(t) for i in range(1, 200) for t in ("<i2", ">f8", "S3")]
    src, direct, converted = (str(tmp_path / n) for n in ("in.pkl", "d.awtest", "c.awtest"))
    ap.dump(obj, src)
    codec.seen.clear()
    ap.dump(obj, direct, compress=("awtest", 1))
    dumped, codec.seen[:] = list(codec.seen), []
    assert run_cli(capsys, "convert", src, converted, "--compress", "awtest:1")[0] == 0
    assert dumped == codec.seen == [(a.nbytes, a.itemsize) for a in obj]
    with open(direct, "rb") as f:
        data = f.read()
    with open(converted, "rb") as f:
        assert f.read() == data
    with open(src, "rb") as f:
        assert data == codec.magic + f.read()
    kinds = [r.kind for r in records(data[len(codec.magic) :])]
    assert kinds.count(b"G") > 1 and b"B" not in kinds
    assert all(np.array_equal(a, b) for a, b in zip(ap.load(direct), obj, strict=True))


def test_elements_larger_than_a_copy_piece_are_copied_as_bytes(tmp_path, capsys, fresh_registry):
    # An element of 5 MiB (a structured subarray) does not fit the 4 MiB pieces the
    # copy goes by: the piece came out 0 and the copy never ended.
    codec = ArrayAwareCodec()
    ap.register_codec(codec)
    src, dst = str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")
    obj = np.zeros(2, dtype=[("x", "u1", (5 << 20,))])
    obj["x"][1, :3] = 7
    ap.dump(obj, src)
    codec.seen.clear()
    assert run_cli(capsys, "convert", src, dst, "--compress", "awtest:1")[0] == 0
    assert codec.seen == []  # as plain bytes: no element size to give
    assert np.array_equal(ap.load(dst), obj)


def test_remote_paths(capsys):
    pytest.importorskip("fsspec")
    ap.dump(sample(), "memory://cli/in.joblib")
    report = info_json(capsys, "memory://cli/in.joblib")
    assert report["format"] == "arraypickle" and report["file_size"]
    code, _, err = run_cli(capsys, "convert", "memory://cli/in.joblib", "memory://cli/out.pkl.xz")
    assert code == 0, err
    assert codec_of(capsys, "memory://cli/out.pkl.xz") == "xz"
    assert_same(ap.load("memory://cli/out.pkl.xz"), sample())
