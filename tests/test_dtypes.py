"""One dtype at a time: values, native byte order on load, stored order when mapped."""

from __future__ import annotations

import numpy as np
import pytest

import arraypickle as ap
from checks import assert_array_same, assert_loaded_layout, assert_mapped, leaf_bytes, native

INTEGERS = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]
FLOATS = ["f2", "f4", "f8", "g", "c8", "c16", "G"]
UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]
STRUCTURED = {
    "flat": [("a", ">i4"), ("b", "<f8")],
    "nested": [("a", [("x", ">u2"), ("y", [("z", ">f4")])]), ("b", "S3")],
    "subarray": [("m", ">i4", (2, 2)), ("n", "<f2", (3,))],
    "nested_subarray": [("s", [("x", ">i2"), ("y", "<i2")], (2,)), ("t", ">U1")],
    "aligned": np.dtype([("c", "i1"), ("d", ">f8"), ("e", ">i2")], align=True),
    "offsets": {"names": ["p", "q"], "formats": [">i4", ">f8"], "offsets": [4, 16]},
    "big_datetime": [("when", ">M8[s]"), ("for", ">m8[ms]")],
}


def dtypes() -> list[tuple[str, np.dtype]]:
    found = [("?", np.dtype("?"))]
    for code in INTEGERS + FLOATS:
        for order in "<>":
            dt = np.dtype(code).newbyteorder(order)
            found.append((dt.str + ("" if code not in "gG" else "(long)"), dt))
    for unit in UNITS:
        for kind in "Mm":
            for order in "<>":
                dt = np.dtype(f"{order}{kind}8[{unit}]")
                found.append((dt.str, dt))
    found += [(s, np.dtype(s)) for s in ["<U7", ">U7", "S5", "V6", "M8", "m8"]]
    found += [(f"struct-{k}", np.dtype(v)) for k, v in STRUCTURED.items()]
    return found


DTYPES = dtypes()


def sample(dtype: np.dtype, shape=(4, 6)) -> np.ndarray:
    """A deterministic array of ``dtype`` whose bytes are not all alike."""
    raw = (np.arange(np.prod(shape) * dtype.itemsize, dtype=np.uint64) * 37 % 251).astype(np.uint8)
    arr = raw.view(dtype).reshape(shape)
    if dtype.kind in "fc":  # some special values, in the stored byte order
        flat = arr.reshape(-1)
        flat[:4] = np.array([np.nan, np.inf, -0.0, -np.inf], dtype=dtype)
    return arr.copy()


@pytest.mark.parametrize(("name", "dtype"), DTYPES, ids=[n for n, _ in DTYPES])
def test_dtype_round_trip(name, dtype):
    ref = sample(dtype)
    views = {"C": ref, "F": np.asfortranarray(ref), "strided": ref[::2, ::-3], "0d": ref[1, 1]}
    views["0d"] = np.asarray(ref)[1, 1:2].reshape(())
    out = ap.loads(ap.dumps(views))
    for key, want in views.items():
        assert_array_same(out[key], want)
        assert_loaded_layout(out[key], want)
        assert out[key].dtype.isnative or out[key].dtype.byteorder == "|"


@pytest.mark.parametrize(("name", "dtype"), DTYPES, ids=[n for n, _ in DTYPES])
def test_dtype_mapped_keeps_stored_order(tmp_path, name, dtype):
    ref = sample(dtype)
    path = tmp_path / "a.pkl"
    ap.dump({"a": ref, "t": ref.T}, path)
    out = ap.load(path, mmap_mode="r")
    for key, want in (("a", ref), ("t", ref.T)):
        assert_array_same(out[key], want, mapped=True)
        assert_mapped(out[key], str(path), "r")
        assert out[key].dtype == want.dtype  # stored order, not native


@pytest.mark.parametrize(("name", "dtype"), DTYPES, ids=[n for n, _ in DTYPES])
def test_dtype_keeps_stored_order_when_asked(tmp_path, name, dtype):
    # joblib's ensure_native_byte_order=False: no swap, whatever the dtype.
    ref = sample(dtype)
    path = tmp_path / "a.pkl"
    ap.dump({"a": ref, "t": ref.T}, path)
    for out in (
        ap.load(path, ensure_native_byte_order=False),
        ap.loads(path.read_bytes(), ensure_native_byte_order=False),
    ):
        for key, want in (("a", ref), ("t", ref.T)):
            assert out[key].dtype == want.dtype
            # every value's bytes, as stored (padding between fields is no value)
            assert leaf_bytes(np.asarray(out[key])) == leaf_bytes(np.asarray(want))
            assert_loaded_layout(out[key], want)
    # True is 'auto' (the default) when nothing is mapped.
    assert ap.load(path, ensure_native_byte_order=True)["a"].dtype == native(dtype)


class _LoadsOnItsOwn:
    """Loads arrays of its own while it is being loaded (a sidecar, say)."""

    def __init__(self) -> None:
        self.blob = ap.dumps(np.arange(4, dtype=">i4"))

    def __getstate__(self) -> dict:
        return {"blob": self.blob}

    def __setstate__(self, state: dict) -> None:
        self.blob = state["blob"]
        self.auto = ap.loads(self.blob)
        self.kept = ap.loads(self.blob, ensure_native_byte_order=False)


@pytest.mark.parametrize("outer", ["auto", True, False])
def test_a_load_inside_a_load_has_its_own_byte_order(outer):
    got = ap.loads(
        ap.dumps([_LoadsOnItsOwn(), np.arange(2, dtype=">i4")]), ensure_native_byte_order=outer
    )
    assert got[0].auto.dtype == np.dtype("=i4")
    assert got[0].kept.dtype == np.dtype(">i4")
    assert got[1].dtype == np.dtype(">i4" if outer is False else "=i4")  # after the inner loads
    assert ap.loads(ap.dumps(got[1])).dtype == np.dtype("=i4")  # nothing left behind


def test_subarray_field_dtype_comes_back_native():
    # numpy's dtype.isnative is True for [('m', '>i4', (2,))]: it misses subarray fields.
    dtype = np.dtype([("m", ">i4", (2,))])
    out = ap.loads(ap.dumps(np.ones(3, dtype=dtype)))
    assert out.dtype == native(dtype)
    assert out["m"].tolist() == [[1, 1]] * 3


def test_big_endian_structured_is_swapped_in_place():
    ref = np.zeros(1000, dtype=[("a", ">i8"), ("b", [("c", ">f4", (3,))]), ("d", "S2")])
    ref["a"] = np.arange(1000)
    out = ap.loads(ap.dumps(ref))
    assert out.dtype == native(ref.dtype)
    assert out["a"].tolist() == list(range(1000))
    assert_loaded_layout(out, ref)


def test_overlapping_fields_keep_their_values():
    # Fields sharing bytes have no native-order equivalent: they stay as stored,
    # with every field's values right (a conversion would mix their bytes).
    dtype = np.dtype({"names": ["whole", "low"], "formats": [">u4", ">u2"], "offsets": [0, 2]})
    ref = np.zeros(3, dtype=dtype)
    ref["whole"] = [1, 0x10002, 0xFFFF0003]
    out = ap.loads(ap.dumps(ref))
    assert out.dtype == dtype
    assert out["whole"].tolist() == ref["whole"].tolist()
    assert out["low"].tolist() == ref["low"].tolist()


@pytest.mark.parametrize("unit", UNITS)
def test_datetime_values_survive(unit):
    ref = np.array(["NaT", 0, 1, -1, 12345], dtype=f"M8[{unit}]")
    out = ap.loads(ap.dumps([ref, (ref - ref[2]).astype(f">m8[{unit}]")]))
    np.testing.assert_array_equal(out[0], ref)
    assert np.isnat(out[0][0]) and np.isnat(out[1][0])
    assert out[1].dtype == np.dtype(f"m8[{unit}]")


def test_object_arrays_and_new_style_strings_pickle_in_band():
    from layout import buffers

    refs = [np.array([1, "a", None], dtype=object)]
    if hasattr(np.dtypes, "StringDType"):  # numpy >= 2
        refs.append(np.array(["x", "y" * 50], dtype=np.dtypes.StringDType()))
    data = ap.dumps(refs)
    assert buffers(data) == []  # their bytes are pointers: never written raw
    out = ap.loads(data)
    assert out[0].tolist() == [1, "a", None]
    if len(refs) > 1:
        assert out[1].tolist() == ["x", "y" * 50] and out[1].dtype == refs[1].dtype
