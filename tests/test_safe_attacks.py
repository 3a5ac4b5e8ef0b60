"""Real attack shapes, each refused by safe loading before its side effect can happen.

Every payload tries to create a marker file. Each is first shown to work (an ordinary
``pickle.loads`` creates the marker), then loaded with ``safe=True`` as a plain
pickle, a compressed plain pickle, and inside arraypickle containers (whole, split
across records, compressed), from bytes, a path and a stream that cannot seek:
``UntrustedTypeError`` names the culprit and the marker never appears.
"""

from __future__ import annotations

import bz2
import copyreg
import functools
import gzip
import io
import lzma
import os
import pickle
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _safe
from arraypickle._names import UNRESOLVED
from arraypickle._writer import ContainerWriter

# -- opcode assembly ------------------------------------------------------------------


def s(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE of ``text``."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def g(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 style)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def shared_tuple(levels: int) -> bytes:
    """Protocol-2 opcodes of a tuple ``(t, t)`` nested ``levels`` deep through the memo
    (entries 1 on): a few bytes per level, 2**levels leaves."""
    out = b"K\x01\x85q\x01"
    for i in range(1, 1 + levels):
        out += b"0h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1])
    return out


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL from two literal strings."""
    return s(module) + s(name) + b"\x93"


PROTO4 = b"\x80\x04"
MEMOIZE, POP, REDUCE, STOP, MARK, TUPLE = b"\x94", b"0", b"R", b".", b"(", b"t"
TUPLE1, TUPLE2 = b"\x85", b"\x86"


def call(func: bytes, *args: bytes) -> bytes:
    return func + MARK + b"".join(args) + TUPLE + REDUCE


# -- payload factories: (marker path) -> (pickle bytes, names to be reported) ----------


def touch(marker: str) -> str:
    return f"touch {marker}"


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def os_system_reduce(m):
    return pickle.dumps(_Reduce(os.system, (touch(m),)), protocol=5), [_system()]


def _system() -> str:
    return f"{os.system.__module__}.system"


def builtins_eval(m):
    return pickle.dumps(_Reduce(eval, (f"open({m!r}, 'w').close()",))), ["builtins.eval"]


def builtins_exec_py2_name(m):
    # protocol 2, Python 2 module name: the scan applies pickle's renames too
    code = f"open({m!r}, 'w').close()"
    return b"\x80\x02" + call(g("__builtin__", "exec"), s(code)) + STOP, ["builtins.exec"]


def getattr_chain(m):
    # getattr(__import__('os'), 'system')('touch m')
    module = call(g("builtins", "__import__"), s("os"))
    func = call(g("builtins", "getattr"), module, s("system"))
    data = PROTO4 + call(func, s(touch(m))) + STOP
    return data, ["builtins.__import__", "builtins.getattr"]


def getattr_on_allowed(m):
    # getattr(numpy.dtype, '__class__')... reaching anything from an allowed object
    data = PROTO4 + call(
        call(g("builtins", "getattr"), call(g("builtins", "__import__"), s("os")), s("system")),
        s(touch(m)),
    )
    return data + STOP, ["builtins.__import__", "builtins.getattr"]


def getattr_of_a_global(m):
    # getattr(<global>, 'system'): listed as the global it reaches, subprocess.os.system
    func = call(g("builtins", "getattr"), g("subprocess", "os"), s("system"))
    return PROTO4 + call(func, s(touch(m))) + STOP, ["subprocess.os", "subprocess.os.system"]


def getattr_reused_from_the_memo(m):
    # getattr spent once as an attribute of a global, then fetched back from the memo
    # and used on what a call made: getattr itself is then listed
    getattr_ = sg("builtins", "getattr") + MEMOIZE
    harmless = call(getattr_, g("collections", "OrderedDict"), s("fromkeys"))
    module = call(g("builtins", "__import__"), s("os"))
    func = b"h\x00" + MARK + module + s("system") + TUPLE + REDUCE  # BINGET 0: getattr
    data = PROTO4 + harmless + POP + call(func, s(touch(m))) + STOP
    return data, ["builtins.__import__", "builtins.getattr"]


def stack_global_memo(m):
    # 'posix'/'system' memoized, popped, fetched back with BINGET, then STACK_GLOBAL
    mod = os.system.__module__
    data = (
        PROTO4
        + s(mod)
        + MEMOIZE
        + POP
        + s("unrelated")
        + MEMOIZE
        + POP
        + s("system")
        + MEMOIZE
        + POP
        + b"h\x00h\x02\x93"
        + s(touch(m))
        + TUPLE1
        + REDUCE
        + STOP
    )
    return data, [_system()]


def stack_global_put_get(m):
    # protocol 2 style BINPUT/LONG_BINGET at sparse indices, mixed with MEMOIZE
    mod = os.system.__module__
    data = (
        PROTO4
        + s(mod)
        + b"q\x07"  # BINPUT 7
        + POP
        + s("system")
        + MEMOIZE  # index len(memo) == 1
        + POP
        + b"j\x07\x00\x00\x00"  # LONG_BINGET 7
        + b"h\x01"  # BINGET 1
        + b"\x93"
        + s(touch(m))
        + TUPLE1
        + REDUCE
        + STOP
    )
    return data, [_system()]


def stack_global_computed(m):
    # the module name is computed by an allowed call, str(b'posix', 'ascii'):
    # the scan cannot know it, reports <unresolved> and refuses
    mod = os.system.__module__.encode()
    name = call(g("builtins", "str"), b"C" + bytes([len(mod)]) + mod, s("ascii"))
    data = PROTO4 + name + s("system") + b"\x93" + s(touch(m)) + TUPLE1 + REDUCE + STOP
    return data, ["<unresolved>"]


def pkgutil_resolve_name(m):
    func = call(g("pkgutil", "resolve_name"), s("os:system"))
    return PROTO4 + call(func, s(touch(m))) + STOP, ["pkgutil.resolve_name"]


def importlib_methodcaller(m):
    module = call(g("importlib", "import_module"), s("os"))
    caller = call(g("operator", "methodcaller"), s("system"), s(touch(m)))
    data = PROTO4 + caller + module + TUPLE1 + REDUCE + STOP
    return data, ["importlib.import_module", "operator.methodcaller"]


def operator_attrgetter(m):
    module = call(g("importlib", "import_module"), s("os"))
    func = call(call(g("operator", "attrgetter"), s("system")), module)
    data = PROTO4 + call(func, s(touch(m))) + STOP
    return data, ["importlib.import_module", "operator.attrgetter"]


def functools_partial(m):
    return (
        pickle.dumps(_Reduce(functools.partial(os.system, touch(m)), ())),
        ["functools.partial", _system()],
    )


def subprocess_popen(m):
    return pickle.dumps(_Reduce(subprocess.Popen, (["touch", m],))), ["subprocess.Popen"]


def object_array(m):
    arr = np.array([1, _Reduce(os.system, (touch(m),))], dtype=object)
    names = ["numpy._core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray", _system()]
    return pickle.dumps(arr, protocol=5), [_system()] if names else names


def nested_object_arrays(m):
    inner = np.array([_Reduce(os.system, (touch(m),))], dtype=object)
    outer = np.array([{"k": [inner]}], dtype=object)
    return pickle.dumps({"a": np.ones(3), "o": outer}, protocol=4), [_system()]


def numpy_load_nested(m):
    # numpy.load of a second file with allow_pickle=True runs that file's pickle
    evil = m + ".npy"
    np.save(evil, np.array([_Reduce(os.system, (touch(m),))], dtype=object), allow_pickle=True)
    return pickle.dumps(_Reduce(np.load, (evil, None, True))), ["numpy.load"]


def numpy_save(m):
    # an allowed module, a dangerous attribute
    return pickle.dumps(_Reduce(np.save, (m, np.zeros(1)))), ["numpy.save"]


def dotted_through_allowed_module(m):
    # uuid imports os: STACK_GLOBAL('uuid', 'os.system') is os.system for protocol 4
    return PROTO4 + call(sg("uuid", "os.system"), s(touch(m))) + STOP, ["uuid.os.system"]


def numpy_testing_runstring(m):
    # numpy.testing.runstring(code, namespace) is exec under another name
    code = f"open({m!r}, 'w').close()"
    data = PROTO4 + call(sg("numpy.testing", "runstring"), s(code), b"}") + STOP
    return data, ["numpy.testing.runstring"]


def inst_opcode(m):
    data = b"(S'" + touch(m).encode() + b"'\nios\nsystem\n."
    return data, ["os.system"]


def obj_opcode(m):
    data = b"\x80\x01(cos\nsystem\nS'" + touch(m).encode() + b"'\no."
    return data, ["os.system"]


def defaultdict_factory(m):
    # a defaultdict is allowed, its factory is checked like any global
    data = PROTO4 + call(g("collections", "defaultdict"), g("os", "system")) + STOP
    return data, ["os.system"]


def reconstructor_wrapping(m):
    # copyreg._reconstructor is allowed; the class it is handed is checked
    data = b"\x80\x02" + call(
        g("copy_reg", "_reconstructor"), g("subprocess", "Popen"), g("__builtin__", "object")
    )
    return data + STOP, ["subprocess.Popen"]


ATTACKS = [
    os_system_reduce,
    builtins_eval,
    builtins_exec_py2_name,
    getattr_chain,
    getattr_on_allowed,
    getattr_of_a_global,
    getattr_reused_from_the_memo,
    stack_global_memo,
    stack_global_put_get,
    stack_global_computed,
    pkgutil_resolve_name,
    importlib_methodcaller,
    operator_attrgetter,
    functools_partial,
    subprocess_popen,
    object_array,
    nested_object_arrays,
    numpy_load_nested,
    numpy_save,
    dotted_through_allowed_module,
    numpy_testing_runstring,
    inst_opcode,
    obj_opcode,
    defaultdict_factory,
    reconstructor_wrapping,
]
# The payloads whose effect is a plain call at load time (the sanity check runs them).
RUNNABLE = [
    a
    for a in ATTACKS
    if a.__name__
    not in (
        "defaultdict_factory",  # the factory would run only on a missing key
        "reconstructor_wrapping",  # object.__new__(Popen) fails after resolving Popen
    )
]


# -- containers and forms -----------------------------------------------------------


def container(payload: bytes, pieces: int = 1) -> bytes:
    """An arraypickle container whose PICKLE records hold ``payload`` (split in pieces)."""
    out = io.BytesIO()
    writer = ContainerWriter(out)
    writer.write_array(np.arange(8.0), "C")  # a buffer record before the opcodes
    step = max(1, -(-len(payload) // pieces))
    for i in range(0, len(payload), step):
        writer.write(payload[i : i + step])
    writer.finish()
    return out.getvalue()


FORMS = {
    "plain": lambda p: p,
    "plain-gzip": gzip.compress,
    "plain-xz": lzma.compress,
    "container": container,
    "container-split": lambda p: container(p, pieces=7),
    "container-zlib": lambda p: zlib.compress(container(p)),
    "container-bz2": lambda p: bz2.compress(container(p, pieces=3)),
}


class Pipe(io.RawIOBase):
    """A readable stream that cannot seek (what a pipe or socket gives)."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._src.readinto(b)


@pytest.fixture
def marker(tmp_path):
    return str(tmp_path / "pwned")


@pytest.mark.parametrize("attack", RUNNABLE, ids=lambda a: a.__name__)
def test_payload_is_real(attack, marker):
    """Sanity: without safe loading, the payload does what it says."""
    data, _ = attack(marker)
    out = pickle.loads(data)
    if isinstance(out, subprocess.Popen):
        out.wait()
    assert os.path.exists(marker) or os.path.exists(marker + ".npy")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_refused_before_anything_runs(attack, form, marker, tmp_path):
    data, names = attack(marker)
    blob = FORMS[form](data)
    assert set(names) <= set(ap.get_untrusted_types(blob))
    path = tmp_path / "evil.pkl"
    path.write_bytes(blob)
    for source in (lambda: ap.loads(blob, safe=True), lambda: ap.load(path, safe=True)):
        with pytest.raises(ap.UntrustedTypeError) as info:
            source()
        assert set(names) <= set(info.value.names)
        for name in names:
            assert name in str(info.value)
    with pytest.raises(ap.UntrustedTypeError):
        ap.load(Pipe(blob), safe=True)
    # trusted= something else does not open the door either
    with pytest.raises(ap.UntrustedTypeError):
        ap.loads(blob, trusted=["collections.OrderedDict"])
    assert not os.path.exists(marker)
    assert not os.path.exists(marker + ".npy") or attack.__name__ == "numpy_load_nested"


@pytest.mark.parametrize("compress", [0, "gzip", "xz"])
def test_reduce_attacks_through_dump(compress, marker):
    """The same shapes written by arraypickle's own pickler (meta next to buffers)."""
    value = {
        "weights": np.ones((4, 4)),
        "payload": _Reduce(os.system, (touch(marker),)),
        "objects": np.array([None, _Reduce(subprocess.Popen, (["touch", marker],))], dtype=object),
    }
    blob = ap.dumps(value, compress=compress)
    assert ap.get_untrusted_types(blob) == sorted([_system(), "subprocess.Popen"])
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(blob, safe=True)
    assert info.value.names == sorted([_system(), "subprocess.Popen"])
    assert not os.path.exists(marker)


@pytest.mark.parametrize("form", ["plain", "container", "container-zlib"])
def test_find_class_enforces_without_the_scan(monkeypatch, form, marker):
    """Defense in depth: with the scan disabled, the load itself refuses the import."""
    monkeypatch.setattr(_safe.Policy, "check", lambda self, names, file: None)
    data, _ = os_system_reduce(marker)
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(FORMS[form](data), safe=True)
    assert info.value.names == [_system()]
    data, _ = object_array(marker)
    with pytest.raises(ap.UntrustedTypeError):
        ap.loads(FORMS[form](data), safe=True)
    assert not os.path.exists(marker)


def test_extension_codes(marker):
    """EXT opcodes resolve through copyreg's registry; unknown codes are unresolved."""
    code = 0x7FF0
    copyreg.add_extension("os", "system", code)
    try:
        data = b"\x80\x02\x83" + struct.pack("<H", code) + s(touch(marker)) + TUPLE1 + REDUCE
        data += STOP
        assert ap.get_untrusted_types(data) == ["os.system"]
        with pytest.raises(ap.UntrustedTypeError):
            ap.loads(container(data), safe=True)
    finally:
        copyreg.remove_extension("os", "system", code)
    data = b"\x80\x02\x82\x05" + STOP
    assert ap.get_untrusted_types(data) == ["<unresolved>"]
    assert not os.path.exists(marker)


def test_codecs_encode_is_latin1_only():
    """``_codecs.encode`` is allowed only as pickle uses it (bytes below protocol 3)."""
    assert ap.loads(pickle.dumps(b"\x00\xff", protocol=2), safe=True) == b"\x00\xff"
    data = b"\x80\x02" + call(g("_codecs", "encode"), s("x"), s("zlib_codec")) + STOP
    with pytest.raises(ap.CorruptFileError, match="latin1"):
        ap.loads(data, safe=True)


def test_memmap_constructor_cannot_create_files(tmp_path):
    """``numpy.memmap`` is substituted: calling it cannot create or truncate a file."""
    target = str(tmp_path / "created")
    data = pickle.dumps(_Reduce(np.memmap, (target, "uint8", "w+", 0, (16,))))
    with pytest.raises(ap.CorruptFileError):
        ap.loads(data, safe=True)
    assert not os.path.exists(target)


def test_trusted_is_matched_exactly(marker):
    """Trusting a class does not trust attributes reached through its dotted name."""
    data = PROTO4 + call(sg("subprocess", "Popen.__init__"), s("x")) + STOP
    assert ap.get_untrusted_types(data, trusted=[subprocess.Popen]) == ["subprocess.Popen.__init__"]
    with pytest.raises(ap.UntrustedTypeError):
        ap.loads(data, trusted=["subprocess.Popen"])


def test_getattr_of_a_global_is_judged_as_the_global_it_reaches(monkeypatch, marker):
    """A classmethod in a reduction (zoneinfo.ZoneInfo's) pickles as getattr(<global>,
    '<name>'): the scan lists '<global>.<name>', never getattr itself, and the load's
    getattr resolves only that, as the global would be (also with the scan disabled)."""
    import datetime
    import zoneinfo

    value = datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    needed = ["zoneinfo.ZoneInfo", "zoneinfo.ZoneInfo._unpickle"]
    for protocol in range(6):
        data = pickle.dumps(value, protocol=protocol)
        assert ap.get_untrusted_types(data) == needed
        assert ap.loads(data, trusted=needed) == value
        with pytest.raises(ap.UntrustedTypeError) as info:
            ap.loads(data, trusted=needed[:1])
        assert info.value.names == needed[1:]
    assert ap.loads(ap.dumps(value), trusted=[zoneinfo.ZoneInfo, needed[1]]) == value
    # the objects themselves: a classmethod written in C has no __module__ of its own
    trusted = [zoneinfo.ZoneInfo, zoneinfo.ZoneInfo._unpickle]
    assert ap.loads(ap.dumps(value), trusted=trusted) == value

    monkeypatch.setattr(_safe.Policy, "check", lambda self, names, file: None)
    fromkeys = call(g("builtins", "getattr"), g("collections", "OrderedDict"), s("fromkeys"))
    data = PROTO4 + call(fromkeys, s("ab")) + STOP
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(data, safe=True)
    assert info.value.names == ["collections.OrderedDict.fromkeys"]
    assert ap.loads(data, trusted=["collections.OrderedDict.fromkeys"]) == dict.fromkeys("ab")
    # what a call made is no global: getattr refuses it, whatever the attribute
    on_made = call(g("builtins", "getattr"), call(g("collections", "OrderedDict")), s("keys"))
    with pytest.raises(ap.UntrustedTypeError) as info:
        ap.loads(PROTO4 + on_made + STOP, safe=True)
    assert info.value.names == ["builtins.getattr"]
    data, _ = getattr_of_a_global(marker)
    with pytest.raises(ap.UntrustedTypeError):
        ap.loads(data, trusted=["subprocess.os"])
    assert not os.path.exists(marker)


def _binget(index: int) -> bytes:
    return b"h" + bytes([index])


@pytest.mark.parametrize("shape", ["getattr-chain", "short-getattr-chain", "stack-globals"])
def test_names_built_from_a_small_stream_stay_small(shape):
    """Chained getattr calls, or STACK_GLOBAL over pairs of memoized strings, make names
    that grow with the stream: past 1 KiB a name is not kept (listed as <unresolved>,
    or getattr itself), so the scan's memory stays flat (it grew as n^2: the review
    built 1.9 GB from 172 gzipped bytes)."""
    import tracemalloc

    if shape == "stack-globals":
        k = 30
        strings = b"".join(s(chr(65 + i) * 65536) + MEMOIZE + POP for i in range(k))
        pairs = b"".join(
            _binget(i) + _binget(j) + b"\x93" + POP for i in range(k) for j in range(k)
        )
        data = PROTO4 + strings + pairs + b"N" + STOP
        expected = {UNRESOLVED}
    else:
        n, attr = (300, "a" * 65536) if shape == "getattr-chain" else (2000, "a")
        head = PROTO4 + sg("builtins", "getattr") + MEMOIZE + s(attr) + MEMOIZE + POP + POP
        steps = (_binget(1) + TUPLE2 + REDUCE) * n
        data = head + _binget(0) * n + g("collections", "OrderedDict") + steps + STOP
        expected = {"builtins.getattr"}
    tracemalloc.start()
    try:
        names = ap.get_untrusted_types(gzip.compress(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected <= set(names)
    assert max(map(len, names)) <= 1024
    assert peak < 8 << 20


def test_newobj_of_getattr_is_not_read_as_an_attribute():
    # only REDUCE is how picklers write getattr(<global>, '<name>')
    data = PROTO4 + sg("builtins", "getattr") + g("collections", "OrderedDict") + s("fromkeys")
    data += TUPLE2 + b"\x81" + STOP
    assert "builtins.getattr" in ap.get_untrusted_types(data)


class _Base:
    @classmethod
    def make(cls, value):
        return cls()


class _Derived(_Base):
    pass


def test_an_inherited_classmethod_is_trusted_as_the_object_pickle_names():
    # pickled as getattr(_Derived, 'make'): listed as _Derived.make, and trusting the
    # bound method _Derived.make (whose __qualname__ is _Base.make) means that name
    data = pickle.dumps(_Reduce(_Derived.make, (1,)), protocol=4)
    names = ap.get_untrusted_types(data)
    assert names == [f"{__name__}._Derived", f"{__name__}._Derived.make"]
    assert type(ap.loads(data, trusted=[_Derived, _Derived.make])) is _Derived


# -- nesting that would overflow the C stack when hashed ------------------------------

# Python's tuple hash (and, from 3.12, slice hash) recurses in C without a depth check:
# some 100,000 levels, a byte each, kill the process (SIGSEGV) when hashed as a dict
# key or a set item. The scan refuses nesting past NEST_MAX however it is built, so
# neither it (get_untrusted_types hashes dict-literal keys too) nor the load hashes one.
DEEP = 200_000  # enough to crash
OVER = 3000  # enough to be refused
NONE, DICT_, SETITEM, EMPTY_SET, ADDITEMS = b"N", b"}", b"s", b"\x8f", b"\x90"
FROZENSET, EMPTY_LIST, APPEND, BINPUT = b"\x91", b"]", b"a", b"q"


def _keyed(value: bytes) -> bytes:
    """``{value: None}``: the load hashes ``value``."""
    return PROTO4 + DICT_ + value + NONE + SETITEM + STOP


def _called_chain(func: bytes, wrap: bytes, levels: int) -> bytes:
    """``v = None``, then ``levels`` times ``v = func(<wrap of v>)``, with func in memo 0
    and v passed through memo 1: a few bytes a level."""
    out = func + BINPUT + b"\x00" + POP + NONE
    step = BINPUT + b"\x01" + POP + _binget(0) + wrap + TUPLE1 + REDUCE
    return out + step * levels


DEEP_SHAPES = {
    "tuple1-as-dict-key": _keyed(NONE + TUPLE1 * DEEP),
    "tuple1-under-a-numpy-dtype-name": (
        PROTO4 + g("numpy", "dtype") + POP + DICT_ + NONE + TUPLE1 * OVER + NONE + SETITEM + STOP
    ),
    "tuple1-in-a-set": PROTO4 + EMPTY_SET + MARK + NONE + TUPLE1 * OVER + ADDITEMS + STOP,
    "tuple1-in-a-frozenset": PROTO4 + MARK + NONE + TUPLE1 * OVER + FROZENSET + STOP,
    "tuple-of-a-list": _keyed(
        _called_chain(g("builtins", "tuple"), EMPTY_LIST + _binget(1) + APPEND, OVER)
    ),
    "tuple-of-a-deque": _keyed(
        _called_chain(
            g("builtins", "tuple"),
            g("collections", "deque") + EMPTY_LIST + _binget(1) + APPEND + TUPLE1 + REDUCE,
            OVER,
        )
    ),
    "slices": _keyed(_called_chain(g("builtins", "slice"), _binget(1), OVER)),
    # Tuples of over LITERAL_MAX items, which the scan does not keep, on the way.
    "through-long-tuples": _keyed(
        NONE
        + (BINPUT + b"\x01" + POP + MARK + _binget(1) + NONE * 70_000 + TUPLE + TUPLE1 * 300) * 4
    ),
}


def test_nesting_deeper_than_pickle_writes_is_refused_without_a_crash():
    # In a child process: were a payload to get through, the crash would take it down,
    # not the test run. Each is refused by the scan alone and by a safe load, whole
    # and gzipped; what the refusal names is the nesting.
    script = (
        "import gzip, pickle, sys, arraypickle as ap\n"
        "for name, data in pickle.load(sys.stdin.buffer).items():\n"
        "    for blob in (data, gzip.compress(data, 1)):\n"
        "        for run in (ap.get_untrusted_types, lambda b: ap.loads(b, safe=True)):\n"
        "            try:\n"
        "                run(blob)\n"
        "            except ap.CorruptFileError as exc:\n"
        "                assert 'nested more than 1000 deep' in str(exc), (name, exc)\n"
        "            else:\n"
        "                raise AssertionError(name + ' was not refused')\n"
        "print('refused all')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(DEEP_SHAPES),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr.decode()[-2000:])
    assert b"refused all" in done.stdout


@pytest.mark.parametrize("kind", ["deque", "object-array", "deque-of-tuples"])
def test_deques_and_object_arrays_nested_too_deep_are_refused(kind):
    # numpy's object arrays and collections.deque free their items recursively in C:
    # some 300,000 nested kill the process when freed (after a load, or as a failed
    # one unwinds). Written here by pickle.dumps itself, with its recursion limit raised.
    import collections
    import sys

    def nested(levels: int):
        value = None
        for _ in range(levels):
            if kind == "object-array":
                value, inner = np.empty(1, dtype=object), value
                value[0] = inner
            else:
                value = collections.deque([(value,) if kind == "deque-of-tuples" else value])
        return value

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        # 300 levels count 1,500 (five a level: see _FREE_LEVEL), and stay within what
        # Python 3.12's fixed C recursion limit lets pickle.dumps write (not 400 arrays).
        deep, fine = pickle.dumps(nested(300)), pickle.dumps(nested(150))
        ours = ap.dumps(nested(300))  # its arrays' items pickle in-band, as above
    finally:
        sys.setrecursionlimit(limit)
    for data in (deep, ours):
        with pytest.raises(ap.CorruptFileError, match="nested more than 1000 deep"):
            ap.get_untrusted_types(data)
        with pytest.raises(ap.CorruptFileError, match="nested more than 1000 deep"):
            ap.loads(data, safe=True)
    assert type(ap.loads(fine, safe=True)) is type(pickle.loads(fine))


def test_nesting_that_picklers_write_still_loads():
    value = None
    for _ in range(900):  # under the default recursion limit: what pickle.dumps writes
        value = (value,)
    obj = {value: 1, "slices": slice(1, (2, (3,))), "t": tuple([(1, (2,))] * 3)}
    for data in (pickle.dumps(obj, protocol=2), ap.dumps(obj)):
        assert ap.get_untrusted_types(data) == []
        assert ap.loads(data, safe=True) == obj


def test_a_negative_memo_index_is_refused_by_the_scan():
    for data in (b"\x80\x02Np-1\n.", b"\x80\x02K\x01\x94Np-1\n0h\x00."):
        with pytest.raises(ap.CorruptFileError, match="negative index"):
            ap.get_untrusted_types(data)
        with pytest.raises(ap.CorruptFileError):
            ap.loads(data, safe=True)


def test_an_encoding_is_never_looked_up_by_the_files_choice():
    # str(b, enc), bytes(s, enc), bytearray(s, enc): any encoding but the few Python
    # decodes directly is looked up, importing encodings.<name> (and asking every codec
    # search function the program registered): a module of the file's choosing.
    import sys

    sys.modules.pop("encodings.bz2_codec", None)
    for func, text in (("str", b"abc"), ("bytes", "abc"), ("bytearray", "abc")):
        arg = s(text) if isinstance(text, str) else b"C\x03" + text
        for encoding in ("bz2_codec", "l1", "rot13"):
            data = PROTO4 + call(g("builtins", func), arg, s(encoding)) + STOP
            with pytest.raises(ap.CorruptFileError, match=f"encoding '{encoding}'"):
                ap.loads(data, safe=True)
    assert "encodings.bz2_codec" not in sys.modules
    # What picklers write (bytearray and bytes at protocols 0-2) still loads.
    for obj in (bytearray(b"a\x00\xff"), b"a\x00\xff", "text"):
        for protocol in (0, 1, 2):
            assert ap.loads(pickle.dumps(obj, protocol=protocol), safe=True) == obj


def test_a_huge_range_is_never_handed_to_a_call():
    # deque(range(10**15), 0): 68 bytes, iterated in C for months, deaf to signals.
    ranged = call(g("builtins", "range"), b"L1000000000000000L\n")
    for func, more in (("collections", "deque"), ("builtins", "set"), ("builtins", "tuple")):
        extra = b"J\x00\x00\x00\x00" if func == "collections" else b""
        data = PROTO4 + call(g(func, more), ranged, extra) + STOP
        with pytest.raises(ap.CorruptFileError, match="a range of over 4,294,967,296 items"):
            ap.loads(data, safe=True)
    # A range as a value, however long, is only three ints.
    obj = [range(10**15), range(-(10**30), 10**30, 7)]
    assert ap.loads(pickle.dumps(obj), safe=True) == obj


def _put4(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def _get4(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


# From pickle.dumps(np.empty(1, object), protocol=2): memo 0 _reconstruct, 1 ndarray,
# 2 (0,), 7 b'b', 10 (1,), 14 the object dtype, built as numpy writes it.
_OBJECT_ARRAY_PARTS = (
    b"\x80\x02cnumpy._core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02"
    b"c_codecs\nencode\nq\x03X\x01\x00\x00\x00bq\x04X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07"
    b"\x87q\x08Rq\tK\x01\x85q\ncnumpy\ndtype\nq\x0bX\x02\x00\x00\x00O8q\x0c\x89\x88\x87q\rRq\x0e"
    b"(K\x03X\x01\x00\x00\x00|q\x0fNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x10b00"
)


def _deques_filled_outermost_first(levels: int) -> bytes:
    """levels + 1 empty deques, then deque k given deque k - 1, from the outermost in:
    each append sees an inner deque still empty."""
    out = PROTO4
    for k in range(levels + 1):
        out += g("collections", "deque") + b")" + REDUCE + _put4(k) + POP
    for k in range(levels, 0, -1):
        out += _get4(k) + _get4(k - 1) + APPEND + POP
    return out + _get4(levels) + STOP


def _arrays_built_outermost_first(levels: int) -> bytes:
    """levels + 1 empty object arrays, then array k given [array k - 1] as its state,
    from the outermost in: each state holds an array not yet built."""
    out = _OBJECT_ARRAY_PARTS
    for k in range(levels + 1):
        out += _get4(0) + _get4(1) + _get4(2) + _get4(7) + b"\x87" + REDUCE + _put4(1000 + k) + POP

    def state(item: bytes) -> bytes:
        return (
            MARK + b"K\x01" + _get4(10) + _get4(14) + b"\x89" + EMPTY_LIST + item + APPEND + TUPLE
        )

    for k in range(levels, 0, -1):
        out += _get4(1000 + k) + state(_get4(1000 + k - 1)) + b"b" + POP
    return out + _get4(1000) + state(NONE) + b"b" + POP + _get4(1000 + levels) + STOP


@pytest.mark.parametrize("payload", [_deques_filled_outermost_first, _arrays_built_outermost_first])
def test_containers_filled_after_they_are_held_are_refused(payload):
    # Their nesting is taken when they are placed: filled afterwards, from the outermost
    # in, every level looked shallow (300,000 deques, 20,000 arrays crashed when freed).
    data = payload(300)
    for blob in (data, gzip.compress(data)):
        with pytest.raises(ap.CorruptFileError, match="held by another container already"):
            ap.get_untrusted_types(blob)
        with pytest.raises(ap.CorruptFileError, match="held by another container already"):
            ap.loads(blob, safe=True)


def test_containers_that_hold_themselves_still_load():
    import collections

    queue = collections.deque([1])
    queue.append(queue)
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = arr, queue
    for protocol in (2, 5):
        out = ap.loads(pickle.dumps(arr, protocol=protocol), safe=True)
        assert out[0] is out and out[1][1] is out[1] and out[1][0] == 1


# pickle.dumps(np.zeros((), [('a', 'O')])[()], protocol=2) up to its dtype's BUILD
# (memo 0 scalar, 4 the structured dtype), then memo 15 _reconstruct, 16 ndarray,
# 17 (0,), 22 b'b'.
_VOID_PARTS = (
    b"\x80\x02cnumpy._core.multiarray\nscalar\nq\x00cnumpy\ndtype\nq\x01X\x02\x00\x00\x00V8q\x02"
    b"\x89\x88\x87q\x03Rq\x04(K\x03X\x01\x00\x00\x00|q\x05NX\x01\x00\x00\x00aq\x06\x85q\x07}q\x08"
    b"h\x06h\x01X\x02\x00\x00\x00O8q\t\x89\x88\x87q\nRq\x0b(K\x03h\x05NNNJ\xff\xff\xff\xff"
    b"J\xff\xff\xff\xffK?tq\x0cbK\x00\x86q\rsK\x08K\x01K\x1btq\x0eb00"
    b"cnumpy._core.multiarray\n_reconstruct\nq\x0fcnumpy\nndarray\nq\x10K\x00\x85q\x11"
    b"c_codecs\nencode\nq\x12X\x01\x00\x00\x00bq\x13X\x06\x00\x00\x00latin1q\x14\x86q\x15Rq\x16000"
)


def test_structured_voids_over_object_arrays_count_as_levels():
    # scalar(<dtype [('a', 'O')]>, <0-d object array holding the level below>): the void
    # keeps the array as its base; 20,000 levels crashed when freed.
    step = (
        b"q\x1e0h\x00h\x04h\x0fh\x10h\x11h\x16\x87R"  # an empty 0-d array
        + MARK + b"K\x01)h\x04\x89]h\x1e\x85a" + TUPLE + b"b"  # its item: (level below,)
        + b"\x86R"  # scalar(dtype, array)
    )  # fmt: skip
    data = _VOID_PARTS + NONE + step * 300 + STOP
    with pytest.raises(ap.CorruptFileError, match="nested more than 1000 deep"):
        ap.get_untrusted_types(data)
    with pytest.raises(ap.CorruptFileError, match="nested more than 1000 deep"):
        ap.loads(data, safe=True)
    shallow = ap.loads(_VOID_PARTS + NONE + step * 20 + STOP, safe=True)
    assert shallow["a"][0]["a"][0] is not None
