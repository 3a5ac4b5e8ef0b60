"""pandas objects, which users save as often as bare arrays: round trips through every
installed codec, memory-mapped loads, files joblib wrote, and safe loading.

A DataFrame pickles through pandas' own reductions, which hand numpy arrays (its blocks,
index and extension arrays' data) to the pickler: those take arraypickle's buffer path
like any other array. Skipped when pandas is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import arraypickle as ap
from conftest import COMPRESS_SETTINGS

pd = pytest.importorskip("pandas")


def _frame(n: int = 5000):
    """Every common column kind: numeric blocks, categorical, tz-aware datetimes, text,
    nullable integers and booleans (masked extension arrays)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "int": np.arange(n),
            "float": rng.random(n),
            "float32": rng.random(n).astype(np.float32),
            "category": pd.Categorical(rng.choice(["x", "y", "z"], n)),
            "when": pd.date_range("2020-01-01", periods=n, freq="min", tz="Europe/Paris"),
            "text": [f"row {i}" for i in range(n)],
            "nullable": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
            "flag": pd.array([(True, None, False)[i % 3] for i in range(n)], dtype="boolean"),
        },
        index=pd.RangeIndex(10, 10 + n, name="id"),
    )


def _objects() -> dict:
    rng = np.random.default_rng(1)
    frame = _frame()
    return {
        "frame": frame,
        "series": pd.Series(np.arange(10.0), index=list("abcdefghij"), name="s"),
        "multiindex": pd.DataFrame(
            rng.random((6, 3)),
            index=pd.MultiIndex.from_product([[1, 2], ["a", "b", "c"]], names=["k", "l"]),
            columns=["p", "q", "r"],
        ),
        # one 2-D block that is the transpose of the frame's: written as a strided view
        "transposed": frame[["int", "float"]].T,
        "slice": frame.iloc[::3],
    }


def _assert_same(out: dict, expected: dict) -> None:
    assert out.keys() == expected.keys()
    for name, obj in expected.items():
        if isinstance(obj, pd.DataFrame):
            pd.testing.assert_frame_equal(out[name], obj, check_exact=True)
        else:
            pd.testing.assert_series_equal(out[name], obj, check_exact=True)


@pytest.mark.parametrize("compress", COMPRESS_SETTINGS)
def test_pandas_objects_round_trip_through_every_codec(tmp_path, compress):
    objects = _objects()
    path = tmp_path / "frames.pkl"
    ap.dump(objects, path, compress=compress)
    _assert_same(ap.load(path), objects)


def test_pandas_objects_round_trip_through_bytes():
    objects = _objects()
    _assert_same(ap.loads(ap.dumps(objects, compress="zlib")), objects)


@pytest.mark.parametrize("mode", ["r", "c"])
def test_a_memory_mapped_frame_equals_the_original_and_maps_its_numbers(tmp_path, mode):
    frame = _frame()
    path = tmp_path / "frame.pkl"
    ap.dump(frame, path)
    out = ap.load(path, mmap_mode=mode)
    assert out.equals(frame)
    pd.testing.assert_index_equal(out.index, frame.index)
    mapped = _mapped(out["float"].to_numpy())  # a view of the block pandas holds
    assert mapped is not None
    assert mapped.flags.writeable == (mode == "c")


def _mapped(array):
    while array is not None and not isinstance(array, np.memmap):
        array = array.base
    return array


def test_frames_joblib_wrote_load(tmp_path):
    joblib = pytest.importorskip("joblib")
    objects = _objects()
    for compress in (0, 3):
        path = tmp_path / f"joblib-{compress}.pkl"
        joblib.dump(objects, path, compress=compress)
        _assert_same(ap.load(path), objects)


def test_a_frame_loads_safely_once_the_names_it_needs_are_trusted(tmp_path):
    objects = _objects()
    path = tmp_path / "frames.pkl"
    ap.dump(objects, path)
    with pytest.raises(ap.UntrustedTypeError, match=r"pandas(\.core\.frame)?\.DataFrame"):
        ap.load(path, safe=True)
    needed = ap.get_untrusted_types(path)
    assert {"pandas.DataFrame", "pandas.core.frame.DataFrame"} & set(needed)  # pandas 3, 2
    _assert_same(ap.load(path, trusted=needed), objects)
