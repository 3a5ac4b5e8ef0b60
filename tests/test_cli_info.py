"""``arraypickle info``: formats, arrays (paths, offsets), globals; executing nothing."""

from __future__ import annotations

import bz2
import gc
import gzip
import io
import json
import lzma
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraypickle as ap
from arraypickle._inspect import inspect_stream
from cli_support import check_against, info_json, run_cli, run_subprocess
from conftest import COMPRESS_SETTINGS, JOBLIB_COMPAT
from peak_rss import PEAK_SCRIPT
from test_safe_attacks import container, shared_tuple

MiB = 1 << 20


class Model:
    """An estimator-like object: attributes, a list of sub-objects with arrays."""

    def __init__(self, n: int = 3) -> None:
        self.coef_ = np.arange(12.0).reshape(3, 4)
        self.estimators_ = [Leaf(i) for i in range(n)]
        self.params = {"alpha": 0.5, "name": "m"}


class Leaf:
    def __init__(self, i: int) -> None:
        self.values = np.full((2, i + 1), i, dtype=np.int32, order="F")
        self.depth = i


def sample() -> dict:
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 255, (10, 8, 8), dtype=np.uint8),
        "labels": np.arange(10),
        "fortran": np.asfortranarray(rng.random((5, 7))),
        "big_endian": np.arange(6, dtype=">f8").reshape(2, 3),
        "structured": np.zeros(4, dtype=[("x", "<i4"), ("y", ">f8", (2,))]),
        # a record array's dtype names numpy.record, a class given as an argument
        "records": np.rec.fromarrays([np.arange(3), np.ones(3, ">f4")], names="a,b"),
        "text": np.array(["a", "bcd"]),
        "objects": np.array([1, np.arange(3), "x"], dtype=object),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        "nested": [np.ones(3, np.float32), (np.zeros((0, 4)), {"deep": np.eye(2)})],
        "model": Model(),
        "scalar": np.float32(1.5),
        "plain": {"a": 1, "b": [1.0, 2.0], "c": "text"},
    }


def decompressed(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    for magic, opener in (
        (b"\x1f\x8b", gzip.decompress),
        (b"BZh", bz2.decompress),
        (b"\xfd7zXZ", lzma.decompress),
        (b"\x5d\x00\x00", lzma.decompress),
        (b"\x78", zlib.decompress),
    ):
        if data.startswith(magic):
            return opener(data)
    return data


# -- every format: arrays, paths, dtypes, shapes, offsets --------------------------------


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_arraypickle_files(tmp_path, capsys, compress):
    path = str(tmp_path / "f.pkl")
    ap.dump(sample(), path, compress=compress)
    report = info_json(capsys, path)
    assert report["schema"] == "arraypickle-info/1"
    assert report["format"] == "arraypickle"
    assert report["container"]["version"] == "2.0"
    assert report["pickle_protocol"] == 5
    assert report["compression"] == (compress or None)
    assert report["file_size"] == os.path.getsize(path)
    stream = decompressed(path) if compress in ("zlib", "gzip", "bz2", "lzma", "xz", 0) else None
    if stream is not None:
        assert report["stream_size"] == len(stream)
    check_against(report, ap.load(path), stream)
    buffers = [a for a in report["arrays"] if a["storage"] == "buffer"]
    assert buffers and all(a["offset"] % 64 == 0 for a in buffers)
    (records,) = [a for a in report["arrays"] if a["path"] == "['records']"]
    assert records["dtype"] == "(numpy.record, [('a', '<i8'), ('b', '>f4')])"
    expected = ["test_cli_info.Leaf", "test_cli_info.Model"]
    assert report["untrusted"] == ap.get_untrusted_types(path) == expected


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles(tmp_path, capsys, protocol):
    path = str(tmp_path / "f.pkl")
    with open(path, "wb") as f:
        pickle.dump(sample(), f, protocol=protocol)
    report = info_json(capsys, path)
    assert report["format"] == "pickle"
    assert report["pickle_protocol"] == protocol
    assert report["container"] is None and report["joblib"] is None
    assert report["stream_size"] == os.path.getsize(path)
    with open(path, "rb") as f:
        stream = f.read()
    check_against(report, pickle.loads(stream), stream)
    storages = {a["storage"] for a in report["arrays"]}
    assert storages <= {"pickle", "pickle-text", "pickle-objects"}
    if protocol >= 3:  # array bytes are stored verbatim: offsets are known
        assert all(
            a["offset"] is not None
            for a in report["arrays"]
            if a["storage"] == "pickle" and a["nbytes"]
        )


@pytest.mark.parametrize("protocol", [0, 1])
def test_text_arguments_of_any_length(tmp_path, capsys, protocol):
    # Protocol 0 writes an array's bytes as one UNICODE line (Python 2's default
    # protocol, so old files): lines past LINE_MAX are skipped, not refused.
    from arraypickle._symbolic import LINE_MAX

    value = {"big": np.zeros(LINE_MAX), "text": "x" * (4 * LINE_MAX), "small": np.arange(3)}
    path = str(tmp_path / "f.pkl")
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=protocol)
    with open(path, "rb") as f:
        stream = f.read()
    report = info_json(capsys, path)
    check_against(report, pickle.loads(stream), stream)
    ap.dump(value, path, protocol=protocol)  # a container holding such opcodes
    check_against(info_json(capsys, path), ap.load(path), None)


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz", "lzma"])
def test_joblib_files(tmp_path, capsys, compress):
    joblib = pytest.importorskip("joblib")
    path = str(tmp_path / "f.joblib")
    joblib.dump(sample(), path, compress=compress)
    report = info_json(capsys, path)
    assert report["format"] == "joblib"
    assert report["joblib"] == {"generation": ">=1.2"}
    assert report["compression"] == {0: None, 3: "zlib"}.get(compress, compress)
    stream = decompressed(path)
    check_against(report, ap.load(path), stream)
    wrapped = [a for a in report["arrays"] if a["storage"] == "joblib"]
    assert len(wrapped) >= 8
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in [g["name"] for g in report["globals"]]


def test_json_errors_print_nothing_on_stdout(tmp_path, capsys):
    # What a script reads from stdout is a description or nothing; the exit code and
    # the one line on stderr say why.
    damaged = tmp_path / "f.pkl"
    damaged.write_bytes(ap.dumps(sample())[:-5])
    for path in (damaged, tmp_path / "missing.pkl"):
        code, out, err = run_cli(capsys, "info", "--json", str(path))
        assert (code, out) == (1, "")
        assert err.startswith("arraypickle info: error: ") and str(path) in err


def test_human_output(tmp_path, capsys):
    path = str(tmp_path / "f.pkl.gz")
    ap.dump(sample(), path)
    code, out, _ = run_cli(capsys, "info", path)
    assert code == 0
    assert "arraypickle container v2.0, pickle protocol 5, compressed with gzip" in out
    assert "['images']" in out and "uint8" in out and "(10, 8, 8)" in out
    assert "['model'].estimators_[2].values" in out
    assert "(offsets are in the decompressed stream)" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["test_cli_info.Model", "untrusted"] in lines
    assert ["numpy.dtype"] in lines
    assert "2 untrusted" in out


def test_paths_name_attributes_items_and_elements(tmp_path, capsys):
    path = str(tmp_path / "f.pkl")
    ap.dump(sample(), path)
    paths = {a["path"]: a for a in info_json(capsys, path)["arrays"]}
    assert paths["['model'].estimators_[1].values"]["order"] == "F"
    assert paths["['model'].coef_"]["shape"] == [3, 4]
    assert paths["['nested'][1][1]['deep']"]["dtype"] == "float64"
    assert paths["['objects']"]["dtype"] == "object"
    assert paths["['objects']"]["storage"] == "pickle-objects"
    assert paths["['objects'][1]"]["storage"] == "buffer"
    assert paths["['masked'].mask"]["dtype"] == "bool"
    assert paths["['matrix']"]["class"] == "numpy.matrix"
    assert paths["['big_endian']"]["dtype"] == ">f8"


def test_trusted_names_are_not_marked(tmp_path, capsys):
    path = str(tmp_path / "f.pkl")
    ap.dump(Model(), path)
    report = info_json(capsys, path, "--trusted", "test_cli_info.Model")
    assert report["untrusted"] == ["test_cli_info.Leaf"]


def test_stdin(tmp_path):
    path = tmp_path / "f.pkl.xz"
    ap.dump({"a": np.arange(5)}, str(path))
    with open(path, "rb") as f:
        done = subprocess.run(
            [sys.executable, "-m", "arraypickle", "info", "--json", "-"],
            stdin=f,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["file"] == "<stdin>" and report["compression"] == "xz"
    assert [(a["path"], a["shape"]) for a in report["arrays"]] == [("['a']", [5])]


# -- property: random nests, every format -------------------------------------------------

_dtypes = st.sampled_from(["?", "i1", "<i8", ">i4", "<f4", ">f8", "c16", "U3", "S2", "M8[s]"])
_arrays = _dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
).flatmap(lambda a: st.sampled_from([a, np.asfortranarray(a), a.T, a[::2] if a.ndim else a]))
_keys = st.text("abcxyz_ '\"", min_size=0, max_size=4)
_objects = st.recursive(
    _arrays | st.integers() | st.text(max_size=3) | st.none(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_keys, inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_objects, fmt=st.sampled_from(["ap", "ap-gzip", "p2", "p4", "p5", "joblib"]))
def test_property_paths_and_offsets(obj, fmt):
    buf = io.BytesIO()
    if fmt.startswith("ap"):
        ap.dump(obj, buf, compress="gzip" if fmt == "ap-gzip" else 0)
    elif fmt == "joblib":
        joblib = pytest.importorskip("joblib")
        joblib.dump(obj, buf)
    else:
        pickle.dump(obj, buf, protocol=int(fmt[1]))
    data = buf.getvalue()
    report = inspect_stream(io.BytesIO(data), "x", len(data), None).to_json()
    stream = gzip.decompress(data) if fmt == "ap-gzip" else data
    check_against(report, ap.loads(data), stream)
    assert report["untrusted"] == ap.get_untrusted_types(data)


# -- real joblib files of every version ------------------------------------------------

_CORPUS = sorted(JOBLIB_COMPAT.glob("joblib_*")) if JOBLIB_COMPAT.is_dir() else []
_MAIN_FILES = [p for p in _CORPUS if ".npy" not in p.name]


@pytest.mark.skipif(not _MAIN_FILES, reason="the joblib-compat corpus is not beside the project")
@pytest.mark.parametrize("path", _MAIN_FILES, ids=lambda p: p.name)
def test_joblib_corpus(capsys, path):
    if path.name.endswith(".lz4") and "lz4" not in ap.codecs():
        pytest.skip("no lz4 codec installed")
    report = info_json(capsys, str(path))
    assert report["format"] == "joblib"
    got = [(a["path"], a["class"], a["dtype"], a["shape"]) for a in report["arrays"]]
    assert got == [
        ("[0]", "numpy.ndarray", "int64", [5]),
        ("[1]", "numpy.ndarray", "float64", [5]),
        ("[2]", "numpy.ndarray", "object", [3]),
        ("[4]", "numpy.matrix", "int64", [1, 3]),
    ]
    version = path.name.split("_")[1]
    legacy = version.startswith(("0.8", "0.9"))
    assert report["joblib"]["generation"] == ("0.8.4-0.9" if legacy else "0.10-1.1")
    assert report["python2"] == ("_py27_" in path.name)
    if "compressed" in path.name and legacy:
        assert report["compression"] == "joblib-zlib"
    if not legacy and path.suffix == ".pkl":  # raw array bytes at their offsets
        data = path.read_bytes()
        first = report["arrays"][0]
        assert data[first["offset"] : first["offset"] + 40] == np.arange(5, dtype="<i8").tobytes()
    if path.suffix == ".pkl" and legacy:
        assert {a["storage"] for a in report["arrays"]} == {"npy"}
        assert report["arrays"][0]["file"] == path.name + "_01.npy"


# -- executing nothing ---------------------------------------------------------------------


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", [False, True])
def test_reduce_payloads_do_not_run(tmp_path, capsys, container):
    marker = tmp_path / "ran"
    path = str(tmp_path / "evil.pkl")
    obj = {"x": np.arange(3), "evil": Evil(str(marker))}
    if container:
        ap.dump(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    report = info_json(capsys, path)
    assert not marker.exists()
    assert report["untrusted"] == [f"{os.name}.system"] == ap.get_untrusted_types(path)
    assert [a["path"] for a in report["arrays"]] == ["['x']"]


def test_named_modules_are_not_imported(tmp_path):
    """A module the file names would write a marker when imported: info imports nothing."""
    (tmp_path / "apmarker_mod.py").write_text(
        "open(__file__ + '.imported', 'w').close()\nclass Thing:\n    pass\n"
    )
    path = tmp_path / "f.pkl"
    path.write_bytes(b"\x80\x04capmarker_mod\nThing\n)\x81.")
    done = run_subprocess("info", "--json", str(path), env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["untrusted"] == ["apmarker_mod.Thing"]
    assert not (tmp_path / "apmarker_mod.py.imported").exists()


def test_globals_through_the_memo_and_unresolved(capsys, tmp_path):
    # STACK_GLOBAL whose strings come back through the memo; then one over a non-string.
    path = tmp_path / "f.pkl"
    path.write_bytes(
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93)RK\x01K\x02\x93)R\x86."
    )
    report = info_json(capsys, str(path))
    assert report["untrusted"] == ["<unresolved>", "os.system"]
    assert report["untrusted"] == ap.get_untrusted_types(str(path))


# -- bounded memory -------------------------------------------------------------------------

MEMORY_SCRIPT = (
    PEAK_SCRIPT
    + r"""
import io, pickle
import numpy as np
import arraypickle as ap
from arraypickle._inspect import inspect_path

kind, path = sys.argv[1], sys.argv[2]
a = np.ones(int(sys.argv[3]) // 8)
if kind == "ap":
    ap.dump({"a": a}, path)
elif kind == "ap-gzip":
    ap.dump({"a": a}, path, compress=("gzip", 1))
elif kind == "pickle":
    with open(path, "wb") as f:
        pickle.dump({"a": a}, f, protocol=5)
else:
    import joblib
    joblib.dump({"a": a}, path)
del a
inspect_path(__file__)  # warm up imports
peak = Peak()
report = inspect_path(path)
print(json.dumps({"extra": peak.extra(), "bytes": report.array_bytes}))
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ap", "ap-gzip", "pickle", "joblib"])
def test_info_memory_is_bounded(tmp_path, kind):
    if kind == "joblib":
        pytest.importorskip("joblib")
    size = 160 * MiB
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT.replace("inspect_path(__file__)", "inspect_path(sys.argv[4])"))
    warm = tmp_path / "warm.pkl"
    ap.dump([np.arange(3)], str(warm))
    done = subprocess.run(
        [sys.executable, str(script), kind, str(tmp_path / "big.pkl"), str(size), str(warm)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["bytes"] == size
    assert result["extra"] < 24 * MiB, result


# -- damaged files: a library error or a report, nothing else ------------------------------


def _seeds() -> list[bytes]:
    obj = {"a": np.arange(50, dtype=np.int16), "b": [1.5, "x", (2, None)], "m": Model(1)}
    seeds = [ap.dumps(obj), ap.dumps(obj, compress="zlib"), pickle.dumps(obj, protocol=2)]
    seeds.append(pickle.dumps(obj, protocol=5))
    try:
        import joblib

        buf = io.BytesIO()
        joblib.dump(obj, buf)
        seeds.append(buf.getvalue())
    except ImportError:
        pass
    return seeds


_SEEDS = _seeds()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(_SEEDS))),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("xdi")),
        min_size=1,
        max_size=4,
    ),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_files_give_a_library_error(seed, edits, cut):
    data = bytearray(_SEEDS[seed])
    for pos, byte, how in edits:
        pos %= len(data) + 1
        if how == "x" and pos < len(data):
            data[pos] ^= byte or 1
        elif how == "d":
            del data[pos : pos + 1 + byte % 8]
        else:
            data[pos:pos] = bytes([byte])
    if cut is not None and data:
        del data[cut % len(data) :]
    try:
        report = inspect_stream(io.BytesIO(bytes(data)), "x", len(data), None)
    except ap.ArrayPickleError:
        return
    json.dumps(report.to_json())
    assert isinstance(report.description, str)


def test_a_dtype_numpy_only_tolerates_is_not_materialized_nor_warned_about():
    # numpy 2.4 warns (VisibleDeprecationWarning) for dtype('f8', 'i4', True), as a
    # damaged file can make it: `arraypickle info` must neither print that nor trust it.
    import warnings

    from arraypickle._symbolic import Global, Obj, as_dtype

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        odd = as_dtype(Obj(Global("numpy.dtype"), ("f8", "i4", True), "reduce"))
        good = as_dtype(Obj(Global("numpy.dtype"), ("f8", 0, 1), "reduce"))
    assert caught == []
    if np.lib.NumpyVersion(np.__version__) >= "2.4.0":
        assert odd is None
    else:  # older numpy accepts it without a word, as the float64 dtype
        assert odd == np.dtype("f8")
    assert good == np.dtype("f8")


class ForgedDtype:
    """Pickles as numpy.dtype('V8') with a state numpy never writes (itemsize -5)."""

    def __reduce__(self):
        state = (3, "|", None, ("a",), {"a": (np.dtype("f8"), 0)}, -5, 1, 16)
        return (np.dtype, ("V8", False, True), state)


def test_a_dtype_state_is_taken_only_as_numpy_writes_it():
    # numpy's __setstate__ trusts the state: a damaged one made a dtype of itemsize -5
    # (and crashed `arraypickle info` in a fuzzing run). The dtype is rebuilt from the
    # description instead, and only when numpy would write that very state.
    from arraypickle._symbolic import as_dtype, run_stream

    def skeleton(value: object) -> object:
        return run_stream(io.BytesIO(pickle.dumps(value, protocol=2)))[1]

    for dtype in (np.dtype([("a", "<f8"), ("b", "S3")]), np.dtype(">M8[ms]"), np.dtype("<i4")):
        assert as_dtype(skeleton(dtype)) == dtype
    assert as_dtype(skeleton(ForgedDtype())) is None


def test_a_joblib_wrapper_with_a_forged_dtype_state_is_refused():
    from joblib_support import craft_wrapper

    state = {"subclass": np.ndarray, "shape": (3,), "order": "C", "dtype": ForgedDtype()}
    data = craft_wrapper("NumpyArrayWrapper", {**state, "allow_mmap": True}, b"\0" * 24)
    with pytest.raises(ap.CorruptFileError, match="shape, dtype or order cannot be read"):
        inspect_stream(io.BytesIO(data), "x", len(data), None)


SCALAR = b"cnumpy._core.multiarray\nscalar\n"
DTYPE_F8 = b"cnumpy\ndtype\nU\x02f8\x89\x88\x87R"


def info_in_a_child(data: bytes, tmp_path) -> subprocess.CompletedProcess:
    """``arraypickle info --json`` of ``data``, in a fresh process (a crash or a hang
    must not take the suite with it)."""
    path = tmp_path / "f.pkl"
    path.write_bytes(data)
    return run_subprocess("info", "--json", str(path))


def test_a_dict_key_shared_with_itself_is_not_walked_whole(tmp_path):
    # 2**40 leaves: walking the key (or printing it) in the array's path would not end.
    array = pickle.dumps(np.zeros(3), protocol=2)[2:-1]
    data = b"\x80\x02}q\x00" + shared_tuple(40) + array + b"s."
    run = info_in_a_child(data, tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["arrays"][0]["path"] == "[<?>]"


def test_a_scalar_key_over_shared_arguments_is_not_materialized(tmp_path):
    args = b"(" + DTYPE_F8 + shared_tuple(30) + b"tR"
    data = b"\x80\x02}q\x00" + SCALAR + args + b"K\x00s."
    run = info_in_a_child(data, tmp_path)
    assert run.returncode == 0, run.stderr


def test_a_scalar_numpy_would_crash_on_is_not_materialized(tmp_path):
    # {scalar(dtype([('o', 'O')])): 0}: numpy 2.4 reads a pointer from nowhere (SIGSEGV).
    dtype = b"cnumpy\ndtype\n]X\x01\x00\x00\x00oX\x01\x00\x00\x00O\x86a\x85R"
    data = b"\x80\x02}" + SCALAR + dtype + b"\x85RK\x00s."
    run = info_in_a_child(data, tmp_path)
    assert run.returncode == 0, run.stderr


def test_fields_out_of_order_are_reported():
    # numpy has no .npy descr for them (dtype_to_descr raises): the report spells the dtype.
    dtype = np.dtype({"names": ["a", "b"], "formats": ["i4", "i4"], "offsets": [4, 0]})
    data = pickle.dumps(np.zeros(2, dtype), protocol=5)
    report = inspect_stream(io.BytesIO(data), "x", len(data), None)
    text = json.dumps(report.to_json())
    assert "offsets" in text


def test_bytes_after_the_object_are_noted(tmp_path, capsys):
    # load(path) refuses such a file; info described it without a word.
    path = tmp_path / "two.pkl"
    ap.dump([1, 2], path)
    one = path.read_bytes()
    assert info_json(capsys, str(path))["trailing_bytes"] == 0
    path.write_bytes(one + one)
    report = info_json(capsys, str(path))
    assert report["trailing_bytes"] == len(one) and report["stream_size"] == len(one)
    code, out, _ = run_cli(capsys, "info", str(path))
    assert code == 0 and "follow the object: load(path) refuses the file" in out
    with pytest.raises(ap.CorruptFileError, match="follows"):
        ap.load(path)
    gz = tmp_path / "one.pkl.gz"
    ap.dump([1, 2], gz)
    assert info_json(capsys, str(gz))["trailing_bytes"] is None  # not known: compressed


def test_names_from_the_file_cannot_forge_lines_of_the_report(tmp_path, capsys):
    # A global whose name holds a newline and an escape sequence printed fake lines
    # ("all allowed under safe loading") and hid the "untrusted" mark.
    forged = "system\n  numpy.ndarray\n\n0 globals imported; all allowed\x1b[8m"
    data = b"\x80\x04\x8c\x05posix\x8c" + bytes([len(forged)]) + forged.encode() + b"\x93."
    path = tmp_path / "forged.pkl"
    path.write_bytes(data)
    code, out, _ = run_cli(capsys, "info", str(path))
    assert code == 0
    assert "\x1b" not in out and "all allowed" not in out.splitlines()[-2]
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("  posix.system\\n") and last.endswith("untrusted")


def test_globals_of_companion_object_arrays_are_said_to_be_uncounted(capsys):
    # Their pickles are not read by info: "all allowed" read as an assurance about them.
    path = JOBLIB_COMPAT / "joblib_0.9.2_pickle_py35_np19.pkl"
    if not path.is_file():
        pytest.skip("the joblib compatibility corpus is not beside the clone")
    code, out, _ = run_cli(capsys, "info", str(path))
    assert code == 0
    assert "(not counting those of object arrays in companion files)" in out


# -- resource use on crafted files: linear in the file's size ---------------------------


def _info(data: bytes):
    return inspect_stream(io.BytesIO(data), "crafted", len(data), None)


def _seconds(make, n: int) -> float:
    """The best of five walks of ``make(n)``'s file: the least disturbed by other load.

    With the cyclic garbage collector off: its passes over every live object made the
    larger file's walk 8 to 25 times the smaller's, where the walk itself is 6 to 9."""
    data = make(n)
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            t = time.perf_counter()
            _info(data)
            best = min(best, time.perf_counter() - t)
    finally:
        gc.enable()
    return best


def _assert_linear(make, n: int, scale: int = 8) -> None:
    """A file ``scale`` times larger takes well under ``scale**2`` times longer (the
    quadratic walks these guard against took ``scale**2`` times and more)."""
    small = _seconds(make, n)
    big = _seconds(make, n * scale)
    assert big < 3 * scale * max(small, 1e-3), (small, big)


def test_deep_paths_are_not_copied_for_each_child():
    # dicts nested 300 deep under one memoized 200-character key, around a list of 300
    # Nones: each None's path was a 60 KB string of its own (18 MB for a 4 KB file).
    key = b"k" * 200
    p = b"\x80\x04X" + len(key).to_bytes(4, "little") + key + b"q\x00"
    p += b"(" + b"N" * 300 + b"lq\x01" + b"}h\x00h\x01sq\x01" * 300 + b"."
    tracemalloc.start()
    try:
        report = _info(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.arrays == []
    assert peak < 4 * MiB, peak


def test_deep_array_paths_are_cut_in_the_middle():
    key = "k" * 150
    obj: object = np.zeros(2)
    for _ in range(20):
        obj = {key: obj}
    report = _info(pickle.dumps(obj, protocol=4))
    (entry,) = report.arrays
    full = f"[{key!r}]" * 20
    assert len(entry.path) == 1000
    assert entry.path == full[:500] + "..." + full[-497:]


def test_a_shared_dtype_is_made_once():
    # 200-field dtype named by many arrays through the memo: made again for each array.
    dt = pickle.dumps(np.dtype([(f"f{i}", "<f8") for i in range(200)]), protocol=2)

    def make(n: int) -> bytes:
        ops = b"\x80\x02carraypickle._format\nrebuild\nr\x00\x00\x10\x00"
        ops += b"X\x05\x00\x00\x00numpyr\x01\x00\x10\x00" + dt[2:-1] + b"r\x02\x00\x10\x00"
        ops += b"(X\x01\x00\x00\x00aj\x02\x00\x10\x00)X\x01\x00\x00\x00Ctr\x03\x00\x10\x00]("
        ops += b"j\x00\x00\x10\x00(j\x01\x00\x10\x00j\x03\x00\x10\x00K\x00K\x00tR" * n
        return container(ops + b"e.")

    report = _info(make(20))
    assert len(report.arrays) == 20 and len({id(a.dtype) for a in report.arrays}) == 1
    _assert_linear(make, 20, scale=20)


def test_many_additems_are_linear():
    def make(n: int) -> bytes:
        return b"\x80\x04cbuiltins\nset\n)R(" + b"N" * n + b"\x90" + b"(\x90" * n + b"."

    # From 8,000: at 2,000 (4 ms) the larger file once took 26 times as long, over the
    # 24 allowed; quadratic walks take 64 times.
    _assert_linear(make, 8000)


def test_records_of_one_byte_are_read_in_linear_time():
    # A string cut into 1-byte PICKLE records: each piece copied the buffer and walked
    # the pieces before it again.
    def make(n: int) -> bytes:
        ops = b"\x80\x05\x8d" + (n * 512).to_bytes(8, "little") + b"a" * (n * 512) + b"."
        return container(ops, pieces=len(ops))

    _assert_linear(make, 1, scale=8)


def test_text_lines_in_records_of_one_byte():
    # protocol 0 reads lines: each byte of a line fetched alone copied the line again.
    def make(n: int) -> bytes:
        data = pickle.dumps("x" * n, protocol=0)
        return container(data, pieces=len(data))

    _assert_linear(make, 250, scale=8)


def test_a_shared_joblib_state_is_looked_up_in_constant_time():
    # One state dict of many junk pairs, then shape/dtype/order, shared by n wrappers:
    # each key looked up scanned every pair.
    def make(n: int) -> bytes:
        p = b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\nq\x00cnumpy\ndtype\nq\x01"
        p += b"(" + b"NN" * (50 * n) + b"X\x05\x00\x00\x00shape)"
        p += b"X\x05\x00\x00\x00dtypeh\x01X\x02\x00\x00\x00u1\x85R"
        p += b"X\x05\x00\x00\x00orderX\x01\x00\x00\x00CX\x08\x00\x00\x00subclassNdq\x02("
        return p + b"h\x00)\x81h\x02b\x00" * n + b"l."

    assert len(_info(make(10)).arrays) == 10
    _assert_linear(make, 400)  # 17 ms: above what a busy machine's scheduler takes


def _assert_as_fast(make, key: bytes, plain: bytes, n: int, factor: int = 5) -> None:
    """A file of ``n`` pairs under ``key`` is walked about as fast as under ``plain``."""
    slow = _seconds(lambda n: make(key, n), n)
    fast = _seconds(lambda n: make(plain, n), n)
    assert slow < factor * max(fast, 1e-3), (fast, slow)


def test_a_memoized_tuple_key_is_rendered_once():
    # A dict of n pairs under one memoized tuple of 1000 ints: each pair's path walked
    # the key and printed it.
    def make(key: bytes, n: int) -> bytes:
        return b"\x80\x04(" + key + b"t\x94(" + b"h\x00]" * n + b"d."

    _assert_as_fast(make, b"K\x01" * 1000, b"K\x01", 2000)


def test_keys_holding_a_memoized_tuple_are_rendered_in_bounded_time():
    # Distinct 1-tuples around one memoized tuple of 1000 ints: each key's repr printed
    # all of it, again for each (10 times the cost of a tuple of 100, which shows as
    # much of it).
    def make(key: bytes, n: int) -> bytes:
        return b"\x80\x04(" + key + b"t\x94(" + b"h\x00\x85]" * n + b"d."

    _assert_as_fast(make, b"K\x01" * 1000, b"K\x01" * 100, 2000, factor=3)
    report = _info(pickle.dumps({(tuple(range(1000)),): np.zeros(1)}, protocol=4))
    text = repr((tuple(range(1000)),))
    assert report.arrays[0].path == "[" + text[:197] + "...]"


def test_buffers_of_a_seekable_file_of_unknown_size_are_sought_past():
    # A file object whose size cannot be known cheaply (a remote file, say): info read
    # every buffer to drop it; it seeks, and a truncation still shows.
    from test_safe_scan import CountingFile

    blob = ap.dumps({"big": np.ones(2_000_000)})
    f = CountingFile(blob)
    report = inspect_stream(f, "remote", None, None)
    assert [a.shape for a in report.arrays] == [(2_000_000,)]
    assert f.bytes_read < 10_000 < len(blob)
    with pytest.raises(ap.CorruptFileError, match="truncated"):
        inspect_stream(CountingFile(blob[: len(blob) // 2]), "remote", None, None)
