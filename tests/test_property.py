"""Property: any nested object of scalars, strings and arrays round-trips, however compressed."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraypickle as ap
from checks import assert_loaded_layout, assert_mapped, assert_same, iter_arrays
from conftest import installed_codecs

ORDERS = st.sampled_from(["<", ">", "="])


def scalar_dtypes():
    numeric = st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(endianness="?"),
        hnp.unsigned_integer_dtypes(endianness="?"),
        hnp.floating_dtypes(endianness="?"),
        hnp.complex_number_dtypes(endianness="?"),
        hnp.datetime64_dtypes(endianness="?"),
        hnp.timedelta64_dtypes(endianness="?"),
        hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=4),
        hnp.byte_string_dtypes(min_len=1, max_len=4),
    )
    return numeric


def dtypes():
    fields = st.lists(
        st.tuples(st.text("abcdefgh", min_size=1, max_size=3), scalar_dtypes()),
        min_size=1,
        max_size=3,
        unique_by=lambda f: f[0],
    )
    return st.one_of(scalar_dtypes(), scalar_dtypes(), fields.map(np.dtype))


@st.composite
def arrays(draw):
    """An array of a random dtype and shape, then a random view of it."""
    dtype = draw(dtypes())
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    arr = draw(hnp.arrays(dtype, shape))
    view = draw(st.sampled_from(["as is", "F", "step", "reverse", "transpose", "broadcast"]))
    if view == "F":
        arr = np.asfortranarray(arr)
    elif view == "step" and arr.ndim:
        arr = arr[::2]
    elif view == "reverse" and arr.ndim:
        arr = arr[..., ::-1]
    elif view == "transpose" and arr.ndim > 1:
        arr = arr[:, 1:].T
    elif view == "broadcast":
        arr = np.broadcast_to(arr, (2, *arr.shape))
    return arr


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.complex_numbers(),
    st.text(max_size=20),
    st.binary(max_size=20),
)
LEAVES = st.one_of(SCALARS, arrays(), arrays())
OBJECTS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=8,
)
COMPRESS = st.one_of(
    st.just(0),
    st.booleans(),
    st.integers(1, 9),
    st.sampled_from(installed_codecs()),
    st.tuples(st.sampled_from(installed_codecs()), st.integers(0, 9)),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(obj=OBJECTS, compress=COMPRESS)
def test_random_nested_objects_round_trip(obj, compress):
    out = ap.loads(ap.dumps(obj, compress=compress))
    assert_same(out, obj)
    for got, want in zip(iter_arrays(out), iter_arrays(obj), strict=True):
        assert_loaded_layout(got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=OBJECTS)
def test_random_nested_objects_memory_map(obj):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "obj.pkl")
        ap.dump(obj, path)
        out = ap.load(path, mmap_mode="r")
        assert_same(out, obj, mapped=True)
        for got in iter_arrays(out):
            if got.dtype != object:
                assert_mapped(got, path, "r")
        del out
