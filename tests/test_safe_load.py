"""Legitimate content loads under ``safe=True``; ``trusted`` admits what the caller names."""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import fractions
import io
import pathlib
import pickle
import uuid

import numpy as np
import pytest

import arraypickle as ap
from conftest import DATA, STDLIB_CODECS


class Point:
    """A user class: refused by default, admitted by ``trusted``."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and repr((self.x, self.y)) == repr((other.x, other.y))


def point_factory():
    return Point(0, 0)


DTYPES = [
    "?",
    "i1",
    "u1",
    "<i2",
    ">u2",
    "i4",
    "u4",
    "i8",
    ">u8",
    "f2",
    "f4",
    ">f8",
    "g",
    "c8",
    ">c16",
    "G",
    "M8[ns]",
    "m8[s]",
    "M8[D]",
    "U5",
    "S3",
    "V4",
    [("a", "<i4"), ("b", ">f8", (2,)), ("c", "U2")],
]


def arrays() -> dict[str, object]:
    out: dict[str, object] = {}
    for i, dt in enumerate(DTYPES):
        dtype = np.dtype(dt)
        arr = np.zeros((3, 4), dtype=dtype)
        out[f"a{i}"] = arr
        out[f"f{i}"] = np.asfortranarray(arr)
        out[f"v{i}"] = arr[:, ::2]
        out[f"s{i}"] = arr.flat[0] if dtype.names is None else arr[0, 0]
        out[f"d{i}"] = dtype
    out["zero_d"] = np.array(3.5)
    out["empty"] = np.empty((0, 3))
    out["objects"] = np.array([1, "x", None, (2, 3), {"k": [1.5]}], dtype=object)
    out["nested_objects"] = np.array([np.array([1, None], dtype=object)], dtype=object)
    if hasattr(np.dtypes, "StringDType"):
        out["stringdtype"] = np.array(["a", "bb"], dtype=np.dtypes.StringDType())
        out["stringdtype_na"] = np.array(["a", None], dtype=np.dtypes.StringDType(na_object=None))
    out["matrix"] = np.matrix([[1, 2], [3, 4]])
    out["masked"] = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-1.0)
    out["masked_nomask"] = np.ma.array([1, 2])
    out["masked_const"] = np.ma.masked
    out["recarray"] = np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    out["record"] = out["recarray"][0]  # type: ignore[index]
    out["dtype_classes"] = [type(np.dtype("f8")), type(np.dtype("U3"))]
    out["scalar_types"] = [np.float32, np.int64, np.bool_, np.str_, np.datetime64]
    return out


def stdlib() -> dict[str, object]:
    dd = collections.defaultdict(list)
    dd["a"].append(1)
    return {
        "nested": {"l": [1, (2.5, [3j])], "t": ({"x": b"y"},), "s": {1, 2}, "fs": frozenset("ab")},
        "values": [True, None, 2**80, -1.5, float("nan"), 1 + 2j, "é", b"\x00", bytearray(b"b")],
        "range": range(2, 10, 3),
        "slice": slice(1, None, 2),
        "consts": [Ellipsis, NotImplemented],
        "datetime": datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.UTC),
        "dates": [datetime.date(2020, 1, 1), datetime.time(1, 2), datetime.timedelta(3, 4)],
        "tz": datetime.timezone(datetime.timedelta(hours=-5), "EST"),
        "decimal": decimal.Decimal("1.10"),
        "fraction": fractions.Fraction(1, 3),
        "uuid": uuid.UUID(int=12345),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter("abracadabra"),
        "defaultdict": dd,
        "deque": collections.deque([1, 2], maxlen=5),
        "chainmap": collections.ChainMap({"a": 1}, {"b": 2}),
        "paths": [pathlib.PurePosixPath("/a/b"), pathlib.PureWindowsPath("c:/x")],
        "array": [array.array("d", [1.5, -2.0]), array.array("b"), array.array("Q", [2**64 - 1])],
    }


def assert_same(a, b):
    if a is np.ma.masked:
        assert b is np.ma.masked
    elif isinstance(a, np.ndarray):
        assert type(a) is type(b)
        if a.dtype.hasobject:
            assert len(a) == len(b)
            for x, y in zip(a.ravel(), b.ravel(), strict=True):
                assert_same(x, y)
        else:
            np.testing.assert_array_equal(a, b)
            assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")  # native on load
        if isinstance(a, np.ma.MaskedArray):
            np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            assert a.fill_value == b.fill_value
    elif isinstance(a, dict):
        assert type(a) is type(b) and a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b or (isinstance(a, np.generic) and np.array_equal(a, b, equal_nan=True))
        assert type(a) is type(b)


def content() -> dict[str, object]:
    return {"arrays": arrays(), "stdlib": stdlib()}


@pytest.mark.parametrize("compress", [0, *STDLIB_CODECS])
def test_container_loads_safely(tmp_path, compress):
    value = content()
    path = tmp_path / "ok.pkl"
    ap.dump(value, path, compress=compress)
    assert ap.get_untrusted_types(path) == []
    assert_same(value, ap.load(path, safe=True))
    assert_same(value, ap.loads(path.read_bytes(), safe=True))


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickle_loads_safely(protocol):
    value = content()
    if protocol < 5:
        value["arrays"].pop("stringdtype_na", None)  # its na_object pickles only at 5 here
    data = pickle.dumps(value, protocol=protocol)
    assert ap.get_untrusted_types(data) == []
    assert_same(value, ap.loads(data, safe=True))


def test_memmap_comes_back_as_array(tmp_path):
    mm = np.memmap(tmp_path / "m.dat", dtype="f4", mode="w+", shape=(4,))
    mm[:] = 1.5
    for blob in (pickle.dumps(mm), ap.dumps(mm)):
        out = ap.loads(blob, safe=True)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, 1.5)


def test_mmap_mode_with_safe(tmp_path):
    path = tmp_path / "m.pkl"
    ap.dump({"a": np.arange(10.0), "d": collections.OrderedDict(a=1)}, path)
    out = ap.load(path, mmap_mode="r", safe=True)
    assert isinstance(out["a"], np.memmap)
    np.testing.assert_array_equal(out["a"], np.arange(10.0))


@pytest.mark.parametrize(
    "name",
    [f"numpy{v}_{kind}" for v in (1, 2) for kind in ("proto2.pkl", "proto5.pkl", "container.apk")],
)
def test_numpy1_and_numpy2_files(name):
    """Files written under numpy 1.26 name numpy.core.*, under numpy 2.4 numpy._core.*:
    both load under safe=True with either numpy (CI runs the tests under each)."""
    path = DATA / "safe" / name
    assert ap.get_untrusted_types(path) == []
    out = ap.load(path, safe=True)
    _check_fixture(out)
    _check_fixture(ap.load(path))


def _check_fixture(out):
    assert type(out["matrix"]) is np.matrix
    assert isinstance(out["masked"], np.ma.MaskedArray)
    assert out["masked"].fill_value == 9.0
    assert isinstance(out["recarray"], np.recarray)
    assert out["objects"].tolist() == [1, "x", None]
    assert out["i2be"].tolist() == [0, 1, 2, 3]
    assert out["scalars"][0] == 1.5 and out["dtype"] == np.dtype([("x", "<f4")])


@pytest.mark.parametrize("how", ["class", "string", "function"])
def test_trusted_admits_a_user_class(how):
    value = {"p": Point(1, np.arange(3)), "f": point_factory}
    blob = ap.dumps(value)
    names = sorted([f"{__name__}.Point", f"{__name__}.point_factory"])
    assert ap.get_untrusted_types(blob) == names
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(blob, safe=True)
    assert info.value.names == names
    trusted = {
        "class": [Point, point_factory],
        "string": names,
        "function": (point_factory, Point),
    }[how]
    assert ap.get_untrusted_types(blob, trusted=trusted) == []
    out = ap.loads(blob, trusted=trusted)
    assert out["p"] == value["p"] and out["f"] is point_factory
    # trusting one is not trusting both
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(blob, trusted=[Point])
    assert info.value.names == [f"{__name__}.point_factory"]


def test_defaultdict_with_user_factory_needs_trust():
    dd = collections.defaultdict(point_factory)
    blob = pickle.dumps(dd)
    assert ap.get_untrusted_types(blob) == [f"{__name__}.point_factory"]
    out = ap.loads(blob, trusted=[point_factory])
    assert out["missing"] == Point(0, 0)


def test_arguments():
    blob = ap.dumps([1])
    assert ap.loads(blob, safe=False) == [1]
    assert ap.loads(blob, trusted=[]) == [1]  # an empty trusted list still means safe
    with pytest.raises(TypeError):
        ap.loads(blob, safe="yes")
    with pytest.raises(TypeError):
        ap.loads(blob, trusted=[42])
    with pytest.raises(ValueError):
        ap.loads(blob, trusted=["nodots"])
    with pytest.raises(TypeError):
        ap.load(io.BytesIO(blob), None, True, True)  # safe is keyword-only
    # The third argument is joblib's ensure_native_byte_order, never safe.
    assert ap.load(io.BytesIO(pickle.dumps(point_factory)), None, True) is point_factory
    with pytest.raises(ValueError):
        ap.get_untrusted_types(42)
    assert ap.get_untrusted_types(io.BytesIO(blob)) == []
    assert issubclass(ap.UntrustedTypeError, ap.ArrayPickleError)


def test_untrusted_error_lists_everything_sorted():
    blob = pickle.dumps([Point(1, 2), point_factory, collections.OrderedDict()])
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(blob, safe=True)
    assert info.value.names == sorted([f"{__name__}.Point", f"{__name__}.point_factory"])
    assert "<bytes>" in str(info.value)


class Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._src.readinto(b)


def test_back_to_back_streams_load_one_by_one():
    """Safe loads from a stream that cannot seek stop right after each object."""
    parts = [
        pickle.dumps({"a": 1}, protocol=2),
        ap.dumps(np.arange(5)),
        pickle.dumps([b"x" * 100_000, "y"], protocol=5),
        ap.dumps(collections.Counter("ab")),
        pickle.dumps(decimal.Decimal("2"), protocol=0),
    ]
    stream = Pipe(b"".join(parts))
    got = [ap.load(stream, safe=True) for _ in parts]
    assert got[0] == {"a": 1} and got[1].tolist() == [0, 1, 2, 3, 4]
    assert got[2] == [b"x" * 100_000, "y"] and got[4] == decimal.Decimal("2")
    assert stream.read() == b""
    seekable = io.BytesIO(b"".join(parts))
    assert [type(ap.load(seekable, safe=True)) for _ in parts] == [type(x) for x in got]


def test_big_plain_pickle_from_a_stream_spools(monkeypatch):
    from arraypickle import _safe

    monkeypatch.setattr(_safe, "SPOOL_MEMORY", 1 << 16)
    value = {"a": np.arange(200_000.0), "t": "x"}
    out = ap.load(Pipe(pickle.dumps(value, protocol=4)), safe=True)
    np.testing.assert_array_equal(out["a"], value["a"])


@pytest.mark.parametrize("shape", [(0, 2**40), (2**33, 0), (0, 2**31)])
def test_shapes_past_2_31_load_safely(shape):
    # Sizes past 2**31 are pickled as LONG1: the scan decodes them (it refused them as
    # sizes it could not read), from a plain pickle and from joblib's wrapper.
    value = np.zeros(shape)
    assert ap.loads(pickle.dumps(value, protocol=2), safe=True).shape == shape
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    joblib.dump(value, buf)
    assert ap.loads(buf.getvalue(), safe=True).shape == shape
