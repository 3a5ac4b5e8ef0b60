"""Remote stores through fsspec, on its memory filesystem and a recording object store."""

from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraypickle as ap
from arraypickle import _format as fmt
from arraypickle import _remote
from arraypickle._errors import MissingDependencyError
from conftest import STDLIB_CODECS

fsspec = pytest.importorskip("fsspec")
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem  # noqa: E402
from fsspec.spec import AbstractBufferedFile  # noqa: E402

MAGICS = {
    "zlib": (b"\x78",),
    "gzip": (b"\x1f\x8b",),
    "bz2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
    "lzma": (b"\x5d\x00\x00",),
}


@pytest.fixture
def mem():
    """A clean fsspec memory filesystem (the global one fsspec's URLs reach)."""
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


def sample() -> dict:
    a = np.arange(20_000, dtype=np.float64).reshape(100, 200)
    return {
        "a": a,
        "view": a[::3, ::2],
        "fortran": np.asfortranarray(a[:30]),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "objects": np.array([1, "x", None], dtype=object),
        "big_endian": np.arange(7, dtype=">i8"),
        "empty": np.empty((0, 3)),
        "scalar": np.float32(2.5),
        "text": "hello",
    }


def check_sample(out: dict, *, mapped: bool = False) -> None:
    ref = sample()
    for key in ("a", "view", "fortran", "big_endian", "empty"):
        np.testing.assert_array_equal(out[key], ref[key])
    assert out["fortran"].flags.f_contiguous
    assert type(out["matrix"]) is np.matrix
    assert out["objects"].tolist() == [1, "x", None]
    # Memory-mapped arrays stay in their stored byte order.
    assert out["big_endian"].dtype == np.dtype(">i8" if mapped else "=i8")
    assert out["scalar"] == np.float32(2.5)
    assert out["text"] == "hello"
    assert out["a"].ctypes.data % 64 == 0


# -- which paths are URLs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("s3://bucket/key.pkl", "s3"),
        ("S3://bucket/key.pkl", "s3"),
        ("gcs://bucket/a/b", "gcs"),
        ("memory://x.pkl", "memory"),
        ("file:///tmp/x.pkl", "file"),
        ("simplecache::s3://bucket/key", "simplecache"),
        ("blockcache::simplecache::memory://k", "blockcache"),
        ("model.v2::best.pkl", None),  # no protocol fsspec knows, no URL after: local
        ("ab12::x.pkl", None),
        ("notes::x.pkl", None),
        ("simplecache::/data/m.pkl", "simplecache"),  # fsspec's chain to a local path
        ("memory::x.pkl", "memory"),
        ("abfs+x.y-z://c/k", "abfs+x.y-z"),
        ("C:\\data\\model.pkl", None),
        ("C:/data/model.pkl", None),
        ("c://data/model.pkl", None),  # one letter: a drive, never a protocol
        ("D:model.pkl", None),
        ("\\\\server\\share\\model.pkl", None),
        ("/tmp/model.pkl", None),
        ("model.pkl", None),
        ("./s3://bucket/key", None),
        ("dir/s3://bucket/key", None),
        ("1s3://bucket/key", None),
        ("", None),
    ],
)
def test_url_protocol(path, protocol):
    assert _remote.url_protocol(path) == protocol


@given(st.text())
def test_paths_without_a_scheme_separator_are_local(path):
    if "://" not in path and "::" not in path:
        assert _remote.url_protocol(path) is None


def test_a_chain_to_a_local_path_is_followed(tmp_path):
    # fsspec's own syntax: the last link without a protocol is a local file.
    path = tmp_path / "m.pkl"
    ap.dump(np.arange(3), path)
    assert ap.load(f"simplecache::{path}").tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["model.v2::best.pkl", "ab12::x.pkl", "notes::x.pkl"])
def test_a_local_name_with_a_double_colon_is_that_file(tmp_path, monkeypatch, name):
    # fsspec would resolve "model.v2::best.pkl" to the file "model.v2": never write there.
    monkeypatch.chdir(tmp_path)
    prefix = name.split("::")[0]
    (tmp_path / prefix).write_bytes(b"precious")
    assert ap.dump(np.arange(3), name) == [name]
    assert (tmp_path / prefix).read_bytes() == b"precious"
    assert ap.load(name).tolist() == [0, 1, 2]
    assert (tmp_path / name).is_file()


@given(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), st.text())
def test_windows_drive_letters_are_never_protocols(letter, rest):
    assert _remote.url_protocol(f"{letter}:{rest}") is None


def test_local_paths_do_not_touch_fsspec(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    path = tmp_path / "x.pkl"
    ap.dump([1, 2], str(path))
    assert ap.load(str(path)) == [1, 2]


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, *STDLIB_CODECS])
def test_round_trip_every_codec(mem, compress):
    url = "memory://bucket/dir/obj.pkl"
    assert ap.dump(sample(), url, compress=compress) == [url]
    raw = mem.cat_file("/bucket/dir/obj.pkl")
    if compress:
        assert raw.startswith(MAGICS[compress])
    else:
        assert raw.startswith(fmt.MAGIC)
    check_sample(ap.load(url))
    assert mem.ls("/bucket/dir", detail=False) == ["/bucket/dir/obj.pkl"]


@pytest.mark.parametrize(("ext", "codec"), [(".gz", "gzip"), (".bz2", "bz2"), (".xz", "xz")])
def test_codec_from_the_url_extension(mem, ext, codec):
    url = f"memory://b/model.pkl{ext}"
    ap.dump(sample(), url)
    assert mem.cat_file(f"/b/model.pkl{ext}").startswith(MAGICS[codec])
    check_sample(ap.load(url))


def test_fsspec_compression_is_never_applied(mem):
    # Named .gz but stored uncompressed: fsspec's compression="infer" would try gunzip.
    ap.dump(sample(), "memory://b/plain.gz", compress=("gzip", 0))
    assert mem.cat_file("/b/plain.gz").startswith(fmt.MAGIC)
    check_sample(ap.load("memory://b/plain.gz"))
    # Compressed, with no telling name: detected from the first bytes.
    ap.dump(sample(), "memory://b/noext", compress="xz")
    check_sample(ap.load("memory://b/noext"))


def test_plain_pickle_on_a_remote_store(mem):
    import pickle

    mem.pipe_file("/b/plain.pickle", pickle.dumps({"x": np.arange(5)}, protocol=4))
    np.testing.assert_array_equal(ap.load("memory://b/plain.pickle")["x"], np.arange(5))


def test_chained_urls(mem):
    ap.dump(sample(), "memory://b/c.pkl")
    check_sample(ap.load("simplecache::memory://b/c.pkl"))


def test_mmap_mode_on_a_remote_store_warns_and_loads(mem):
    ap.dump(sample(), "memory://b/m.pkl")
    with pytest.warns(UserWarning, match="needs a local file"):
        out = ap.load("memory://b/m.pkl", mmap_mode="r")
    check_sample(out)
    assert not isinstance(out["a"], np.memmap)


def test_file_urls_are_local_files_and_map(tmp_path):
    path = tmp_path / "f.pkl"
    url = path.as_uri()  # file:///...
    assert ap.dump(sample(), url) == [url]
    assert path.exists()
    assert os.listdir(tmp_path) == ["f.pkl"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ap.load(url, mmap_mode="r")
    assert isinstance(out["a"], np.memmap)
    check_sample(out, mapped=True)


def test_file_url_failed_dump_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.pkl"
    ap.dump({"old": 1}, path.as_uri())
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(1000), Boom()], path.as_uri())
    assert ap.load(path.as_uri()) == {"old": 1}
    assert os.listdir(tmp_path) == ["f.pkl"]


# -- atomicity ---------------------------------------------------------------------------


class Boom:
    def __reduce__(self):
        raise RuntimeError("boom")


def test_failed_dump_keeps_the_old_object_and_leaves_no_temporary(mem):
    ap.dump({"old": 1}, "memory://b/k.pkl")
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(3 << 20), Boom()], "memory://b/k.pkl")
    assert ap.load("memory://b/k.pkl") == {"old": 1}
    assert mem.ls("/b", detail=False) == ["/b/k.pkl"]


def test_failed_dump_of_a_new_object_leaves_nothing(mem):
    mem.mkdir("/b")
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(1000), Boom()], "memory://b/new.pkl", compress="gzip")
    assert mem.ls("/b", detail=False) == []


def test_interrupted_dump_leaves_nothing(mem):
    class Interrupt:
        def __reduce__(self):
            raise KeyboardInterrupt

    mem.mkdir("/b")
    with pytest.raises(KeyboardInterrupt):
        ap.dump([np.zeros(1000), Interrupt()], "memory://b/new.pkl")
    assert mem.ls("/b", detail=False) == []


# -- errors -------------------------------------------------------------------------------


def test_missing_object(mem):
    with pytest.raises(FileNotFoundError):
        ap.load("memory://b/nothing.pkl")


def test_empty_object(mem):
    mem.pipe_file("/b/empty", b"")
    with pytest.raises(ap.CorruptFileError, match=r"memory://b/empty.*empty"):
        ap.load("memory://b/empty")


@pytest.mark.parametrize("compress", [0, "gzip"])
def test_truncated_object(mem, compress):
    ap.dump(sample(), "memory://b/t.pkl", compress=compress)
    data = mem.cat_file("/b/t.pkl")
    mem.pipe_file("/b/t.pkl", data[: len(data) // 2])
    with pytest.raises(ap.CorruptFileError, match=r"memory://b/t\.pkl"):
        ap.load("memory://b/t.pkl")


def test_damaged_object(mem):
    ap.dump(sample(), "memory://b/d.pkl")
    data = bytearray(mem.cat_file("/b/d.pkl"))
    data[len(data) // 2] ^= 0xFF
    mem.pipe_file("/b/d.pkl", bytes(data))
    with pytest.raises(ap.CorruptFileError, match=r"memory://b/d\.pkl"):
        ap.load("memory://b/d.pkl")


def test_declared_size_beyond_the_object_is_refused(mem):
    header = fmt.pack_header()
    record = fmt.pack_record(fmt.KIND_BUFFER, fmt.padding(len(header)), 0, 1 << 40)
    mem.pipe_file("/b/huge", header + record + bytes(fmt.padding(len(header))))
    with pytest.raises(ap.CorruptFileError, match="more than the file holds"):
        ap.load("memory://b/huge")


def test_without_fsspec_a_url_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    for call in (lambda: ap.load("s3://b/k.pkl"), lambda: ap.dump(1, "s3://b/k.pkl")):
        with pytest.raises(MissingDependencyError, match=r"pip install arraypickle\[remote\]") as e:
            call()
        assert "s3fs" in str(e.value)
        assert isinstance(e.value, ImportError)
        assert isinstance(e.value, ap.ArrayPickleError)


def test_missing_backend_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(MissingDependencyError, match="gcsfs"):
        ap.load("gcs://bucket/k.pkl")


def test_unknown_protocol():
    with pytest.raises(ValueError, match="no protocol 'nosuchproto'"):
        ap.load("nosuchproto://b/k")


def test_storage_options_only_for_urls(tmp_path, mem):
    with pytest.raises(ValueError, match="storage_options apply to URLs"):
        ap.dump(1, tmp_path / "x.pkl", storage_options={"anon": True})
    with pytest.raises(ValueError, match="storage_options apply to URLs"):
        ap.load(io.BytesIO(b""), storage_options={"anon": True})
    with pytest.raises(ValueError, match="local file"):
        ap.dump(1, (tmp_path / "x.pkl").as_uri(), storage_options={"auto_mkdir": True})
    with pytest.raises(ValueError, match="must be a dict"):
        ap.dump(1, "memory://b/x", storage_options=["anon"])


# -- streaming through a recording object store ------------------------------------------


class RecordingFile(AbstractBufferedFile):
    """An object store in miniature: ranged reads, uploads in parts, visible at commit."""

    def _fetch_range(self, start, end):
        self.fs.log.append(("fetch", end - start))
        return self.fs.store[self.path].getbuffer()[start:end].tobytes()

    def _initiate_upload(self):
        self.parts = []

    def _upload_chunk(self, final=False):
        size = self.buffer.tell()
        self.fs.log.append(("part", size))
        self.fs.max_buffer = max(self.fs.max_buffer, len(self.buffer.getbuffer()))
        self.parts.append(self.buffer.getvalue())
        if final:
            self.fs.store[self.path] = MemoryFile(self.fs, self.path, b"".join(self.parts))
        return True

    def seek(self, loc, whence=0):
        if "w" in self.mode:
            self.fs.log.append(("seek", loc))
        return super().seek(loc, whence)


class RecordingFileSystem(MemoryFileSystem):
    protocol = "aprecord"
    log: list = []
    max_buffer = 0
    inits: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inits.append(kwargs)

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.removeprefix("aprecord://"))

    def _open(self, path, mode="rb", block_size=None, autocommit=True, **kwargs):
        path = self._strip_protocol(path)
        if mode == "rb" and path not in self.store:
            raise FileNotFoundError(path)
        self.log.append(("open", mode, block_size, kwargs.get("cache_type")))
        return RecordingFile(self, path, mode, block_size, autocommit, **kwargs)


@pytest.fixture
def recording(mem):
    fsspec.register_implementation("aprecord", RecordingFileSystem, clobber=True)
    RecordingFileSystem.log = []
    RecordingFileSystem.max_buffer = 0
    RecordingFileSystem.inits = []
    RecordingFileSystem.clear_instance_cache()
    yield RecordingFileSystem
    RecordingFileSystem.clear_instance_cache()


def test_streaming_in_bounded_pieces(recording):
    big = np.random.default_rng(0).random(3_000_000)  # 24 MB, three read pieces
    ap.dump({"big": big, "small": list(range(50_000))}, "aprecord://b/s.pkl")
    size = len(recording.store["/b/s.pkl"].getbuffer())
    parts = [n for kind, n, *_ in recording.log if kind == "part"]
    assert len(parts) >= 3
    assert max(parts) <= _remote.WRITE_BLOCK + _remote.WRITE_PIECE
    assert recording.max_buffer <= _remote.WRITE_BLOCK + _remote.WRITE_PIECE
    assert not [e for e in recording.log if e[0] == "seek"]  # one forward pass
    assert ("open", "wb", _remote.WRITE_BLOCK, None) in recording.log

    recording.log.clear()
    out = ap.load("aprecord://b/s.pkl")
    np.testing.assert_array_equal(out["big"], big)
    fetches = [n for kind, n, *_ in recording.log if kind == "fetch"]
    assert max(fetches) <= _remote.READ_PIECE
    assert sum(fetches) <= size + _remote.READ_BUFFER  # each byte fetched about once
    assert recording.log[0] == ("open", "rb", _remote.READ_PIECE, "none")


def test_failed_dump_never_uploads_a_partial_object(recording):
    ap.dump({"old": 1}, "aprecord://b/k.pkl")
    recording.log.clear()
    with pytest.raises(RuntimeError, match="boom"):
        ap.dump([np.zeros(3 << 20), Boom()], "aprecord://b/k.pkl")
    assert ap.load("aprecord://b/k.pkl") == {"old": 1}
    assert list(recording.store) == ["/b/k.pkl"]


def test_big_uploads_get_bigger_parts(recording, monkeypatch):
    monkeypatch.setattr(_remote, "WRITE_BLOCK", 64 << 10)
    monkeypatch.setattr(_remote, "WRITE_PIECE", 16 << 10)
    monkeypatch.setattr(_remote, "PARTS_PER_DOUBLING", 8)
    data = np.random.default_rng(1).integers(0, 255, 6 << 20, dtype=np.uint8)
    ap.dump(data, "aprecord://b/p.pkl")
    parts = [n for kind, n, *_ in recording.log if kind == "part"][:-1]
    assert parts[0] < 70 << 10
    assert max(parts) >= 1 << 20  # doubled several times
    assert len(parts) < (6 << 20) // (64 << 10) // 2
    np.testing.assert_array_equal(ap.load("aprecord://b/p.pkl"), data)


def test_storage_options_reach_the_filesystem(recording):
    options = {"token": "secret", "endpoint": "http://127.0.0.1:1"}
    ap.dump([1], "aprecord://b/o.pkl", storage_options=options)
    assert ap.load("aprecord://b/o.pkl", storage_options=options) == [1]
    assert recording.inits == [options]  # one filesystem, cached by its options


def test_a_callers_fsspec_file_gets_bounded_writes(recording):
    fs = fsspec.filesystem("aprecord")
    big = np.random.default_rng(2).random(2_000_000)  # one 16 MB write without chunking
    with fs.open("/b/own.pkl", "wb", block_size=5 << 20) as f:
        assert ap.dump(big, f) is None
    assert recording.max_buffer <= (5 << 20) + _remote.WRITE_PIECE
    with fs.open("/b/own.pkl", "rb") as f:
        np.testing.assert_array_equal(ap.load(f), big)


def test_bounded_writer_leaves_other_files_alone():
    buf = io.BytesIO()
    assert _remote.bounded_writer(buf) is buf


# -- HTTP: a plain loopback server without range support -----------------------------------


@pytest.fixture
def http_dir(tmp_path):
    pytest.importorskip("aiohttp")
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("name", ["x.pkl", "x.pkl.gz"])
def test_load_over_http_streams_without_ranges(http_dir, name):
    directory, base = http_dir
    big = np.random.default_rng(3).random(1_500_000)  # 12 MB: more than one read piece
    ap.dump({"big": big, **sample()}, directory / name)
    calls = []
    out = ap.load(f"{base}/{name}", progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(out["big"], big)
    check_sample(out)
    size = (directory / name).stat().st_size
    assert calls[0] == (0, size)
    assert calls[-1] == (size, size)


def test_http_errors(http_dir):
    _, base = http_dir
    with pytest.raises(FileNotFoundError):
        ap.load(f"{base}/missing.pkl")
    with pytest.raises(ap.InvalidArgumentError, match="cannot write"):
        ap.dump(1, f"{base}/new.pkl")


def test_fixed_size_parts_never_grow(recording, monkeypatch):
    monkeypatch.setattr(_remote, "WRITE_BLOCK", 64 << 10)
    monkeypatch.setattr(_remote, "WRITE_PIECE", 16 << 10)
    monkeypatch.setattr(_remote, "PARTS_PER_DOUBLING", 8)
    monkeypatch.setattr(RecordingFileSystem, "fixed_upload_size", True, raising=False)
    data = np.random.default_rng(1).integers(0, 255, 2 << 20, dtype=np.uint8)
    ap.dump(data, "aprecord://b/f.pkl")
    parts = [n for kind, n, *_ in recording.log if kind == "part"]
    assert max(parts) < (64 << 10) + (16 << 10)
    np.testing.assert_array_equal(ap.load("aprecord://b/f.pkl"), data)


def test_get_untrusted_types_reads_urls():
    ap.dump({"p": os.system, "a": np.arange(3)}, "memory://scan/a.pkl", compress="gzip")
    assert ap.get_untrusted_types("memory://scan/a.pkl") == [f"{os.system.__module__}.system"]


def test_a_read_only_store_refuses_a_dump_as_a_wrong_argument(tmp_path, monkeypatch):
    import tarfile

    monkeypatch.chdir(tmp_path)
    ap.dump(np.arange(3), "m.pkl")
    with tarfile.open("a.tar", "w") as tar:
        tar.add("m.pkl")
    assert ap.load("tar://m.pkl::a.tar").tolist() == [0, 1, 2]
    with pytest.raises(ap.InvalidArgumentError, match="cannot write files"):
        ap.dump(1, "tar://n.pkl::a.tar")
