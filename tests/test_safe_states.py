"""States that would corrupt the process, refused by safe loading's scan (BUILD checks).

Globals are not the only danger: BUILD hands an object a state of the file's choosing.
A BUILD on a class changes it for the whole process; numpy's ``dtype.__setstate__``
believes the flags and layout it is given, and ``ndarray.__setstate__`` reads as many
items from an object array's list as the shape says. Each shape below is first shown
to do harm without safe loading (in a subprocess where it may crash), then refused
with ``CorruptFileError`` in every form of ``test_safe_attacks`` (plain, compressed,
inside containers, from a stream that cannot seek). Real numpy pickles of every dtype
family still load safely.
"""

from __future__ import annotations

import collections
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

import arraypickle as ap
from test_safe_attacks import FORMS, MARK, REDUCE, STOP, TUPLE, TUPLE1, Pipe, g, s, shared_tuple

BUILD, NONE, FALSE, TRUE = b"b", b"N", b"\x89", b"\x88"
EMPTY_LIST, EMPTY_DICT, APPENDS, SETITEMS = b"]", b"}", b"e", b"u"
TUPLE2, TUPLE3 = b"\x86", b"\x87"
PUT0, GET0 = b"q\x00", b"h\x00"


def i(n: int) -> bytes:
    """BININT."""
    return b"J" + n.to_bytes(4, "little", signed=True)


def dtype(typestr: str, copy: bool = True) -> bytes:
    """numpy.dtype(typestr, False, copy), without a state."""
    return g("numpy", "dtype") + s(typestr) + FALSE + (TRUE if copy else FALSE) + TUPLE3 + REDUCE


def dstate(order="|", fields=None, size=-1, align=-1, flags=0) -> bytes:
    """A version-3 dtype state; ``fields``: [(name, dtype bytes, offset)]."""
    if fields is None:
        names = dict_ = NONE
    else:
        names = MARK + b"".join(s(n) for n, _, _ in fields) + TUPLE
        items = b"".join(s(n) + d + i(off) + TUPLE2 for n, d, off in fields)
        dict_ = EMPTY_DICT + MARK + items + SETITEMS
    return MARK + i(3) + s(order) + NONE + names + dict_ + i(size) + i(align) + i(flags) + TUPLE


def array(shape: tuple[int, ...], dtype_bytes: bytes, raw: bytes) -> bytes:
    """numpy's array pickle: _reconstruct(ndarray, (0,), b'b') then BUILD."""
    shape_b = MARK + b"".join(i(n) for n in shape) + TUPLE
    head = g("numpy.core.multiarray", "_reconstruct") + g("numpy", "ndarray")
    head += i(0) + TUPLE1 + s("b") + TUPLE3 + REDUCE  # the code 'b' as str: harmless
    return head + MARK + i(1) + shape_b + dtype_bytes + FALSE + raw + TUPLE + BUILD


def items(*values: int) -> bytes:
    return EMPTY_LIST + MARK + b"".join(i(v) for v in values) + APPENDS


P2 = b"\x80\x02"


# -- the shapes: (pickle, what a plain load does) -----------------------------------


def class_attribute():
    # BUILD on the class itself with a slot state: setattr(Counter, "most_common", int)
    slots = EMPTY_DICT + s("most_common") + g("builtins", "int") + b"s"
    return P2 + g("collections", "Counter") + NONE + slots + TUPLE2 + BUILD + STOP


def dtype_singleton():
    # dtype('i8', copy=False) is numpy's shared int64 (numpy 2 ignores states given to
    # its shared dtypes; numpy's own pickles always ask for a copy)
    return P2 + dtype("i8", copy=False) + dstate("<", flags=0x3F) + BUILD + STOP


def object_flags_cleared():
    # dtype('O') told it holds no objects: the bytes are then read as object pointers
    forged = dtype("O8") + dstate("|", size=-1, align=-1, flags=0) + BUILD
    return P2 + array((3,), forged, b"C\x18" + b"\x41" * 24) + STOP


def int_flags_list():
    # int64 told it pickles as a list: numpy then reads 3 items from a 1-item list
    forged = dtype("i8") + dstate("<", flags=0x3F) + BUILD
    return P2 + array((3,), forged, items(1)) + STOP


def object_list_short():
    # an honest object dtype, a list shorter than the shape: read past the list's end
    return P2 + array((5,), dtype("O8") + dstate(flags=0x3F) + BUILD, items(1)) + STOP


def field_past_itemsize():
    # a struct of 8 bytes whose field lies at offset 1000
    fields = [("a", dtype("f8") + dstate("<") + BUILD, 1000)]
    forged = dtype("V8") + dstate(fields=fields, size=8, align=1, flags=0) + BUILD
    return P2 + array((2,), forged, b"C\x10" + b"\x00" * 16) + STOP


def object_field_unflagged():
    # a struct holding an object field, without the flags that say so
    fields = [("a", dtype("O8") + dstate(flags=0x3F) + BUILD, 0)]
    forged = dtype("V8") + dstate(fields=fields, size=8, align=1, flags=0) + BUILD
    return P2 + array((1,), forged, b"C\x08" + b"\x41" * 8) + STOP


def dtype_state_twice():
    # an honest V8 gets a second state, making it an object struct after the fact
    fields = [("a", dtype("O8") + dstate(flags=0x3F) + BUILD, 0)]
    honest = dtype("V8") + PUT0 + dstate(size=8, align=1) + BUILD
    data = array((1,), honest, b"C\x08" + b"\x41" * 8)
    second = GET0 + dstate(fields=fields, size=8, align=1, flags=0x3F) + BUILD
    return P2 + MARK + data + second + TUPLE + STOP


def dtype_state_after_use():
    # an unbuilt V8 used by an array, then given an object-struct state
    fields = [("a", dtype("O8") + dstate(flags=0x3F) + BUILD, 0)]
    data = array((1,), dtype("V8") + PUT0, b"C\x08" + b"\x41" * 8)
    later = GET0 + dstate(fields=fields, size=8, align=1, flags=0x3F) + BUILD
    return P2 + MARK + data + later + TUPLE + STOP


def scalar_state():
    # numpy's scalars never get a state
    scalar = g("numpy.core.multiarray", "scalar") + dtype("f8") + b"C\x08" + b"\0" * 8
    return P2 + scalar + TUPLE2 + REDUCE + EMPTY_DICT + BUILD + STOP


def list_it_cannot_count():
    # the object list comes from a call: its length is unknown before the load
    made = g("builtins", "list") + MARK + i(1) + TUPLE + TUPLE1 + REDUCE
    return P2 + array((9,), dtype("O8") + dstate(flags=0x3F) + BUILD, made) + STOP


SHAPES = [
    class_attribute,
    dtype_singleton,
    object_flags_cleared,
    int_flags_list,
    object_list_short,
    field_past_itemsize,
    object_field_unflagged,
    dtype_state_twice,
    dtype_state_after_use,
    scalar_state,
    list_it_cannot_count,
]

_PLAIN_LOAD = """
import collections, pickle, sys
import numpy as np
out = pickle.loads(sys.stdin.buffer.read())
print(repr(out)[:200], collections.Counter.most_common, np.dtype("i8").flags)
"""


def _plain_load(data: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PLAIN_LOAD],
        input=data.decode("latin-1"),
        capture_output=True,
        text=True,
        encoding="latin-1",
        timeout=60,
    )


@pytest.mark.parametrize(
    ("shape", "harm"),
    [
        (class_attribute, "<class 'int'>"),  # Counter.most_common replaced
        (object_list_short, None),  # crashes, or at best raises
        (int_flags_list, None),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_the_shapes_do_harm_without_safe_loading(shape, harm):
    run = _plain_load(shape())
    if harm is None:
        assert run.returncode != 0
    else:
        assert run.returncode == 0 and harm in run.stdout


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
def test_refused_by_the_scan(shape, form, tmp_path):
    blob = FORMS[form](shape())
    path = tmp_path / "evil.pkl"
    path.write_bytes(blob)
    loads = (
        lambda: ap.loads(blob, safe=True),
        lambda: ap.load(path, safe=True),
        lambda: ap.load(Pipe(blob), safe=True),
        lambda: ap.get_untrusted_types(blob),
    )
    for attempt in loads:
        with pytest.raises(ap.CorruptFileError, match="refusing to load: BUILD at opcode"):
            attempt()
    assert collections.Counter.most_common is not int
    assert np.dtype("i8").flags == 0 and np.dtype("O").flags == 63


def test_messages_say_what_was_refused():
    cases = {
        class_attribute: "a state for the global collections.Counter itself",
        dtype_singleton: "not made as numpy writes it",
        object_flags_cleared: "not numpy's own for dtype('O')",
        object_list_short: "shape (5,) given a list of 1 items",
        dtype_state_twice: "a second state for one numpy.dtype",
        dtype_state_after_use: "already in use",
        scalar_state: "which never takes one",
        list_it_cannot_count: "array data the scan cannot see",
    }
    for shape, words in cases.items():
        with pytest.raises(ap.CorruptFileError, match="<bytes>: refusing to load") as info:
            ap.loads(shape(), safe=True)
        assert words in str(info.value), shape.__name__


# -- what numpy writes still loads -------------------------------------------------------

DTYPES = [
    "f8",
    ">i4",
    "U7",
    "S3",
    "V5",
    "?",
    "c16",
    "M8[ns]",
    ">m8[25us]",
    "M8",
    [("a", "<i4"), ("b", ">f8", (2, 3)), ("c", "S2")],
    [("a", "u1"), ("b", [("x", "f4"), ("y", "O")])],
    ("f4", (2, 3)),
    {"names": ["a", "b"], "formats": ["f4", "u1"], "offsets": [4, 0], "titles": ["A", None]},
    {"names": ["a"], "formats": ["f8"], "offsets": [8], "itemsize": 24},
    "O",
]


def _dtypes():
    out = [np.dtype(d) for d in DTYPES]
    out.append(np.dtype([("a", "u1"), ("b", "f8")], align=True))
    out.append(np.dtype((np.record, [("a", "i4"), ("b", "O")])))
    out.append(np.dtype("f8", metadata={"unit": "m"}))
    out.append(np.dtype(np.dtype("M8[s]"), metadata={"tz": "UTC"}))
    return out


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("dt", _dtypes(), ids=str)
def test_numpy_pickles_of_every_dtype_family_load(dt, protocol):
    arr = np.zeros(6, dtype=dt)
    value = {"dtype": dt, "array": arr, "masked": np.ma.masked_array(arr)}
    data = pickle.dumps(value, protocol=protocol)
    out = ap.loads(data, safe=True)
    # as pickle gives it back: numpy 1.x turns a datetime's None metadata into {}
    assert out["dtype"] == dt and out["dtype"].metadata == pickle.loads(data)["dtype"].metadata
    for key in ("array", "masked"):
        # arrays come back in native byte order
        assert out[key].dtype in (value[key].dtype, value[key].dtype.newbyteorder("="))
        got, want = np.ma.getdata(out[key]), np.ma.getdata(value[key])
        np.testing.assert_equal(got.tolist(), want.tolist())
    assert ap.get_untrusted_types(ap.dumps(value)) == []


def test_object_arrays_of_any_shape_and_order_load():
    arr = np.empty((3, 4), dtype=object)
    arr[...] = [[{"k": i * 4 + j} for j in range(4)] for i in range(3)]
    for value in (arr, arr.T, arr[::2], np.empty((0, 5), dtype=object)):
        for protocol in (0, 2, 5):
            out = ap.loads(pickle.dumps(value, protocol=protocol), safe=True)
            assert out.shape == value.shape and out.tolist() == value.tolist()


def test_recursive_object_array_loads():
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = arr, "x"
    out = ap.loads(pickle.dumps(arr, protocol=2), safe=True)
    assert out[0] is out and out[1] == "x"


def test_list_shortened_through_a_slice_is_refused():
    # lst[slice(0, 5)] = [] through SETITEM: the list the scan counted is now empty
    cut = g("builtins", "slice") + i(0) + i(5) + NONE + TUPLE3 + REDUCE + EMPTY_LIST + b"s"
    data = P2 + array((5,), dtype("O8") + dstate(flags=0x3F) + BUILD, items(1, 2, 3, 4, 5) + cut)
    run = _plain_load(data + STOP)
    assert run.returncode != 0
    with pytest.raises(ap.CorruptFileError, match="a list changed by item assignment"):
        ap.loads(data + STOP, safe=True)


def test_numpy_subclasses_set_state_as_checked():
    """The check knows two __setstate__ forms; every allow-listed ndarray subclass uses one."""
    from arraypickle._allowlist import allowed

    known = (np.ndarray.__setstate__, np.ma.MaskedArray.__setstate__)
    for name, obj in allowed().items():
        if isinstance(obj, type) and issubclass(obj, np.ndarray):
            assert obj.__setstate__ in known, name


# -- an adversarial review's payloads (each passed an earlier version of the checks) -------

# Raw joblib streams: the array's bytes follow the wrapper's BUILD. The scan must skip
# exactly what the loader reads (every wrapper name, the aligned dtype, the dtype a
# BUILD made, the padding byte only when the alignment is not None), else the
# Counter-changing BUILD hidden behind the bytes runs unseen. Also: a class made by
# copyreg._reconstructor from args the scan cannot see, a field type given as a str
# (numpy's dtype('O') == 'O'), a state on an enum member, an object array over bytes.
REVIEWED = {
    "sklearn_wrapper_attr": (
        b"\x80\x02csklearn.externals.joblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(\x8c\x08su"
        b"bclasscnumpy\nndarray\n\x8c\x05shape(J\x01\x00\x00\x00t\x8c\x05order\x8c\x01C\x8c"
        b"\x05dtypecnumpy\ndtype\n\x8c\x02u1\x89\x88\x87R\x8c\nallow_mmap\x89ub.0ccollections"
        b"\nCounter\nN}\x8c\x0bmost_commoncbuiltins\nint\ns\x86b."
    ),
    "align_attr": (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(\x8c\x08subclasscnumpy\nndar"
        b"ray\n\x8c\x05shape(J\x01\x00\x00\x00t\x8c\x05order\x8c\x01C\x8c\x05dtypecnumpy\ndtyp"
        b"e\n\x8c\x05i1,i8\x88\x88\x87R\x8c\nallow_mmap\x89ub\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x00.\x00\x00\x00\x00\x00\x000ccollections\nCounter\nN}\x8c\x0bmost_commoncbuiltins"
        b"\nint\ns\x86b."
    ),
    "v8_object_attr": (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(\x8c\x08subclasscnumpy\nndar"
        b"ray\n\x8c\x05shape(J\x01\x00\x00\x00t\x8c\x05order\x8c\x01C\x8c\x05dtypecnumpy\ndtyp"
        b"e\n\x8c\x02V8\x89\x88\x87R(J\x03\x00\x00\x00\x8c\x01|N(\x8c\x01at}(\x8c\x01acnumpy\n"
        b"dtype\n\x8c\x02O8\x89\x88\x87RJ\x00\x00\x00\x00\x86uJ\x08\x00\x00\x00J\x01\x00\x00"
        b"\x00J\x1b\x00\x00\x00tb\x8c\nallow_mmap\x89ub\x80\x02N0N0N0cnumpy.core.multiarray\n_"
        b"reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85\x8c\x01b\x87R(J\x01\x00\x00\x00("
        b"J\x00\x00\x00\x00tcnumpy\ndtype\n\x8c\x02O8\x89\x88\x87R\x89]tb.0ccollections\nCount"
        b"er\nN}\x8c\x0bmost_commoncbuiltins\nint\ns\x86b."
    ),
    "alignment_none": (
        b"\x80\x02(ccollections\nCounter\nq\x010cbuiltins\nint\nq\x020\x8c\x0bmost_commonq\x03"
        b"0cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(\x8c\x08subclasscnumpy\nndarray\n"
        b"\x8c\x05shape(J\x00\x00\x00\x00t\x8c\x05order\x8c\x01C\x8c\x05dtypecnumpy\ndtype\n"
        b"\x8c\x02u1\x89\x88\x87R\x8c\nallow_mmap\x89\x8c\x1bnumpy_array_alignment_bytesNub0h"
        b"\x01N}h\x03h\x02s\x86b0N0N0N0N0N0N0N0N0N0N0N0N0N0N0N0N0N0N0t."
    ),
    "inst_reconstructor_dtype": (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85"
        b"\x8c\x01b\x87R(J\x01\x00\x00\x00(J\x03\x00\x00\x00t(cnumpy\ndtype\ncnumpy\ndtype\n"
        b"\x8c\x02V8icopy_reg\n_reconstructor\n(J\x03\x00\x00\x00\x8c\x01|N(\x8c\x01at}(\x8c"
        b"\x01acnumpy\ndtype\n\x8c\x02O8\x89\x88\x87RJ\x00\x00\x00\x00\x86uJ\x08\x00\x00\x00J"
        b"\x01\x00\x00\x00J\x00\x00\x00\x00tb\x89C\x18AAAAAAAAAAAAAAAAAAAAAAAAtb."
    ),
    "reduce_reconstructor_tuple_args": (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85"
        b"\x8c\x01b\x87R(J\x01\x00\x00\x00(J\x03\x00\x00\x00tccopy_reg\n_reconstructor\ncbuilt"
        b"ins\ntuple\n](cnumpy\ndtype\ncnumpy\ndtype\n\x8c\x02V8e\x85RR(J\x03\x00\x00\x00\x8c"
        b"\x01|N(\x8c\x01at}(\x8c\x01acnumpy\ndtype\n\x8c\x02O8\x89\x88\x87RJ\x00\x00\x00\x00"
        b"\x86uJ\x08\x00\x00\x00J\x01\x00\x00\x00J\x00\x00\x00\x00tb\x89C\x18AAAAAAAAAAAAAAAAA"
        b"AAAAAAAtb."
    ),
    "str_field_type": (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85"
        b"\x8c\x01b\x87R(J\x01\x00\x00\x00(J\x01\x00\x00\x00tcnumpy\ndtype\n\x8c\x02V8\x89\x88"
        b"\x87R(J\x03\x00\x00\x00\x8c\x01|N(\x8c\x01at}(\x8c\x01a\x8c\x01OJ\x00\x00\x00\x00"
        b"\x86uJ\x08\x00\x00\x00J\x01\x00\x00\x00J\x1b\x00\x00\x00tb\x89](J\x05\x00\x00\x00etb"
        b"."
    ),
    "safeuuid_member": (
        b"\x80\x02cuuid\nSafeUUID\nJ\x00\x00\x00\x00\x85R}(\x8c\x07_value_J\xff\xff\xff\xff"
        b"\x8c\x06_name_\x8c\x07unknownub."
    ),
    "ndarray_object_buffer": (
        b"\x80\x02cnumpy\nndarray\n((J\x01\x00\x00\x00t\x8c\x01OC\x08AAAAAAAAtR."
    ),
}
_HIDDEN = b"0ccollections\nCounter\nN}\x8c\x0bmost_commoncbuiltins\nint\ns\x86b"
REVIEWED["octal_shape"] = (  # I0777 is octal for the unpickler: 511 bytes, not 777
    b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(\x8c\x08subclasscnumpy\nndarray"
    b"\n\x8c\x05shape(I0777\nt\x8c\x05order\x8c\x01C\x8c\x05dtypecnumpy\ndtype\n\x8c\x02u1"
    b"\x89\x88\x87R\x8c\nallow_mmap\x89ub"
    + b"\x00" * 511
    + _HIDDEN
    + b"N0" * ((266 - len(_HIDDEN)) // 2)
    + b"."
)
# 29400 MEMOIZEs of one string, which once filled the scan's memo budget: later GETs
# fetched nothing the scan knew, so a second reference went unwatched.
_FILL = b"\x80\x04X\x00\x04\x00\x00" + b"x" * 1024 + b"\x94" * 29400 + b"0"
REVIEWED["memo_filled_list"] = (
    _FILL + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85\x8c\x01b"
    b"\x87R(J\x01\x00\x00\x00(J\x05\x00\x00\x00tcnumpy\ndtype\n\x8c\x02O8\x89\x88\x87R\x89"
    b"](J\x01\x00\x00\x00J\x02\x00\x00\x00J\x03\x00\x00\x00J\x04\x00\x00\x00J\x05\x00\x00"
    b"\x00e\x94j\xd8r\x00\x00cbuiltins\nslice\nJ\x00\x00\x00\x00J\x05\x00\x00\x00N\x87R]s0tb."
)
REVIEWED["memo_filled_dtype"] = (
    _FILL
    + b"cnumpy\ndtype\n\x8c\x02V8\x89\x88\x87R\x94cnumpy.core.multiarray\n_reconstruct\ncnumpy"
    b"\nndarray\nJ\x00\x00\x00\x00\x85\x8c\x01b\x87R(J\x01\x00\x00\x00(J\x01\x00\x00\x00tj"
    b"\xd8r\x00\x00\x89C\x08AAAAAAAAtb\x940(J\x03\x00\x00\x00\x8c\x01|N(\x8c\x01at}(\x8c"
    b"\x01acnumpy\ndtype\n\x8c\x02O8\x89\x88\x87RJ\x00\x00\x00\x00\x86uJ\x08\x00\x00\x00J"
    b"\x01\x00\x00\x00J\x1b\x00\x00\x00tb0j\xd9r\x00\x00."
)


def _refused_every_way(data: bytes, tmp_path, match: str = "refusing to load") -> None:
    """Refused from bytes, a path and a pipe, and nothing process-wide changed."""
    import uuid

    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    for attempt in (
        lambda: ap.loads(data, safe=True),
        lambda: ap.load(path, safe=True),
        lambda: ap.load(Pipe(data), safe=True),
    ):
        with pytest.raises(ap.CorruptFileError, match=match):
            attempt()
    assert collections.Counter.most_common is not int
    assert uuid.SafeUUID.safe.value == 0
    assert np.ma.masked.shape == ()


@pytest.mark.parametrize("name", REVIEWED)
def test_reviewed_payloads_are_refused(name, tmp_path):
    _refused_every_way(REVIEWED[name], tmp_path, r"refusing to load|cannot be read")


def test_object_array_over_a_buffer_is_refused_and_plain_buffers_load():
    over = REVIEWED["ndarray_object_buffer"]
    assert _plain_load(over).returncode != 0  # numpy reads b"AAAAAAAA" as a pointer
    with pytest.raises(ap.CorruptFileError, match=r"REDUCE at opcode .* may hold objects"):
        ap.loads(over, safe=True)
    plain = P2 + g("numpy", "ndarray") + MARK + MARK + i(2) + TUPLE + s("u1")
    out = ap.loads(plain + b"C\x02AB" + TUPLE + REDUCE + STOP, safe=True)
    assert out.tobytes() == b"AB"


# -- what the review found refused, and loads now ----------------------------------------


@pytest.mark.parametrize("protocol", range(6))
def test_datetime_dtypes_load_from_a_pipe(protocol):
    # their unit is short bytes, which a pipe's exact reads used to split
    for value in (np.dtype("M8[ns]"), np.zeros(3, "m8[s]"), np.zeros(2, [("t", "M8[us]")])):
        out = ap.load(Pipe(pickle.dumps(value, protocol=protocol)), safe=True)
        assert out == value if isinstance(value, np.dtype) else out.dtype == value.dtype


def test_short_bytes_across_the_scan_block_load():
    value = [b"x" * 1048500, np.dtype("M8[ns]")]
    assert ap.loads(pickle.dumps(value, protocol=4), safe=True) == value


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_files_of_every_dtype_family_load(compress, tmp_path):
    joblib = pytest.importorskip("joblib")
    values = [
        np.zeros(3, "M8[ns]"),
        np.zeros(2, [("t", "m8[s]"), ("x", "f4")]),
        np.zeros(2, [("a", "i4"), ("o", "O")]),
        np.zeros(3, np.dtype((np.record, [("a", "i4"), ("b", "f8")]))),
        np.zeros(2, np.dtype("i1,i8", align=True)),
    ]
    path = tmp_path / "f.pkl"
    joblib.dump(values, path, compress=compress)
    out = ap.load(path, safe=True)
    for got, want in zip(out, values, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_joblib_zf_files_are_scanned(tmp_path):
    """joblib 0.8.4-0.9's own zlib framing: the pickle inside is scanned like any."""
    import zlib

    def zf(raw: bytes) -> bytes:
        return b"ZF" + f"0x{len(raw):x}".ljust(19).encode() + zlib.compress(raw)

    with pytest.warns(DeprecationWarning, match="joblib < 0.10"):
        assert ap.loads(zf(pickle.dumps({"a": 1}, protocol=2)), safe=True) == {"a": 1}
    assert ap.get_untrusted_types(zf(pickle.dumps({"a": 1}, protocol=2))) == []
    assert ap.get_untrusted_types(zf(b"\x80\x02cos\nsystem\n.")) == ["os.system"]
    with pytest.raises(ap.CorruptFileError, match="refusing to load: BUILD"):
        ap.loads(zf(class_attribute()), safe=True)
    with pytest.raises(ap.CorruptFileError, match="refusing to load: BUILD"):
        ap.get_untrusted_types(zf(class_attribute()))
    with pytest.raises(ap.CorruptFileError, match="refusing to load: BUILD"):
        ap.load(Pipe(zf(object_list_short())), safe=True)
    assert collections.Counter.most_common is not int


def test_joblib_companion_object_arrays_are_scanned(tmp_path):
    """joblib 0.9's companion .npy files: an object array there is a nested pickle."""
    from joblib_support import craft_wrapper

    header = {"descr": "|O", "fortran_order": False, "shape": (5,)}
    npy = tmp_path / "evil.pkl_01.npy"
    with open(npy, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(object_list_short())
    state = {"filename": npy.name, "subclass": np.ndarray, "allow_mmap": False}
    target = tmp_path / "evil.pkl"
    target.write_bytes(craft_wrapper("NDArrayWrapper", state))
    with pytest.raises(ap.CorruptFileError, match="given a list of 1 items"):
        ap.load(target, safe=True)


# A second review round (each passed the checks above before its fix): a dtype made
# with keyword arguments (NEWOBJ_EX align=True), a joblib wrapper made through
# copyreg._reconstructor, dict literals grown past what the scan follows while the memo
# still held them (a joblib state, a dtype's fields), a pickle frame that goes on past
# a wrapper's BUILD, and a state for np.ma.masked (what MaskedConstant() returns).
REVIEWED_AGAIN = {
    "newobj_ex_align": bytes.fromhex(
        "8004636a6f626c69622e6e756d70795f7069636b6c650a4e756d7079417272617957726170706572"
        "0a29817d288c08737562636c617373636e756d70790a6e6461727261790a8c0573686170654a0100"
        "0000858c056f726465728c01438c056474797065636e756d70790a64747970650a8c0569312c6638"
        "857d8c05616c69676e8873928c0a616c6c6f775f6d6d6170898c1b6e756d70795f61727261795f61"
        "6c69676e6d656e745f62797465734e7562000000000000000000423800000000003063636f6c6c65"
        "6374696f6e730a436f756e7465720a4e7d8c0b6d6f73745f636f6d6d6f6e636275696c74696e730a"
        "696e740a7386622e"
    ),
    "wrapper_by_reconstructor": bytes.fromhex(
        "800463636f70797265670a5f7265636f6e7374727563746f720a28636a6f626c69622e6e756d7079"
        "5f7069636b6c650a4e756d70794172726179577261707065720a636275696c74696e730a6f626a65"
        "63740a4e74527d288c08737562636c617373636e756d70790a6e6461727261790a8c057368617065"
        "4a05000000858c056f726465728c01438c056474797065636e756d70790a64747970650a8c027531"
        "898887528c0a616c6c6f775f6d6d6170898c1b6e756d70795f61727261795f616c69676e6d656e74"
        "5f62797465734e756242360000003063636f6c6c656374696f6e730a436f756e7465720a4e7d8c0b"
        "6d6f73745f636f6d6d6f6e636275696c74696e730a696e740a7386622e"
    ),
    "dict_grown_in_memo": bytes.fromhex(
        "8004636a6f626c69622e6e756d70795f7069636b6c650a4e756d7079417272617957726170706572"
        "0a29817d288c08737562636c617373636e756d70790a6e6461727261790a8c0573686170654a0000"
        "0000858c056f726465728c01438c056474797065636e756d70790a64747970650a8c027531898887"
        "528c0a616c6c6f775f6d6d6170898c1b6e756d70795f61727261795f616c69676e6d656e745f6279"
        "7465734e7594288c026b304e8c026b314e8c026b324e8c026b334e8c026b344e8c026b354e8c026b"
        "364e8c026b374e8c026b384e8c026b394e8c036b31304e8c036b31314e8c036b31324e8c036b3133"
        "4e8c036b31344e8c036b31354e8c036b31364e8c036b31374e8c036b31384e8c036b31394e8c036b"
        "32304e8c036b32314e8c036b32324e8c036b32334e8c036b32344e8c036b32354e8c036b32364e8c"
        "036b32374e8c036b32384e8c036b32394e8c036b33304e8c036b33314e8c036b33324e8c036b3333"
        "4e8c036b33344e8c036b33354e8c036b33364e8c036b33374e8c036b33384e8c036b33394e8c036b"
        "34304e8c036b34314e8c036b34324e8c036b34334e8c036b34344e8c036b34354e8c036b34364e8c"
        "036b34374e8c036b34384e8c036b34394e8c036b35304e8c036b35314e8c036b35324e8c036b3533"
        "4e8c036b35344e8c036b35354e8c036b35364e8c036b35374e8c036b35384e8c036b35394e8c036b"
        "36304e8c036b36314e8c036b36324e8c036b36334e8c036b36344e8c036b36354e8c036b36364e8c"
        "036b36374e8c036b36384e8c036b36394e8c0573686170654a050000008575306800624236000000"
        "3063636f6c6c656374696f6e730a436f756e7465720a4e7d8c0b6d6f73745f636f6d6d6f6e636275"
        "696c74696e730a696e740a7386622e"
    ),
    "frame_past_the_wrapper": bytes.fromhex(
        "800495d900000000000000636a6f626c69622e6e756d70795f7069636b6c650a4e756d7079417272"
        "6179577261707065720a29817d288c08737562636c617373636e756d70790a6e6461727261790a8c"
        "0573686170654a35000000858c056f726465728c01438c056474797065636e756d70790a64747970"
        "650a8c027531898887528c0a616c6c6f775f6d6d6170898c1b6e756d70795f61727261795f616c69"
        "676e6d656e745f62797465734e756263636f6c6c656374696f6e730a436f756e7465720a4e7d8c0b"
        "6d6f73745f636f6d6d6f6e636275696c74696e730a696e740a738662422f00000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "302e"
    ),
    "dtype_fields_grown_in_memo": bytes.fromhex(
        "8002636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e7374727563740a636e"
        "756d70790a6e6461727261790a4a00000000858c01628752284a01000000284a0100000074636e75"
        "6d70790a64747970650a8c02563889888752284a030000008c017c4e288c0161747d72f401000028"
        "8c0161636e756d70790a64747970650a8c02663889888752284a030000008c013c4e4e4e4affffff"
        "ff4affffffff4a0000000074624a000000008675288c027a304e8c027a314e8c027a324e8c027a33"
        "4e8c027a344e8c027a354e8c027a364e8c027a374e8c027a384e8c027a394e8c037a31304e8c037a"
        "31314e8c037a31324e8c037a31334e8c037a31344e8c037a31354e8c037a31364e8c037a31374e8c"
        "037a31384e8c037a31394e8c037a32304e8c037a32314e8c037a32324e8c037a32334e8c037a3234"
        "4e8c037a32354e8c037a32364e8c037a32374e8c037a32384e8c037a32394e8c037a33304e8c037a"
        "33314e8c037a33324e8c037a33334e8c037a33344e8c037a33354e8c037a33364e8c037a33374e8c"
        "037a33384e8c037a33394e8c037a34304e8c037a34314e8c037a34324e8c037a34334e8c037a3434"
        "4e8c037a34354e8c037a34364e8c037a34374e8c037a34384e8c037a34394e8c037a35304e8c037a"
        "35314e8c037a35324e8c037a35334e8c037a35344e8c037a35354e8c037a35364e8c037a35374e8c"
        "037a35384e8c037a35394e8c037a36304e8c037a36314e8c037a36324e8c037a36334e8c037a3634"
        "4e8c037a36354e8c037a36364e8c037a36374e8c037a36384e8c037a36394e8c0161636e756d7079"
        "0a64747970650a8c024f3889888752284a030000008c017c4e4e4e4affffffff4affffffff4a3f00"
        "000074624a000000008675306af40100004a080000004a010000004a100000007462894308414141"
        "414141414174622e"
    ),
    "masked_constant": bytes.fromhex(
        "8002636e756d70792e6d612e636f72650a4d61736b6564436f6e7374616e740a2952284a01000000"
        "4a0200000085636e756d70790a64747970650a8c0266388988875289431000000000000000000000"
        "f03f00000000430200004e74622e"
    ),
}


@pytest.mark.parametrize("name", REVIEWED_AGAIN)
def test_second_review_payloads_are_refused(name, tmp_path):
    _refused_every_way(REVIEWED_AGAIN[name], tmp_path, r"refusing to load|joblib array wrapper")


def test_stringdtype_joblib_files_load(tmp_path):
    joblib = pytest.importorskip("joblib")
    dtypes = pytest.importorskip("numpy.dtypes")
    if not hasattr(dtypes, "StringDType"):
        pytest.skip("numpy < 2 has no StringDType")
    value = np.array(["a", "bc"], dtype=dtypes.StringDType())
    for compress in (0, 3):
        joblib.dump(value, tmp_path / "s.pkl", compress=compress)
        assert ap.load(tmp_path / "s.pkl", safe=True).tolist() == ["a", "bc"]


# A third review round: a FRAME of length 0 inside the frame that holds a joblib
# wrapper (the unpickler keeps the outer frame, so the wrapper is still mid-frame),
# ndarray built over the file's bytes through OBJ and INST, and over a buffer at a
# negative offset (numpy 2.4 reads before the buffer; -2**40 crashes).
NESTED_FRAME = bytes.fromhex(
    "800495c800000000000000636a6f626c69622e6e756d70795f7069636b6c650a4e756d7079417272"
    "6179577261707065720a29817d288c08737562636c617373636e756d70790a6e6461727261790a8c"
    "057368617065284a38000000748c056f726465728c01438c056474797065636e756d70790a647479"
    "70650a8c027531898887528c0a616c6c6f775f6d6d6170897595000000000000000062284e306363"
    "6f6c6c656374696f6e730a436f756e7465720a4e7d8c0b6d6f73745f636f6d6d6f6e636275696c74"
    "696e730a696e740a7386624e304e304e304e304e304e304e304e304e304e304e304e304e304e304e"
    "304e304e304e304e304e304e304e304e304e304e304e304e304e302e"
)


# ndarray((1,), 'O', b'AAAAAAAA')'s arguments: one object pointer read from the file.
_OBJECTS_OVER_BYTES = MARK + i(1) + TUPLE + s("O") + b"C\x08" + b"A" * 8


def _over_buffer(cls: bytes, *args: bytes) -> bytes:
    return P2 + cls + MARK + b"".join(args) + TUPLE + REDUCE + STOP


@pytest.mark.parametrize(
    "data",
    [
        NESTED_FRAME,
        P2 + MARK + g("numpy", "ndarray") + _OBJECTS_OVER_BYTES + b"o" + STOP,  # OBJ
        P2 + MARK + _OBJECTS_OVER_BYTES + b"inumpy\nndarray\n" + STOP,  # INST
        _over_buffer(g("numpy", "ndarray"), MARK + i(16) + TUPLE, s("u1"), b"C\x02AB", i(-48)),
        _over_buffer(g("numpy", "recarray"), MARK + i(16) + TUPLE, s("u1"), b"C\x02AB", i(-48)),
        _over_buffer(
            g("numpy", "chararray"), MARK + i(16) + TUPLE, i(1), FALSE, b"C\x02AB", i(-48)
        ),
        _over_buffer(
            g("numpy", "ndarray"),
            MARK + i(2) + TUPLE,
            s("u1"),
            b"C\x02AB",
            i(0),
            MARK + i(-4096) + TUPLE,
        ),
    ],
    ids=["nested_frame", "obj", "inst", "negative_offset", "recarray", "chararray", "strides"],
)
def test_third_review_payloads_are_refused(data):
    with pytest.raises(ap.CorruptFileError, match=r"refusing to load|middle of a pickle frame"):
        ap.loads(data, safe=True)
    with pytest.raises(ap.CorruptFileError):
        ap.load(Pipe(data), safe=True)
    assert collections.Counter.most_common is not int


def test_arrays_over_a_buffer_within_it_load():
    data = _over_buffer(g("numpy", "ndarray"), MARK + i(1) + TUPLE, s("u1"), b"C\x02AB", i(1))
    assert ap.loads(data, safe=True).tobytes() == b"B"


# A fourth review round: numpy's scalar() copies an element out of an array without
# checking it has one (a struct with object fields, over an empty array: SIGSEGV); an
# array given a second state frees memory a view made between the two still reads (a
# use after free); numpy's reconstructors and ndarray classes asked for memory hand
# out uninitialized bytes (heap addresses). numpy itself only writes empty
# reconstructions, filled by one state, and a filled 0-d array for scalar().


def _struct_oo() -> bytes:
    fields = [("f0", dtype("O8") + dstate(flags=0x3F) + BUILD, 0)]
    fields.append(("f1", dtype("O8") + dstate(flags=0x3F) + BUILD, 8))
    return dtype("V16") + dstate(fields=fields, size=16, align=1, flags=27) + BUILD


def _reconstruct(shape: bytes) -> bytes:
    head = g("numpy.core.multiarray", "_reconstruct") + g("numpy", "ndarray")
    return head + shape + s("b") + TUPLE3 + REDUCE


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            P2
            + g("numpy.core.multiarray", "scalar")
            + _struct_oo()
            + array((0,), _struct_oo(), EMPTY_LIST)
            + TUPLE2
            + REDUCE
            + STOP,
            "scalar on data the scan cannot see",
        ),
        (
            P2
            + _reconstruct(i(0) + TUPLE1)
            + PUT0
            + MARK
            + i(1)
            + MARK
            + i(4)
            + TUPLE
            + dtype("u1")
            + FALSE
            + b"C\x04ABCD"
            + TUPLE
            + BUILD
            + b"0"
            + GET0
            + MARK
            + i(1)
            + MARK
            + i(1)
            + TUPLE
            + dtype("u1")
            + FALSE
            + b"C\x01B"
            + TUPLE
            + BUILD
            + STOP,
            "a second state for one array",
        ),
        (P2 + _reconstruct(i(2000) + TUPLE1) + STOP, "asked for memory"),
        (
            P2
            + g("numpy", "ndarray")
            + MARK
            + MARK
            + i(4096)
            + TUPLE
            + s("u1")
            + TUPLE
            + REDUCE
            + STOP,
            "asked for memory",
        ),
    ],
    ids=["scalar_of_empty", "second_state", "reconstruct_with_memory", "ndarray_with_memory"],
)
def test_fourth_review_shapes_are_refused(data, words):
    with pytest.raises(ap.CorruptFileError, match="refusing to load") as info:
        ap.loads(data, safe=True)
    assert words in str(info.value)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_scalars_holding_objects_load(protocol):
    values = [
        np.zeros(1, "O,O")[0],
        np.rec.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")])[0],
        np.float64(1.5),
        np.str_("ab"),
    ]
    out = ap.loads(pickle.dumps(values, protocol=protocol), safe=True)
    assert [type(v) for v in out] == [type(v) for v in values]
    assert [v.tolist() if hasattr(v, "tolist") else v for v in out] == [
        v.tolist() if hasattr(v, "tolist") else v for v in values
    ]


# A fifth review round: numpy keeps the fields dict of a dtype's state, so changing it
# after the check (SETITEM through the memo) forged the dtype; numbers viewed over an
# object array's memory (ndarray or _frombuffer over it: writable pointers); and
# copyreg._reconstructor with a numpy class as its base (uninitialized memory).
REVIEWED_FIFTH = {
    "dtype_fields_changed_later": bytes.fromhex(
        "8002636e756d70790a64747970650a8c025638898887527102284a030000008c017c4e288c016174"
        "7d7101288c0161636e756d70790a64747970650a8c02663889888752284a030000008c013c4e4e4e"
        "4affffffff4affffffff4a0000000074624a0000000086754a080000004a010000004a1000000074"
        "623068018c0161636e756d70790a64747970650a8c02663889888752284a030000008c013c4e4e4e"
        "4affffffff4affffffff4a0000000074624a00000040867330636e756d70792e636f72652e6d756c"
        "746961727261790a5f7265636f6e7374727563740a636e756d70790a6e6461727261790a4a000000"
        "00858c01628752284a01000000284a01000000746802894308414141414141414174622e"
    ),
    "frombuffer_over_an_object_array": bytes.fromhex(
        "800228636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e7374727563740a63"
        "6e756d70790a6e6461727261790a4a00000000858c01628752284a01000000284a0200000074636e"
        "756d70790a64747970650a8c024f3889888752284a030000008c017c4e4e4e4affffffff4affffff"
        "ff4a3f0000007462895d284a010000004a020000006574627101636e756d70792e636f72652e6e75"
        "6d657269630a5f66726f6d6275666665720a2868018c027538284a02000000748c014374524a0000"
        "00008a08404141414141414173742e"
    ),
    "ndarray_over_an_object_array": bytes.fromhex(
        "800228636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e7374727563740a63"
        "6e756d70790a6e6461727261790a4a00000000858c01628752284a01000000284a0200000074636e"
        "756d70790a64747970650a8c024f3889888752284a030000008c017c4e4e4e4affffffff4affffff"
        "ff4a3f0000007462895d284a010000004a020000006574627101636e756d70790a6e646172726179"
        "0a28284a02000000748c027538680174524a000000008a08404141414141414173742e"
    ),
    "reconstructor_with_numpy_base": bytes.fromhex(
        "800263636f70795f7265670a5f7265636f6e7374727563746f720a636e756d70790a6e6461727261"
        "790a636e756d70790a6e6461727261790a284a400000007487522e"
    ),
}


@pytest.mark.parametrize("name", REVIEWED_FIFTH)
def test_fifth_review_payloads_are_refused(name, tmp_path):
    _refused_every_way(REVIEWED_FIFTH[name], tmp_path)


def test_item_assignment_through_a_chainmap_is_refused():
    # ChainMap writes to its first map: a dict the stream may also give a dtype
    chain = b"\x80\x04" + g("collections", "ChainMap") + b")\x81" + EMPTY_DICT
    chain += s("maps") + EMPTY_LIST + EMPTY_DICT + b"a" + b"s" + BUILD
    data = chain + s("k") + i(1) + b"s" + STOP
    with pytest.raises(ap.CorruptFileError, match="through a ChainMap"):
        ap.loads(data, safe=True)
    assert ap.loads(pickle.dumps(collections.ChainMap({"a": 1})), safe=True)["a"] == 1


def test_untrusted_globals_are_reported_before_refused_states():
    # a refused state and an untrusted global in one stream: the global is named
    data = P2 + MARK + class_attribute()[2:-1] + g("os", "system") + TUPLE + STOP
    with pytest.raises(ap.UntrustedTypeError, match=r"os\.system"):
        ap.loads(data, safe=True)
    assert "os.system" in ap.get_untrusted_types(data)


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_struct_scalars_holding_objects_load(compress, tmp_path):
    joblib = pytest.importorskip("joblib")
    values = [np.zeros(1, [("o", "O"), ("i", "i4")])[0], np.zeros(1, [("n", [("q", "O")])])[0]]
    joblib.dump(values, tmp_path / "s.pkl", compress=compress)
    out = ap.load(tmp_path / "s.pkl", safe=True)
    assert [v.tolist() for v in out] == [v.tolist() for v in values]


def test_bytes_of_an_array_memory_is_refused():
    # bytes(object array) copies its pointers: the heap's addresses, handed to the file
    objects = array((2,), dtype("O8") + dstate(flags=0x3F) + BUILD, items(1, 2))
    data = P2 + g("builtins", "bytes") + objects + TUPLE1 + REDUCE + STOP
    assert len(pickle.loads(data)) == 16
    for name in ("bytes", "bytearray"):
        evil = data.replace(b"builtins\nbytes", b"builtins\n" + name.encode())
        with pytest.raises(ap.CorruptFileError, match="whose memory the scan cannot see"):
            ap.loads(evil, safe=True)
    for value in (b"", b"abc", bytearray(b"xy"), bytearray(), "text"):
        for protocol in range(6):
            assert ap.loads(pickle.dumps(value, protocol=protocol), safe=True) == value


# A sixth review round: an array state given as a list (numpy parses any sequence); a
# state for the array the loader hands NEXT_BUFFER; bytes(source=...) and
# str(object=..., encoding=...) through NEWOBJ_EX keyword arguments;
# copyreg._reconstructor(bytes, bytes, array); numpy.bytes_ / numpy.str_ over an object
# array (each of the last four hands the file heap addresses).
REVIEWED_SIXTH = {
    "list_state": bytes.fromhex(
        "8002636e756d70792e5f636f72652e6d756c746961727261790a5f7265636f6e7374727563740a63"
        "6e756d70790a6e6461727261790a4b00854301628752284b014aa086010085636e756d70790a6474"
        "7970650a58020000004f3889888752895d4b01616c622e"
    ),
    "buf_build": bytes.fromhex(
        "8941504b0d0a1a0a01000100446b810242200100400000000000000004c94ee70000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000006e252cc11869fb2f500000002c000000000000007aeb77e9800597284b014aa0"
        "86010085636e756d70790a64747970650a58020000004f3889888752895d4b016174622e42766d86"
        "ef27bab7450000001000000000000000a437aeaf0200000000000000010000000000000074a9275b"
        "f737c5a9"
    ),
    "kw_bytes": bytes.fromhex(
        "8004636275696c74696e730a62797465730a297d5806000000736f75726365636e756d70792e5f63"
        "6f72652e6d756c746961727261790a5f7265636f6e7374727563740a636e756d70790a6e64617272"
        "61790a4b00854301628752284b014b0285636e756d70790a64747970650a58020000004f38898887"
        "52895d284b014b0265746273922e"
    ),
    "kw_str": bytes.fromhex(
        "8004636275696c74696e730a7374720a297d58060000006f626a656374636e756d70792e5f636f72"
        "652e6d756c746961727261790a5f7265636f6e7374727563740a636e756d70790a6e646172726179"
        "0a4b00854301628752284b014b0285636e756d70790a64747970650a58020000004f388988875289"
        "5d284b014b02657462735808000000656e636f64696e6758070000006c6174696e2d3173922e"
    ),
    "recon_bytes": bytes.fromhex(
        "800263636f70795f7265670a5f7265636f6e7374727563746f720a635f5f6275696c74696e5f5f0a"
        "62797465730a635f5f6275696c74696e5f5f0a62797465730a636e756d70792e5f636f72652e6d75"
        "6c746961727261790a5f7265636f6e7374727563740a636e756d70790a6e6461727261790a4b0085"
        "4301628752284b014b0285636e756d70790a64747970650a58020000004f3889888752895d284b01"
        "4b0265746287522e"
    ),
    "np_bytes": bytes.fromhex(
        "8002636e756d70790a62797465735f0a636e756d70792e5f636f72652e6d756c746961727261790a"
        "5f7265636f6e7374727563740a636e756d70790a6e6461727261790a4b00854301628752284b014b"
        "0285636e756d70790a64747970650a58020000004f3889888752895d284b014b0265746285522e"
    ),
    "np_str": bytes.fromhex(
        "8002636e756d70790a7374725f0a636e756d70792e5f636f72652e6d756c746961727261790a5f72"
        "65636f6e7374727563740a636e756d70790a6e6461727261790a4b00854301628752284b014b0285"
        "636e756d70790a64747970650a58020000004f3889888752895d284b014b0265746258070000006c"
        "6174696e2d3186522e"
    ),
}


@pytest.mark.parametrize("name", REVIEWED_SIXTH)
def test_sixth_review_payloads_are_refused(name, tmp_path):
    _refused_every_way(REVIEWED_SIXTH[name], tmp_path)


# A seventh review round: numpy.object_(x) returns x, so a call of what a call made
# (object_(numpy.ndarray)(...), object_(bytes)(array), object_(_reconstruct)(...))
# escaped every call check. Only globals may be called.
def _laundered(func: bytes) -> bytes:
    """numpy.object_(func): func itself, as the result of a call."""
    return P2 + g("numpy", "object_") + func + TUPLE1 + REDUCE


@pytest.mark.parametrize(
    "data",
    [
        _laundered(g("numpy", "ndarray")) + MARK + _OBJECTS_OVER_BYTES + TUPLE + REDUCE + STOP,
        _laundered(g("builtins", "bytes"))
        + array((2,), dtype("O8") + dstate(flags=0x3F) + BUILD, items(1, 2))
        + TUPLE1
        + REDUCE
        + STOP,
        _laundered(g("numpy.core.multiarray", "_reconstruct"))
        + g("numpy", "ndarray")
        + i(4096)
        + TUPLE1
        + s("b")
        + TUPLE3
        + REDUCE
        + STOP,
    ],
    ids=["ndarray_over_bytes", "bytes_of_objects", "reconstruct_with_memory"],
)
def test_calls_of_what_a_call_made_are_refused(data):
    # Since round 12 numpy.object_ is never called either (it returns its argument).
    with pytest.raises(ap.CorruptFileError, match=r"not a global|returns its argument itself"):
        ap.loads(data, safe=True)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_wide_structs_long_names_and_big_metadata_load(protocol, tmp_path):
    wide = np.dtype([(f"f{k}", "f4") for k in range(300)])
    named = np.dtype([("x" * 2000, "i4"), ("y", "O")])
    meta = np.dtype("f8", metadata={f"k{k}": k for k in range(100)})
    values = [np.zeros(2, wide), np.zeros(2, named), np.zeros(2, meta), wide, named, meta]
    out = ap.loads(pickle.dumps(values, protocol=protocol), safe=True)
    assert [v.dtype if isinstance(v, np.ndarray) else v for v in out] == [
        v.dtype if isinstance(v, np.ndarray) else v for v in values
    ]
    ap.dump(values, tmp_path / "w.pkl")
    assert ap.load(tmp_path / "w.pkl", safe=True)[3] == wide


# A ninth review round. (1) The C unpickler holds a frame it read whole apart from what
# follows: an opcode running past the frame's end takes its argument from after the
# frame, so the scan and the load parsed different opcodes (a frame split over two
# container records, or a plain pickle's frame longer than the scan's window). Such an
# opcode is refused, as pickle.py refuses it. (2) A second BUILD on a joblib < 0.10
# wrapper reached, unchecked, the array the loader puts in its place.
def _frame_then(hidden: bytes, filler: bytes = b"") -> bytes:
    """A frame whose last opcode (a 5-byte string) runs 3 bytes past its end: read with
    the frame, the string is b'abxyz'; read after it, ``hidden`` runs as opcodes."""
    frame = filler + b"N0" + b"\x8c\x05ab"
    head = b"\x80\x04\x95" + len(frame).to_bytes(8, "little") + frame
    return head + b"xyzC" + bytes([len(hidden)]) + hidden + TUPLE2 + STOP


def _container(*payloads: bytes) -> bytes:
    """An arraypickle container of PICKLE records with good checksums."""
    from arraypickle import _format as fmt

    out = bytearray(fmt.pack_header())
    for index, payload in enumerate(payloads):
        trailer = fmt.TRAILER.pack(fmt.record_checksum(payload, index))
        out += fmt.pack_record(fmt.KIND_PICKLE, 0, 0, len(payload)) + payload + trailer
    end = fmt.END.pack(len(payloads), 0)
    trailer = fmt.TRAILER.pack(fmt.record_checksum(end, len(payloads)))
    return bytes(out + fmt.pack_record(fmt.KIND_END, 0, 0, len(end)) + end + trailer)


_COUNTER_CHANGED = (
    g("collections", "Counter") + NONE + EMPTY_DICT + s("most_common") + g("builtins", "int")
)
_COUNTER_CHANGED += b"s" + TUPLE2 + BUILD


def test_an_opcode_past_its_frame_end_is_refused(tmp_path):
    # The frame is longer than the scan's window (it reads the pickle by pieces).
    data = _frame_then(_COUNTER_CHANGED, b"B" + (70000).to_bytes(4, "little") + bytes(70000))
    # pickle.loads(data) reads it whole (the string is b'abxyz'); arraypickle's loader
    # hands the unpickler the frame alone, and without its memo guard (verify=False)
    # the unpickler runs the hidden BUILD.
    assert "<class 'int'>" not in _plain_load(data).stdout
    unsafe = "import arraypickle, collections, sys; "
    unsafe += "arraypickle.loads(sys.stdin.buffer.read(), verify=False); "
    unsafe += "print(collections.Counter.most_common)"
    run = subprocess.run([sys.executable, "-c", unsafe], input=data, capture_output=True)
    assert b"<class 'int'>" in run.stdout
    with pytest.raises(ap.CorruptFileError, match="runs past the end of its frame"):
        ap.loads(data)
    _refused_every_way(data, tmp_path, "runs past the end of its pickle frame")
    with pytest.raises(ap.CorruptFileError, match="past the end of its pickle frame"):
        ap.get_untrusted_types(data)


def test_an_opcode_past_a_frame_split_over_records_is_refused():
    hidden = array((5,), dtype("O8") + dstate(flags=0x3F) + BUILD, items(1))
    data = _frame_then(hidden)
    container = _container(data[:14], data[14:])  # the frame spans both records
    for attempt in (ap.get_untrusted_types, lambda d: ap.loads(d, safe=True)):
        with pytest.raises(ap.CorruptFileError, match="past the end of its pickle frame"):
            attempt(container)


def test_runs_of_opcodes_may_cross_a_frame_end_between_opcodes():
    floats = [b"G" + np.float64(x).byteswap().tobytes() for x in (1.0, 2.0, 3.0)]
    frame = MARK + floats[0] + floats[1]
    after = floats[2] + TUPLE + STOP  # the run of floats goes on after the frame
    data = b"\x80\x04\x95" + len(frame).to_bytes(8, "little") + frame + after
    assert pickle.loads(data) == ap.loads(data, safe=True) == (1.0, 2.0, 3.0)
    # The same bytes, but the frame ends in the middle of the second float.
    cut = b"\x80\x04\x95" + (len(frame) - 4).to_bytes(8, "little") + frame + after
    with pytest.raises(ap.CorruptFileError, match="opcode 5 runs past the end"):
        ap.loads(cut, safe=True)


def _legacy_wrapper(cls: str, state: dict[str, bytes]) -> bytes:
    """A joblib < 0.10 wrapper with ``state``, then a second BUILD (an object array's
    state with a list of 1 for 5 items) on the array the loader puts in its place."""
    fields = b"".join(s(k) + v for k, v in state.items())
    second = MARK + i(1) + MARK + i(5) + TUPLE + dtype("O8") + dstate(flags=0x3F) + BUILD
    second += FALSE + items(1) + TUPLE
    wrapper = g("joblib.numpy_pickle", cls) + b")\x81"
    return P2 + wrapper + EMPTY_DICT + MARK + fields + SETITEMS + BUILD + second + BUILD + STOP


def test_a_second_state_for_a_legacy_joblib_wrapper_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    evil = tmp_path / "evil.pkl"
    state = {"filename": s("x.npy"), "subclass": g("numpy", "ndarray"), "allow_mmap": FALSE}
    evil.write_bytes(_legacy_wrapper("NDArrayWrapper", state))
    for attempt in (ap.get_untrusted_types, lambda p: ap.load(p, safe=True)):
        with pytest.raises(ap.CorruptFileError, match="a second state for a joblib array"):
            attempt(evil)


# A tenth review round: the object array a joblib wrapper is followed by is a nested
# pickle, read by its own unpickler; a frame that goes on past that pickle's STOP was
# dropped by it, while the scan read the rest as more of the outer stream.
def test_a_stop_inside_a_frame_is_refused(tmp_path):
    state = {
        "subclass": g("numpy", "ndarray"),
        "shape": i(2) + TUPLE1,
        "order": s("C"),
        "dtype": dtype("O8"),
        "allow_mmap": FALSE,
    }
    fields = b"".join(s(k) + v for k, v in state.items())
    wrapper = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81"
    wrapper += EMPTY_DICT + MARK + fields + SETITEMS + BUILD
    inner = pickle.dumps(np.array([1, 2], dtype=object), protocol=2)
    tail = b"B" + len(_COUNTER_CHANGED).to_bytes(4, "little")  # the scan skips the BUILD
    nested = b"\x95" + len(inner + tail).to_bytes(8, "little") + inner + tail
    data = P2 + MARK + wrapper + nested + _COUNTER_CHANGED + TUPLE + STOP
    _refused_every_way(data, tmp_path, "the pickle stops at opcode .*, inside a frame")
    with pytest.raises(ap.CorruptFileError, match="inside a frame"):
        ap.get_untrusted_types(data)


# An eleventh review round. (1) A joblib wrapper's dtype made with an align argument
# the scan cannot read (0.0: true to the scan's placeholder, false to numpy) was sized
# aligned, and the bytes between ran as opcodes. (2) The joblib loader's windows are cut
# at BUILD bytes from the first wrapper name it sees; a name spelt with an escape kept
# them whole, and a window ending with 0x62 by its size passed for the wrapper's BUILD.
# (3) A state on an allow-listed object sets attributes: numpy reads
# __array_interface__ from an instance (any address), and an attribute named view made
# the container's rebuild call what the file chose.
def _wrapper_state(fields: dict[str, bytes]) -> bytes:
    return EMPTY_DICT + MARK + b"".join(s(k) + v for k, v in fields.items()) + SETITEMS


def test_a_joblib_dtype_with_an_unreadable_align_is_refused(tmp_path):
    n = 8
    hidden = _COUNTER_CHANGED + b"0"
    hidden += NONE * (7 * n - len(hidden))
    dt = g("numpy", "dtype") + s("i1,f8") + b"G" + bytes(8) + TUPLE2 + REDUCE  # align=0.0
    state = {"subclass": g("numpy", "ndarray"), "shape": i(n) + TUPLE1, "order": s("C")}
    state |= {"dtype": dt, "allow_mmap": FALSE}
    wrapper = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + _wrapper_state(state)
    data = b"\x80\x04" + wrapper + BUILD + b"\x11" * (9 * n) + hidden + STOP
    _refused_every_way(data, tmp_path, "shape or dtype cannot be read")


def test_a_wrapper_build_not_where_the_window_was_cut_is_refused(tmp_path):
    window = 64 << 10  # the joblib loader's first read ahead
    escaped = b"Vjoblib.numpy_pickle\nVNumpy\\u0041rrayWrapper\n\x93"  # no b"ArrayWrapper"
    hidden = _COUNTER_CHANGED
    state = {"subclass": g("numpy", "ndarray"), "shape": i(len(hidden)) + TUPLE1}
    state |= {"order": s("C"), "dtype": dtype("u1"), "allow_mmap": FALSE}
    wrapper = escaped + b")\x81" + _wrapper_state(state) + BUILD
    pad = window - len(hidden) - 8 - len(wrapper)
    data = b"\x80\x04B" + pad.to_bytes(4, "little") + bytes(pad) + b"0" + wrapper + hidden
    assert data[window - 1] == BUILD[0] and b"ArrayWrapper" not in data
    data += NONE * len(hidden) + STOP  # what the scan reads as the array's bytes
    _refused_every_way(data, tmp_path, "not followed by its data where joblib puts it")


def _state_on(cls: bytes, state: bytes) -> bytes:
    return P2 + cls + b")\x81" + state + BUILD + STOP


_INTERFACE = _wrapper_state(
    {
        "shape": i(64) + TUPLE1,
        "typestr": s("<u8"),
        "data": b"C\x08" + b"A" * 8,
        "version": i(3),
        "strides": i(8) + TUPLE1,
    }
)


@pytest.mark.parametrize(
    "data",
    [
        # numpy.matrix(Counter() given __array_interface__): memory past 8 bytes
        P2
        + g("numpy", "matrix")
        + _state_on(
            g("collections", "Counter"), _wrapper_state({"__array_interface__": _INTERFACE})
        )[2:-1]
        + TUPLE1
        + REDUCE
        + STOP,
        _state_on(g("collections", "Counter"), _wrapper_state({"x": i(1)})),
        _state_on(g("collections", "OrderedDict"), _wrapper_state({"keys": g("builtins", "list")})),
        _state_on(
            g("collections", "ChainMap"), _wrapper_state({"__class__": g("builtins", "dict")})
        ),
    ],
    ids=["array_interface", "counter_attribute", "method_hidden", "dunder"],
)
def test_states_setting_what_a_class_never_has_are_refused(data, tmp_path):
    _refused_every_way(data, tmp_path, "refusing to load: BUILD at opcode")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_stdlib_objects_with_their_states_load(protocol):
    import uuid

    ordered = collections.OrderedDict(a=1)
    ordered.meta = "kept"
    chained = collections.ChainMap({"a": 1}, {"b": 2})
    chained.extra = 3
    values = [ordered, chained, uuid.UUID(int=7), collections.deque([1], maxlen=3)]
    out = ap.loads(pickle.dumps(values, protocol=protocol), safe=True)
    assert out == values and out[0].meta == "kept" and out[1].extra == 3


def test_the_view_form_rebuilds_only_arrays():
    from arraypickle._numpy import NumpyWrapper

    wrapper = NumpyWrapper()
    for meta in [
        ("v", (512,), collections.Counter(), None),
        ("v", np.matrix, [1, 2], None),
        ("m", np.ma.MaskedArray, collections.Counter(), None, None, False),
    ]:
        with pytest.raises(ap.CorruptFileError, match=r"not an array|not arrays"):
            wrapper.rebuild(meta, [])


# A twelfth review round. (A) numpy.object_(d) returns d itself: item assignment to its
# result changed, unseen, a dict the scan had judged (a dtype's fields, a wrapper's
# shape, an OrderedDict's state). (B) _mareconstruct made any class (a Counter taken
# for an array), and array states of other lengths went unjudged. (C) APPEND(S) and
# ADDITEMS call append/extend/add looked up on the instance, which a state could set.
# (D) numpy divides by the item size to fill a -1 in a buffer's shape (SIGFPE).
_LAUNDER = g("numpy", "object_") + b"h\x01" + TUPLE1 + REDUCE  # object_(memo 1)
_ROUND_12 = {
    # {} as memo 1, then object_(it)['a'] = 0: the scan's dict goes stale
    "object_returns_its_argument": P2
    + EMPTY_DICT
    + b"q\x010"
    + _LAUNDER
    + s("a")
    + i(0)
    + b"s0"
    + NONE
    + STOP,
    "mareconstruct_counter": P2
    + g("numpy.ma.core", "_mareconstruct")
    + MARK
    + g("collections", "Counter")
    + g("numpy", "ndarray")
    + i(0)
    + TUPLE1
    + s("b")
    + TUPLE
    + REDUCE
    + NONE
    + EMPTY_DICT
    + s("__array_interface__")
    + _INTERFACE
    + b"s"
    + TUPLE2
    + BUILD
    + STOP,
    "append_through_a_state": P2
    + g("collections", "OrderedDict")
    + b")R"
    + EMPTY_DICT
    + s("append")
    + g("numpy.core.multiarray", "scalar")
    + b"s"
    + BUILD
    + dtype("O,i8")
    + b"a"
    + STOP,
    "append_on_a_counter": P2 + g("collections", "Counter") + b")R" + i(1) + b"a" + STOP,
    "minus_one_over_zero_size": P2
    + g("numpy", "ndarray")
    + MARK
    + i(-1)
    + TUPLE1
    + s("V0")
    + b"C\x08abcdefgh"
    + TUPLE
    + REDUCE
    + STOP,
    "chararray_items_of_size_0": P2
    + g("numpy", "chararray")
    + MARK
    + i(-1)
    + TUPLE1
    + i(0)
    + FALSE
    + b"C\x08abcdefgh"
    + TUPLE
    + REDUCE
    + STOP,
}


@pytest.mark.parametrize("name", _ROUND_12)
def test_twelfth_review_payloads_are_refused(name, tmp_path):
    data = _ROUND_12[name]
    _refused_every_way(data, tmp_path)
    with pytest.raises(ap.CorruptFileError, match="refusing to load"):
        ap.get_untrusted_types(data)


def test_deques_and_sets_still_take_their_items():
    values = [collections.deque([1, 2], maxlen=4), {1, 2}, frozenset({3})]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert ap.loads(pickle.dumps(values, protocol=protocol), safe=True) == values


def test_a_matrix_keeps_its_attributes_under_safe_loading(tmp_path):
    m = np.matrix([[1.0, 2.0]])
    ap.dump({"m": m}, tmp_path / "m.pkl")
    out = ap.load(tmp_path / "m.pkl", safe=True)["m"]
    assert type(out) is np.matrix and out.tolist() == [[1.0, 2.0]]


# A thirteenth review round found no way past, but numpy reads a dtype spec's optional
# keys from the mapping it is given: a defaultdict's factory then ran during the load.
# numpy's pickles give a type string or a scalar type, and only those pass.
@pytest.mark.parametrize(
    "spec",
    [
        g("collections", "defaultdict")
        + g("numpy.ma.core", "MaskedConstant")
        + TUPLE1
        + REDUCE
        + MARK
        + s("names")
        + EMPTY_LIST
        + s("a")
        + b"a"
        + s("formats")
        + EMPTY_LIST
        + s("O")
        + b"a"
        + SETITEMS,
        EMPTY_LIST + s("a") + s("f8") + TUPLE2 + b"a",
    ],
    ids=["defaultdict", "list"],
)
def test_dtype_specs_numpy_never_writes_are_refused(spec, tmp_path):
    data = P2 + g("numpy", "dtype") + spec + FALSE + TRUE + TUPLE3 + REDUCE + STOP
    _refused_every_way(data, tmp_path, "a spec numpy's pickles never give|given a defaultdict")


# A sixteenth review round: a joblib 0.8-0.9 wrapper's BUILD in the middle of a frame.
# The loader swaps the array in only after the unpickler has run the rest of the frame,
# so the swap replaced whatever that left on top (bytes the scan had judged harmless):
# bytes() of an object array's pointers, or a second state on the array unchecked.
def test_a_legacy_joblib_wrapper_in_the_middle_of_a_frame_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([None, "abc", 1.5], dtype=object), allow_pickle=True)
    state = {"filename": s("x.npy"), "subclass": g("numpy", "ndarray"), "allow_mmap": FALSE}
    wrapper = g("joblib.numpy_pickle", "NDArrayWrapper") + b")\x81" + _wrapper_state(state)
    frame = g("builtins", "bytes") + wrapper + BUILD + b"0C\x08AAAAAAAb"  # ends with 0x62
    data = b"\x80\x04\x95" + len(frame).to_bytes(8, "little") + frame + TUPLE1 + REDUCE + STOP
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(data)
    for attempt in (ap.get_untrusted_types, lambda p: ap.load(p, safe=True)):
        with pytest.raises(ap.CorruptFileError, match="in the middle of a pickle frame"):
            attempt(evil)


# An eighteenth review round found no way past; its one lead: a masked array made from
# a view-form matrix copies the matrix's __dict__ (attributes such as _baseclass). The
# view form of numpy's own classes may set only what numpy sets (np.matrix's _getitem).
def test_the_view_form_sets_only_numpys_own_attributes(tmp_path):
    m = np.matrix([[1.0, 2.0]])
    m._baseclass = dict
    ap.dump({"m": m}, tmp_path / "m.pkl")
    assert ap.load(tmp_path / "m.pkl")["m"]._baseclass is dict  # a normal load keeps it
    with pytest.raises(ap.CorruptFileError, match="setting '_baseclass', which numpy's never"):
        ap.load(tmp_path / "m.pkl", safe=True)


# A nineteenth review round. (1) The view form's attribute check read the meta only
# when the stream wrote it as a literal tuple: tuple([...]) made the same meta unseen,
# and np.matrix took any attributes (an __array_wrap__ that `m + 1` then called). The
# scan now refuses a numpy meta it cannot see into.
def test_a_numpy_meta_made_by_a_call_is_refused():
    from test_safe_attacks import container

    base = g("numpy", "ndarray") + MARK + i(2) + TUPLE1 + s("f8") + b"C\x10" + bytes(16)
    base += TUPLE + REDUCE
    state = EMPTY_DICT + MARK + s("__array_wrap__") + g("builtins", "slice") + SETITEMS
    meta = g("builtins", "tuple") + EMPTY_LIST + MARK + s("v") + g("numpy", "matrix")
    meta += base + state + APPENDS + TUPLE1 + REDUCE
    call = g("arraypickle._format", "rebuild") + MARK + s("numpy") + meta + i(0) + i(0)
    data = container(P2 + call + TUPLE + REDUCE + STOP)
    with pytest.raises(ap.CorruptFileError, match="numpy meta the scan cannot see"):
        ap.loads(data, safe=True)


# (2) A defaultdict's factory ran during the load: numpy reads the optional keys of any
# mapping given as a dtype (ndarray, _reconstruct, recarray, matrix...), and only
# numpy.dtype's own spec was checked. Now a numpy call given a defaultdict, directly or
# in what the scan follows, is refused.
@pytest.mark.parametrize(
    "call",
    [
        g("numpy", "ndarray") + i(0) + TUPLE1 + GET0 + TUPLE2,
        g("numpy.core.multiarray", "_reconstruct")
        + g("numpy", "ndarray")
        + i(0)
        + TUPLE1
        + GET0
        + TUPLE3,
        g("numpy", "matrix")
        + EMPTY_LIST
        + EMPTY_DICT
        + s("a")
        + GET0
        + i(0)
        + TUPLE2
        + b"s"
        + TUPLE2,
    ],
    ids=["ndarray", "reconstruct", "matrix-fields-dict"],
)
def test_a_numpy_call_given_a_defaultdict_is_refused(call):
    spec = g("collections", "defaultdict") + g("builtins", "list") + TUPLE1 + REDUCE
    keys = s("names") + EMPTY_LIST + s("formats") + EMPTY_LIST + s("aligned") + FALSE
    spec += MARK + keys + s("itemsize") + i(0) + SETITEMS + PUT0
    data = P2 + spec + b"0" + call + REDUCE + GET0 + TUPLE2 + STOP
    for form in ("plain", "plain-gzip", "container"):
        with pytest.raises(ap.CorruptFileError, match="given a defaultdict"):
            ap.loads(FORMS[form](data), safe=True)
    real = collections.defaultdict(list, {"a": [1]})
    assert ap.loads(ap.dumps({"d": real}), safe=True)["d"].default_factory is list


# A twentieth review round. (1) The container's array form rebuilt an object (or
# StringDType) array over a memory-mapped file's bytes: fake pointers, a SIGSEGV from
# list(arr), under safe loading too (the view check was only for the 'v' form). The
# writer never stores such arrays as buffers: every load refuses them, the scan too.
@pytest.mark.parametrize("typestr", ["O", "i8,O", "V0"])
@pytest.mark.parametrize("mmap_mode", [None, "r", "r+", "c"])
def test_an_array_of_objects_over_a_buffer_is_refused(tmp_path, typestr, mmap_mode):
    from test_safe_attacks import container

    meta = MARK + s("a") + dtype(typestr) + MARK + i(2) + TUPLE + s("C") + TUPLE
    call = g("arraypickle._format", "rebuild") + MARK + s("numpy") + meta + i(0) + i(1)
    path = tmp_path / "objects.pkl"
    path.write_bytes(
        container(P2 + g("builtins", "list") + call + TUPLE + REDUCE + TUPLE1 + REDUCE + STOP)
    )
    with pytest.raises(ap.CorruptFileError, match="buffer"):
        ap.load(path, mmap_mode=mmap_mode)
    with pytest.raises(ap.CorruptFileError, match="buffer"):
        ap.load(path, mmap_mode=mmap_mode, safe=True)


# (2) A defaultdict made by copyreg._reconstructor(defaultdict, defaultdict, factory)
# was not seen as one by the round-19 check. (Since round 28 the call is refused before:
# defaultdict pickles itself with its own __reduce__.)
def test_a_reconstructed_defaultdict_given_to_numpy_is_refused():
    made = g("copyreg", "_reconstructor") + g("collections", "defaultdict") * 2
    made += g("builtins", "bool") + TUPLE3 + REDUCE
    made += MARK + s("names") + EMPTY_LIST + s("formats") + EMPTY_LIST + SETITEMS + PUT0
    data = P2 + made + b"0" + g("numpy", "ndarray") + i(0) + TUPLE1 + GET0 + TUPLE2 + REDUCE
    data += GET0 + TUPLE2 + STOP
    with pytest.raises(ap.CorruptFileError, match=r"given a defaultdict|pickles itself otherwise"):
        ap.loads(data, safe=True)


# (4) Once a stream had named defaultdict, each numpy call's arguments were walked
# whole: the memo handed one 458,752-entry tuple to 15,000 calls, and a 1 MB stream
# scanned for over ten minutes. The walks now share a budget linear in the stream.
def _shared_to_many_calls(entries: int, tuples: int, calls: int) -> bytes:
    data = b"\x80\x04" + g("collections", "defaultdict") + b"0"
    for _ in range(tuples):  # memo 0 .. tuples-1
        data += MARK + b"K\x00" * entries + TUPLE + b"\x94"
    data += MARK + b"".join(b"h" + bytes([k]) for k in range(tuples)) + TUPLE + b"\x94"
    data += g("numpy", "float64") + b"\x94"
    call = b"h" + bytes([tuples + 1]) + (b"h" + bytes([tuples])) * 2 + b"\x86" + REDUCE + b"0"
    return data + call * calls + b"N" + STOP


def test_numpy_calls_sharing_big_arguments_scan_in_linear_time():
    data = _shared_to_many_calls(65536, 7, 15_000)  # the 1 MB stream of the report
    code = (
        "import sys, arraypickle as ap\n"
        "try:\n"
        "    ap.get_untrusted_types(sys.stdin.buffer.read())\n"
        "except ap.CorruptFileError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, timeout=120
    )
    assert b"time quadratic in the stream" in done.stdout, done.stderr
    with pytest.raises(ap.CorruptFileError, match="time quadratic in the stream"):
        ap.loads(_shared_to_many_calls(65536, 7, 20), safe=True)


def _inflated_dtype_states(states: int, levels: int) -> bytes:
    """``states`` fresh dtypes, each given a valid state whose one field's title is a
    tuple the memo shares with itself ``levels`` deep: a few bytes each in the stream,
    2**levels parts each to judge."""

    def u(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    data = b"\x80\x04cnumpy\ndtype\n\x94" + u("f8") + b"\x89\x88\x87\x94"
    data += b"K\x01" + b"2\x86" * levels + b"\x94" + b"0"
    for k in range(states):
        data += b"h\x00h\x01R(K\x04" + u("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00"
        data += b"}" + u(f"k{k}") + b"h\x02stb0"
    return data + b"N."


def test_inflated_dtype_states_share_the_scan_budget():
    # Each state was bounded, but not their sum: 20 of them (835 bytes) scanned for
    # 11 s, and each accepted one kept 16 MB in the cache of judged states for good.
    from arraypickle import _buildcheck

    before = _buildcheck._ACCEPTED_NODES
    with pytest.raises(ap.CorruptFileError, match="time quadratic in the stream"):
        ap.get_untrusted_types(_inflated_dtype_states(20, 16))
    assert _buildcheck._ACCEPTED_NODES - before <= _buildcheck._CACHED_NODES_EACH


def test_small_shared_arguments_stay_within_the_budget():
    # 64 calls each given 2 x 4,096 entries: well under the allowance, and numpy's
    # own refusal of the call is what stops the load.
    with pytest.raises(ap.CorruptFileError) as info:
        ap.loads(_shared_to_many_calls(4096, 2, 64), safe=True)
    assert "quadratic" not in str(info.value)


# (3) Tuples nested 100,000 deep in a dtype state made get_untrusted_types raise a bare
# RecursionError (a safe load already said CorruptFileError).
def test_deep_nesting_makes_get_untrusted_types_say_corrupt():
    deep = NONE + TUPLE1 * 100_000
    data = P2 + dtype("f8") + MARK + i(3) + s("<") + deep + NONE * 5 + TUPLE + BUILD + STOP
    with pytest.raises(ap.CorruptFileError):
        ap.get_untrusted_types(data)
    with pytest.raises(ap.CorruptFileError):
        ap.loads(data, safe=True)


class _Tagged(np.ndarray):
    """An ndarray subclass whose attribute holds a defaultdict (kept through views)."""

    def __array_finalize__(self, obj):
        self.info = getattr(obj, "info", None)


def test_defaultdicts_that_never_reach_numpy_as_a_dtype_load_safely():
    # The view form's state and another wrapper's meta go to setattr and to the
    # wrapper's own code: a defaultdict there is no dtype (a false refusal in dd299cd).
    tagged = np.arange(3.0).view(_Tagged)
    tagged.info = collections.defaultdict(int, a=1)
    out = ap.loads(ap.dumps(tagged), safe=True, trusted=[_Tagged])
    assert type(out) is _Tagged and out.info == {"a": 1} and out.info.default_factory is int
    mixed = {"d": collections.defaultdict(list, k=[np.arange(2)]), "a": np.ma.arange(3)}
    for data in (ap.dumps(mixed), ap.dumps(mixed, compress=3), pickle.dumps(mixed, protocol=2)):
        out = ap.loads(data, safe=True)
        assert out["d"].default_factory is list


# A twenty-first review round, with mmap_mode. (1) SETITEM went to whatever the scan
# did not judge a dict: under mmap_mode='r+' an array mapped from a file then took the
# file's items, so a safe load wrote a neighbouring .npy (joblib 0.8-0.9's companion
# names any file beside the one loaded) or its own buffers (a failed load then left the
# file failing its checksums). Item assignment now goes only to mappings.
def test_a_safe_load_never_writes_to_a_mapped_file(tmp_path):
    from test_safe_attacks import container

    np.save(tmp_path / "victim.npy", np.arange(4.0))
    state = EMPTY_DICT + MARK + s("filename") + s("victim.npy") + s("subclass")
    state += g("numpy", "ndarray") + s("allow_mmap") + TRUE + SETITEMS
    wrapper = g("joblib.numpy_pickle", "NDArrayWrapper") + b")\x81" + state + BUILD
    write = i(0) + b"G" + struct.pack(">d", 1337.0) + b"s"
    (tmp_path / "evil.pkl").write_bytes(P2 + wrapper + write + STOP)
    meta = MARK + s("a") + dtype("f8") + MARK + i(2) + TUPLE + s("C") + TUPLE
    own = g("arraypickle._format", "rebuild") + MARK + s("numpy") + meta + i(0) + i(1)
    own += TUPLE + REDUCE + write
    (tmp_path / "own.pkl").write_bytes(container(P2 + own + STOP))  # its buffer: 8 floats
    for name in ("evil.pkl", "own.pkl"):
        before = (tmp_path / name).read_bytes()
        for mode in ("r+", "w+"):
            with pytest.raises(ap.CorruptFileError, match="item assignment to"):
                ap.load(tmp_path / name, mmap_mode=mode, safe=True)
        assert (tmp_path / name).read_bytes() == before
    np.testing.assert_array_equal(np.load(tmp_path / "victim.npy"), np.arange(4.0))
    # What picklers do write: items of dicts, of the allow-list's dict classes.
    mappings = {"c": collections.Counter("aab"), "o": collections.OrderedDict(x=np.arange(2))}
    assert ap.loads(pickle.dumps(mappings, protocol=2), safe=True)["c"] == {"a": 2, "b": 1}


# (2) Under mmap_mode the joblib paths mapped dtypes of 0-byte items (the array form
# refuses them): a shape's element count could overflow (list(a.flat): SystemError).
@pytest.mark.parametrize("mmap_mode", ["r", "c"])
def test_a_joblib_array_of_empty_items_is_refused_when_mapped(tmp_path, mmap_mode):
    state = EMPTY_DICT + MARK + s("subclass") + g("numpy", "ndarray") + s("shape")
    state += MARK + i(4) + TUPLE + s("order") + s("C") + s("dtype") + dtype("V0")
    state += s("allow_mmap") + TRUE + SETITEMS
    wrapper = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + BUILD
    (tmp_path / "v0.pkl").write_bytes(P2 + wrapper + STOP)
    with pytest.raises(ap.CorruptFileError):
        ap.load(tmp_path / "v0.pkl", mmap_mode=mmap_mode)
    with pytest.raises(ap.CorruptFileError):
        ap.load(tmp_path / "v0.pkl", mmap_mode=mmap_mode, safe=True)


# A twenty-second review round. MaskedArray(data, mask) ORs `mask` into data's existing
# mask in place: a masked array's (mapped from the file under mmap_mode='r+'), or any
# structured array an object hands it as `_mask` (an OrderedDict's attribute; a joblib
# 0.8-0.9 companion .npy beside the file). numpy's pickles never call MaskedArray or
# mvoid (they use _mareconstruct and a state), and an OrderedDict's attributes may not
# start with an underscore.
class _CallsMasked:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return np.ma.MaskedArray, self.args


def test_a_call_of_maskedarray_is_refused(tmp_path):
    bdt = np.dtype([("a", "?")])
    data = np.ma.array(np.zeros(4, [("a", "<i8")]), mask=np.zeros(4, bdt))
    obj = [data, _CallsMasked(data, np.ones(4, bdt))]
    path = tmp_path / "m.pkl"
    ap.dump(obj, path)
    before = path.read_bytes()
    with pytest.raises(ap.CorruptFileError, match=r"numpy\.ma(\.core)?\.MaskedArray, which numpy"):
        ap.load(path, mmap_mode="r+", safe=True)
    assert path.read_bytes() == before
    ap.dump([np.ma.array([1, 2], mask=[0, 1]), np.ma.masked_all(3, bdt)], path)
    out = ap.load(path, safe=True)  # what numpy writes still loads
    assert out[0].mask.tolist() == [False, True] and out[1].mask.all()


def test_an_ordereddict_attribute_with_an_underscore_is_refused():
    od = collections.OrderedDict(x=1)
    od._mask = np.zeros(3, [("a", "<i8")])
    with pytest.raises(ap.CorruptFileError, match="setting '_mask'"):
        ap.loads(pickle.dumps(od, protocol=2), safe=True)
    od = collections.OrderedDict(x=1)
    od.label = "kept"  # a plain attribute still loads
    assert ap.loads(pickle.dumps(od, protocol=2), safe=True).label == "kept"


def _safe_load_in_a_child(data: bytes) -> subprocess.CompletedProcess[bytes]:
    code = (
        "import sys, arraypickle as ap\n"
        "try:\n"
        "    ap.loads(sys.stdin.buffer.read(), safe=True)\n"
        "except ap.CorruptFileError as exc:\n"
        "    print(exc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, timeout=120
    )


@pytest.mark.parametrize(
    "data",
    [
        # scalar(dtype('f8'), <shared tuple>): the refusal's message printed it whole.
        b"\x80\x02K\x00cnumpy._core.multiarray\nscalar\n(cnumpy\ndtype\nU\x02f8\x89\x88\x87R"
        + shared_tuple(30)
        + b"tR.",
        # dtype('i4') given a state holding a shared tuple: the state was followed whole.
        b"\x80\x02K\x00cnumpy\ndtype\nU\x02i4\x89\x88\x87R(K\x03U\x01<NN"
        + shared_tuple(40)
        + b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.",
    ],
    ids=["scalar-arguments", "dtype-state"],
)
def test_a_value_shared_with_itself_is_refused_without_walking_it(data):
    run = _safe_load_in_a_child(data)
    assert run.returncode == 0, run.stderr
    assert b"refusing to load" in run.stdout
    assert len(run.stdout) < 1000


def test_a_class_with_its_own_reduction_is_not_reconstructed_by_copyreg():
    # dict.__init__ filled an OrderedDict behind its back: len 2, list() and repr empty.
    data = (
        b"\x80\x02ccopyreg\n_reconstructor\n(ccollections\nOrderedDict\ncbuiltins\ndict\n"
        b"}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02utR."
    )
    with pytest.raises(ap.CorruptFileError, match="pickles itself otherwise"):
        ap.loads(data, safe=True)


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_what_pickle_writes_through_copyreg_still_loads_safely(protocol):
    import uuid

    objs = [uuid.UUID(int=7), collections.OrderedDict(a=1), collections.Counter("aab")]
    objs += [collections.deque([1]), collections.defaultdict(int, a=1), range(3)]
    for obj in objs:
        assert ap.loads(pickle.dumps(obj, protocol=protocol), safe=True) == obj


@pytest.mark.parametrize("writer", ["pickle", "arraypickle"])
def test_many_dtypes_sharing_one_wide_fields_dict_load_safely(writer):
    # Every view as a recarray makes a dtype sharing the fields dict, which the memo
    # stores once: the scan's budget charged the whole dict to each, and refused
    # 1,200 such arrays of 300 fields as "past what the scan follows".
    wide = np.dtype([(f"f{k}", "f8") for k in range(300)])
    views = [np.zeros(0, wide).view(np.recarray) for _ in range(1200)]
    data = pickle.dumps(views, protocol=5) if writer == "pickle" else ap.dumps(views)
    got = ap.loads(data, safe=True)
    assert len(got) == 1200 and got[-1].dtype == views[-1].dtype
