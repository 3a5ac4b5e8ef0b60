"""Round trips of every family of objects through every installed codec.

Each case goes through ``dump`` to a path and ``load`` back, for no compression and
every codec ``arraypickle.codecs()`` lists, and is checked for class, shape, dtype,
byte-exact values, contiguity, writeability, 64-byte alignment, and that each
loaded array lives in the buffer it was read into (no copy made afterwards).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_loaded_layout, assert_same, iter_arrays
from conftest import COMPRESS_SETTINGS

# -- module-level subclasses (pickle finds classes by module and name) ------------


class UserArray(np.ndarray):
    """A subclass that keeps instance attributes and carries them through views."""

    def __array_finalize__(self, obj):
        self.unit = getattr(obj, "unit", None)
        self.history = getattr(obj, "history", [])


class ReducingArray(np.ndarray):
    """A subclass with its own ``__reduce__``: pickled its way, not as a view."""

    def __reduce__(self):
        return (_make_reducing, (np.asarray(self).copy(), self.tag))


class LockedArray(np.ndarray):
    """A subclass whose attribute pickle cannot save (pickle drops all of them)."""

    def __array_finalize__(self, obj):
        self.lock = threading.Lock()
        self.unit = getattr(obj, "unit", None)


class UserMemmap(np.memmap):
    """A memmap subclass: its __dict__ holds the mapping (an mmap pickle refuses)."""


def _make_reducing(data, tag):
    out = data.view(ReducingArray)
    out.tag = tag
    return out


# -- the cases --------------------------------------------------------------------

NUMERIC = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.longdouble,
    np.complex64,
    np.complex128,
    np.clongdouble,
]
DATETIME_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps"]


def _values(dtype, n=24):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.arange(n) % 3 == 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        out = np.arange(n).astype(dtype)
        out[0], out[-1] = info.min, info.max
        return out
    out = (np.arange(n) - n / 2).astype(dtype) / 3
    if dtype.kind == "c":
        out = out + 1j * out[::-1]
        out[1] = complex(np.nan, np.inf)
    else:
        out[1], out[2], out[3] = np.nan, np.inf, -0.0
    return out


def numeric():
    return {np.dtype(t).name: _values(t) for t in NUMERIC}


def datetimes():
    out = {}
    for unit in DATETIME_UNITS:
        out[f"M8[{unit}]"] = np.array([0, 1, -5, 10**6, "NaT"], dtype=f"M8[{unit}]")
        out[f"m8[{unit}]"] = np.array([0, -1, 7, "NaT"], dtype=f"m8[{unit}]")
    # NaTs of the generic unit, made by a view: numpy 2.5 deprecates converting to it
    out["generic"] = np.full(2, np.iinfo(np.int64).min).view("M8")
    return out


def structured():
    inner = np.dtype([("x", "<u1"), ("y", ">u2"), ("s", "S3")])
    mixed = np.dtype([("a", "<i4"), ("b", ">f8", (2, 3)), ("c", inner), ("d", ">U2")])
    arr = np.zeros(5, dtype=mixed)
    arr["a"] = np.arange(5)
    arr["b"] = np.arange(30).reshape(5, 2, 3) / 7
    arr["c"]["x"], arr["c"]["y"], arr["c"]["s"] = 7, 513, b"abc"
    arr["d"] = "zé"
    padded = np.dtype({"names": ["p", "q"], "formats": [">i2", "<f4"], "offsets": [0, 8]})
    aligned = np.dtype([("u", ">i1"), ("v", ">f8")], align=True)
    return {
        "mixed": arr,
        "mixed_strided": arr[::2],
        "nested_subarray_2d": np.ones((3, 2), dtype=[("m", ">i4", (2, 2))]),
        "padded": np.array([(1, 2.5), (3, 4.5)], dtype=padded),
        "aligned": np.array([(1, 2.0), (-1, -2.0)], dtype=aligned),
        "record": np.rec.fromarrays([np.arange(3), np.arange(3.0)], names="i,f"),
        "void": np.frombuffer(bytes(range(24)), dtype="V8").copy(),
        "subarray_dtype": np.zeros(4, dtype=("<f4", (3,))),
    }


def strings():
    out = {
        "U": np.array(["", "a", "naïve", "日本語"]),
        "U_big": np.array(["ab", "ĉd"], dtype=">U2"),
        "S": np.array([b"", b"a\x00b", b"xyz"]),
        "U_2d_F": np.asfortranarray(np.array([["a", "bb"], ["ccc", "d"]])),
    }
    if hasattr(np.dtypes, "StringDType"):  # numpy >= 2
        out["StringDType"] = np.array(["short", "x" * 100], dtype=np.dtypes.StringDType())
    return out


def objects():
    return {
        "object": np.array([1, "two", None, 3.5, (4,)], dtype=object),
        "object_2d": np.array([[{"a": 1}, [2]], [None, "x"]], dtype=object),
        "object_in_struct": np.array([(1, "a"), (2, None)], dtype=[("i", "i4"), ("o", "O")]),
    }


def zero_d():
    return {
        "f8": np.array(3.5),
        "i1_big": np.array(-3, dtype=">i8"),
        "c16": np.array(1 + 2j),
        "U": np.array("scalar"),
        "M8": np.array("2020-02-29", dtype="M8[D]"),
        "struct": np.array((1, 2.0), dtype=[("a", ">i2"), ("b", "<f8")]),
        "object": np.array({"k": 1}, dtype=object),
    }


def empty():
    return {
        "0": np.zeros(0),
        "0x3": np.zeros((0, 3)),
        "3x0": np.zeros((3, 0), dtype=np.int16),
        "2x0x4_F": np.zeros((2, 0, 4), order="F"),
        "0x0": np.zeros((0, 0), dtype=">f4"),
        "struct": np.zeros(0, dtype=[("a", ">i4"), ("b", "S2")]),
        "U": np.zeros((0, 2), dtype="U5"),
        "object": np.zeros((0,), dtype=object),
    }


def fortran():
    return {
        "f8_2d": np.asfortranarray(np.arange(35.0).reshape(5, 7)),
        "i2_3d": np.asfortranarray(np.arange(60, dtype=np.int16).reshape(3, 4, 5)),
        "c8": np.asfortranarray((np.arange(12) + 1j).astype(np.complex64).reshape(3, 4)),
        "big": np.asfortranarray(np.arange(12, dtype=">u4").reshape(3, 4)),
    }


def noncontiguous():
    a = np.arange(10 * 12 * 3, dtype=np.float64).reshape(10, 12, 3)
    b = np.arange(200, dtype=np.int32)
    return {
        "step": b[::3],
        "negative": b[::-1],
        "negative_step_2d": a[::-2, 3:, ::-1],
        "column": a[:, 5, :],
        "transpose_of_slice": a[1:8:2, ::3].T,
        "swapaxes": a.swapaxes(0, 1)[:, ::2],
        "broadcast_row": np.broadcast_to(b[:7], (5, 7)),
        "broadcast_scalar": np.broadcast_to(np.float32(2.5), (3, 4)),
        "broadcast_column": np.broadcast_to(b[:4, None], (4, 6)),
        "sliding_window": np.lib.stride_tricks.sliding_window_view(b[:20], 5),
        "struct_field": structured()["mixed"]["b"][:, 1],
        "big_endian_slice": np.arange(40, dtype=">f8").reshape(5, 8)[::2, 1::3],
        "fortran_slice": np.asfortranarray(a[:, :, 0])[::2, ::2],
        "real_part": (np.arange(6) + 1j * np.arange(6)).real,
    }


def big_endian():
    out = {}
    for t in ["i2", "u4", "i8", "f2", "f4", "f8", "c8", "c16", "M8[ns]", "m8[s]", "U3"]:
        ref = _values("f8", 12) if t[0] in "fc" else np.arange(12)
        if t[0] == "U":
            ref = np.array([str(i) for i in range(12)])
        ref = np.nan_to_num(ref) if t[0] in "Mm" else ref
        out[t] = ref.astype(">" + t).reshape(3, 4)
    out["F"] = np.asfortranarray(out["f8"])
    out["0d"] = np.array(7, dtype=">i4")
    return out


def nested():
    a = np.arange(6.0)
    return {
        "list": [a, [a * 2, (a * 3, {"deep": [a * 4]})]],
        "tuple": (1, "s", None, b"b", 2.5, 1 + 1j, True),
        "sets": {frozenset({1, 2}), "x"},
        "scalars": [np.float32(1.5), np.int64(-7), np.datetime64("2020-01-01"), np.bool_(True)],
        "int_keys": {1: a, (2, 3): a[::2]},
        "big_int": 2**100,
    }


def subclasses(tmp_path):
    mm = np.memmap(tmp_path / "m.dat", dtype=">i4", mode="w+", shape=(4, 3))
    mm[:] = np.arange(12).reshape(4, 3)
    user = np.arange(6.0).view(UserArray)
    user.unit, user.history = "m/s", ["made", {"by": "test"}]
    reducing = np.arange(5, dtype=np.int16).view(ReducingArray)
    reducing.tag = "mine"
    return {
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "matrix_big_endian": np.matrix(np.arange(6, dtype=">f8").reshape(2, 3)),
        "masked": np.ma.array([1.0, 2, 3, 4], mask=[0, 1, 0, 1], fill_value=-9.5),
        "masked_hard": np.ma.array(np.arange(4), mask=[1, 0, 0, 0], hard_mask=True, fill_value=7),
        "masked_nomask": np.ma.array(np.arange(3.0)),
        "masked_2d_F": np.ma.array(np.asfortranarray(np.ones((3, 2))), mask=[[0, 1]] * 3),
        "masked_struct": np.ma.array(
            np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), mask=[(0, 1), (1, 0)]
        ),
        "masked_object": np.ma.array(np.array([1, None, "x"], dtype=object), mask=[0, 1, 0]),
        "masked_matrix": np.ma.masked_array(np.matrix([[1, 2], [3, 4]]), mask=[[0, 1], [0, 0]]),
        "memmap": mm,
        "memmap_slice": mm[::2],
        "recarray": np.rec.array([(1, 2.0, b"a"), (3, 4.0, b"b")], names="i,f,s"),
        "user": user,
        "user_view": user[::2],
        "reducing": reducing,
    }


FAMILIES = {
    "numeric": numeric,
    "datetime": datetimes,
    "structured": structured,
    "strings": strings,
    "objects": objects,
    "zero_d": zero_d,
    "empty": empty,
    "fortran": fortran,
    "noncontiguous": noncontiguous,
    "big_endian": big_endian,
    "nested": nested,
    "subclasses": subclasses,
}


def build(family, tmp_path):
    factory = FAMILIES[family]
    return factory(tmp_path) if family == "subclasses" else factory()


def check_arrays(out, ref):
    for got, want in zip(iter_arrays(out), iter_arrays(ref), strict=True):
        assert_loaded_layout(got, want)


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip(tmp_path, family, compress):
    obj = build(family, tmp_path)
    path = tmp_path / "obj.pkl"
    ap.dump(obj, path, compress=compress)
    out = ap.load(path)
    assert_same(out, obj)
    check_arrays(out, obj)


@pytest.mark.parametrize("compress", [0, "zlib"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip_bytes(tmp_path, family, compress):
    obj = build(family, tmp_path)
    out = ap.loads(ap.dumps(obj, compress=compress))
    assert_same(out, obj)
    check_arrays(out, obj)


def test_subclass_details(tmp_path):
    out = ap.loads(ap.dumps(subclasses(tmp_path)))
    assert out["user"].unit == "m/s" and out["user"].history == ["made", {"by": "test"}]
    assert out["user_view"].unit == "m/s"
    assert out["reducing"].tag == "mine"
    masked = out["masked_hard"]
    assert masked.hardmask and masked.fill_value == 7
    masked[0] = 99  # a hard mask keeps masked values
    assert masked.data[0] == 0 and masked.mask[0]
    assert type(out["masked_matrix"].data) is np.matrix
    assert type(out["memmap"]) is np.ndarray and out["memmap"].dtype == np.dtype("=i4")
    assert out["recarray"].f.tolist() == [2.0, 4.0]


class Owner:
    """An object an array's attribute points to, and that points back to the array."""


@pytest.mark.parametrize("compress", [0, 3])
@pytest.mark.parametrize("mmap_mode", [None, "r", "c"])
@pytest.mark.parametrize("cycle", ["itself", "owner", "list"])
def test_subclass_attributes_leading_back_to_the_array_are_kept(
    tmp_path, cycle, mmap_mode, compress
):
    # The array was rebuilt (from the pickle's args) before its attributes' dict was
    # filled, and the dict's contents were copied: every attribute was lost, unseen.
    # And the array's bytes were written twice.
    big = np.arange(100_000.0).view(UserArray)
    big.unit = "m"
    if cycle == "itself":
        big.me = big
    elif cycle == "owner":
        big.owner = Owner()
        big.owner.array = big
    else:
        big.history = ["made", big]
    path = tmp_path / "c.ap"
    ap.dump(big, path, compress=compress)
    if not compress:
        assert path.stat().st_size < big.nbytes * 1.1  # the bytes written once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mapping a compressed file
        trusted = ap.get_untrusted_types(path)
        for out in (ap.load(path, mmap_mode=mmap_mode), ap.load(path, trusted=trusted)):
            assert type(out) is UserArray and out.unit == "m"
            np.testing.assert_array_equal(out, big)
            if cycle == "itself":
                assert out.me is out
            elif cycle == "owner":
                assert type(out.owner) is Owner and out.owner.array is out
            else:
                assert out.history[0] == "made" and out.history[1] is out


class ReadOnlyAttributes(np.ndarray):
    """A subclass whose __setattr__ refuses every assignment."""

    def __array_finalize__(self, obj):
        object.__setattr__(self, "unit", getattr(obj, "unit", None))

    def __setattr__(self, name, value):
        raise AttributeError(f"read-only: {name!r}")


def test_attributes_are_restored_past_the_subclass_setattr():
    # Assigning __dict__ went through the class's __setattr__: a read-only one refused
    # the load, and a recarray's (a field named __dict__) set a field.
    frozen = np.arange(3.0).view(ReadOnlyAttributes)
    object.__setattr__(frozen, "unit", "m")
    out = ap.loads(ap.dumps(frozen))
    assert type(out) is ReadOnlyAttributes and out.unit == "m"
    rec = np.zeros(2, [("__dict__", "f8"), ("x", "i4")]).view(np.recarray)
    rec.note = "kept"
    out = ap.loads(ap.dumps(rec))
    assert out.note == "kept" and out["__dict__"].tolist() == [0.0, 0.0]


def test_a_memmap_subclass_leading_back_to_itself_dumps(tmp_path):
    # Its attributes are filtered into a new dict at every exposure: asked again for
    # the array inside that dict, the dump recursed until RecursionError.
    mm = np.memmap(tmp_path / "m.dat", dtype="f8", mode="w+", shape=(3,)).view(UserMemmap)
    mm.me = mm
    out = ap.loads(ap.dumps(mm))
    assert type(out) is UserMemmap and out.me is out and out.filename is None


def test_a_view_form_state_for_a_class_without_attributes_is_damage():
    # Written by no dump (a plain ndarray holds no __dict__): a crafted file.
    meta = ("v", np.ndarray, np.arange(3), {"unit": "m"})
    with pytest.raises(ap.CorruptFileError, match="whose instances hold none"):
        ap.wrappers()["numpy"].rebuild(meta, [])


def test_subclass_attributes_are_kept_and_one_pickle_cannot_save_fails_the_dump(tmp_path):
    # pickle drops them all, unseen; kept here, a lock among them fails the dump
    # (before anything replaces the file) rather than losing the others silently.
    locked = np.arange(4.0).view(LockedArray)
    locked.unit = "m"
    ap.dump([1], tmp_path / "old.ap")
    with pytest.raises(TypeError, match="lock"):
        ap.dump({"a": locked}, tmp_path / "old.ap")
    assert ap.load(tmp_path / "old.ap") == [1]
    del locked.lock
    out = ap.loads(ap.dumps({"a": locked}))["a"]
    assert type(out) is LockedArray and out.unit == "m" and out.tolist() == [0, 1, 2, 3]
    # A memmap subclass's own attributes are kept; its mapping's are np.memmap's business.
    mm = np.memmap(tmp_path / "m.dat", dtype="f8", mode="w+", shape=(3,)).view(UserMemmap)
    mm[:] = [1, 2, 3]
    mm.note = "kept"
    for mode in (None, "r"):
        ap.dump(mm, tmp_path / "mm.ap")
        out = ap.load(tmp_path / "mm.ap", mmap_mode=mode)
        assert type(out) is UserMemmap and out.note == "kept" and out.tolist() == [1, 2, 3]
        assert (out.filename is None) == (mode is None)
        del out


@pytest.mark.parametrize("compress", [0, "gzip"])
def test_same_array_twice_keeps_identity(compress):
    a = np.arange(1000.0)
    m = np.matrix([[1.0, 2.0]])
    obj = {"first": a, "again": a, "inside": [a, (a,)], "m": m, "m2": m}
    out = ap.loads(ap.dumps(obj, compress=compress))
    assert out["again"] is out["first"]
    assert out["inside"][0] is out["first"] and out["inside"][1][0] is out["first"]
    assert out["m"] is out["m2"]


def test_same_array_twice_is_written_once():
    from layout import buffers

    a = np.arange(1000.0)
    data = ap.dumps([a, a, a])
    assert [r.length for r in buffers(data)] == [a.nbytes]


def test_views_sharing_memory():
    # As with pickle, each view comes back as an array of its own, with its values.
    base = np.arange(100.0).reshape(10, 10)
    obj = {"base": base, "rows": base[2:5], "cols": base[:, ::3], "t": base.T, "flat": base[3]}
    out = ap.loads(ap.dumps(obj))
    assert_same(out, obj)
    check_arrays(out, obj)
    out["base"][:] = -1
    assert_same(out["rows"], base[2:5])
