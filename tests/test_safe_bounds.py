"""Safe loading refuses allow-listed calls that would allocate what the file does not hold.

Each bomb below is a few dozen bytes whose ordinary load would allocate gigabytes or
run for hours (``bytes(10**10)``, ``list(range(10**10))``, an array allocated by
shape, ``Fraction('1e100000000')``...). Under ``safe=True`` the scan judges every
call before anything runs (``arraypickle._bounds``): the load raises
``CorruptFileError`` saying which call and why, in a plain pickle, a compressed one,
an arraypickle container and a joblib file.
"""

from __future__ import annotations

import collections
import copyreg
import decimal
import fractions
import io
import pickle
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError, UntrustedTypeError
from arraypickle._bounds import ALLOC_MAX

BIG = 10**10


class Call:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _reconstruct():
    return np.empty(1).__reduce__()[0]


BOMBS = {
    "bytes": lambda: Call(bytes, BIG),
    "bytearray": lambda: Call(bytearray, BIG),
    "list(range)": lambda: Call(list, Call(range, BIG)),
    "deque(range, 1)": lambda: Call(collections.deque, Call(range, BIG), 1),
    "Counter(range)": lambda: Call(collections.Counter, Call(range, BIG)),
    "frozenset(range(start, stop, step))": lambda: Call(frozenset, Call(range, 5, BIG, 3)),
    "float64(range)": lambda: Call(np.float64, Call(range, BIG)),
    "void": lambda: Call(np.void, BIG),
    "ndarray by shape": lambda: Call(np.ndarray, (BIG,)),
    "ndarray by a small shape of a huge dtype": lambda: Call(np.ndarray, (100,), "V100000000"),
    "recarray": lambda: Call(np.recarray, (BIG,), "f8"),
    "chararray": lambda: Call(np.char.chararray, (1000,), 10**8),
    "_reconstruct": lambda: Call(_reconstruct(), np.ndarray, (BIG,), b"b"),
    "_mareconstruct": lambda: Call(
        np.ma.core._mareconstruct, np.ma.MaskedArray, np.ndarray, (BIG,), "b"
    ),
    "Fraction(str)": lambda: Call(fractions.Fraction, "1e100000000"),
    "int(Decimal)": lambda: Call(int, Call(decimal.Decimal, "1e100000000")),
    "copyreg._reconstructor": lambda: Call(copyreg._reconstructor, bytearray, bytearray, BIG),
    "bytes(int(str))": lambda: Call(bytes, Call(int, str(BIG))),
    "bytes(numpy scalar)": lambda: Call(bytes, np.int64(BIG)),
    "many calls within the per-call sizes": lambda: [Call(bytes, 1 << 20) for _ in range(80)],
}


def _pickled(name: str, protocol: int) -> bytes:
    return pickle.dumps(BOMBS[name](), protocol=protocol)


# Hand-made streams pickle cannot write: arguments built by other calls, NEWOBJ_EX with
# keywords, protocol 0's INST and OBJ.
HANDMADE = {
    # list(*tuple([range(10**9)])): the range hides in a list, the args come from a call.
    "args from a call": (
        b"\x80\x02cbuiltins\nlist\ncbuiltins\ntuple\n]cbuiltins\nrange\n"
        b"J\x00\xca\x9a\x3b\x85Ra\x85RR."
    ),
    "NEWOBJ_EX with a shape keyword": (
        b"\x80\x04cnumpy\nndarray\n)}\x8c\x05shape\x8a\x05\x00\xe4\x0bT\x02\x85s\x92."
    ),
    "INST": b"(I10000000000\ni__builtin__\nbytearray\n.",
    "OBJ": b"(c__builtin__\nbytearray\nL10000000000L\no.",
}


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_in_plain_pickles(name, protocol):
    with pytest.raises(CorruptFileError, match="refusing to load under safe loading: a call of"):
        ap.loads(_pickled(name, protocol), safe=True)


@pytest.mark.parametrize("name", sorted(HANDMADE))
def test_handmade_bombs_are_refused(name):
    with pytest.raises(CorruptFileError, match="refusing to load under safe loading"):
        ap.loads(HANDMADE[name], safe=True)


@pytest.mark.parametrize("compress", [0, "zlib", "gzip"])
@pytest.mark.parametrize("name", ["bytes", "list(range)", "_reconstruct", "Fraction(str)"])
def test_bombs_are_refused_inside_arraypickle_files(name, compress):
    blob = ap.dumps({"weights": np.arange(10.0), "bomb": BOMBS[name]()}, compress=compress)
    with pytest.raises(CorruptFileError, match=r"<bytes>: refusing to load under safe loading"):
        ap.loads(blob, safe=True)


def test_bombs_are_refused_in_compressed_plain_pickles_and_streams():
    blob = zlib.compress(_pickled("bytearray", 2))
    with pytest.raises(CorruptFileError, match=r"builtins\.bytearray"):
        ap.loads(blob, safe=True)

    class OneWay(io.RawIOBase):  # cannot seek: the scan spools the pickle aside
        def __init__(self, data):
            self._src = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._src.readinto(b)

    with pytest.raises(CorruptFileError, match=r"builtins\.bytearray"):
        ap.load(OneWay(_pickled("bytearray", 5)), safe=True)


def test_bombs_are_refused_in_joblib_files():
    joblib = pytest.importorskip("joblib")
    out = io.BytesIO()
    joblib.dump({"a": np.arange(5.0), "bomb": BOMBS["list(range)"]()}, out)
    with pytest.raises(CorruptFileError, match="a range of 10000000000 elements"):
        ap.loads(out.getvalue(), safe=True)


def test_the_message_names_the_call_and_the_limit():
    with pytest.raises(CorruptFileError) as info:
        ap.loads(_pickled("bytes", 5), safe=True)
    text = str(info.value)
    assert "builtins.bytes" in text and "10000000000 bytes" in text and "64 MiB" in text
    assert "trust the name" in text


def test_untrusted_names_are_reported_first():
    blob = pickle.dumps([BOMBS["bytes"](), Call(print, "x")], protocol=5)
    with pytest.raises(UntrustedTypeError, match=r"builtins\.print"):
        ap.loads(blob, safe=True)
    assert ap.get_untrusted_types(blob) == ["builtins.print"]  # the scan alone is unchanged


def test_small_calls_load_and_trusting_the_name_lifts_the_limit():
    assert ap.loads(pickle.dumps(Call(bytes, 1000), protocol=5), safe=True) == bytes(1000)
    assert ap.loads(pickle.dumps(Call(list, Call(range, 5))), safe=True) == [0, 1, 2, 3, 4]
    big = pickle.dumps(Call(bytearray, ALLOC_MAX + 1), protocol=5)
    with pytest.raises(CorruptFileError, match="bytearray"):
        ap.loads(big, safe=True)
    assert len(ap.loads(big, safe=True, trusted=["builtins.bytearray"])) == ALLOC_MAX + 1


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_what_pickle_writes_still_loads(protocol):
    # The values whose reductions call judged names, as pickle and numpy write them.
    value = {
        "bytearray": bytearray(b"\x00\xff" * 5000),
        "bytes": b"\x01" * 5000,
        "range": range(10**12),
        "counter": collections.Counter("abracadabra" * 20 + "".join(map(chr, range(300)))),
        "ordered": collections.OrderedDict((str(i), i) for i in range(100)),
        "deque": collections.deque(range(100), maxlen=200),
        "fraction": fractions.Fraction(10**40, 7),
        "decimal": decimal.Decimal("1e999999"),
        "matrix": np.matrix(np.arange(6.0).reshape(2, 3)),
        "masked": np.ma.array(np.arange(5), mask=[0, 1, 0, 1, 0]),
        "records": np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "chars": np.char.array(["ab", "cd"]),
        "scalars": [np.float64(1.5), np.int64(2**40), np.void(b"\x00\x01")],
        "big array": np.arange(3_000_000.0),  # 24 MB, in the file
    }
    out = ap.loads(pickle.dumps(value, protocol=protocol), safe=True)
    assert out["range"] == value["range"] and out["counter"] == value["counter"]
    assert out["fraction"] == value["fraction"] and out["bytearray"] == value["bytearray"]
    np.testing.assert_array_equal(out["big array"], value["big array"])
    assert type(out["matrix"]) is np.matrix and type(out["chars"]) is np.char.chararray
