"""A joblib array wrapper inside a nested object-array pickle, made without its
``__new__`` (``copyreg._reconstructor(cls, object, None)``), once slipped past safe
loading: the scan took its BUILD as the start of an array's bytes and walked on after
them, while the loader read no bytes and ran them as opcodes (a forged object array,
a segfault; an import the scan never listed). Now both refuse it, however it is made."""

from __future__ import annotations

import copyreg
import io
import pickle

import numpy as np
import pytest

import arraypickle as ap

joblib_pickle = pytest.importorskip("joblib.numpy_pickle")
joblib_compat = pytest.importorskip("joblib.numpy_pickle_compat")

# Opcodes hidden where the scan would skip an array's bytes: an object array over
# forged pointers, or an import of os.system.
FORGED_ARRAY = b"0cnumpy\nndarray\nK\x01\x85U\x01OC\x08AAAAAAAA\x87R"
HIDDEN_IMPORT = b"0cposix\nsystem\n0cnumpy\nndarray\nK\x00\x85U\x01BC\x00\x87R"


def nested_stream(payload: bytes) -> bytes:
    class Inner:
        def __reduce__(self):
            state = {
                "subclass": np.ndarray,
                "shape": (len(payload),),
                "order": "C",
                "dtype": np.dtype("u1"),
                "allow_mmap": False,
            }
            return copyreg._reconstructor, (joblib_pickle.NumpyArrayWrapper, object, None), state

    data = pickle.dumps(Inner(), protocol=2)
    assert data.endswith(b"b.")
    return data[:-1] + payload + b"."


def joblib_file(payload: bytes) -> bytes:
    """A joblib >= 0.10 file: one object-array wrapper, its nested pickle after it."""
    wrapper = joblib_pickle.NumpyArrayWrapper.__new__(joblib_pickle.NumpyArrayWrapper)
    wrapper.__dict__.update(
        subclass=np.ndarray, shape=(1,), order="C", dtype=np.dtype("O"), allow_mmap=False
    )
    return pickle.dumps(wrapper, protocol=2)[:-1] + nested_stream(payload) + b"."


@pytest.mark.parametrize("payload", [FORGED_ARRAY, HIDDEN_IMPORT], ids=["array", "import"])
def test_in_a_joblib_file(tmp_path, payload):
    path = tmp_path / "x.pkl"
    path.write_bytes(joblib_file(payload))
    for kwargs in ({}, {"safe": True}):
        with pytest.raises(ap.CorruptFileError, match="wrapper inside a nested object-array"):
            ap.load(path, **kwargs)
    # The scan no longer reports a clean file whose imports it never saw.
    with pytest.raises(ap.CorruptFileError, match="wrapper inside a nested object-array"):
        ap.get_untrusted_types(path)


def test_in_a_companion_npy_file(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    (tmp_path / "x.pkl_01.npy").write_bytes(header.getvalue() + nested_stream(FORGED_ARRAY))
    wrapper = joblib_compat.NDArrayWrapper.__new__(joblib_compat.NDArrayWrapper)
    wrapper.__dict__.update(filename="x.pkl_01.npy", subclass=np.ndarray, allow_mmap=False)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps([wrapper], protocol=3))
    for kwargs in ({}, {"safe": True}):
        with pytest.raises(ap.CorruptFileError, match=r"x\.pkl.*wrapper inside a nested"):
            ap.load(tmp_path / "x.pkl", **kwargs)
