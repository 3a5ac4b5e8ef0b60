"""Memory-mapped loads: modes, what is mapped where, writes, warnings, cost."""

from __future__ import annotations

import io
import mmap
import os
import time
import warnings

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _memory, _plugins
from checks import assert_array_same, assert_mapped, iter_arrays, memory_root
from conftest import installed_codecs
from layout import buffers

MODES = {"r": "r", "r+": "r+", "w+": "r+", "c": "c"}


def sample() -> dict:
    a = np.arange(600.0).reshape(20, 30)
    return {
        "a": a,
        "F": np.asfortranarray(a[:5]),
        "strided": a[::3, ::-2],
        "big": np.arange(10, dtype=">i4"),
        "0d": np.array(2.5),
        "empty": np.zeros((0, 4)),
        "struct": np.zeros(3, dtype=[("x", ">i2"), ("y", "<f8")]),
        "nested": [{"deep": np.arange(7, dtype=np.uint8)}],
    }


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "mapped.pkl"
    obj = sample()
    ap.dump(obj, path)
    return str(path), obj


@pytest.mark.parametrize("mode", list(MODES))
def test_every_array_is_a_memmap_of_the_file(stored, mode):
    path, obj = stored
    out = ap.load(path, mmap_mode=mode)
    assert list(out) == list(obj)
    for got, want in zip(iter_arrays(out), iter_arrays(obj), strict=True):
        assert_array_same(got, want, mapped=True)
        assert_mapped(got, path, MODES[mode])


@pytest.mark.parametrize("mode", list(MODES))
def test_empty_arrays_are_memmaps_of_the_file_too(stored, mode):
    # numpy drops filename/offset/mode from a view that shares no memory with its
    # parent, which is every view of an empty map.
    path, _ = stored
    out = ap.load(path, mmap_mode=mode)
    assert out["empty"].shape == (0, 4)
    assert_mapped(out["empty"], path, MODES[mode])


def test_offsets_are_the_buffer_records(stored):
    path, _ = stored
    with open(path, "rb") as f:
        records = buffers(f.read())
    out = ap.load(path, mmap_mode="r")
    mapped = sorted(a.offset for a in iter_arrays(out))
    assert mapped == sorted(r.offset for r in records)
    assert all(r.offset % 64 == 0 for r in records)


@pytest.mark.parametrize("mode", list(MODES))
def test_each_array_is_made_on_the_mapping_itself(stored, mode):
    # As np.memmap makes its arrays: code that maps an array again elsewhere takes the
    # layout from the memmap whose base is the mapping. joblib.Parallel does so for its
    # workers, and once rebuilt a Fortran-ordered array in C order there (scrambled).
    path, obj = stored
    out = ap.load(path, mmap_mode=mode)
    for key in ("a", "F", "big", "struct", "0d"):
        assert isinstance(out[key].base, mmap.mmap), key
        assert type(out[key][:1] if out[key].ndim else out[key]) is np.memmap
    # One mapping of the file for all of them (not an open and a map per array).
    assert len({id(a.base) for a in iter_arrays(out) if a.size}) == 1
    reducer = pytest.importorskip("joblib._memmapping_reducer")
    for key in ("a", "F", "big"):
        backing = reducer._get_backing_memmap(out[key])
        rebuild, args = reducer._reduce_memmap_backed(out[key], backing)
        assert_array_same(rebuild(*args), obj[key], mapped=True)


def test_an_arrays_place_in_its_mapping(tmp_path):
    # An array made directly on the whole-file mapping gives its place by its offset, with
    # no pointers (most of the cost of mapping each of many small arrays); any other
    # array, by pointers: a slice keeps its parent's offset, and np.memmap maps from a
    # page boundary, so its offset counts from the file's start, not the mapping's.
    path = tmp_path / "bytes"
    path.write_bytes(bytes(range(256)) * 128)
    with open(path, "rb") as f:
        mm = _memory.WholeFileMapping(f.fileno(), 0, access=mmap.ACCESS_READ)
    whole = _memory.memmap_over(mm, 4160, (100,), np.dtype(np.uint8), "C", (str(path), 4160, "r"))
    assert _memory.mapping_position(whole, mm) == 4160
    assert whole[10:].offset == 4160
    assert _memory.mapping_position(whole[10:], mm) == 4170
    own = np.memmap(path, np.uint8, "r", offset=mmap.ALLOCATIONGRANULARITY + 3)
    assert own.offset == mmap.ALLOCATIONGRANULARITY + 3
    assert _memory.mapping_position(own, own.base) == 3


def test_object_arrays_and_subclasses_in_mmap_mode(tmp_path):
    path = tmp_path / "sub.pkl"
    obj = {
        "objects": np.array([1, "a", None], dtype=object),
        "matrix": np.matrix([[1.0, 2.0], [3.0, 4.0]]),
        "masked": np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=5.0),
        "memmap_source": np.arange(4).view(np.memmap),
    }
    ap.dump(obj, path)
    out = ap.load(path, mmap_mode="r")
    assert type(out["objects"]) is np.ndarray and out["objects"].tolist() == [1, "a", None]
    assert type(out["matrix"]) is np.matrix
    assert isinstance(memory_root(out["matrix"]), mmap.mmap)
    assert out["matrix"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    masked = out["masked"]
    assert type(masked) is np.ma.MaskedArray and masked.fill_value == 5.0
    assert type(masked.data) is np.memmap
    assert isinstance(memory_root(masked.data), mmap.mmap)
    assert isinstance(memory_root(masked.mask), mmap.mmap)
    assert_mapped(out["memmap_source"], str(path), "r")


def test_read_only_mode(stored):
    path, _ = stored
    out = ap.load(path, mmap_mode="r")
    with pytest.raises(ValueError, match="read-only"):
        out["a"][0, 0] = 1.0


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_writes_reach_the_file(stored, mode):
    path, obj = stored
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        before = f.read()
    out = ap.load(path, mmap_mode=mode)
    assert os.path.getsize(path) == size  # 'w+' must not truncate like np.memmap's does
    out["a"][0, :3] = [-1.0, -2.0, -3.0]
    out["big"][-1] = 1234
    out["a"].flush()
    out["big"].flush()
    del out
    again = ap.load(path, mmap_mode="r")
    assert again["a"][0, :3].tolist() == [-1.0, -2.0, -3.0]
    assert again["big"][-1] == 1234 and again["big"].dtype == np.dtype(">i4")
    np.testing.assert_array_equal(again["a"][1:], obj["a"][1:])
    with open(path, "rb") as f:
        after = f.read()
    changed = [i for i in range(size) if before[i] != after[i]]
    offset = again["a"].offset
    # The header's flags byte and CRC (bytes 11-15) say the buffers were mapped for writing.
    assert changed and all(
        11 <= i < 16 or offset <= i < offset + 24 or i >= again["big"].offset for i in changed
    )


def test_changes_written_through_a_map_load_normally_afterwards(stored, tmp_path):
    # Mapping for writing flags the header: the buffers may change legitimately from
    # then on, so a normal load returns them without holding them to their old
    # checksums (the opcodes' checksums still hold), and `convert` seals a copy again.
    from arraypickle import _format as fmt
    from arraypickle._verify import verify

    path, _ = stored
    out = ap.load(path, mmap_mode="r+")
    out["a"][0, 0] = 42.0
    out["a"].flush()
    del out
    with open(path, "rb") as f:
        assert fmt.parse_header(f.read(16)).flags & fmt.HEADER_FLAG_MAPPED_WRITABLE
    assert ap.load(path)["a"][0, 0] == 42.0
    assert ap.load(path, mmap_mode="r")["a"][0, 0] == 42.0
    report = verify(path)
    assert report.unverified_buffer_bytes == report.buffer_bytes > 0
    sealed = tmp_path / "sealed.pkl"
    from arraypickle._cli import main

    assert main(["convert", str(path), str(sealed)]) == 0
    assert verify(sealed).unverified_buffer_bytes == 0
    assert ap.load(sealed)["a"][0, 0] == 42.0


def test_read_only_maps_leave_the_header_alone(stored):
    path, _ = stored
    with open(path, "rb") as f:
        before = f.read()
    for mode in ("r", "c"):
        ap.load(path, mmap_mode=mode)
    with open(path, "rb") as f:
        assert f.read() == before


def test_a_writable_map_of_a_file_without_arrays_leaves_it_untouched(tmp_path):
    path = tmp_path / "f.pkl"
    ap.dump({"no": "arrays"}, path)
    before = path.read_bytes()
    path.chmod(0o444)  # joblib loads it so too
    try:
        assert ap.load(path, mmap_mode="r+") == {"no": "arrays"}
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "appended", "refused"])
def test_a_failed_writable_map_leaves_the_file_untouched(tmp_path, damage):
    # The header is marked only once the load succeeds: a damaged file, one with data
    # after its object, or one safe loading refuses, is left as it was.
    path = tmp_path / "f.pkl"
    if damage in ("truncated", "appended"):
        ap.dump(sample(), path)
        data = path.read_bytes()
        path.write_bytes(data[:-8] if damage == "truncated" else data + b"\0")
        expected, kwargs = ap.CorruptFileError, {}
    else:
        ap.dump({"a": np.arange(4.0), "f": os.getcwd}, path)  # a global safe mode refuses
        expected, kwargs = ap.UntrustedTypeError, {"safe": True}
    before = path.read_bytes()
    with pytest.raises(expected):
        ap.load(path, mmap_mode="r+", **kwargs)
    assert path.read_bytes() == before


def test_copy_on_write_leaves_the_file_untouched(stored):
    path, obj = stored
    with open(path, "rb") as f:
        before = f.read()
    out = ap.load(path, mmap_mode="c")
    out["a"][:] = 0
    out["struct"]["x"] = 7
    assert out["a"].sum() == 0 and out["struct"]["x"].tolist() == [7, 7, 7]
    del out
    with open(path, "rb") as f:
        assert f.read() == before
    np.testing.assert_array_equal(ap.load(path)["a"], obj["a"])


@pytest.mark.parametrize("codec", installed_codecs())
def test_compressed_files_warn_and_load_normally(tmp_path, codec):
    path = tmp_path / "c.pkl"
    obj = sample()
    ap.dump(obj, path, compress=codec)
    with pytest.warns(UserWarning, match=codec) as record:
        out = ap.load(path, mmap_mode="r")
    assert record[0].filename == __file__  # points at the caller
    for got, want in zip(iter_arrays(out), iter_arrays(obj), strict=True):
        assert_array_same(got, want)
        assert got.flags.writeable


@pytest.mark.parametrize("mode", list(MODES))
def test_file_objects_warn_and_load_normally(stored, mode):
    path, obj = stored
    with open(path, "rb") as f, pytest.warns(UserWarning, match="file name") as record:
        out = ap.load(f, mmap_mode=mode)
    assert record[0].filename == __file__
    assert type(out["a"]) is np.ndarray
    np.testing.assert_array_equal(out["a"], obj["a"])
    with pytest.warns(UserWarning):
        ap.load(io.BytesIO(ap.dumps(obj)), mmap_mode=mode)


def test_plain_pickle_files_warn_and_load_normally(tmp_path):
    import pickle

    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(3)}, protocol=5))
    with pytest.warns(UserWarning, match="plain pickle"):
        out = ap.load(path, mmap_mode="r")
    assert out["a"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("protocol", [2, 5])
def test_plain_pickles_without_arrays_load_quietly_under_mmap(tmp_path, protocol):
    # As joblib loads its files holding no array: there is nothing to map.
    import pickle

    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"n": np.float64(2.5), "s": "x"}, protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ap.load(path, mmap_mode="r") == {"n": 2.5, "s": "x"}
    for array, values in (
        (np.arange(3), [0, 1, 2]),
        (np.ma.masked_array([0, 1, 2], [0, 1, 0]), [0, None, 2]),
    ):
        path.write_bytes(pickle.dumps([array], protocol=protocol))
        with pytest.warns(UserWarning, match="plain pickle"):
            assert ap.load(path, mmap_mode="r")[0].tolist() == values
    # numpy's array maker held as a value comes back as itself
    maker = np.zeros(1).__reduce__()[0]
    path.write_bytes(pickle.dumps({"f": maker}, protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ap.load(path, mmap_mode="r")["f"] is maker


def test_no_warning_without_mmap(stored):
    path, _ = stored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ap.load(path)
        ap.load(path, mmap_mode=None)


@pytest.mark.parametrize(
    "alias, mode", [("readonly", "r"), ("readwrite", "r+"), ("write", "w+"), ("copyonwrite", "c")]
)
def test_numpys_long_names_for_the_modes(stored, alias, mode):
    # np.memmap's names, which joblib hands through to numpy; "write" maps like "w+",
    # never truncating the file.
    path, obj = stored
    out = ap.load(path, mmap_mode=alias)
    for got, want in zip(iter_arrays(out), iter_arrays(obj), strict=True):
        assert_array_same(got, want, mapped=True)
        assert_mapped(got, path, MODES[mode])


@pytest.mark.parametrize("mode", ["w", "rw", "R", "READONLY", "read", "", 1, True, b"r"])
def test_bad_modes_raise(stored, mode):
    path, _ = stored
    with pytest.raises(ValueError, match="mmap_mode"):
        ap.load(path, mmap_mode=mode)
    with pytest.raises(ValueError, match="mmap_mode"):
        ap.load(io.BytesIO(b""), mmap_mode=mode)


def _best_load_time(path, runs=9):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        out = ap.load(path, mmap_mode="r")
        best = min(best, time.perf_counter() - start)
        del out
    return best


def test_mmap_load_time_does_not_grow_with_data_size(tmp_path):
    # Same structure, 1 MB and 400 MB of array data: a load that read or hashed the
    # data would take hundreds of times longer for the big file.
    small, big = tmp_path / "small.pkl", tmp_path / "big.pkl"
    ap.dump({"x": np.zeros(1 << 17), "y": np.zeros((16, 16)), "meta": [1, "a"]}, small)
    ap.dump({"x": np.zeros(50 << 20), "y": np.zeros((16, 16)), "meta": [1, "a"]}, big)
    assert os.path.getsize(big) > 400 << 20
    ratio = _best_load_time(big) / _best_load_time(small)
    assert ratio < 10, f"400 MB file maps {ratio:.1f}x slower than a 1 MB one"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need os.mkfifo")
def test_a_named_pipe_cannot_be_mapped_so_it_warns_and_loads(tmp_path):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    obj = sample()

    def write():
        with open(fifo, "wb") as f:
            ap.dump(obj, f)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with pytest.warns(UserWarning, match="memory-mapped"):
        out = ap.load(fifo, mmap_mode="r")
    writer.join(timeout=30)
    assert type(out["a"]) is np.ndarray
    np.testing.assert_array_equal(out["a"], obj["a"])


@pytest.mark.parametrize("mode", ["r", "c", "r+"])
@pytest.mark.parametrize("writer", ["arraypickle", "joblib"])
def test_a_dump_renamed_over_the_file_during_a_mapped_load(tmp_path, mode, writer):
    # The file was opened again by name to be mapped: a dump landing in between (a
    # temporary file renamed over it) had the old file's arrays mapped from the new one
    # at the old offsets, silently, and 'r+' marked the new file's header.
    if writer == "joblib":
        joblib = pytest.importorskip("joblib")
        dump = joblib.dump
    else:
        dump = ap.dump
    path = tmp_path / "m.pkl"
    old = {"meta": "old", "a": np.arange(10), "b": np.full(5, 1.5)}
    new = {"meta": "new" * 3000, "pad": np.zeros(1000, np.uint8), "a": np.arange(100, 110)}
    dump(old, path)
    replaced = []

    def replace_once(done, total):
        if not replaced:
            replaced.append(True)
            ap.dump(new, path)  # another process's dump, as far as the load can tell

    got = ap.load(path, mmap_mode=mode, progress=replace_once)
    assert replaced
    assert got["meta"] == "old"
    assert got["a"].tolist() == list(range(10)) and got["b"].tolist() == [1.5] * 5
    again = ap.load(path)  # the new file, untouched: its checksums still bind
    assert again["meta"] == new["meta"] and again["a"].tolist() == list(range(100, 110))
    assert path.read_bytes()[11] == 0  # no "mapped for writing" flag on the new file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_r_plus_on_a_fifo_still_ends(tmp_path):
    # The file is opened for writing too when 'r+' maps it: a FIFO opened so would
    # never show its reader an end.
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def send():
        with open(fifo, "wb") as f:
            ap.dump({"a": np.arange(5)}, f)

    sender = threading.Thread(target=send)
    sender.start()
    with pytest.warns(UserWarning, match="not a regular file"):
        got = ap.load(fifo, mmap_mode="r+")
    sender.join(timeout=30)
    assert got["a"].tolist() == [0, 1, 2, 3, 4]


class _Lying:
    """Dumped by a wrapper that takes the numpy wrapper's name and stores ``meta``."""

    def __init__(self, meta):
        self.meta = meta


class _LyingWrapper(ap.ArrayWrapper):
    name, types = "numpy", (_Lying,)

    def expose(self, obj):
        return ap.Exposed(obj.meta, [ap.Buffer(np.arange(3.0))])


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        (("a", np.dtype("f8"), (4,), "C"), r"buffer of 24 bytes for an array \(4,\) of float64"),
        (("a", np.dtype("O"), (3,), "C"), "a buffer holding an array of object"),
        (("v", np.ndarray, None, None), "form 'v' with 4 fields and 1 buffers"),
    ],
    ids=["short", "object", "view-form"],
)
@pytest.mark.parametrize("mode", ["r", "c"])
def test_a_mapped_array_whose_meta_disagrees_with_its_bytes(
    fresh_registry, tmp_path, meta, says, mode
):
    # Mapped arrays are made straight at their offset (no uint8 memmap first): the
    # numpy wrapper's checks of meta against the bytes still come first.
    ap.register_wrapper(_LyingWrapper(), force=True)
    path = tmp_path / "lying.pkl"
    ap.dump([_Lying(meta)], path)
    _plugins.reset()
    with pytest.raises(ap.CorruptFileError, match=says) as caught:
        ap.load(path, mmap_mode=mode)
    assert str(path) in str(caught.value) and "'numpy'" in str(caught.value)
