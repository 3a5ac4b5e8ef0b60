"""Exit codes and error messages of every subcommand: 0 ok, 1 a file is bad, 2 usage.

Errors are one line on stderr, ``arraypickle CMD: error: ...``, naming the file; a
traceback only with ``--debug``.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import arraypickle as ap
from arraypickle._plugins import KNOWN_CODECS
from arraypickle._writer import ContainerWriter
from cli_support import run_cli, run_subprocess

EXIT_OK, EXIT_BAD_FILE, EXIT_USAGE = 0, 1, 2


def one_line_error(err: str, command: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"arraypickle {command}: error: "), err
    assert "Traceback" not in err
    return err


@pytest.fixture
def good(tmp_path) -> str:
    path = str(tmp_path / "good.pkl")
    ap.dump({"a": np.arange(100.0)}, path)
    return path


def truncated_files(tmp_path) -> dict[str, str]:
    """A file of each format, cut in half."""
    obj = {"a": np.arange(1000.0), "b": list(range(100))}
    blobs = {
        "container": ap.dumps(obj),
        "container-gzip": ap.dumps(obj, compress="gzip"),
        "pickle": pickle.dumps(obj, protocol=5),
        "pickle-gzip": gzip.compress(pickle.dumps(obj, protocol=2)),
    }
    try:
        import joblib

        buf = io.BytesIO()
        joblib.dump(obj, buf)
        blobs["joblib"] = buf.getvalue()
    except ImportError:
        pass
    paths = {}
    for name, data in blobs.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data[: len(data) // 2])
        paths[name] = str(path)
    return paths


def missing_codec() -> tuple[str, bytes, str, dict[str, str] | None]:
    """A known codec that is not installed: (name, magic, distribution, env). When every
    known codec is installed, one is blocked by ``ARRAYPICKLE_DISABLE_PLUGINS`` (``env``),
    and the command runs in a subprocess with that environment."""
    for name, known in KNOWN_CODECS.items():
        if name not in ap.codecs():
            return name, known.magic, known.distribution, None
    name = "lz4"
    known = KNOWN_CODECS[name]
    return name, known.magic, known.distribution, {"ARRAYPICKLE_DISABLE_PLUGINS": name}


def run_without_codec(capsys, env, *argv: str) -> tuple[int, str]:
    """(exit code, stderr) of ``arraypickle ARGV`` with the codec of ``env`` missing."""
    if env is None:
        code, _, err = run_cli(capsys, *argv)
        return code, err
    done = run_subprocess(*argv, env=env)
    return done.returncode, done.stderr


# -- usage: 2 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["info"],
        ["info", "--bogus", "x"],
        ["convert", "only-src"],
        ["convert", "a", "b", "--progress=3"],
        ["plugins", "--bogus"],
    ],
)
def test_bad_arguments(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == EXIT_USAGE
    assert "usage: arraypickle" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["info", "x", "--bogus"], "usage: arraypickle info "),
        (["plugins", "--bogus"], "usage: arraypickle plugins "),
        (["--bogus", "info", "x"], "usage: arraypickle [-h]"),
    ],
)
def test_unknown_option_shows_the_usage_it_belongs_to(capsys, argv, usage):
    # An option unknown after a subcommand is that subcommand's mistake: its usage
    # lists the options there are (argparse alone printed the top-level usage).
    code, _, err = run_cli(capsys, *argv)
    assert code == EXIT_USAGE
    assert usage in err and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("spec", ["bogus", "gzip:12", "gzip:x", "12", "-1", ":3", "zlib:"])
def test_bad_compress_spec(capsys, good, tmp_path, spec):
    dst = str(tmp_path / "out.pkl")
    code, _, err = run_cli(capsys, "convert", good, dst, "--compress", spec)
    assert code == EXIT_USAGE
    assert repr(spec) in one_line_error(err, "convert")
    assert not os.path.exists(dst)


def test_compress_with_a_codec_not_installed(capsys, good, tmp_path):
    name, _, distribution, env = missing_codec()
    dst = str(tmp_path / "o.pkl")
    code, err = run_without_codec(capsys, env, "convert", good, dst, "--compress", name)
    assert code == EXIT_USAGE
    assert f"pip install {distribution}" in one_line_error(err, "convert")
    # The same codec asked for by DST's extension.
    ext = KNOWN_CODECS[name].extensions[0]
    code, err = run_without_codec(capsys, env, "convert", good, str(tmp_path / f"o.pkl{ext}"))
    assert code == EXIT_USAGE
    assert f"pip install {distribution}" in one_line_error(err, "convert")


@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_trusted_name(capsys, good, tmp_path, command):
    argv = [command, good] + ([str(tmp_path / "o.pkl")] if command == "convert" else [])
    code, _, err = run_cli(capsys, *argv, "--trusted", "not a name")
    assert code == EXIT_USAGE
    one_line_error(err, command)


# -- the file: 1 -----------------------------------------------------------------------


def _argv(command: str, src: str, tmp_path) -> list[str]:
    return [command, src, str(tmp_path / "out.pkl")] if command == "convert" else [command, src]


@pytest.mark.parametrize("command", ["info", "convert"])
def test_missing_file(capsys, tmp_path, command):
    src = str(tmp_path / "nope.pkl")
    code, _, err = run_cli(capsys, *_argv(command, src, tmp_path))
    assert code == EXIT_BAD_FILE
    assert f"{src!r}: No such file or directory" in one_line_error(err, command)


@pytest.mark.parametrize("command", ["info", "convert"])
def test_directory(capsys, tmp_path, command):
    code, _, err = run_cli(capsys, *_argv(command, str(tmp_path), tmp_path))
    assert code == EXIT_BAD_FILE
    assert "Is a directory" in one_line_error(err, command)


@pytest.mark.parametrize("command", ["info", "convert"])
def test_truncated_files(capsys, tmp_path, command):
    for name, path in truncated_files(tmp_path).items():
        code, _, err = run_cli(capsys, *_argv(command, path, tmp_path))
        assert code == EXIT_BAD_FILE, (name, err)
        assert repr(path) in one_line_error(err, command), name
        assert not os.path.exists(tmp_path / "out.pkl")


@pytest.mark.parametrize("command", ["info", "convert"])
@pytest.mark.parametrize(
    "content", [b"", b"just some text\n", b"\x89APK\r\n\x1a\n" + bytes(8), b"\x80\x05garbage"]
)
def test_not_a_valid_file(capsys, tmp_path, command, content):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, *_argv(command, str(path), tmp_path))
    assert code == EXIT_BAD_FILE
    assert repr(str(path)) in one_line_error(err, command)


@pytest.mark.parametrize("command", ["info", "convert"])
def test_file_compressed_by_a_missing_plugin(capsys, tmp_path, command):
    name, magic, distribution, env = missing_codec()
    path = tmp_path / "f.pkl"
    path.write_bytes(magic + bytes(100))
    code, err = run_without_codec(capsys, env, *_argv(command, str(path), tmp_path))
    assert code == EXIT_BAD_FILE
    line = one_line_error(err, command)
    assert name in line and f"pip install {distribution}" in line


@pytest.mark.parametrize("command", ["info", "convert"])
def test_unknown_format_version(capsys, tmp_path, command):
    out = io.BytesIO()
    ContainerWriter(out).finish()
    data = bytearray(out.getvalue())
    data[8] = 9  # major version 9, header CRC fixed up
    import struct
    import zlib

    data[12:16] = struct.pack("<I", zlib.crc32(bytes(data[:12])))
    path = tmp_path / "future.pkl"
    path.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, *_argv(command, str(path), tmp_path))
    assert code == EXIT_BAD_FILE
    assert "upgrade arraypickle" in one_line_error(err, command)


def test_untrusted_under_safe(capsys, tmp_path):
    src = tmp_path / "evil.pickle"
    src.write_bytes(pickle.dumps({"f": os.getcwd}))
    code, _, err = run_cli(capsys, "convert", str(src), str(tmp_path / "o.pkl"), "--safe")
    assert code == EXIT_BAD_FILE
    assert "posix.getcwd" in one_line_error(err, "convert")


def test_a_pickle_that_cannot_load_here(capsys, tmp_path):
    src = tmp_path / "p.pickle"
    src.write_bytes(b"\x80\x04cnowhere_module\nThing\n)\x81.")
    code, _, err = run_cli(capsys, "convert", str(src), str(tmp_path / "o.pkl"))
    assert code == EXIT_BAD_FILE
    line = one_line_error(err, "convert")
    assert "cannot be loaded here: ModuleNotFoundError" in line and repr(str(src)) in line


# -- the output: 1 ----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["no-such-dir", "parent-is-a-file", "dst-is-a-dir", "read-only"])
@pytest.mark.parametrize("route", ["recompress", "repickle"])
def test_convert_into_unwritable_place(capsys, tmp_path, good, case, route):
    src = good
    if route == "repickle":
        src = str(tmp_path / "p.pickle")
        with open(src, "wb") as f:
            pickle.dump({"a": np.arange(3)}, f)
    if case == "no-such-dir":
        dst = str(tmp_path / "missing" / "out.pkl")
    elif case == "parent-is-a-file":
        dst = os.path.join(src, "out.pkl")
    elif case == "dst-is-a-dir":
        dst = str(tmp_path / "adir")
        os.mkdir(dst)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        dst = str(ro / "out.pkl")
    before = sorted(os.listdir(tmp_path))
    code, _, err = run_cli(capsys, "convert", src, dst)
    assert code == EXIT_BAD_FILE
    line = one_line_error(err, "convert")
    assert f"cannot write {dst!r}" in line
    assert sorted(os.listdir(tmp_path)) == before  # no temporary file left behind


def test_convert_into_a_read_only_filesystem(capsys, good):
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    code, _, err = run_cli(capsys, "convert", good, "/proc/self/arraypickle-out.pkl")
    assert code == EXIT_BAD_FILE
    assert "cannot write '/proc/self/arraypickle-out.pkl'" in one_line_error(err, "convert")


# -- --debug, python -m, pipes -------------------------------------------------------------


def test_debug_raises(tmp_path):
    from arraypickle._cli import main

    with pytest.raises(FileNotFoundError):
        main(["--debug", "info", str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError):
        main(["info", str(tmp_path / "nope"), "--debug"])


def test_python_dash_m_exit_codes(tmp_path, good):
    assert run_subprocess("info", good).returncode == EXIT_OK
    done = run_subprocess("info", str(tmp_path / "nope"))
    assert done.returncode == EXIT_BAD_FILE
    one_line_error(done.stderr, "info")
    assert run_subprocess("convert").returncode == EXIT_USAGE
    done = run_subprocess("--debug", "info", str(tmp_path / "nope"))
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_closed_pipe_is_quiet(tmp_path):
    path = str(tmp_path / "many.pkl")
    ap.dump([np.arange(i % 7) for i in range(3000)], path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "arraypickle", "info", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"file")
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    proc.stderr.close()
    assert err == b""  # no traceback, no "Exception ignored", no error line
    assert proc.returncode == 1  # as docs/cli.md says
