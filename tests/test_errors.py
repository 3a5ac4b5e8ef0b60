"""Every error of the API: wrong arguments, bad compress values, bad files."""

from __future__ import annotations

import gc
import io
import os
import pickle
import socket
import struct
import threading
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _plugins
from conftest import COMPRESS_SETTINGS
from layout import records

KNOWN_PLUGINS = {"lz4": "arraypickle-lz4", "snappy": "arraypickle-snappy"}
KNOWN_PLUGINS |= {"blosc": "arraypickle-blosc", "zstd": "arraypickle-zstd"}


def sample():
    a = np.arange(3000.0).reshape(60, 50)
    return {"a": a, "v": a[::2, ::-5], "objects": np.array([None, 1], dtype=object), "n": [1, 2]}


# -- every wrong argument: InvalidArgumentError, a ValueError and a TypeError ------


_OPENED: list = []  # closed by the test


def _text_file(tmp_path):
    _OPENED.append(open(tmp_path / "t.txt", "w"))  # noqa: SIM115
    return _OPENED[-1]


def _closed_file(tmp_path):
    f = open(tmp_path / "c.pkl", "wb")  # noqa: SIM115
    f.close()
    return f


BAD_CALLS = {
    "dump to a number": lambda p: ap.dump(1, 42),
    "dump to bytes": lambda p: ap.dump(1, b"x.pkl"),
    "compress level 10": lambda p: ap.dump(1, p / "x.pkl", compress=10),
    "compress a float": lambda p: ap.dump(1, p / "x.pkl", compress=1.5),
    "compress tuple shape": lambda p: ap.dump(1, p / "x.pkl", compress=("zlib",)),
    "protocol a str": lambda p: ap.dump(1, p / "x.pkl", protocol="5"),
    "protocol 99": lambda p: ap.dump(1, p / "x.pkl", protocol=99),
    "threads 0": lambda p: ap.dump(1, p / "x.pkl", compress=3, threads=0),
    "progress a str": lambda p: ap.dump(1, p / "x.pkl", progress="yes"),
    "storage_options, local": lambda p: ap.dump(1, p / "x.pkl", storage_options={"a": 1}),
    "dump to a text file": lambda p: ap.dump(1, _text_file(p)),
    "dump to a closed file": lambda p: ap.dump(1, _closed_file(p)),
    "load a number": lambda p: ap.load(42),
    "load bytes": lambda p: ap.load(b"\x80\x05K\x01."),
    "mmap_mode x": lambda p: ap.load(p / "x.pkl", mmap_mode="x"),
    "safe a str": lambda p: ap.load(p / "x.pkl", safe="yes"),
    "trusted malformed": lambda p: ap.load(p / "x.pkl", trusted=["no dots"]),
    "trusted a number": lambda p: ap.load(p / "x.pkl", trusted=[3]),
    "trusted not a list": lambda p: ap.load(p / "x.pkl", trusted=3),
    "verify a str": lambda p: ap.load(p / "x.pkl", verify="no"),
    "loads verify None": lambda p: ap.loads(b"", verify=None),
    "byte order a str": lambda p: ap.load(p / "x.pkl", ensure_native_byte_order="yes"),
    "byte order a number": lambda p: ap.loads(b"", ensure_native_byte_order=1),
    "native byte order, mapped": lambda p: ap.load(
        p / "x.pkl", mmap_mode="r", ensure_native_byte_order=True
    ),
    "fsync a str": lambda p: ap.dump(1, p / "x.pkl", fsync="yes"),
    "force a str": lambda p: ap.register_codec(ap.codecs()["zlib"], force="yes"),
    "loads a str": lambda p: ap.loads("abc"),
    "untrusted types of a number": lambda p: ap.get_untrusted_types(42),
    "untrusted types of a text file": lambda p: ap.get_untrusted_types(_text_file(p)),
    "untrusted types of a closed file": lambda p: ap.get_untrusted_types(_closed_file(p)),
}


@pytest.mark.parametrize("call", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
def test_wrong_arguments_raise_invalid_argument_error(tmp_path, call):
    ap.dump(1, tmp_path / "x.pkl")
    try:
        with pytest.raises(ap.InvalidArgumentError) as info:
            call(tmp_path)
    finally:
        while _OPENED:
            _OPENED.pop().close()
    # What joblib raised, what Python raises for a wrong type, and ours.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ap.ArrayPickleError)


def test_numpy_bools_are_flags(tmp_path, fresh_registry):
    # As a mask or a comparison gives them: every True/False argument takes them alike.
    yes, no = np.bool_(True), np.bool_(False)
    path = tmp_path / "x.pkl"
    ap.dump([1], path, fsync=yes)
    assert ap.load(path, safe=yes, verify=no, ensure_native_byte_order=no) == [1]
    assert ap.loads(ap.dumps([1]), safe=no, ensure_native_byte_order=yes) == [1]
    ap.register_codec(ap.codecs()["zlib"], force=yes)


# -- the file argument ------------------------------------------------------------

NOT_FILES = [1, 2.5, None, b"bytes/path", ["a.pkl"], {"f": 1}, object(), np.arange(3)]


@pytest.mark.parametrize("bad", NOT_FILES, ids=lambda b: type(b).__name__)
def test_dump_wants_a_path_or_a_writable_file(bad):
    with pytest.raises(ValueError, match=r"filename \(str or os\.PathLike\).*file object"):
        ap.dump([1], bad)


@pytest.mark.parametrize("bad", NOT_FILES, ids=lambda b: type(b).__name__)
def test_load_wants_a_path_or_a_readable_file(bad):
    with pytest.raises(ValueError, match=r"filename \(str or os\.PathLike\).*file object"):
        ap.load(bad)


def test_load_of_bytes_points_to_loads_and_fsdecode():
    # A file's bytes or a bytes path: neither reading is guessed, both are named.
    with pytest.raises(ValueError, match=r"arraypickle\.loads\(data\).*os\.fsdecode\(path\)"):
        ap.load(b"/tmp/model.pkl")


@pytest.mark.parametrize("bad", ["text", 1, None, [b"x"]], ids=lambda b: type(b).__name__)
def test_loads_wants_bytes(bad):
    with pytest.raises(ValueError, match="bytes"):
        ap.loads(bad)


def test_missing_files_raise_the_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        ap.load(tmp_path / "nope.pkl")
    with pytest.raises(FileNotFoundError):
        ap.dump(1, tmp_path / "no-such-dir" / "x.pkl")


# -- compress ---------------------------------------------------------------------


def installed_list_in(message: str) -> None:
    """The message lists every installed codec, and install hints for missing plugins."""
    installed = sorted(ap.codecs())
    for name in installed:
        assert name in message, (name, message)
    for name, dist in KNOWN_PLUGINS.items():
        if name not in installed:
            assert f"pip install {dist}" in message, (name, message)


@pytest.mark.parametrize("level", [10, -1, 100, -100])
def test_level_out_of_range(level):
    with pytest.raises(ValueError, match="0 and 9") as info:
        ap.dumps(1, compress=level)
    assert not isinstance(info.value, ap.UnknownCodecError)
    with pytest.raises(ValueError, match=r"level 0\.\.9"):
        ap.dumps(1, compress=("zlib", level))


@pytest.mark.parametrize("level", [1.5, 3.0, "3", None, b"3", [3]])
def test_level_not_an_int(level):
    with pytest.raises(ValueError, match=r"level 0\.\.9") as info:
        ap.dumps(1, compress=("zlib", level))
    installed_list_in(str(info.value))


@pytest.mark.parametrize("kind", [np.int64, np.uint8, np.int16])
def test_numpy_integer_levels_are_levels(tmp_path, kind):
    # joblib's `level in range(10)` accepts them: a level read from an array or a config
    assert ap.dumps(b"x" * 1000, compress=kind(3)) == ap.dumps(b"x" * 1000, compress=3)
    assert ap.dumps(1, compress=("gzip", kind(5))) == ap.dumps(1, compress=("gzip", 5))
    assert ap.dumps(1, compress=kind(0)) == ap.dumps(1)
    ap.dump(np.arange(9), tmp_path / "f.pkl.bz2", compress=kind(4))
    assert (tmp_path / "f.pkl.bz2").read_bytes()[:4] == b"BZh4"
    assert ap.dumps(1, compress=np.True_) == ap.dumps(1, compress=True)
    with pytest.raises(ValueError, match="0 and 9"):
        ap.dumps(1, compress=kind(10))


@pytest.mark.parametrize("level", [True, False])
def test_bool_level_in_a_tuple(level):
    with pytest.raises(ValueError, match=r"level 0\.\.9"):
        ap.dumps(1, compress=("gzip", level))


@pytest.mark.parametrize("compress", [(), ("zlib",), ("zlib", 3, 1), (3, "zlib"), (None, 3)])
def test_tuples_of_the_wrong_shape(compress):
    with pytest.raises(ValueError, match=r"\(codec name, level 0\.\.9\)") as info:
        ap.dumps(1, compress=compress)
    installed_list_in(str(info.value))


@pytest.mark.parametrize("compress", [1.5, None, [1], {"zlib": 3}, b"zlib", 3j, np.arange(2)])
def test_compress_of_a_wrong_type(compress):
    with pytest.raises(ValueError, match="compress must be") as info:
        ap.dumps(1, compress=compress)
    installed_list_in(str(info.value))


@pytest.fixture
def without_plugins(fresh_registry):
    """A registry without the known plugin codecs, as on a machine lacking them."""
    registry = _plugins.get_registry()
    for name in KNOWN_PLUGINS:
        if name in registry.codecs:
            registry._remove_codec(registry.codecs[name])
    return registry


@pytest.mark.parametrize("form", ["name", "tuple", "tuple-level-0"])
@pytest.mark.parametrize("name", ["nope", "ZLIB", "gz", "", "lz4", "snappy", "blosc", "zstd"])
def test_unknown_codec(name, form, without_plugins):
    compress = {"name": name, "tuple": (name, 3), "tuple-level-0": (name, 0)}[form]
    with pytest.raises(ap.UnknownCodecError) as info:
        ap.dumps(1, compress=compress)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ap.ArrayPickleError)
    assert repr(name) in message
    installed_list_in(message)
    if name in KNOWN_PLUGINS:
        assert f"install it with: pip install {KNOWN_PLUGINS[name]}" in message


def test_an_unknown_name_fails_even_when_the_extension_decides(tmp_path):
    with pytest.raises(ap.UnknownCodecError):
        ap.dump(1, tmp_path / "x.gz", compress="nope")
    assert not (tmp_path / "x.gz").exists()


# -- compress and the file name's extension ---------------------------------------

EXTENSIONS = {".z": "zlib", ".gz": "gzip", ".bz2": "bz2", ".lzma": "lzma", ".xz": "xz"}
OBJ = {"a": np.arange(500), "s": "some text " * 20}


def expected_bytes(codec, level):
    return ap.dumps(OBJ, compress=(codec, level))


@pytest.mark.parametrize("ext", list(EXTENSIONS))
@pytest.mark.parametrize("compress", [0, False, True, "zlib", "bz2"])
def test_the_extension_picks_the_codec_at_its_default_level(tmp_path, ext, compress):
    codec = EXTENSIONS[ext]
    path = tmp_path / f"obj.pkl{ext}"
    ap.dump(OBJ, path, compress=compress)
    default = ap.codecs()[codec].default_level
    assert path.read_bytes() == expected_bytes(codec, default)


@pytest.mark.parametrize("ext", list(EXTENSIONS))
@pytest.mark.parametrize("level", [1, 5, 9])
def test_an_int_compress_gives_the_level(tmp_path, ext, level):
    codec = EXTENSIONS[ext]
    path = tmp_path / f"obj{ext}"
    ap.dump(OBJ, path, compress=level)
    assert path.read_bytes() == expected_bytes(codec, level)


@pytest.mark.parametrize("ext", list(EXTENSIONS))
def test_an_explicit_tuple_wins_over_the_extension(tmp_path, ext):
    other = "bz2" if EXTENSIONS[ext] != "bz2" else "xz"
    path = tmp_path / f"obj{ext}"
    ap.dump(OBJ, path, compress=(other, 2))
    assert path.read_bytes() == expected_bytes(other, 2)
    ap.dump(OBJ, path, compress=(other, 0))  # level 0: no compression at all
    assert path.read_bytes() == ap.dumps(OBJ)


def test_extensions_are_matched_case_insensitively(tmp_path):
    path = tmp_path / "OBJ.PKL.GZ"
    ap.dump(OBJ, path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("name", ["obj.pkl", "obj", "obj.gz.pkl", "obj.zip", "obj.lz", "gz"])
def test_other_extensions_follow_compress(tmp_path, name):
    path = tmp_path / name
    ap.dump(OBJ, path)
    assert path.read_bytes() == ap.dumps(OBJ)
    ap.dump(OBJ, path, compress=3)
    assert path.read_bytes() == expected_bytes("zlib", 3)
    ap.dump(OBJ, path, compress=True)
    assert path.read_bytes() == expected_bytes("zlib", 3)


def test_file_objects_ignore_their_name(tmp_path):
    with open(tmp_path / "named.gz", "wb") as f:
        ap.dump(OBJ, f)
    assert (tmp_path / "named.gz").read_bytes() == ap.dumps(OBJ)


@pytest.mark.parametrize(("ext", "name"), [(".lz4", "lz4"), (".zst", "zstd"), (".sz", "snappy")])
def test_the_extension_of_a_missing_plugin(tmp_path, ext, name, without_plugins):
    with pytest.raises(ap.UnknownCodecError, match=f"pip install {KNOWN_PLUGINS[name]}"):
        ap.dump(OBJ, tmp_path / f"obj{ext}")
    assert os.listdir(tmp_path) == []


# -- protocol ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [6, 99, "5", 5.0, True, False, [5]])
def test_bad_protocol(protocol):
    with pytest.raises(ValueError, match="protocol"):
        ap.dumps(1, protocol=protocol)


# -- bad files --------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    for source in (path, str(path)):
        with pytest.raises(ap.CorruptFileError, match=r"empty\.pkl.*empty"):
            ap.load(source)
    with pytest.raises(ap.CorruptFileError, match="empty"):
        ap.load(path, mmap_mode="r")
    with pytest.raises(ap.CorruptFileError, match="empty"):
        ap.loads(b"")
    r, w = os.pipe()
    os.close(w)
    with (
        os.fdopen(r, "rb") as f,
        pytest.raises(ap.EmptyFileError, match="stream is empty or has ended"),
    ):
        ap.load(f)
    # also an EOFError, as pickle raises for nothing to read
    with pytest.raises(EOFError, match=r"empty\.pkl.*empty"):
        ap.load(path)


def test_a_stream_at_its_end_is_not_called_empty():
    # joblib users meet it after dumping into a BytesIO: the message says what to do
    buf = io.BytesIO()
    ap.dump({"x": np.arange(3)}, buf)
    end = buf.tell()
    with pytest.raises(
        ap.EmptyFileError, match=rf"<BytesIO>: nothing to load at offset {end}.*seek\(0\)"
    ):
        ap.load(buf)
    buf.seek(0)
    assert ap.load(buf)["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("seekable", [True, False])
def test_objects_back_to_back_load_until_eoferror(tmp_path, seekable):
    # the loop pickle.load and joblib.load users write for a file of many objects
    path = tmp_path / "many.pkl"
    values = [1, np.arange(4.0), {"a": "b"}, np.ones((2, 3), np.int8)]
    with open(path, "wb") as f:
        for value in values:
            ap.dump(value, f)  # uncompressed: see the guide for compressed ones
    got = []
    if seekable:
        fd = os.open(path, os.O_RDONLY)
    else:
        fd, w = os.pipe()
        os.write(w, path.read_bytes())  # a few hundred bytes: within the pipe's buffer
        os.close(w)
    with os.fdopen(fd, "rb") as f:
        while True:
            try:
                got.append(ap.load(f))
            except EOFError:
                break
    assert len(got) == len(values)
    for a, b in zip(got, values, strict=True):
        np.testing.assert_equal(a, b)


GARBAGE = {
    "text": b"this is not a pickle at all\n",
    "zeros": bytes(100),
    "random": bytes((i * 97 + 13) % 256 for i in range(300)),
    "pickle_opcode_then_junk": b"\x80\x05junkjunkjunk",
    "container_magic_only": b"\x89APK\r\n\x1a\n",
    "container_magic_then_junk": b"\x89APK\r\n\x1a\n" + b"\xff" * 64,
    "gzip_magic_then_junk": b"\x1f\x8b" + b"junk" * 10,
    "zlib_magic_then_junk": b"\x78" + b"junk" * 10,
    "bz2_magic_then_junk": b"BZh9" + b"junk" * 10,
    "xz_magic_then_junk": b"\xfd7zXZ\x00" + b"junk" * 10,
    "lzma_magic_then_junk": b"\x5d\x00\x00" + b"junk" * 10,
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_files(tmp_path, name):
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(GARBAGE[name])
    # Junk where an lzma header keeps its dictionary size reads as 1.9 GB of dictionary:
    # refused before anything is decoded, as any such request is.
    expected = ap.ResourceLimitError if name == "lzma_magic_then_junk" else ap.CorruptFileError
    with pytest.raises(expected, match=rf"{name}\.pkl"):
        ap.load(path)
    with pytest.raises(expected):
        ap.loads(GARBAGE[name])


def test_a_newer_format_version_asks_for_an_upgrade():
    data = bytearray(ap.dumps(OBJ))
    data[8] = 3  # major version
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[:12])))
    with pytest.raises(ap.CorruptFileError, match=r"format version 3.*upgrade arraypickle"):
        ap.loads(bytes(data))


def cut_points(data: bytes) -> list[int]:
    """Around every record boundary of an uncompressed container, and in the middle."""
    points = {1, 7, 8, 15, 16, 17}
    for r in records(data):
        header = r.offset - 16
        for p in (header, header + 1, header + 15, r.offset, r.offset + r.length // 2):
            points.update((p, p + 1))
        end = r.offset + r.length
        points.update((end - 1, end, end + 4, end + 7))
    return sorted(p for p in points if 0 < p < len(data))


def test_truncated_container_at_every_record_boundary(tmp_path):
    data = ap.dumps(sample())
    path = tmp_path / "cut.pkl"
    points = cut_points(data)
    assert len(points) > 40
    for cut in points:
        path.write_bytes(data[:cut])
        piece = data[:cut]
        for load, source in ((ap.loads, piece), (ap.load, path), (ap.load, NonSeekable(piece))):
            with pytest.raises(ap.CorruptFileError):
                load(source)
        if cut >= 8:  # shorter files are not containers, so not mappable
            with pytest.raises(ap.CorruptFileError, match=r"cut\.pkl"):
                ap.load(path, mmap_mode="r")


@pytest.mark.parametrize("codec", [c for c in COMPRESS_SETTINGS if c])
def test_truncated_compressed_files(tmp_path, codec):
    data = ap.dumps(sample(), compress=codec)
    path = tmp_path / "cut.pkl"
    for cut in sorted({1, 2, 5, len(data) - 1, len(data) - 4, *range(7, len(data), 97)}):
        path.write_bytes(data[:cut])
        with pytest.raises(ap.CorruptFileError, match=r"cut\.pkl"):
            ap.load(path)
        with pytest.raises(ap.CorruptFileError):
            ap.load(NonSeekable(data[:cut]))


class NonSeekable(io.RawIOBase):
    def __init__(self, data):
        super().__init__()
        self._buf = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        return self._buf.readinto(b)


def test_data_after_a_compressed_object_is_refused():
    data = ap.dumps(OBJ, compress="zlib") + b"extra"
    with pytest.raises(ap.CorruptFileError, match="zlib"):
        ap.loads(data)


def test_a_plain_pickle_loads_and_a_broken_one_is_reported():
    assert ap.loads(pickle.dumps({"x": 1}, protocol=2)) == {"x": 1}
    with pytest.raises(ap.CorruptFileError, match=r"no magic.*invalid"):
        ap.loads(pickle.dumps({"x": 1}, protocol=2)[:-3])


# -- a codec that is known but not installed ---------------------------------------


class FakeKnownCodec(ap.Codec):
    """Stands in for a known plugin codec: its magic, then a raw deflate stream."""

    def __init__(self, name):
        known = _plugins.KNOWN_CODECS[name]
        self.name, self.magic, self.extensions = name, known.magic, known.extensions

    def open_writer(self, fileobj, level):
        from arraypickle._stdcodecs._stream import CompressWriter

        fileobj.write(self.magic)
        return CompressWriter(fileobj, zlib.compressobj(level, zlib.DEFLATED, -15))

    def open_reader(self, fileobj):  # pragma: no cover - never reached in these tests
        raise AssertionError("the codec was supposed to be missing")


@pytest.mark.parametrize("name", list(KNOWN_PLUGINS))
def test_loading_a_file_of_a_known_but_missing_plugin(tmp_path, fresh_registry, name):
    registry = _plugins.get_registry()
    if name not in registry.codecs:
        ap.register_codec(FakeKnownCodec(name))
    path = tmp_path / "by-plugin.pkl"
    ap.dump(OBJ, path, compress=(name, 3))
    registry._remove_codec(registry.codecs[name])  # as if the plugin were uninstalled
    for load in (lambda: ap.load(path), lambda: ap.loads(path.read_bytes())):
        with pytest.raises(ap.UnknownCodecError) as info:
            load()
        message = str(info.value)
        assert f"compressed with {name}" in message
        assert f"pip install {KNOWN_PLUGINS[name]}" in message
    with pytest.raises(ap.UnknownCodecError, match=r"by-plugin\.pkl"):
        ap.load(path)


def _local_objects():
    class Local:
        pass

    return [Local(), Local, lambda: 1]


@pytest.mark.parametrize("obj", _local_objects(), ids=["instance", "class", "lambda"])
@pytest.mark.parametrize("compress", [0, 3])
def test_what_cannot_be_pickled_raises_picklingerror_and_attributeerror(obj, compress, tmp_path):
    # joblib raises PicklingError, Python 3.11's pickle AttributeError: either catches it.
    import pickle

    target = tmp_path / "x.pkl"
    target.write_bytes(b"old")
    with pytest.raises(ap.UnpicklableError, match="local object") as info:
        ap.dump({"x": obj}, target, compress=compress)
    assert isinstance(info.value, pickle.PicklingError)
    assert isinstance(info.value, AttributeError)
    assert target.read_bytes() == b"old"  # the dump failed: the file is as it was
    with pytest.raises(pickle.PicklingError):
        ap.dumps([obj])


_UNPICKLABLE = {
    "lock": lambda tmp_path: threading.Lock(),
    "generator": lambda tmp_path: (i for i in range(3)),
    "module": lambda tmp_path: os,
    "open file": lambda tmp_path: open(tmp_path / "f", "wb"),  # noqa: SIM115 - closed below
    "socket": lambda tmp_path: socket.socket(),
}


@pytest.mark.parametrize(
    ("what", "compress", "protocol"),
    [(what, 0, 5) for what in _UNPICKLABLE]
    + [(what, 3, 5) for what in _UNPICKLABLE]
    + [(what, 0, protocol) for what in _UNPICKLABLE for protocol in (0, 1, 2) if what != "socket"],
)
def test_what_cannot_be_pickled_at_all_raises_unpicklableerror_and_typeerror(
    what, compress, protocol, tmp_path
):
    # pickle and joblib raise a plain TypeError ("cannot pickle 'generator' object"):
    # still one, and an error of the library's own, naming the type, whether C code
    # refused it or Python's (copyreg at protocols 0 and 1, socket's __getstate__).
    # (At protocols 0 and 1, pickle's own error for a socket is socket's constructor
    # refusing an argument: nothing says the object is what cannot be pickled.)
    obj = _UNPICKLABLE[what](tmp_path)
    target = tmp_path / "x.pkl"
    target.write_bytes(b"old")
    with pytest.raises(ap.UnpicklableError, match=r"(?i)can(no|')t pickle") as info:
        ap.dump({"x": [1, obj]}, target, compress=compress, protocol=protocol)
    assert isinstance(info.value, TypeError)
    assert type(obj).__name__ in str(info.value)
    assert target.read_bytes() == b"old"
    with pytest.raises(TypeError):
        ap.dumps([obj])
    if isinstance(obj, (io.IOBase, socket.socket)):
        obj.close()


class _RaisesItsOwn:
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def __reduce__(self):
        raise self.error("its own")


@pytest.mark.parametrize("error", [AttributeError, TypeError])
def test_an_objects_own_error_propagates_unchanged(error):
    with pytest.raises(error, match="its own") as info:
        ap.dumps([_RaisesItsOwn(error)])
    assert not isinstance(info.value, ap.ArrayPickleError)


MODULE_LAMBDA = lambda: 1  # noqa: E731 - what the docs' lambda case is about


class _OwnPicklingError:
    def __reduce__(self):
        import pickle

        raise pickle.PicklingError("its own")


def test_a_module_level_lambda_raises_unpicklableerror():
    # The C pickler raises PicklingError for it (attribute lookup <lambda> failed).
    with pytest.raises(ap.UnpicklableError, match="lambda"):
        ap.dumps({"f": MODULE_LAMBDA})
    with pytest.raises(Exception, match="its own") as info:
        ap.dumps([_OwnPicklingError()])
    assert not isinstance(info.value, ap.ArrayPickleError)  # an object's own: unchanged


class _Encoded:
    """Pickles as ``_codecs.encode('abc', <encoding>)``, as numpy's pickles of bytes do."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def __reduce__(self):
        import _codecs

        return (_codecs.encode, ("abc", self.encoding))


def test_errors_c_code_raises_on_damaged_arguments_are_corrupt_file_errors():
    # An unknown encoding: LookupError, raised in C with no code of the file's running.
    data = pickle.dumps(_Encoded("latin1"), protocol=2).replace(b"latin1", b"nosuch")
    with pytest.raises(ap.CorruptFileError, match="LookupError"):
        ap.loads(data)
    assert ap.loads(pickle.dumps(_Encoded("latin1"), protocol=2)) == b"abc"


def test_a_writer_that_cannot_write_its_magic_finishes_nothing():
    # Else its finalizer would write the compressor's trailer to the failing file
    # (Python 3.13 reports that as an unraisable exception).
    from arraypickle.codec import CompressWriter

    flushed = []

    class Compressor:
        def compress(self, data):
            return b""

        def flush(self):
            flushed.append(True)
            return b"trailer"

    class Full:
        def write(self, data):
            raise OSError(28, "no space left on device")

    with pytest.raises(OSError, match="no space left"):
        CompressWriter(Full(), Compressor(), magic=b"MAGI")
    gc.collect()
    assert flushed == []


def test_a_compressed_stream_of_nothing_is_not_called_an_empty_file(tmp_path):
    # The file holds a gzip stream; what is empty is what it decompresses to.
    import gzip

    path = tmp_path / "nothing.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(ap.EmptyFileError, match="the compressed stream holds nothing"):
        ap.load(path)
    from arraypickle._cli import main

    assert main(["info", str(path)]) == 1


class _WritesReturnText:
    def write(self, data):
        return "all of it"


def test_a_type_error_of_arraypickles_own_code_is_not_unpicklable():
    # A file whose write returns a str: the TypeError comes from arraypickle's writer,
    # during the pickler's run, and the object is not what is wrong.
    with pytest.raises(TypeError) as info:
        ap.dump({"a": np.arange(300_000)}, _WritesReturnText())
    assert not isinstance(info.value, ap.UnpicklableError)
