"""Dump to and load from the file objects users hand us, and paths of every kind."""

from __future__ import annotations

import _pyio
import bz2
import gzip
import io
import itertools
import lzma
import pathlib
import pickle

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_same
from conftest import COMPRESS_SETTINGS, STDLIB_CODECS


def sample() -> dict:
    a = np.arange(20000.0).reshape(200, 100)
    return {"a": a, "view": a[::3, 1::2], "F": np.asfortranarray(a[:10]), "text": "x" * 100}


# -- decompressing readers of the standard library --------------------------------


@pytest.mark.parametrize("opener", [gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile])
def test_load_from_a_decompressing_reader(tmp_path, opener):
    # Such readers answer fileno() with the descriptor of the compressed file: its
    # size must not be taken for the number of bytes they give.
    obj = sample()
    path = tmp_path / "obj.pkl.x"
    with opener(path, "wb") as f:
        assert ap.dump(obj, f) is None
    with opener(path, "rb") as f:
        assert_same(ap.load(f), obj)


def test_dump_into_a_gzip_file_then_load_the_path(tmp_path):
    # The container inside gzip's own stream: found by the gzip magic on load.
    obj = sample()
    path = tmp_path / "obj.gz"
    with gzip.GzipFile(path, "wb") as f:
        ap.dump(obj, f)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert_same(ap.load(path), obj)
    with open(path, "rb") as f:
        assert_same(ap.load(f), obj)


@pytest.mark.parametrize("codec", STDLIB_CODECS)
def test_load_through_a_gzip_file_of_a_compressed_dump(tmp_path, codec):
    obj = sample()
    path = tmp_path / "obj.gz"
    with gzip.GzipFile(path, "wb") as f:
        ap.dump(obj, f, compress=codec)
    with gzip.GzipFile(path, "rb") as f:
        assert_same(ap.load(f), obj)


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_open_files_both_ways(tmp_path, compress):
    obj = sample()
    path = tmp_path / "obj.bin"
    with open(path, "wb") as f:
        assert ap.dump(obj, f, compress=compress) is None
    with open(path, "rb") as f:
        assert_same(ap.load(f), obj)
    assert_same(ap.load(path), obj)  # the format is told by the magic, not the name


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_bytesio_both_ways(compress):
    obj = sample()
    buf = io.BytesIO()
    assert ap.dump(obj, buf, compress=compress) is None
    buf.seek(0)
    assert_same(ap.load(buf), obj)
    assert_same(ap.loads(buf.getvalue()), obj)
    assert_same(ap.loads(bytearray(buf.getvalue())), obj)
    assert_same(ap.loads(memoryview(buf.getvalue())), obj)


@pytest.mark.parametrize("codec", [c for c in COMPRESS_SETTINGS if c])
def test_plain_open_of_a_compressed_file(tmp_path, codec):
    obj = sample()
    path = tmp_path / "no-extension"
    ap.dump(obj, path, compress=codec)
    assert not path.read_bytes().startswith(b"\x89APK")
    with open(path, "rb") as f:
        assert_same(ap.load(f), obj)


def test_load_starts_at_the_current_position(tmp_path):
    obj = sample()
    path = tmp_path / "prefixed.bin"
    with open(path, "wb") as f:
        f.write(b"some header of the caller's own")
        ap.dump(obj, f)
    with open(path, "rb") as f:
        f.read(31)
        assert_same(ap.load(f), obj)


def test_dump_returns_the_file_name(tmp_path):
    path = tmp_path / "ret.pkl"
    assert ap.dump(1, str(path)) == [str(path)]
    assert ap.dump(1, path) == [str(path)]
    assert ap.dump(1, path, compress=3) == [str(path)]
    assert ap.dump(1, io.BytesIO()) is None


class CustomPath:
    """An os.PathLike that is not a pathlib path (its str() is not the path)."""

    def __init__(self, path):
        self._path = str(path)

    def __fspath__(self):
        return self._path


def test_any_path_like_works(tmp_path):
    target = tmp_path / "custom.pkl.gz"
    obj = sample()
    names = ap.dump(obj, CustomPath(target))
    assert names == [str(target)]
    assert target.read_bytes()[:2] == b"\x1f\x8b"  # the extension still counts
    assert_same(ap.load(CustomPath(target)), obj)
    assert_same(ap.load(names[0]), obj)
    plain = CustomPath(tmp_path / "plain.pkl")
    ap.dump(obj, plain)
    mapped = ap.load(plain, mmap_mode="r")
    assert isinstance(mapped["a"], np.memmap)
    assert mapped["a"].filename == str(pathlib.Path(tmp_path / "plain.pkl").resolve())


def test_text_files_are_refused_for_dump(tmp_path):
    with open(tmp_path / "t.txt", "w") as f, pytest.raises(ValueError, match="binary"):
        ap.dump({"a": np.arange(3)}, f)
    with pytest.raises(ValueError, match="binary"):
        ap.dump({"a": np.arange(3)}, io.StringIO())


def test_text_files_are_refused_for_load(tmp_path):
    (tmp_path / "t.txt").write_text("some text")
    with open(tmp_path / "t.txt") as f, pytest.raises(ValueError, match="binary"):
        ap.load(f)
    with pytest.raises(ValueError, match="binary"):
        ap.load(io.StringIO("some text"))


def test_a_read_only_file_object_cannot_be_dumped_into(tmp_path):
    path = tmp_path / "ro.pkl"
    path.write_bytes(b"")
    with open(path, "rb") as f, pytest.raises(ValueError):
        ap.dump([1, 2], f)


def test_a_wrong_way_file_raises_what_io_and_joblib_raised(tmp_path):
    # joblib (through io) raised io.UnsupportedOperation, an OSError: code migrating
    # from it may catch that, or OSError, and ours is still an InvalidArgumentError.
    path = tmp_path / "x.pkl"
    ap.dump([1], path)
    with open(path, "rb") as f, pytest.raises(ap.FileModeError) as dumping:
        ap.dump([1], f)
    with open(tmp_path / "w.pkl", "wb") as f, pytest.raises(ap.FileModeError) as loading:
        ap.load(f)
    for raised in (dumping.value, loading.value):
        assert isinstance(raised, io.UnsupportedOperation)
        assert isinstance(raised, OSError) and isinstance(raised, ap.InvalidArgumentError)
    assert "not open for writing" in str(dumping.value)
    assert "not open for reading" in str(loading.value)
    assert ap.load(path) == [1]


def test_closed_and_wrong_way_files_are_named(tmp_path):
    path = tmp_path / "x.pkl"
    ap.dump([1], path)
    with open(path, "rb") as f, pytest.raises(ValueError, match=r"x\.pkl' is not open for writing"):
        ap.dump([1], f)
    with (
        open(tmp_path / "w.pkl", "wb") as f,
        pytest.raises(ValueError, match=r"w\.pkl' is not open for reading"),
    ):
        ap.load(f)
    f = open(path, "rb")  # noqa: SIM115
    f.close()
    with pytest.raises(ValueError, match=r"x\.pkl' is closed"):
        ap.load(f)
    with pytest.raises(ValueError, match="is closed"):
        ap.dump([1], _closed_bytesio())


def _closed_bytesio() -> io.BytesIO:
    b = io.BytesIO()
    b.close()
    return b


class ShortRaw(io.RawIOBase):
    """A raw file that writes at most 1000 bytes a call (as raw files may)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = memoryview(b).cast("B")
        n = min(len(b), 1000)
        self.data += b[:n]
        return n


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_short_writes_are_continued_for_every_codec(compress):
    # Codecs write to the caller's file as they please (snappy's did not loop): the
    # file they are given carries every write out in full.
    obj = {"a": np.arange(300_000)}
    out = ShortRaw()
    ap.dump(obj, out, compress=compress)
    assert_same(ap.loads(bytes(out.data)), obj)


class BytesRaw(io.RawIOBase):
    """A raw file over ``data``, seekable or not, for the readers below."""

    def __init__(self, data: bytes, seekable: bool) -> None:
        self._file = io.BytesIO(data)
        self._seekable = seekable

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


class CappedSeekable(BytesRaw):
    """A seekable raw file whose reads return at most ``cap`` bytes (NFS, FUSE, range
    readers): the format check read its first bytes with one read and called a file
    whose first read was short damaged."""

    def __init__(self, data: bytes, cap: int) -> None:
        super().__init__(data, seekable=True)
        self._cap = cap

    def readinto(self, b) -> int:
        data = self._file.read(min(self._cap, len(b)))
        b[: len(data)] = data
        return len(data)


@pytest.mark.parametrize("cap", [1, 4])
@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_short_reads_from_a_seekable_file_load_for_every_codec(compress, cap):
    obj = {"a": np.arange(1000), "b": [1, 2]}
    assert_same(ap.load(CappedSeekable(ap.dumps(obj, compress=compress), cap)), obj)


class ReadOnlyRaw(BytesRaw):
    """A raw file implementing ``read`` alone (what ``load`` asks of a file object): the
    ``readinto`` it inherits from io.RawIOBase raises NotImplementedError."""

    def read(self, n: int = -1) -> bytes:
        return self._file.read(n)


class PyioReadOnlyRaw(_pyio.RawIOBase):
    """ReadOnlyRaw on the pure-Python io module, whose inherited ``readinto`` raises
    io.UnsupportedOperation instead."""

    def __init__(self, data: bytes, seekable: bool) -> None:
        self._raw = ReadOnlyRaw(data, seekable)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)


@pytest.mark.parametrize("raw", [ReadOnlyRaw, PyioReadOnlyRaw])
@pytest.mark.parametrize("seekable", [True, False])
@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_a_file_object_with_read_alone_loads(compress, seekable, raw):
    obj = {**sample(), "small": np.arange(10.0), "big": np.arange(1 << 17, dtype="f8")}
    data = ap.dumps(obj, compress=compress)
    assert_same(ap.load(raw(data, seekable)), obj)
    assert_same(ap.load(raw(data, seekable), safe=True), obj)


@pytest.mark.parametrize("seekable", [True, False])
@pytest.mark.parametrize("compress", [0, 3])
def test_a_joblib_file_object_with_read_alone_loads(compress, seekable):
    joblib = pytest.importorskip("joblib")
    obj = {"big": np.arange(1 << 17, dtype="f8"), "small": np.arange(5)}
    out = io.BytesIO()
    joblib.dump(obj, out, compress=compress)
    assert_same(ap.load(ReadOnlyRaw(out.getvalue(), seekable)), obj)


def test_a_non_blocking_raw_file_that_takes_nothing_raises():
    class Full(ShortRaw):
        def write(self, b):
            return None  # io.RawIOBase's "would block"

    with pytest.raises(BlockingIOError, match="non-blocking"):
        ap.dump({"a": np.arange(10)}, Full())


@pytest.mark.parametrize("direction", ["dump", "load"])
def test_a_non_blocking_pipe_is_refused_up_front(direction):
    # Its reads and writes return None when they cannot go on: a load would call the
    # stream truncated, a dump would lose data. Refused before anything happens.
    import os

    r, w = os.pipe()
    os.set_blocking(r if direction == "load" else w, False)
    with (
        open(r, "rb", buffering=0) as rf,
        open(w, "wb", buffering=0) as wf,
        pytest.raises(ValueError, match="non-blocking mode"),
    ):
        if direction == "load":
            ap.load(rf)
        else:
            ap.dump({"a": np.arange(10)}, wf)


@pytest.mark.parametrize("sent", [50_000, 0])  # 0: nothing yet, not an empty file
def test_a_custom_raw_reader_that_answers_none_is_not_called_damaged(sent):
    data = ap.dumps({"a": np.arange(100_000)})

    class Starved(io.RawIOBase):
        def __init__(self):
            self.src = io.BytesIO(data[:sent])

        def readable(self):
            return True

        def readinto(self, b):
            return self.src.readinto(b) or None  # nothing yet: the sender is still sending

    with pytest.raises(ap.InvalidArgumentError, match="non-blocking") as info:
        ap.load(Starved())
    assert not isinstance(info.value, ap.CorruptFileError)


class StarvedSeekable(BytesRaw):
    """A seekable raw file that answers None ("nothing yet") once its bytes run out."""

    def readinto(self, b) -> int | None:
        return self._file.readinto(b) or None


class StarvedReadAlone(BytesRaw):
    """The same, implementing ``read`` alone."""

    def read(self, n: int = -1) -> bytes | None:
        return self._file.read(n) or None


@pytest.mark.parametrize("raw", [StarvedSeekable, StarvedReadAlone])
@pytest.mark.parametrize("sent", [100, 50_000, 700_000])
def test_a_seekable_reader_that_answers_none_is_not_called_damaged(raw, sent):
    """Inside an array's buffer, at any distance into it (one read, pieces), and said
    where: the offset is where the bytes stopped, not the start of their record."""
    data = ap.dumps({"a": np.arange(100_000)})
    with pytest.raises(ap.InvalidArgumentError, match="non-blocking") as info:
        ap.load(raw(data[:sent], seekable=True))
    assert not isinstance(info.value, ap.CorruptFileError)
    assert f"gave no data at offset {sent}," in str(info.value)


def starved_inputs() -> dict[str, bytes]:
    obj = {"a": np.random.default_rng(0).random(100_000), "b": [1, "x"]}
    inputs = {f"compress={c!r}": ap.dumps(obj, compress=c) for c in COMPRESS_SETTINGS}
    inputs["pickle"] = pickle.dumps(obj, protocol=5)
    joblib = pytest.importorskip("joblib")
    for level in (0, 3):
        out = io.BytesIO()
        joblib.dump(obj, out, compress=level)
        inputs[f"joblib compress={level}"] = out.getvalue()
    return inputs


@pytest.mark.parametrize("kind", ["compress=0", "compress='gzip'", "pickle", "joblib compress=0"])
def test_a_reader_that_answers_none_is_refused_on_every_path(kind):
    """Whatever reads the source (the container reader, a codec, the safe scan, joblib's
    reader, progress counting), "nothing yet" is not the end of a damaged file."""
    inputs = starved_inputs()
    kinds = list(inputs) if kind == "compress=0" else [kind]  # all once, the rest alone
    for name in kinds:
        data = inputs[name]
        for raw, seekable, options, cut in itertools.product(
            (StarvedSeekable, StarvedReadAlone),
            (True, False),
            ({}, {"safe": True}, {"progress": lambda done, total: None}),
            (len(data) // 2, 5),
        ):
            with pytest.raises(ap.InvalidArgumentError, match="non-blocking") as info:
                ap.load(raw(data[:cut], seekable), **options)
            assert not isinstance(info.value, ap.CorruptFileError), (name, raw, options)


def test_a_reader_starved_inside_a_codecs_magic_is_not_called_damaged():
    # skip_magic reads the magic again in open_reader; a None there is "nothing yet".
    from arraypickle.codec import skip_magic

    class Starved(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            return None

    with pytest.raises(ap.InvalidArgumentError, match="non-blocking"):
        skip_magic(Starved(), b"RLE1", "rle")


def test_a_regular_file_opened_non_blocking_is_fine(tmp_path):
    import os

    path = tmp_path / "x.pkl"
    ap.dump({"a": np.arange(10)}, path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # the flag does nothing for files
    with open(fd, "rb") as f:
        np.testing.assert_array_equal(ap.load(f)["a"], np.arange(10))


def test_a_socket_in_non_blocking_mode_is_refused_up_front():
    # A buffered reader over it answers read1() with b"" when nothing has arrived yet:
    # a compressed load would call the stream truncated.
    import socket

    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        with a.makefile("rb") as f, pytest.raises(ValueError, match="non-blocking mode"):
            ap.load(f)
        with a.makefile("rb", buffering=0) as f, pytest.raises(ValueError, match="non-blocking"):
            ap.load(f)
        a.settimeout(5.0)  # a timeout is not non-blocking to the caller: it loads
        b.sendall(ap.dumps([1, 2], compress="gzip"))
        with a.makefile("rb") as f:
            assert ap.load(f) == [1, 2]


class FailingDisk(BytesRaw):
    """A caller's file whose second read fails as a disk or a network does."""

    def __init__(self, data, error, seekable):
        super().__init__(data, seekable)
        self._error, self.reads = error, 0

    def readinto(self, b):
        self.reads += 1
        if self.reads == 2:
            raise self._error
        return self._file.readinto(b)


@pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "pipe"])
@pytest.mark.parametrize(
    "error",
    [OSError(5, "Input/output error"), TimeoutError("timed out"), ConnectionResetError(104, "x")],
    ids=["EIO", "timeout", "reset"],
)
@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_a_failing_disk_under_a_codec_is_not_called_damage(compress, error, seekable):
    # Under a codec, the file's EIO read as "zlib stream is damaged": a cache would
    # delete a sound file for a disk's hiccup. It propagates as it does uncompressed.
    data = ap.dumps({"a": np.random.default_rng(0).random(20_000)}, compress=compress)
    with pytest.raises(type(error)) as info:
        ap.load(FailingDisk(data, error, seekable))
    assert info.value is error and not isinstance(info.value, ap.CorruptFileError)
