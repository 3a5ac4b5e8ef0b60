"""The basic promises, end to end: round trips through paths, bytes and codecs."""

from __future__ import annotations

import numpy as np
import pytest

import arraypickle as ap
from conftest import STDLIB_CODECS


@pytest.mark.parametrize("compress", [0, True, *STDLIB_CODECS])
def test_round_trip_mixed_object(tmp_path, compress):
    a = np.arange(12.0).reshape(3, 4)
    obj = {
        "a": a,
        "view": a[:, ::2],
        "fortran": a.T,
        "matrix": np.matrix([[1, 2]]),
        "masked": np.ma.array([1.0, 2, 3], mask=[0, 1, 0], fill_value=7.0),
        "objects": np.array([1, "x", None], dtype=object),
        "big_endian": np.arange(5, dtype=">i4"),
        "text": "hello",
    }
    path = tmp_path / "obj.pkl"
    assert ap.dump(obj, path, compress=compress) == [str(path)]
    out = ap.load(path)
    np.testing.assert_array_equal(out["a"], a)
    np.testing.assert_array_equal(out["view"], a[:, ::2])
    assert out["fortran"].flags.f_contiguous
    assert type(out["matrix"]) is np.matrix
    assert out["masked"].fill_value == 7.0
    np.testing.assert_array_equal(out["masked"].mask, [False, True, False])
    assert out["objects"].tolist() == [1, "x", None]
    assert out["big_endian"].dtype == np.dtype("=i4")
    assert out["text"] == "hello"
    assert out["a"].ctypes.data % 64 == 0
    assert out["a"].flags.writeable
