"""Files move between numpy 1.x and 2.x: each loads what the other wrote.

CI runs the whole suite under numpy 2 and again under numpy 1.26 (``.ci/run``); the
tests here also simulate, under either, the names only the other one has.
"""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from collections.abc import Mapping

import numpy as np
import pytest

import arraypickle as ap
from arraypickle._numpy import MISREADS_DATETIMES, NUMPY1, readable_dtype
from conftest import DATA, load_script


def _recarray():
    return np.rec.fromarrays([np.arange(3), np.arange(3) / 4], names="i,f")


@pytest.mark.parametrize("form", ["container", "pickle"])
def test_a_numpy_name_this_numpy_lacks_loads_as_the_other_numpys(monkeypatch, form):
    # numpy 2 names recarray numpy.rec.recarray, a module numpy 1.x does not have.
    rec = _recarray()
    blob = ap.dumps(rec) if form == "container" else pickle.dumps(rec, protocol=5)
    if b"numpy.rec" not in blob:
        pytest.skip("this numpy names recarray by another module")
    monkeypatch.setitem(sys.modules, "numpy.rec", None)  # import numpy.rec now fails
    if form == "pickle":
        with pytest.raises(ImportError):
            pickle.loads(blob)  # as under numpy 1.x
    out = ap.loads(blob)
    assert type(out) is np.recarray
    assert out.tolist() == rec.tolist()


def test_a_missing_module_outside_numpy_still_raises():
    # as pickle does (docs/joblib.md: a class moved since the dump)
    blob = b"\x80\x04cno_such_module_xyz\nThing\n)\x81."
    with pytest.raises(ModuleNotFoundError):
        ap.loads(blob)


def test_a_missing_name_in_numpy_that_no_numpy_has_still_raises():
    blob = b"\x80\x04cnumpy\nno_such_thing_xyz\n)\x81."
    with pytest.raises(AttributeError):
        ap.loads(blob)


def test_substitutes_are_not_aliases(monkeypatch):
    # The allow-list's stand-in for numpy.memmap (a plain array) is for safe loading
    # only: a normal load of a name that fails to import does not get it.
    from arraypickle._allowlist import numpy_alias

    assert numpy_alias("numpy", "memmap") is None
    assert numpy_alias("numpy.rec", "recarray") is np.recarray
    assert numpy_alias("os", "system") is None


@pytest.mark.parametrize(
    "dtype",
    [
        "M8[D]",
        ">m8[25us]",
        "M8",
        [("a", "M8[s]"), ("b", "<f4")],
        [("a", "M8[s]", (2,))],
        ("M8[ns]", (3,)),
        [("x", [("t", "m8[D]")])],
        {"names": ["a"], "formats": ["M8[h]"], "offsets": [8], "itemsize": 24},
        {"names": ["a"], "formats": ["M8[h]"], "titles": ["A"]},
    ],
    ids=str,
)
def test_datetime_dtypes_numpy_2_wrote_are_readable(dtype):
    """numpy 1.26 loads numpy 2's "no metadata" of a datetime dtype as a dtype whose
    ``metadata`` raises TypeError (np.save fails on it); arrays come back readable."""
    dt = np.dtype(dtype)
    assert readable_dtype(dt) is dt  # nothing to mend in a dtype this numpy made
    arr = np.zeros(3, dt)
    out = ap.loads(ap.dumps(arr))
    assert out.dtype == arr.dtype.newbyteorder("=")
    _readable(out.dtype)


def _readable(dt: np.dtype) -> None:
    """Every part of ``dt`` answers ``metadata`` (numpy 1.26 raises on numpy 2's)."""
    assert dt.metadata is None or isinstance(dt.metadata, Mapping)
    if dt.subdtype is not None:
        _readable(dt.subdtype[0])
    for name in dt.names or ():
        _readable(dt.fields[name][0])


@pytest.mark.parametrize("name", ["numpy2_container.apk", "numpy2_proto5.pkl"])
def test_numpy_2_datetime_arrays_load_readable(name):
    out = ap.load(DATA / "safe" / name)
    if name.endswith(".apk") or not MISREADS_DATETIMES:
        # numpy 1.x to 2.2 cannot read numpy 2.4's datetime dtype in a plain pickle
        # (docs/guide.md); arraypickle's own containers are mended.
        assert out["datetime"].dtype == np.dtype("M8[D]")
        _readable(out["datetime"].dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy 1.x: "metadata ... not saved"
            np.save(io.BytesIO(), out["datetime"])


def _values(arr: np.ndarray) -> object:
    """Field by field, each datetime as its integer count (padding is no value)."""
    if arr.dtype.names:
        return {name: _values(arr[name]) for name in arr.dtype.names}
    return np.asarray(arr).astype(np.int64).tolist()


def _fixtures():
    return load_script(DATA / "safe" / "make_fixtures.py")


@pytest.mark.parametrize("major", [1, 2])
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_datetime_dtypes_in_every_place_load_from_either_numpy(major, mmap_mode):
    want = _fixtures().datetimes()
    out = ap.load(DATA / "safe" / f"numpy{major}_datetimes.apk", mmap_mode=mmap_mode)
    assert out.keys() == want.keys()
    for key, ref in want.items():
        got = out[key]
        assert type(got) is (np.memmap if mmap_mode and type(ref) is np.ndarray else type(ref))
        assert got.dtype == ref.dtype.newbyteorder("=") or got.dtype == ref.dtype, key
        assert _values(got) == _values(ref), key
        _readable(got.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy 1.x: "metadata ... not saved"
            if key != "titled":  # np.save refuses titled fields (numpy's drop_metadata)
                np.save(io.BytesIO(), got)
    assert out["user_metadata"].dtype.metadata == {"k": 1}
    assert out["empty_metadata"].dtype.metadata == {}
    assert out["subarray_metadata"].dtype.fields["t"][0].metadata == {"s": 3}
    assert out["field_metadata"].dtype.fields["f"][0].metadata == {"unit": b"m"}


def test_numpy_1_files_load_under_numpy_2_without_its_deprecation_warnings():
    # numpy 2 warns on import of numpy.core.*, the names numpy 1.x's pickles hold.
    for name in ("numpy1_proto2.pkl", "numpy1_proto5.pkl", "numpy1_container.apk"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ap.load(DATA / "safe" / name)
        assert isinstance(out["recarray"], np.recarray)


@pytest.mark.parametrize("major", [1, 2])
@pytest.mark.parametrize("safe", [False, True])
def test_aligned_structs_load_unless_numpy_1_reads_numpy_2s(major, safe):
    path = DATA / "safe" / f"numpy{major}_aligned.apk"
    if NUMPY1 and major == 2:
        # numpy 1.x's dtype.__setstate__ cannot take the flags numpy 2 writes: the
        # file is sound, so not CorruptFileError (a cache would delete it).
        with pytest.raises(ap.NumpyVersionError, match=r"numpy2_aligned\.apk.*under numpy 2"):
            ap.load(path, safe=safe)
        return
    out = ap.load(path, safe=safe)
    for key, ref in _fixtures().aligned().items():
        assert out[key].dtype == ref.dtype and type(out[key]) is type(ref), key
        assert out[key].dtype.fields == ref.dtype.fields
        assert _values(out[key]) == _values(ref), key


@pytest.mark.parametrize("safe", [False, True])
def test_numpy_2s_name_of_bool_loads_under_either(safe):
    for blob in (b"\x80\x02cnumpy\nbool\nq\x00.", b"\x80\x02cnumpy\nbool_\nq\x00."):
        assert ap.loads(blob, safe=safe) is np.bool_


def test_info_reports_dtypes_without_metadata_under_either():
    from arraypickle._inspect import inspect_path

    report = inspect_path(str(DATA / "safe" / "numpy2_datetimes.apk")).to_json()
    descr = {entry["path"]: entry["descr"] for entry in report["arrays"]}
    assert descr["['field_metadata']"] == [["t", "<M8[D]"], ["f", "<f8"]]
    assert descr["['plain']"] == "<M8[D]"
