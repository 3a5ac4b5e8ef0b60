"""Every file of the joblib compatibility corpus loads as joblib loads it (or better).

The corpus (``../shared/joblib-compat``, see its README) holds files written by joblib
0.8.4 to 0.12.2 under Python 2.7 and 3.3-3.6. Each holds the same list of six items.
Tests read it in place and skip when it is absent.
"""

from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _joblib
from arraypickle._api import _new_unpickler
from conftest import JOBLIB_COMPAT
from joblib_support import RawStream, craft_wrapper, pipe_reader
from joblib_support import lz4_codec as lz4_codec  # the fixture

pytestmark = pytest.mark.skipif(not JOBLIB_COMPAT.is_dir(), reason="joblib corpus absent")

EXPECTED = [
    np.arange(5, dtype="<i8"),
    np.arange(5, dtype="<f8"),
    np.array([1, "abc", {"a": 1, "b": 2}], dtype=object),
    np.arange(256, dtype=np.uint8).tobytes(),
    np.matrix([0, 1, 2], dtype="<i8"),
    "C'est l'\xe9t\xe9 !",
]


def _main_files() -> list[str]:
    if not JOBLIB_COMPAT.is_dir():
        return []
    return sorted(
        p.name for p in JOBLIB_COMPAT.glob("joblib_*") if not p.name.endswith((".npy", ".npy.z"))
    )


MAIN_FILES = _main_files()
PLAIN_FILES = [f for f in MAIN_FILES if f.endswith(".pkl")]


def _legacy(name: str) -> bool:
    return "_0.8.4_" in name or "_0.9." in name


def _load(name: str, **kwargs):
    """Load ``name`` from the corpus, recording warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = ap.load(JOBLIB_COMPAT / name, **kwargs)
    return value, caught


def check_content(value, *, mapped: bool = False) -> None:
    """The six documented items, with their types and values."""
    assert isinstance(value, list) and len(value) == 6
    ints, floats, objects, blob, matrix, text = value
    for got, want in ((ints, EXPECTED[0]), (floats, EXPECTED[1])):
        assert type(got) is (np.memmap if mapped else np.ndarray)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert type(objects) is np.ndarray and objects.dtype == object
    assert objects.tolist() == [1, "abc", {"a": 1, "b": 2}]
    assert all(type(k) is str for k in objects[2])  # Python 2 keys come back as str
    if type(blob) is str:  # a Python 2 str, through numpy's latin1 route: every byte kept
        blob = blob.encode("latin1")
    assert type(blob) is bytes and blob == EXPECTED[3]
    assert type(matrix) is np.matrix and matrix.dtype == np.dtype("<i8")
    np.testing.assert_array_equal(matrix, EXPECTED[4])
    if mapped:
        assert isinstance(matrix.base, np.memmap)
    assert type(text) is str and text == EXPECTED[5]


def test_corpus_is_complete():
    assert len(MAIN_FILES) >= 40
    assert any("py27" in f for f in MAIN_FILES)
    assert any(f.endswith(".lz4") for f in MAIN_FILES)


@pytest.mark.parametrize("name", [f for f in MAIN_FILES if not f.endswith(".lz4")])
def test_loads_every_file(name):
    value, caught = _load(name)
    check_content(value)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if _legacy(name):
        assert deprecations and "joblib < 0.10" in str(deprecations[0].message)
        # Attributed to the caller's line, as joblib does.
        assert deprecations[0].filename == __file__
    else:
        assert not deprecations


@pytest.mark.parametrize("name", PLAIN_FILES)
def test_mmap_uncompressed(name):
    value, caught = _load(name, mmap_mode="r")
    check_content(value, mapped=True)
    ints, floats, objects, _, matrix, _ = value
    if _legacy(name):
        # joblib 0.9 stored each array in a companion .npy file: mapped from there.
        assert ints.filename.endswith(name + "_01.npy")
        assert matrix.base.filename.endswith(name + "_04.npy")
    else:
        assert ints.filename == str(JOBLIB_COMPAT / name)
        assert ints.mode == "r" and not ints.flags.writeable
        # joblib < 1.2 did not align arrays: mapped anyway, with a warning.
        unaligned = [w for w in caught if "unaligned" in str(w.message)]
        assert len(unaligned) == sum(not a.flags.aligned for a in (ints, floats, matrix.base))
        assert all(w.filename == __file__ for w in unaligned)
    assert not isinstance(objects, np.memmap)


@pytest.mark.parametrize("name", [f for f in MAIN_FILES if not f.endswith((".pkl", ".lz4"))])
def test_mmap_compressed_warns_and_loads(name):
    value, caught = _load(name, mmap_mode="r")
    check_content(value)
    assert any(
        issubclass(w.category, UserWarning) and "cannot be memory-mapped" in str(w.message)
        for w in caught
    )


@pytest.mark.parametrize(
    "name", [f for f in MAIN_FILES if "py27" not in f and not f.endswith(".lz4")]
)
def test_same_as_joblib(name):
    """Where joblib loads a file, we load the same values (and mapped the same arrays)."""
    joblib = pytest.importorskip("joblib")
    ours, _ = _load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = joblib.load(JOBLIB_COMPAT / name)
    for got, want in zip(ours, theirs, strict=True):
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype
            assert got.tolist() == want.tolist()
            # joblib 1.6 with numpy 2 loses the matrix subclass; we keep it.
            assert type(got) is type(want) or (type(got) is np.matrix and type(want) is np.ndarray)
        else:
            assert type(got) is type(want) and got == want
    if name.endswith(".pkl"):
        ours, _ = _load(name, mmap_mode="r")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = joblib.load(JOBLIB_COMPAT / name, mmap_mode="r")
        for got, want in zip(ours, theirs, strict=True):
            if isinstance(want, np.memmap):
                mapped = got if isinstance(got, np.memmap) else got.base
                assert isinstance(mapped, np.memmap)
                assert (mapped.filename, mapped.offset) == (want.filename, want.offset)
            elif isinstance(want, np.ndarray):
                assert not isinstance(got, np.memmap)


@pytest.mark.parametrize("name", [f for f in MAIN_FILES if "py27" in f])
def test_python2_files_load_where_joblib_raises(name):
    """joblib raises a ValueError on Python 2 files; we load them, every value right."""
    value, _ = _load(name)
    check_content(value)
    joblib = pytest.importorskip("joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="python 2"):
            joblib.load(JOBLIB_COMPAT / name)


def test_lz4_file(lz4_codec):
    (name,) = [f for f in MAIN_FILES if f.endswith(".lz4")]
    value, _ = _load(name)
    check_content(value)
    value, caught = _load(name, mmap_mode="r")
    check_content(value)
    assert any("cannot be memory-mapped" in str(w.message) for w in caught)


def test_lz4_file_without_codec_names_the_plugin(monkeypatch):
    from arraypickle import _plugins

    monkeypatch.setenv(_plugins.DISABLE_ENV, "lz4")
    _plugins.reset()
    monkeypatch.setattr(_plugins, "_registry", None)  # rebuilt again after the test
    (name,) = [f for f in MAIN_FILES if f.endswith(".lz4")]
    with pytest.raises(ap.UnknownCodecError, match="pip install arraypickle-lz4"):
        ap.load(JOBLIB_COMPAT / name)


@pytest.mark.parametrize("shape", ["(True,)", "(9223372036854775808, 0)"])
def test_a_companion_header_numpy_cannot_map_is_corrupt(tmp_path, shape):
    # np.memmap's TypeError and OverflowError are about the file, as its ValueError is.
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x07"
    (tmp_path / "c.npy").write_bytes(npy)
    state = {"filename": "c.npy", "subclass": np.ndarray, "allow_mmap": True}
    (tmp_path / "main.pkl").write_bytes(craft_wrapper("NDArrayWrapper", state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for mode in (None, "r"):
            with pytest.raises(ap.CorruptFileError):
                ap.load(tmp_path / "main.pkl", mmap_mode=mode)


@pytest.mark.parametrize(
    "name",
    [
        "joblib_0.11.0_pickle_py36_np111.pkl",
        "joblib_0.10.0_pickle_py27_np17.pkl",
        "joblib_0.11.0_pickle_py36_np111.pkl.xz",
        "joblib_0.10.0_compressed_pickle_py35_np19.gz",
        "joblib_0.9.2_compressed_pickle_py34_np19.gz",
    ],
)
def test_file_objects_and_pipes(name):
    data = (JOBLIB_COMPAT / name).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        check_content(ap.load(io.BytesIO(data)))
        check_content(ap.loads(data))
        check_content(ap.load(RawStream(data)))
        with pipe_reader(data) as pipe:
            check_content(ap.load(pipe))


def test_file_object_leaves_position_after_the_object():
    data = (JOBLIB_COMPAT / "joblib_0.11.0_pickle_py36_np111.pkl").read_bytes()
    stream = io.BytesIO(data + data + b"tail")
    check_content(ap.load(stream))
    check_content(ap.load(stream))
    assert stream.read() == b"tail"


def test_companion_files_need_a_path():
    name = "joblib_0.9.2_pickle_py35_np19.pkl"
    data = (JOBLIB_COMPAT / name).read_bytes()
    with pytest.raises(ap.CorruptFileError, match="companion files"):
        ap.load(io.BytesIO(data))
    # An open file has a name: its companions are found beside it, as joblib does.
    with open(JOBLIB_COMPAT / name, "rb") as f, pytest.warns(DeprecationWarning):
        check_content(ap.load(f))


@pytest.mark.parametrize("filename", ["../outside.npy", "/etc/passwd", "", 7])
def test_companion_names_cannot_leave_the_directory(tmp_path, filename):
    """A pickled NDArrayWrapper naming another directory is refused, not followed."""
    target = tmp_path / "evil.pkl"
    state = {"filename": filename, "subclass": np.ndarray, "allow_mmap": True}
    target.write_bytes(craft_wrapper("NDArrayWrapper", state))
    with pytest.raises(ap.CorruptFileError, match="plain file names"):
        ap.load(target)


def test_missing_companion_is_corrupt(tmp_path):
    target = tmp_path / "lonely.pkl"
    state = {"filename": "lonely.pkl_01.npy", "subclass": np.ndarray, "allow_mmap": True}
    target.write_bytes(craft_wrapper("NDArrayWrapper", state))
    with pytest.raises(ap.CorruptFileError, match=r"companion file .* is missing"):
        ap.load(target)


@pytest.mark.parametrize(
    "name",
    [
        "joblib_0.11.0_pickle_py36_np111.pkl",
        "joblib_0.10.0_pickle_py27_np17.pkl",
        "joblib_0.11.0_pickle_py36_np111.pkl.gzip",
        "joblib_0.9.2_compressed_pickle_py35_np19.gz",
    ],
)
def test_truncated_files_raise_corrupt(name):
    data = (JOBLIB_COMPAT / name).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for cut in range(1, len(data), 7):
            with pytest.raises(ap.CorruptFileError):
                ap.load(io.BytesIO(data[:cut]))


@pytest.mark.parametrize("name", _main_files())
def test_every_file_from_a_kept_open_socket(name):
    # Each loads as from a path, or (arrays in companion files) says why it cannot;
    # none waits for the sender to close.
    from arraypickle.testing import load_from_kept_open_socket

    data = (JOBLIB_COMPAT / name).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        (got,) = load_from_kept_open_socket([data])
        if isinstance(got, ap.CorruptFileError):
            assert "companion files" in str(got)
        else:
            check_content(got)


def test_zf_length_mismatch_is_corrupt():
    data = (JOBLIB_COMPAT / "joblib_0.9.2_compressed_pickle_py35_np19.gz").read_bytes()
    assert data.startswith(b"ZF0x337 ")
    with pytest.raises(ap.CorruptFileError, match="declares 824 bytes"):
        ap.load(io.BytesIO(data.replace(b"ZF0x337", b"ZF0x338", 1)))
    with pytest.raises(ap.CorruptFileError, match="ZF header"):
        ap.load(io.BytesIO(data.replace(b"ZF0x337", b"ZF0xzz7", 1)))


@pytest.mark.parametrize("total", [1 << 16, 1 << 17])
def test_zf_checks_its_length_when_the_pickle_ends_on_a_read_boundary(total, tmp_path):
    # A pickle of exactly 64 KiB: the unpickler read nothing past its STOP, and neither
    # a declared length 1000 bytes too long nor 1000 bytes of garbage were noticed.
    import struct
    import zlib

    short = pickle.dumps([1, 2], protocol=3)
    pad = total - len(short) - 6
    raw = short[:2] + b"B" + struct.pack("<I", pad) + bytes(pad) + b"0" + short[2:]
    assert len(raw) == total

    def zf(data: bytes, length: int) -> bytes:
        return b"ZF" + f"0x{length:x}".encode().ljust(19) + zlib.compress(data)

    path = tmp_path / "zf.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        path.write_bytes(zf(raw, total))
        assert ap.load(path) == [1, 2]
        path.write_bytes(zf(raw, total + 1000))
        with pytest.raises(ap.CorruptFileError, match=f"declares {total + 1000} bytes"):
            ap.load(path)
        path.write_bytes(zf(raw + b"X" * 1000, total + 1000))
        with pytest.raises(ap.CorruptFileError, match="data"):
            ap.load(path)


def test_a_damaged_length_in_a_zf_file_claims_memory_only_as_data_arrives():
    # A BINUNICODE declaring 1.4 GB inside a ZF file read through read() alone: the
    # unpickler asks for all of it at once; it was allocated (and zeroed) up front.
    import struct
    import tracemalloc
    import zlib

    raw = b"\x80\x02X" + struct.pack("<I", 1_400_000_000) + b"x" * 5000
    data = b"ZF" + f"0x{len(raw):x}".encode().ljust(19) + zlib.compress(raw)

    class ReadOnly:
        def __init__(self, blob: bytes) -> None:
            self._f = io.BytesIO(blob)

        def read(self, n: int = -1) -> bytes:
            return self._f.read(n)

    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(ap.CorruptFileError):
                ap.load(ReadOnly(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak


def test_data_after_a_compressed_object_is_corrupt():
    import gzip

    data = (JOBLIB_COMPAT / "joblib_0.11.0_pickle_py36_np111.pkl").read_bytes()
    with pytest.raises(ap.CorruptFileError, match="data follows"):
        ap.loads(gzip.compress(data + b"junk"))


def _restricted_factory(refused: str):
    """An unpickler factory whose find_class refuses one module: a caller's policy."""

    def factory(file, bindings, **kwargs):
        unpickler = _new_unpickler(file, bindings, **kwargs)
        inner_find = unpickler.find_class

        def find_class(module, name):
            if module == refused:
                raise pickle.UnpicklingError(f"global {module}.{name} is forbidden")
            return inner_find(module, name)

        unpickler.find_class = find_class
        return unpickler

    return factory


@pytest.mark.parametrize(
    "name",
    [
        "joblib_0.11.0_pickle_py36_np111.pkl",  # nested object-array pickle, C unpickler
        "joblib_0.10.0_pickle_py27_np17.pkl",  # Python 2: pure-Python unpickler
        "joblib_0.9.2_pickle_py35_np19.pkl",  # object array pickled inside a .npy companion
    ],
)
def test_nested_pickles_follow_the_callers_policy(name):
    """GHSA-m62q-453p-gv66: nested unpicklers apply the outer find_class policy."""
    path = JOBLIB_COMPAT / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with open(path, "rb") as f:
            check_content(
                _joblib.load_pickle(f, repr(name), new_unpickler=_new_unpickler, path=str(path))
            )
        # The object array is the only thing that needs numpy's _reconstruct (in the
        # nested pickle, or the companion file): refusing its module must bite there.
        with open(path, "rb") as f, pytest.raises(ap.CorruptFileError, match="forbidden"):
            _joblib.load_pickle(
                f,
                repr(name),
                new_unpickler=_restricted_factory("numpy.core.multiarray"),
                path=str(path),
            )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # Python 2, protocol 2: SHORT_BINSTRING 'abc', BINSTRING of non-ASCII bytes.
        (
            b"\x80\x02]q\x00(U\x03abcq\x01T\x03\x00\x00\x00\xe9\xe0\xffq\x02e.",
            ["abc", "\xe9\xe0\xff"],
        ),
        # Python 2, protocol 0: STRING opcodes, a dict with str keys.
        (b"(dp0\nS'key'\np1\nS'\\xe9'\np2\ns.", {"key": "\xe9"}),
        # Python 2 unicode stays text whatever its characters.
        (b"\x80\x02X\x02\x00\x00\x00\xc3\xa9q\x00.", "\xe9"),
    ],
)
def test_python2_str_is_read_as_latin1_by_the_c_unpickler(data, expected, monkeypatch):
    """numpy's route for Python 2 pickles, at C speed: the pure-Python unpickler is
    never involved (instantiating it fails in this test)."""
    monkeypatch.setattr(pickle._Unpickler, "__init__", None)
    got = ap.loads(data)
    assert got == expected
    assert type(got) is type(expected)


def test_no_codec_may_claim_joblibs_zf_magic(fresh_registry):
    class Shadow:
        name = "shadow"
        magic = b"ZF"
        extensions = (".shadow",)

        def open_writer(self, fileobj, level):
            return fileobj

        def open_reader(self, fileobj):
            return fileobj

    with pytest.raises(ap.PluginConflictError, match="joblib"):
        ap.register_codec(Shadow())
