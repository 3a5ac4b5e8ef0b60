"""The opcode scanner against the real unpickler: same names, never fewer, bounded memory."""

from __future__ import annotations

import collections
import contextlib
import copyreg
import datetime
import decimal
import gzip
import io
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraypickle as ap
from arraypickle._allowlist import normalize
from arraypickle._names import UNRESOLVED
from arraypickle._scan import OpcodeScanner, ScanError
from arraypickle._scansource import BlockSource
from checks import assert_same


class Stub:
    """What the recording unpickler hands out for every global: accepts anything."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return Stub()

    def __setstate__(self, state):
        pass

    def __getattr__(self, name):
        return lambda *a, **k: None

    def __setitem__(self, key, value):
        pass


class Recorder(pickle.Unpickler):
    """Records every find_class the C unpickler makes; imports nothing."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), buffers=iter(lambda: b"", None))
        self.names: set[str] = set()

    def find_class(self, module, name):
        self.names.add(normalize(module, name))
        return Stub


def scanned(data: bytes) -> set[str]:
    scanner = OpcodeScanner()
    scanner.scan(BlockSource(io.BytesIO(data).read, block=7))  # tiny blocks: every edge
    return scanner.names


class Plain:
    def __init__(self, v):
        self.v = v


class Slotted:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a

    def __getstate__(self):
        return (None, {"a": self.a})


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=300),
    st.sampled_from(
        [
            datetime.date(2020, 1, 2),
            decimal.Decimal("1.5"),
            1j,
            range(3),
            np.float32(2),
            np.dtype("f8"),
            Ellipsis,
            os.path.join,  # a function global from posixpath
        ]
    ),
    st.builds(lambda n: np.arange(n, dtype="i2"), st.integers(0, 5)),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
        st.builds(collections.OrderedDict, st.dictionaries(st.text(max_size=3), inner)),
        st.builds(Plain, inner),
        st.builds(Slotted, inner),
        st.builds(lambda xs: np.array([*xs, None], dtype=object), st.lists(inner, max_size=3)),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, protocol=st.integers(0, 5))
def test_scan_names_exactly_what_the_unpickler_imports(value, protocol):
    data = pickle.dumps(value, protocol=protocol)
    recorder = Recorder(data)
    recorder.load()
    assert scanned(data) == recorder.names


# What the walk keeps as itself: ints (to LONG_KEPT bytes), short strings, None, bools
# and tuples of them, which is what the checks read (shapes, dtype states, names).
literals = st.recursive(
    st.one_of(
        st.integers(-(2**100), 2**100),
        st.sampled_from([0, 255, 256, 65535, 65536, -1, 2**31 - 1, -(2**31), 2**31]),
        st.text(max_size=300),  # past 255: BINUNICODE; lone surrogates included
        st.sampled_from([None, True, False, "", "name"]),
    ),
    lambda inner: st.lists(inner, max_size=5).map(tuple),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(value=literals, protocol=st.integers(0, 5), block=st.sampled_from([1, 2, 3, 7, 1 << 20]))
def test_the_walk_keeps_literals_as_the_unpickler_makes_them(value, protocol, block):
    """The walk's shortcuts for common opcodes (short strings, small ints, memo reads,
    small tuples) give what the general case gives, across every block boundary."""
    shared = ("shared", value)  # the same objects twice: the second time from the memo
    data = pickle.dumps((shared, shared, value), protocol=protocol)
    scanner = OpcodeScanner()
    scanner.scan(BlockSource(io.BytesIO(data).read, block=block))
    assert scanner.result == pickle.loads(data)


def _big_memo_index(data: bytes) -> bool:
    """Whether the stream PUTs at a huge memo index (the C unpickler would then size
    its memo table to it: gigabytes, so the comparison is not run)."""
    with warnings.catch_warnings():  # genops decoding damaged strings complains
        warnings.simplefilter("ignore")
        try:
            for op, arg, _ in pickletools.genops(data):
                if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > 100_000:
                    return True
        except Exception:
            pass  # genops stops where the unpickler would fail too
    return False


def _sound(data: bytes) -> None:
    try:
        names = scanned(data)
    except ScanError:
        return  # refused as corrupt: fail closed
    if _big_memo_index(data):
        return
    recorder = Recorder(data)
    with contextlib.suppress(Exception):
        recorder.load()
    if UNRESOLVED not in names:
        assert recorder.names <= names, data


@settings(max_examples=200, deadline=None)
@given(
    value=values,
    protocol=st.integers(0, 5),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_scan_is_sound_on_mutated_streams(value, protocol, edits):
    """Whatever the bytes, every global the unpickler would import is listed (or the
    scan refuses the stream, or reports <unresolved>)."""
    data = bytearray(pickle.dumps(value, protocol=protocol))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    _sound(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_scan_is_sound_on_random_bytes(data):
    _sound(b"\x80\x04" + data)


@pytest.mark.parametrize(
    ("data", "at"),
    [
        (b"\x80\x02\x85.", 2),  # TUPLE1 on an empty stack (PROTO is opcode 1)
        (b"\x80\x02K\x01(\x86.", 4),  # TUPLE2 with nothing above the MARK
    ],
)
def test_underflow_names_the_opcode(data, at):
    with pytest.raises(ScanError, match=f"underflow at opcode {at}$"):
        scanned(data)


def test_scanner_errors_are_scan_errors():
    for data in [b"", b"\x80\x04", b"\xff.", b"0.", b"\x80\x04\x8c\x05ab", b"(\x93."]:
        with pytest.raises(ScanError):
            scanned(data)
    with pytest.raises(ap.CorruptFileError):
        ap.loads(b"\x80\x04\x8c\x05ab", safe=True)
    assert ap.get_untrusted_types(b"cos\nsystem\n.") == ["os.system"]


class CountingFile(io.RawIOBase):
    """A seekable file that counts the bytes actually read."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        return self._f.seek(pos, whence)

    def tell(self):
        return self._f.tell()

    def readinto(self, b):
        n = self._f.readinto(b)
        self.bytes_read += n
        return n


def test_container_buffers_are_skipped_unread():
    blob = ap.dumps({"big": np.ones(2_000_000), "evil": subprocess.Popen})
    f = CountingFile(blob)
    assert ap.get_untrusted_types(f) == ["subprocess.Popen"]
    assert f.bytes_read < 10_000 < len(blob)


def test_big_inband_bytes_are_skipped_unread():
    blob = pickle.dumps([b"\x00" * 5_000_000, subprocess.Popen], protocol=4)
    f = CountingFile(blob)
    assert ap.get_untrusted_types(f) == ["subprocess.Popen"]
    assert f.bytes_read < 3 << 20  # one block, not the payload


def test_protocol_0_lines_longer_than_the_line_cap_are_skipped():
    # Protocol 0 writes strings (and numpy's array bytes) as one line each; lines
    # past LINE_MAX (1 MiB) are data, skipped unread, not a truncated stream.
    value = {"s": "x" * 3_000_000, "a": np.arange(300_000.0), "n": 10**4000}
    blob = pickle.dumps([value, subprocess.Popen], protocol=0)
    assert ap.get_untrusted_types(blob) == ["subprocess.Popen"]
    assert ap.get_untrusted_types(io.BytesIO(blob)) == ["subprocess.Popen"]
    safe = ap.loads(pickle.dumps(value, protocol=0), safe=True)
    assert safe["s"] == value["s"] and safe["n"] == value["n"]
    np.testing.assert_array_equal(safe["a"], value["a"])
    cut = pickle.dumps(value, protocol=0)[:2_000_000]  # inside the long line
    with pytest.raises(ap.CorruptFileError, match="newline"):
        ap.get_untrusted_types(cut)


@pytest.mark.parametrize("compress", ["gzip", "bz2", "xz", "lzma", "zlib"])
def test_compressed_forms(compress):
    obj = {"a": np.arange(100), "p": subprocess.Popen}
    assert ap.get_untrusted_types(ap.dumps(obj, compress=compress)) == ["subprocess.Popen"]
    assert ap.get_untrusted_types(gzip.compress(pickle.dumps(obj))) == ["subprocess.Popen"]


def test_missing_codec_is_reported(monkeypatch):
    from arraypickle import _plugins

    data = b"\x04\x22\x4d\x18" + b"\x00" * 20  # lz4 frame magic
    monkeypatch.setenv(_plugins.DISABLE_ENV, "lz4")
    _plugins.reset()
    monkeypatch.setattr(_plugins, "_registry", None)  # rebuilt again after the test
    with pytest.raises(ap.UnknownCodecError, match="arraypickle-lz4"):
        ap.get_untrusted_types(data)


@pytest.mark.slow
def test_scan_memory_is_bounded(tmp_path):
    """Scanning 200 MB files (arrays in a container, and in-band in a plain pickle)
    raises the peak RSS of a fresh process by a few MB at most."""
    write = textwrap.dedent(
        f"""
        import pickle, numpy as np, arraypickle as ap
        big = np.ones(25_000_000)
        ap.dump({{"a": big, "b": [1] * 10}}, {str(tmp_path / "c.apk")!r})
        ap.dump({{"a": big}}, {str(tmp_path / "c.apk.gz")!r}, compress=("gzip", 1))
        with open({str(tmp_path / "p.pkl")!r}, "wb") as f:
            pickle.dump({{"a": big}}, f, protocol=4)
        """
    )
    subprocess.run([sys.executable, "-c", write], check=True)
    measure = textwrap.dedent(
        f"""
        import resource, arraypickle as ap
        ap.get_untrusted_types(b"N.")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name in ("c.apk", "c.apk.gz", "p.pkl"):
            assert ap.get_untrusted_types({str(tmp_path)!r} + "/" + name) == []
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 24 << 20


# -- joblib files: a pickle stream interrupted by array bytes ----------------------------

JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


def _joblib_files():
    from conftest import JOBLIB_COMPAT

    if not JOBLIB_COMPAT.is_dir():
        return []
    return sorted(
        p.name
        for p in JOBLIB_COMPAT.iterdir()
        if p.name.startswith("joblib_0.1")
        and "_compressed_" not in p.name
        and not p.name.endswith((".lz4", ".npy", ".z"))
    )


@pytest.mark.skipif(
    not _joblib_files(), reason="the joblib-compat corpus is not beside the project"
)
@pytest.mark.parametrize("name", _joblib_files())
def test_joblib_files_are_walked_past_their_arrays(name):
    from conftest import JOBLIB_COMPAT

    path = JOBLIB_COMPAT / name
    # joblib's wrappers are read by arraypickle's own joblib loader: nothing to trust.
    assert ap.get_untrusted_types(path) == []
    loaded = ap.load(path, safe=True)
    assert loaded[0].tolist() == list(range(5)) and type(loaded[4]) is np.matrix


class FakeWrapper:
    """Pickles like joblib's NumpyArrayWrapper (NEWOBJ, then BUILD with its state)."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, (FakeWrapper,), self.state)


def _joblib_like(state: dict, tail: bytes) -> bytes:
    """A wrapper pickled the way joblib does it, then ``tail`` (array data), then STOP."""
    head = pickle.dumps([FakeWrapper(state)], protocol=3)
    ours = f"c{__name__}\nFakeWrapper\n".encode()
    assert head.count(ours) == 1 and head.endswith(b"a.")  # BUILD, APPEND, STOP
    head = head.replace(ours, b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n")
    return head[:-2] + tail + b"a."


def test_joblib_raw_bytes_do_not_derail_the_walk():
    arr = np.array([ord("c"), 10, 10, 46], dtype="u1")  # bytes that look like opcodes
    state = {
        "subclass": np.ndarray,
        "shape": (2, 2),
        "order": "C",
        "dtype": arr.dtype,
        "allow_mmap": True,
    }
    data = _joblib_like(state, arr.tobytes())
    assert ap.get_untrusted_types(data) == []
    renamed = data.replace(b"NumpyArrayWrapper", b"NumpyArrayWrappex")
    assert JOBLIB_WRAPPER[:-1] + "x" in ap.get_untrusted_types(renamed)
    aligned = dict(state, numpy_array_alignment_bytes=16)
    data = _joblib_like(aligned, b"\x03" + b"\xff" * 3 + arr.tobytes())
    assert ap.get_untrusted_types(data) == []
    np.testing.assert_array_equal(ap.loads(data, safe=True)[0], arr.reshape(2, 2))


def test_joblib_nested_object_array_streams_are_scanned(tmp_path):
    """The nested pickle of an object array (GHSA-m62q-453p-gv66's shape) is walked too."""
    marker = str(tmp_path / "pwned")

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    nested = pickle.dumps(np.array([Evil()], dtype=object), protocol=2)
    state = {
        "subclass": np.ndarray,
        "shape": (1,),
        "order": "C",
        "dtype": np.dtype(object),
        "allow_mmap": False,
    }
    data = _joblib_like(state, nested)
    assert ap.get_untrusted_types(data) == [f"{os.system.__module__}.system"]
    with pytest.raises(ap.UntrustedTypeError, match="system"):
        ap.loads(data, safe=True)
    assert not os.path.exists(marker)


def test_joblib_wrapper_without_a_readable_size_is_refused():
    state = {"shape": "nonsense", "dtype": np.dtype("f8")}
    with pytest.raises(ap.CorruptFileError, match="joblib"):
        ap.get_untrusted_types(_joblib_like(state, b""))


# -- memo indices far ahead: CPython's C unpickler would allocate for them -----------


def _build_made_long_binput() -> bytes:
    """What one flipped bit (0x62 -> 0x72) makes of the first BUILD in a protocol 2
    stream of two arrays: a LONG_BINPUT whose index is the next four bytes."""
    data = bytearray(pickle.dumps([np.arange(3), np.ones(2)], protocol=2))
    at = next(pos for op, _, pos in pickletools.genops(bytes(data)) if op.name == "BUILD")
    data[at] ^= 0x10
    return bytes(data)


@pytest.mark.parametrize(
    "stream",
    [
        b"\x80\x05]r\xf0\xff\xff\xff.",  # LONG_BINPUT 4294967280: 64 GiB of memo
        b"(lp68719476736\n.",  # PUT, protocol 0
        _build_made_long_binput(),
    ],
    ids=["LONG_BINPUT", "PUT", "BUILD-to-LONG_BINPUT"],
)
def test_a_memo_index_far_ahead_is_refused_before_anything_runs(stream, tmp_path):
    path = tmp_path / "f.pkl"
    path.write_bytes(stream)
    with pytest.raises(ap.CorruptFileError, match="memo entries stored"):
        ap.load(path, safe=True)
    with pytest.raises(ap.CorruptFileError, match="memo entries stored"):
        ap.get_untrusted_types(path)


def test_memo_indices_a_pickler_writes_are_accepted():
    # protocol 2 numbers its entries with BINPUT then LONG_BINPUT past 255
    value = [[i] for i in range(1000)]
    stream = pickle.dumps(value, protocol=2)
    assert b"r" in stream
    assert ap.loads(stream, safe=True) == value


def test_a_joblib_wrapper_declaring_more_than_a_file_holds(tmp_path):
    # The scan seeked past it: a bare ValueError (path) or OverflowError (bytes).
    joblib_pickle = pytest.importorskip("joblib.numpy_pickle")
    wrapper = joblib_pickle.NumpyArrayWrapper.__new__(joblib_pickle.NumpyArrayWrapper)
    wrapper.__dict__.update(
        subclass=np.ndarray,
        shape=(1 << 40, 1 << 40),
        order="C",
        dtype=np.dtype("f8"),
        allow_mmap=False,
    )
    data = pickle.dumps(wrapper, protocol=2)
    path = tmp_path / "huge.pkl"
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(ap.CorruptFileError, match=r"declaring .* bytes of array data"):
            ap.get_untrusted_types(source)
    with pytest.raises(ap.CorruptFileError):
        ap.load(path, safe=True)


@pytest.mark.parametrize("compress", [0, "gzip", "xz"])
def test_a_seekable_file_is_left_where_it_was_for_the_load(tmp_path, compress):
    # Check, then load: objects back to back, compressed or not, a plain pickle last.
    objs = [{"a": np.arange(300_000.0), "c": collections.Counter("ab")}, {"b": [1, 2]}]
    path = tmp_path / "several.bin"
    with open(path, "wb") as f:
        for obj in objs:
            ap.dump(obj, f, compress=compress)
        pickle.dump(datetime.date(2021, 3, 4), f, protocol=5)
    for f in (open(path, "rb"), io.BytesIO(path.read_bytes())):  # noqa: SIM115
        with f:
            for obj in objs:
                at = f.tell()
                names = ap.get_untrusted_types(f)
                assert f.tell() == at
                assert_same(ap.load(f, safe=True, trusted=names), obj)
            at = f.tell()
            assert ap.get_untrusted_types(f) == [] and f.tell() == at
            assert ap.load(f, safe=True) == datetime.date(2021, 3, 4)
    cut = ap.dumps(objs[0], compress=compress)
    damaged = io.BytesIO(b"abc" + cut[: len(cut) // 2])
    damaged.seek(3)
    with pytest.raises(ap.CorruptFileError):  # a failed scan leaves it there too
        ap.get_untrusted_types(damaged)
    assert damaged.tell() == 3


@pytest.mark.parametrize("length", [2**62, 2**63 + 5, 2**64 - 1])
def test_a_length_no_file_holds_is_refused_by_the_scan(tmp_path, length):
    # The scan seeks past big data in a seekable file: a damaged 8-byte length made
    # the seek raise OSError, OverflowError or ValueError, outside the library's errors.
    import struct

    data = b"\x80\x05\x8e" + struct.pack("<Q", length) + b"xyz."
    path = tmp_path / "long.pkl"
    path.write_bytes(data)
    for source in (data, io.BytesIO(data), path):
        with pytest.raises(ap.CorruptFileError, match="truncated"):
            ap.get_untrusted_types(source)


def test_joblibs_zlib_framing_inside_a_codec_stream_is_damage_for_the_scan_too():
    # load refused it; the scan read the framed bytes as a pickle of its own.
    import gzip

    nested = gzip.compress(b"ZF0x" + bytes(20))
    for attempt in (lambda: ap.loads(nested), lambda: ap.get_untrusted_types(io.BytesIO(nested))):
        with pytest.raises(ap.CorruptFileError, match="nested in compressed data"):
            attempt()


@pytest.mark.parametrize("cut", [8, 40, 41])
def test_the_scan_reads_a_container_to_its_end_as_a_load_does(cut):
    # The opcodes end at STOP before the END record: a file cut after them was
    # scanned as sound, where load(safe=True) refused it.
    data = ap.dumps({"x": [1, 2]})
    with pytest.raises(ap.CorruptFileError, match="truncated"):
        ap.load(io.BytesIO(data[:-cut]), safe=True)
    with pytest.raises(ap.CorruptFileError, match="truncated"):
        ap.get_untrusted_types(io.BytesIO(data[:-cut]))


def test_the_scan_keeps_nothing_per_buffer_record():
    # A crafted file of many empty buffers: info lists them, the scan only counts them.
    import tracemalloc

    from arraypickle._writer import ContainerWriter

    out = io.BytesIO()
    writer = ContainerWriter(out)
    for _ in range(50_000):
        writer.write_array(np.empty(0, np.uint8), "C")
    writer.write(pickle.dumps(None, protocol=5))
    writer.finish()
    data = out.getvalue()
    tracemalloc.start()
    try:
        assert ap.get_untrusted_types(io.BytesIO(data)) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
