"""``arraypickle verify FILE [--json]``: every byte checked, nothing unpickled."""

from __future__ import annotations

import json
import pathlib
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError, _verify
from arraypickle._cli import main
from test_integrity_corpus import COMPRESSIONS, SAMPLES, dumped

HERE = pathlib.Path(__file__).parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_buffer_is_one_buffer(tmp_path, capsys):
    path = tmp_path / "f.pkl"
    ap.dump(np.arange(3), path)
    code, out, _ = run(capsys, str(path))
    assert code == 0 and ", 1 buffer of 24 bytes)" in out


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_sound_files_pass(compression, tmp_path, capsys):
    path = tmp_path / "f.pkl"
    path.write_bytes(dumped("small_mixed", compression))
    code, out, err = run(capsys, str(path))
    assert (code, err) == (0, "")
    assert out.startswith(f"{path}: OK (")
    assert " 7 buffers of " in out
    code, out, _ = run(capsys, "--json", str(path))
    report = json.loads(out)
    assert code == 0
    assert report["ok"] is True
    assert report["file"] == str(path)
    assert report["codec"] == (None if compression == "none" else compression)
    assert report["containers"] == 1
    assert report["buffers"] == 7  # 5 arrays, a masked one (data, mask), a PickleBuffer
    assert report["container_bytes"] == len(dumped("small_mixed", "none"))


def test_report_counts(tmp_path):
    path = tmp_path / "f.pkl"
    ap.dump({"a": np.zeros(1000), "b": np.ones((3, 3), np.int8), "x": [1]}, path)
    report = _verify.verify(path)
    assert (report.codec, report.containers, report.buffers) == (None, 1, 2)
    assert report.buffer_bytes == 8000 + 9
    assert report.records >= 2  # the buffers' GROUP record, the opcodes


def test_containers_back_to_back(tmp_path, capsys):
    path = tmp_path / "several.pkl"
    with open(path, "wb") as f:
        ap.dump([1], f)
        ap.dump(np.arange(10), f)
    code, out, _ = run(capsys, str(path))
    assert code == 0
    assert "2 containers" in out
    with open(path, "ab") as f:
        f.write(b"junk")
    code, _, err = run(capsys, str(path))
    assert code == 1
    assert "is not an arraypickle container" in err


def test_damaged_buffer(tmp_path, capsys):
    path = tmp_path / "f.pkl"
    ap.dump({"w": np.arange(3000.0)}, path)
    data = bytearray(path.read_bytes())
    data[500] ^= 4
    path.write_bytes(data)
    code, out, err = run(capsys, str(path))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("arraypickle verify: error: ")
    assert "record 0 ('B' at offset 16) is damaged (checksum mismatch)" in err
    code, out, err = run(capsys, "--json", str(path))
    result = json.loads(out)
    assert (code, err, result["ok"], result["file"]) == (1, "", False, str(path))
    assert "checksum mismatch" in result["error"]


def test_every_changed_byte_and_truncation_is_found():
    data = dumped("small_mixed", "none")
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        with pytest.raises(CorruptFileError):
            _verify.verify(_stream(bytes(damaged)))
    for length in range(len(data)):
        with pytest.raises(CorruptFileError):
            _verify.verify(_stream(data[:length]))


@pytest.mark.parametrize("codec", COMPRESSIONS[1:])
def test_compressed_damage_is_found(codec):
    data = dumped("arrays", codec)
    _verify.verify(_stream(data))
    for length in range(0, len(data), max(1, len(data) // 200)):
        with pytest.raises(CorruptFileError):
            _verify.verify(_stream(data[:length]))
    # The codec's own checksum at the very end of the stream is checked too.
    damaged = bytearray(data)
    damaged[-1] ^= 0x55
    with pytest.raises(CorruptFileError):
        _verify.verify(_stream(bytes(damaged)))


def _stream(data: bytes):
    import io

    return io.BytesIO(data)


def test_not_arraypickle_files(tmp_path, capsys):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps([1, 2]))
    code, _, err = run(capsys, str(plain))
    assert code == 1
    assert "not an arraypickle file" in err
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert run(capsys, str(empty))[0] == 1
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x89APK\r\n\x1a\x0bxxxxxxxxxx")
    code, _, err = run(capsys, str(garbage))
    assert code == 1
    assert "header is damaged" in err


def test_joblib_files_are_named_as_such(tmp_path, capsys):
    # What verify cannot vouch for, named for what it is rather than as damage.
    import gzip
    import zlib

    body = pickle.dumps([1, 2])
    zf = tmp_path / "old.pkl"
    zf.write_bytes(b"ZF" + f"0x{len(body):x}".ljust(19).encode() + zlib.compress(body))
    with pytest.warns(DeprecationWarning, match="joblib < 0.10"):
        assert ap.load(zf) == [1, 2]
    code, _, err = run(capsys, str(zf))
    assert code == 1 and "a joblib 0.8.4-0.9 zlib file" in err
    gz = tmp_path / "plain.pkl.gz"
    gz.write_bytes(gzip.compress(body))
    code, _, err = run(capsys, str(gz))
    assert (
        code == 1
        and "the gzip stream does not hold an arraypickle container but a plain pickle" in err
    )


def test_stdin_and_urls(tmp_path, capsys):
    path = tmp_path / "f.pkl.xz"
    ap.dump({"a": np.arange(5)}, path)
    for data, code, ok in ((path.read_bytes(), 0, True), (b"junk", 1, False)):
        done = subprocess.run(
            [sys.executable, "-m", "arraypickle", "verify", "--json", "-"],
            input=data,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == code, done.stderr
        report = json.loads(done.stdout)
        assert (report["ok"], report["file"]) == (ok, "<stdin>")
    assert report["error"].startswith("<stdin>: not an arraypickle file")
    fsspec = pytest.importorskip("fsspec")
    fsspec.filesystem("memory").pipe("/verify/f.pkl.xz", path.read_bytes())
    code, out, _ = run(capsys, "memory://verify/f.pkl.xz")
    assert code == 0 and out.startswith("memory://verify/f.pkl.xz: OK (xz stream")
    code, _, err = run(capsys, "memory://verify/missing.pkl")
    assert code == 1 and "FileNotFoundError: " in err


def test_codec_not_installed(tmp_path, capsys):
    path = tmp_path / "f.lz4"
    path.write_bytes(b"\x04\x22\x4d\x18" + bytes(30))
    if "lz4" in ap.codecs():
        pytest.skip("lz4 is installed here")
    code, _, err = run(capsys, str(path))
    assert code == 1
    assert "pip install arraypickle-lz4" in err


def test_usage_and_missing_files(tmp_path, capsys):
    assert run(capsys)[0] == 2
    assert run(capsys, "--bogus", "x")[0] == 2
    code, _, err = run(capsys, str(tmp_path / "missing.pkl"))
    assert code == 1
    assert "No such file" in err
    code, _, err = run(capsys, str(tmp_path))
    assert code == 1
    code, out, _ = run(capsys, "--json", str(tmp_path / "missing.pkl"))
    assert code == 1
    assert json.loads(out)["ok"] is False


class Touch:
    """Loading this creates a file: the proof that something in the file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_nothing_in_the_file_runs(compression, tmp_path, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "f.pkl"
    ap.dump([Touch(str(marker)), np.arange(5)], path, compress=0 if compression == "none" else 3)
    assert run(capsys, str(path))[0] == 0
    assert not marker.exists()
    ap.load(path)
    assert marker.exists()  # the same file does run code when loaded


def test_classes_need_not_be_importable(tmp_path, capsys):
    path = tmp_path / "f.pkl"
    opcodes = b"\x80\x05cno_such_module\nThing\n)R."
    from test_integrity_corpus import container

    path.write_bytes(container((b"P", 0, len(opcodes), opcodes)))
    assert run(capsys, str(path))[0] == 0
    with pytest.raises(ModuleNotFoundError):
        ap.load(path)


def test_entry_point(tmp_path):
    path = tmp_path / "f.pkl.xz"
    ap.dump(np.arange(100), path)
    done = subprocess.run(
        [sys.executable, "-m", "arraypickle", "verify", "--json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["codec"] == "xz"


PEAK = textwrap.dedent(
    """
    import json, resource, sys
    from arraypickle._cli import main
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = main(["verify", sys.argv[1]])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"code": code, "extra_kib": after - before}))
    """
)


@pytest.mark.parametrize("compress", [0, ("gzip", 1)])
def test_buffers_are_read_in_bounded_pieces(compress, tmp_path):
    path = tmp_path / "big.pkl"
    ap.dump({"big": np.ones(16 << 20)}, path, compress=compress)  # 128 MiB
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0
    assert result["extra_kib"] < 32 * 1024, result


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_sample_verifies(sample):
    for compression in COMPRESSIONS:
        report = _verify.verify(_stream(dumped(sample, compression)))
        assert report.containers == 1
