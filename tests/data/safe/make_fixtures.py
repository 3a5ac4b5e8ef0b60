"""Writes the numpy 1.x fixtures of tests/test_safe_load.py (run under numpy 1.26).

python -m venv /tmp/np1 && /tmp/np1/bin/pip install "numpy<2" pluggy xxhash
/tmp/np1/bin/pip install --no-deps -e . && /tmp/np1/bin/python tests/data/safe/make_fixtures.py
(and once under numpy 2 with the project's own environment)
"""

import pathlib
import pickle

import numpy as np

import arraypickle

HERE = pathlib.Path(__file__).parent


def corpus():
    a = np.arange(6.0).reshape(2, 3)
    return {
        "f8": a,
        "fortran": np.asfortranarray(a),
        "i2be": np.arange(4, dtype=">i2"),
        "objects": np.array([1, "x", None], dtype=object),
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "U3")]),
        "datetime": np.array(["2020-01-01"], dtype="M8[D]"),
        "matrix": np.matrix([[1, 2]]),
        "masked": np.ma.array([1.0, 2.0], mask=[0, 1], fill_value=9.0),
        "recarray": np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "scalars": [np.float64(1.5), np.int32(3), np.bool_(True), np.str_("s")],
        "dtype": np.dtype([("x", "<f4")]),
    }


def datetimes():
    """Every place a datetime dtype can sit in an array's dtype (numpy 1.26 mis-reads
    numpy 2's; tests/test_numpy_versions.py)."""
    stamps = np.array(["2020-01-01", "NaT", "1969-12-31"], dtype="M8[D]")
    fields = np.zeros(3, dtype=[("t", "M8[s]"), ("d", ">m8[us]"), ("f", "<f4")])
    fields["t"] = stamps
    fields["d"] = [1, -2, 3]
    return {
        "plain": stamps,
        "generic": np.full(2, np.iinfo(np.int64).min).view("M8"),  # NaT, NaT
        "big_endian": np.array([5, 6], dtype=">m8[25us]"),
        "fields": fields,
        "nested": np.zeros(2, dtype=[("x", [("t", "m8[D]")])]),
        "subarray": np.zeros(2, dtype=[("a", "M8[s]", (2,))]),
        "titled": np.zeros(2, dtype={"names": ["a"], "formats": ["M8[h]"], "titles": ["A"]}),
        "offsets": np.zeros(
            2, dtype={"names": ["a"], "formats": ["M8[h]"], "offsets": [8], "itemsize": 24}
        ),
        "record": np.rec.fromarrays([stamps], names="t"),
        "user_metadata": np.zeros(2, dtype=np.dtype([("t", "M8[D]")], metadata={"k": 1})),
        "empty_metadata": np.zeros(2, dtype=np.dtype([("t", "M8[D]")], metadata={})),
        "subarray_metadata": np.zeros(
            2, dtype=[("t", np.dtype((np.dtype("M8[D]"), (2,)), metadata={"s": 3}))]
        ),
        "field_metadata": np.zeros(
            2, dtype=[("t", "M8[D]"), ("f", np.dtype("f8", metadata={"unit": b"m"}))]
        ),
    }


def aligned():
    """Aligned structs: numpy 2 writes their flags as numpy 1.x cannot read them."""
    dtype = np.dtype([("a", "i1"), ("b", "<i8"), ("t", "M8[s]")], align=True)
    return {
        "aligned": np.array([(1, 2, 3), (-1, -2, -3)], dtype=dtype),
        "aligned_record": np.array([(4, 5, 6)], dtype=np.dtype((np.record, dtype))),
    }


if __name__ == "__main__":
    major = np.__version__.split(".")[0]
    for proto in (2, 5):
        data = pickle.dumps(corpus(), protocol=proto)
        (HERE / f"numpy{major}_proto{proto}.pkl").write_bytes(data)
    arraypickle.dump(corpus(), HERE / f"numpy{major}_container.apk")
    arraypickle.dump(datetimes(), HERE / f"numpy{major}_datetimes.apk")
    arraypickle.dump(aligned(), HERE / f"numpy{major}_aligned.apk")
