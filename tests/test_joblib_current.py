"""Files written by today's joblib (a test-only dependency) load without joblib's help."""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraypickle as ap
from joblib_support import ChoppyStream, RawStream, assert_same, craft_wrapper, pipe_reader
from joblib_support import lz4_codec as lz4_codec  # the fixture

joblib = pytest.importorskip("joblib")

CODECS = [None, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"]


def sample() -> dict:
    """Every kind of content joblib writes its own way, or leaves to pickle."""
    a = np.arange(60.0).reshape(6, 10)
    return {
        "array": a,
        "fortran": np.asfortranarray(a),
        "non_contiguous": a[::2, ::3],
        "transposed": a.T,
        "big_endian": np.arange(7, dtype=">i4"),
        "big_endian_fortran": np.asfortranarray(np.arange(12, dtype=">f8").reshape(3, 4)),
        "objects": np.array([1, "x", None, {"k": np.arange(3)}, np.arange(2.0)], dtype=object),
        "object_matrix": np.matrix([[1, "a"]], dtype=object),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "masked": np.ma.array([1.0, 2, 3], mask=[0, 1, 0], fill_value=7.0),
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 4)),
        "structured": np.array([(1, 2.0)], dtype=[("i", "<i4"), ("f", ">f8")]),
        "unicode": np.array(["ab", "cdé"]),
        "bool": np.array([True, False]),
        "complex": np.array([1 + 2j, -1j]),
        "float16": np.arange(3, dtype=np.float16),
        "datetime": np.array(["2020-01-01", "NaT"], dtype="M8[D]"),
        "timedelta": np.array([1, 2], dtype="m8[s]"),
        "nested": [np.arange(3), (np.ones(2), {"deep": np.eye(2)})],
        "text": "été",
        "blob": bytes(range(256)),
        "number": 1.5,
    }


def dump(value, path, codec=None, protocol=None):
    compress = (codec, 3) if codec else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix
        joblib.dump(value, path, compress=compress, protocol=protocol)
    return path


def joblib_accepts(argument: str) -> bool:
    import inspect

    return argument in inspect.signature(joblib.load).parameters


def joblib_load(path, *args, **kwargs):
    """joblib's own load, for comparison; its own resource leaks are not ours to report.

    (joblib 1.6 with lz4 4.4 on Python 3.13 leaves a file whose finalizer fails.)
    """
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = joblib.load(path, *args, **kwargs)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    return value


@pytest.fixture(params=CODECS, ids=lambda c: c or "raw")
def codec(request):
    if request.param == "lz4":
        request.getfixturevalue("lz4_codec")
    return request.param


@pytest.mark.parametrize("protocol", [None, 0, 2, 3, 5], ids=lambda p: f"protocol-{p}")
def test_every_codec_and_protocol(tmp_path, codec, protocol):
    value = sample()
    path = dump(value, tmp_path / "data.pkl", codec, protocol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on a plain load
        got = ap.load(path)
    assert_same(got, value)
    assert got["array"].ctypes.data % 64 == 0 and got["array"].flags.writeable
    assert got["fortran"].flags.f_contiguous
    # As joblib loads it, except that np.matrix stays a matrix (joblib 1.6 + numpy 2
    # returns a plain ndarray).
    theirs = joblib_load(path)
    assert type(theirs["matrix"]) in (np.matrix, np.ndarray)
    np.testing.assert_array_equal(got["matrix"], theirs["matrix"])
    assert got["objects"][3]["k"].tolist() == theirs["objects"][3]["k"].tolist()


def test_compressed_from_streams(codec, tmp_path):
    value = sample()
    data = dump(value, tmp_path / "data.pkl", codec).read_bytes()
    assert_same(ap.loads(data), value)
    assert_same(ap.load(io.BytesIO(data)), value)
    with pipe_reader(data) as pipe:
        assert_same(ap.load(pipe), value)
    assert_same(ap.load(RawStream(data)), value)


@pytest.mark.parametrize("mode", ["r", "r+", "c", "w+"])
def test_mmap_like_joblib(tmp_path, mode):
    value = sample()
    path = dump(value, tmp_path / "data.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # joblib >= 1.2 pads arrays: no unaligned warning
        got = ap.load(path, mmap_mode=mode)
    assert_same(got, value, mapped=True)
    theirs = joblib_load(path, mmap_mode=mode)
    for key, want in theirs.items():
        if isinstance(want, np.memmap):
            mapped = got[key] if isinstance(got[key], np.memmap) else got[key].base
            assert isinstance(mapped, np.memmap), key
            assert (mapped.filename, mapped.offset) == (want.filename, want.offset), key
            assert mapped.mode == ("r+" if mode == "w+" else mode)
            assert mapped.flags.aligned
        elif isinstance(want, np.ndarray) and key != "matrix":
            assert not isinstance(got[key], np.memmap), key
    assert type(got["matrix"]) is np.matrix and isinstance(got["matrix"].base, np.memmap)
    assert got["big_endian"].dtype == np.dtype(">i4")  # mapped arrays keep their order


@pytest.mark.parametrize("ensure", ["auto", True, False])
@pytest.mark.parametrize("codec", [None, "zlib"])
def test_byte_order_as_joblib_ensures_it(tmp_path, codec, ensure):
    # joblib >= 1.5's ensure_native_byte_order: the same dtypes as joblib.load gives.
    if not joblib_accepts("ensure_native_byte_order"):
        pytest.skip("this joblib has no ensure_native_byte_order")
    value = {k: sample()[k] for k in ("big_endian", "big_endian_fortran", "structured", "array")}
    path = dump(value, tmp_path / "data.pkl", codec)
    got = ap.load(path, None, ensure)  # third, as in joblib's signature
    theirs = joblib_load(path, None, ensure)
    for key, want in theirs.items():
        np.testing.assert_array_equal(got[key], want)
        if key != "structured" or not ensure:
            assert got[key].dtype == want.dtype, key
    if ensure:  # joblib leaves a structured dtype's big-endian fields as they are
        assert got["structured"].dtype == np.dtype([("i", "<i4"), ("f", "<f8")])


def test_native_byte_order_cannot_be_mapped_in_joblib_either(tmp_path):
    if not joblib_accepts("ensure_native_byte_order"):
        pytest.skip("this joblib has no ensure_native_byte_order")
    path = dump({"a": np.arange(3, dtype=">i4")}, tmp_path / "data.pkl")
    with pytest.raises(ValueError):
        joblib_load(path, mmap_mode="r", ensure_native_byte_order=True)
    with pytest.raises(ap.InvalidArgumentError, match="mmap_mode='r'"):
        ap.load(path, mmap_mode="r", ensure_native_byte_order=True)
    got = ap.load(path, mmap_mode="r", ensure_native_byte_order=False)["a"]
    assert isinstance(got, np.memmap) and got.dtype == np.dtype(">i4")


def test_mmap_writes_reach_the_file_in_r_plus_only(tmp_path):
    path = dump({"a": np.zeros(10)}, tmp_path / "data.pkl")
    ap.load(path, mmap_mode="c")["a"][:] = 1
    assert ap.load(path)["a"].sum() == 0
    mapped = ap.load(path, mmap_mode="r+")["a"]
    mapped[:] = 2
    mapped.flush()
    del mapped
    assert ap.load(path)["a"].sum() == 20
    assert joblib_load(path)["a"].sum() == 20


def test_mmap_of_compressed_or_file_object_warns(tmp_path):
    path = dump({"a": np.arange(4)}, tmp_path / "data.pkl.gz", "gzip")
    with pytest.warns(UserWarning, match="cannot be memory-mapped"):
        got = ap.load(path, mmap_mode="r")
    assert type(got["a"]) is np.ndarray
    raw = dump({"a": np.arange(4)}, tmp_path / "raw.pkl")
    with open(raw, "rb") as f, pytest.warns(UserWarning, match="needs a file name"):
        assert type(ap.load(f, mmap_mode="r")["a"]) is np.ndarray


def test_plain_pickle_mmap_warns(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(3)}))
    with pytest.warns(UserWarning, match="plain pickle") as caught:
        got = ap.load(path, mmap_mode="r")
    assert caught[0].filename == __file__
    np.testing.assert_array_equal(got["a"], np.arange(3))


class _WriteOnly(io.RawIOBase):
    """A non-seekable destination, like a pipe: joblib then writes no alignment padding."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += b
        return len(memoryview(b).cast("B"))


def test_written_to_a_non_seekable_stream(tmp_path):
    value = sample()
    out = _WriteOnly()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        joblib.dump(value, out)
    data = bytes(out.data)
    assert_same(ap.loads(data), value)
    with pipe_reader(data) as pipe:
        assert_same(ap.load(pipe), value)
    path = tmp_path / "unpadded.pkl"
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ap.load(path, mmap_mode="r")
    assert_same(got, value, mapped=True)
    unaligned = [w for w in caught if "unaligned" in str(w.message)]
    assert all(w.filename == __file__ for w in unaligned)


def test_back_to_back_in_one_stream():
    stream = io.BytesIO()
    joblib.dump({"first": np.arange(5)}, stream)
    joblib.dump([np.ones(3), "second"], stream)
    stream.write(b"rest")
    stream.seek(0)
    np.testing.assert_array_equal(ap.load(stream)["first"], np.arange(5))
    second = ap.load(stream)
    assert second[1] == "second"
    assert stream.read() == b"rest"


def test_big_arrays_and_many_small_ones(tmp_path):
    value = {
        "big": np.arange(3_000_000, dtype=np.float64).reshape(1000, 3000),
        "small": [np.full(i % 7, i) for i in range(2000)],
    }
    for codec in (None, "gzip"):
        path = dump(value, tmp_path / f"big-{codec}.pkl", codec)
        got = ap.load(path)
        np.testing.assert_array_equal(got["big"], value["big"])
        assert all((g == w).all() for g, w in zip(got["small"], value["small"], strict=True))


# -- damaged and hostile files --------------------------------------------------


def _raw_wrapper_state(dtype="<f8", shape=(3,), **changes):
    state = {
        "subclass": np.ndarray,
        "shape": shape,
        "order": "C",
        "dtype": np.dtype(dtype),
        "allow_mmap": True,
    }
    state.update(changes)
    return state


def test_crafted_wrapper_reads_like_joblib():
    data = craft_wrapper("NumpyArrayWrapper", _raw_wrapper_state(), np.arange(3.0).tobytes())
    np.testing.assert_array_equal(ap.loads(data), np.arange(3.0))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (_raw_wrapper_state(subclass=dict), "not an ndarray"),
        (_raw_wrapper_state(shape=(-1,)), "shape"),
        (_raw_wrapper_state(shape="3"), "shape"),
        (_raw_wrapper_state(order="K"), "order"),
        (_raw_wrapper_state(dtype="<f8", shape=(10**12,)), "more than the file holds"),
        ({"shape": (3,)}, "lacks"),
        ([1, 2], "state of type list"),
    ],
)
def test_bad_wrapper_states_are_corrupt(state, message):
    if isinstance(state, dict) and "dtype" in state and state["shape"] == (10**12,):
        data = craft_wrapper("NumpyArrayWrapper", state, b"\0" * 24)
    else:
        data = craft_wrapper("NumpyArrayWrapper", state, np.arange(3.0).tobytes())
    with pytest.raises(ap.CorruptFileError, match=message):
        ap.loads(data)


def test_truncated_array_data_is_corrupt():
    data = craft_wrapper("NumpyArrayWrapper", _raw_wrapper_state(), b"\0" * 24)
    with pytest.raises(ap.CorruptFileError, match="more than the file holds"):
        ap.loads(data[: -1 - 10])
    with pytest.raises(ap.CorruptFileError, match="truncated"):  # size unknown beforehand
        ap.load(RawStream(data[: -1 - 10]))


def test_wrapper_inside_a_frame_that_goes_on_is_corrupt():
    """joblib ends its frame at a wrapper's BUILD; a frame that goes on is not joblib's."""
    body = craft_wrapper("NumpyArrayWrapper", _raw_wrapper_state(), protocol=4)[2:-1]
    frame = body + b"N0"  # NONE POP: more opcodes in the same frame
    data = (
        b"\x80\x04\x95" + len(frame).to_bytes(8, "little") + frame + np.arange(3.0).tobytes() + b"."
    )
    with pytest.raises(ap.CorruptFileError, match="not followed by its data"):
        ap.loads(data, verify=False)
    # The memo guard refuses it first: the state's own frame begins inside the outer one.
    with pytest.raises(ap.CorruptFileError, match="a frame begins inside another"):
        ap.loads(data)


def test_wrapper_inside_an_object_array_pickle_is_refused():
    nested = craft_wrapper("NumpyArrayWrapper", _raw_wrapper_state(), np.arange(3.0).tobytes())
    outer = craft_wrapper("NumpyArrayWrapper", _raw_wrapper_state(dtype="O"), nested)
    with pytest.raises(ap.CorruptFileError, match="nested object-array pickle"):
        ap.loads(outer)


def test_persistent_ids_are_refused():
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return "pid" if obj == "x" else None

    out = io.BytesIO()
    WithPid(out).dump(["x"])
    with pytest.raises(ap.CorruptFileError, match="persistent IDs"):
        ap.loads(out.getvalue())


# -- property: anything joblib dumps, we load -------------------------------------

_dtypes = st.sampled_from(["<i8", ">i4", "<f4", ">f8", "u1", "?", "<c16", "<M8[s]", "<U3", "S2"])


@st.composite
def _arrays(draw):
    arr = draw(hnp.arrays(np.dtype(draw(_dtypes)), hnp.array_shapes(min_dims=0, max_dims=3)))
    view = draw(st.sampled_from(["plain", "fortran", "slice", "transpose"]))
    if view == "fortran":
        return np.asfortranarray(arr)
    if view == "slice" and arr.ndim:
        return arr[::2]
    if view == "transpose":
        return arr.T
    return arr


_leaves = st.one_of(_arrays(), st.integers(), st.text(max_size=5), st.binary(max_size=5))
_values = st.recursive(
    _leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=3), kids, max_size=4)
    ),
    max_leaves=8,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_values, protocol=st.sampled_from([2, 3, 4, 5]))
def test_whatever_joblib_dumps_loads(value, protocol):
    out = io.BytesIO()
    joblib.dump(value, out, protocol=protocol)
    assert_same(ap.loads(out.getvalue()), value)


# -- bounded memory ---------------------------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import {module} as loader

    def peak():  # VmHWM: this process's peak RSS (ru_maxrss survives fork and exec)
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) << 10 for l in f if l.startswith("VmHWM"))

    before = peak()
    value = loader.load(sys.argv[1])
    print(json.dumps({{"extra": peak() - before - value["a"].nbytes}}))
    """
)


def peak_extra(path, module="arraypickle") -> int:
    """Bytes of peak RSS above the loaded array, loading ``path`` in a fresh process."""
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(module=module), os.fspath(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)["extra"]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's VmHWM")
@pytest.mark.parametrize("codec", [None, "zlib"])
def test_load_memory_is_bounded(tmp_path, codec):
    """Loading a 120 MB joblib array holds at most 48 MB beyond the result."""
    path = dump({"a": np.arange(15_000_000, dtype=np.float64)}, tmp_path / "big.pkl", codec)
    extra = peak_extra(path)
    assert extra <= 48 << 20, f"{extra / 2**20:.1f} MB above the result"


def test_scikit_learn_vendored_joblib_files(tmp_path):
    """Files written by ``sklearn.externals.joblib`` name that module: they load too."""
    value = {"a": np.arange(4.0), "o": np.array([None, 1], dtype=object)}
    path = dump(value, tmp_path / "old.pkl", protocol=3)
    data = path.read_bytes()
    assert data.count(b"cjoblib.numpy_pickle\n") == 1
    data = data.replace(b"cjoblib.numpy_pickle\n", b"csklearn.externals.joblib.numpy_pickle\n")
    assert_same(ap.loads(data), value)


def test_unbuffered_pipe_without_peek():
    """joblib needs ``peek`` or ``seek`` on the file object; any readable stream will do."""
    value = sample()
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        joblib.dump(value, out)
    read_fd, write_fd = os.pipe()

    def feed():
        with open(write_fd, "wb") as w:
            w.write(out.getvalue())

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    with open(read_fd, "rb", buffering=0) as raw:
        assert not hasattr(raw, "peek")
        assert_same(ap.load(raw), value)
    thread.join(timeout=30)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_mmap_of_a_named_pipe_warns_and_loads(tmp_path):
    value = {"a": np.arange(5.0)}
    out = io.BytesIO()
    joblib.dump(value, out)
    fifo = tmp_path / "fifo.pkl"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as w:
            w.write(out.getvalue())

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    with pytest.warns(UserWarning, match="cannot be memory-mapped"):
        got = ap.load(fifo, mmap_mode="r")
    thread.join(timeout=30)
    assert_same(got, value)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_short_reads_and_peeks(seed, protocol):
    """Streams that return whatever they have (raw sockets) load the same."""
    value = sample()
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        joblib.dump(value, out, protocol=protocol)
    assert_same(ap.load(ChoppyStream(out.getvalue(), seed)), value)
    assert_same(ap.load(ChoppyStream(out.getvalue(), seed, peek=False)), value)


class PeeksCutAt(RawStream):
    """A non-seekable stream whose ``peek`` windows end at the offsets in ``cuts``."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        super().__init__(data)
        self._cuts = sorted(cuts)

    def peek(self, n: int = 1) -> bytes:
        end = next((c for c in self._cuts if c > self._pos), len(self._data))
        return bytes(self._data[self._pos : min(end, self._pos + max(n, 1))])


def test_wrapper_name_split_across_peeked_windows():
    """Windows end at BUILD bytes once the wrapper's name has gone by, wherever the
    windows that showed the name ended: the arrays load from any split."""
    value = {"b": b"bbbb", "a": np.arange(5.0), "c": [np.int8(3), np.arange(3)]}
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        joblib.dump(value, out, protocol=2)  # no frames: the unpickler peeks throughout
    data = out.getvalue()
    at = data.index(b"ArrayWrapper")
    assert b"b" in data[:at]
    for cut in range(at - 1, at + len(b"ArrayWrapper") + 2):
        assert_same(ap.load(PeeksCutAt(data, [cut])), value)
        assert_same(ap.load(PeeksCutAt(data, list(range(cut, len(data), 7)))), value)


def test_wrapper_name_read_whole_then_large_windows():
    """The name is looked for in what is read as well as in what is peeked at: here
    the first frame (the name in it) is read whole, past one-byte windows, and the
    second wrapper's frame fits in one large window."""
    value = {"a": np.arange(5.0), "b": np.arange(3.0)}
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        joblib.dump(value, out, protocol=5)
    data = out.getvalue()
    assert data.count(b"ArrayWrapper") == 1  # the second wrapper's class comes from the memo
    assert_same(ap.load(PeeksCutAt(data, list(range(1, 21)))), value)


def test_a_wrapper_not_named_in_the_stream_is_refused_unless_read_exactly():
    """joblib names its wrapper class in the file; with an extension code registered
    for it (copyreg.add_extension), pickle writes the code instead. arraypickle finds
    where a wrapper's array data begins in the windows it hands the unpickler from the
    name, so it refuses such a file from a seekable stream or one with peek (joblib.load,
    with the same registration, reads it); without peek every read is exact: it loads."""
    import copyreg

    value = {"a": np.arange(5.0)}
    copyreg.add_extension("joblib.numpy_pickle", "NumpyArrayWrapper", 240)
    try:
        out = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            joblib.dump(value, out, protocol=2)
        data = out.getvalue()
        assert b"ArrayWrapper" not in data
        for stream in (io.BytesIO(data), PeeksCutAt(data, [])):
            copyreg._extension_cache.clear()
            with pytest.raises(ap.CorruptFileError, match="is not followed by its data"):
                ap.load(stream)
        copyreg._extension_cache.clear()
        assert_same(ap.load(RawStream(data)), value)
    finally:
        copyreg.remove_extension("joblib.numpy_pickle", "NumpyArrayWrapper", 240)
        copyreg._extension_cache.clear()


@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize("kind", ["pickle", "joblib", "joblib-zlib", "arraypickle"])
def test_a_loaded_object_is_freed_with_its_last_reference(kind, safe):
    # The loader of a plain pickle or joblib file lives in a reference cycle until the
    # garbage collector runs; it held the object, so a joblib file's arrays outlived
    # the caller's last reference (memory doubled in a loop loading big files).
    import weakref

    arr = np.arange(1000.0)
    if kind == "pickle":
        data = pickle.dumps([arr])
    elif kind == "arraypickle":
        data = ap.dumps([arr])
    else:
        out = io.BytesIO()
        joblib.dump([arr], out, compress=3 if kind == "joblib-zlib" else 0)
        data = out.getvalue()
    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = ap.loads(data, safe=safe)
        alive = weakref.ref(loaded[0])
        del loaded
        assert alive() is None
    finally:
        if enabled:
            gc.enable()
