"""Damaged files: every changed byte and every truncation raises CorruptFileError.

The promise: any truncation or any changed byte in a file arraypickle wrote raises
``CorruptFileError`` naming the file and the record or offset; never wrong data,
never another exception, never a hang. For an uncompressed container it is proved
exhaustively. Inside a codec's stream, a few bytes carry no data (gzip's time stamp,
bzip2's block-size digit, unused bits of the last deflate byte): a change there
loads the very same object, which is allowed; anything else must raise.
"""

from __future__ import annotations

import os
import pickle
import re
import sys

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError
from arraypickle import _format as fmt
from layout import group_members, records
from test_integrity_corpus import (
    COMPRESSIONS,
    OneWay,
    deep_equal,
    dumped,
    small_mixed,
)

# Three different changes of each byte: all bits, the lowest, the highest.
FLIPS = (0xFF, 0x01, 0x80)
WHERE = re.compile(r"offset \d+|record \d+")


def load_from(source: str, data: bytes, tmp_path, **kwargs):
    if source == "bytes":
        return ap.loads(data, **kwargs)
    if source == "stream":
        return ap.load(OneWay(data), **kwargs)
    path = tmp_path / "damaged.pkl"
    path.write_bytes(data)
    return ap.load(path, **kwargs)


def changed_in_place(path, original: bytes):
    """Yield ``(offset, flip)`` after changing one byte of ``path`` in place, in turn."""
    with open(path, "r+b", buffering=0) as f:
        for offset in range(len(original)):
            f.seek(offset)
            f.write(bytes([original[offset] ^ 0xFF]))
            yield offset
            f.seek(offset)
            f.write(original[offset : offset + 1])


def file_name(source: str, tmp_path) -> str:
    return {"bytes": "<bytes>", "stream": "<OneWay>"}.get(source) or repr(
        str(tmp_path / "damaged.pkl")
    )


def outcome(source, data, tmp_path, reference, **kwargs) -> str:
    """'raised' (a well-formed CorruptFileError), or 'same' (an equal object)."""
    try:
        value = load_from(source, data, tmp_path, **kwargs)
    except CorruptFileError as exc:
        message = str(exc)
        assert file_name(source, tmp_path) in message, message
        assert WHERE.search(message), message
        return "raised"
    assert deep_equal(value, reference), "a damaged file loaded different data"
    return "same"


@pytest.fixture(scope="module")
def plain_file() -> bytes:
    return ap.dumps(small_mixed())


# -- uncompressed: exhaustive ---------------------------------------------------------


@pytest.mark.parametrize("source", ["bytes", "stream"])
def test_every_changed_byte_raises(source, plain_file, tmp_path):
    for offset in range(len(plain_file)):
        for flip in FLIPS if source == "bytes" else FLIPS[:1]:
            damaged = bytearray(plain_file)
            damaged[offset] ^= flip
            with pytest.raises(CorruptFileError) as info:
                load_from(source, bytes(damaged), tmp_path)
            assert file_name(source, tmp_path) in str(info.value)
            assert WHERE.search(str(info.value)), (offset, flip, str(info.value))


def test_every_changed_byte_raises_from_a_path(plain_file, tmp_path):
    path = tmp_path / "damaged.pkl"
    path.write_bytes(plain_file)
    for offset in changed_in_place(path, plain_file):
        with pytest.raises(CorruptFileError) as info:
            ap.load(path)
        assert repr(str(path)) in str(info.value)
        assert WHERE.search(str(info.value)), (offset, str(info.value))


def structure(data: bytes) -> dict[str, list[range]]:
    """The byte ranges of a container's parts: header, record headers, padding, ..."""
    parts: dict[str, list[range]] = {"header": [range(fmt.HEADER.size)]}
    offset = fmt.HEADER.size
    while offset < len(data):
        kind, pad, _flags, length, _crc = fmt.RECORD.unpack_from(data, offset)
        name = kind.decode()
        start = offset + fmt.RECORD.size + pad
        parts.setdefault(f"{name} header", []).append(range(offset, offset + fmt.RECORD.size))
        parts.setdefault("padding", []).append(range(offset + fmt.RECORD.size, start))
        parts.setdefault(f"{name} payload", []).append(range(start, start + length))
        offset = start + length + fmt.TRAILER.size
        parts.setdefault(f"{name} checksum", []).append(range(start + length, offset))
    assert offset == len(data)
    return parts


def test_every_value_of_each_kind_of_structural_byte_raises(plain_file):
    """All 255 changes of each byte of the header (magic detection) and a record header."""
    parts = structure(plain_file)
    assert sum(len(r) for ranges in parts.values() for r in ranges) == len(plain_file)
    assert any(len(r) for r in parts["padding"])
    # The rest of each record is covered by a CRC or a checksum: the three changes per
    # byte of the test above stand for all 255 there.
    chosen = [parts["header"][0], parts["B header"][0]]
    for offset in sorted({o for r in chosen for o in r}):
        for value in range(256):
            if value == plain_file[offset]:
                continue
            damaged = bytearray(plain_file)
            damaged[offset] = value
            with pytest.raises(CorruptFileError):
                ap.loads(bytes(damaged))


@pytest.mark.parametrize("source", ["bytes", "path", "stream"])
def test_every_truncation_raises(source, plain_file, tmp_path):
    path = tmp_path / "damaged.pkl"
    path.write_bytes(plain_file)
    for length in reversed(range(len(plain_file))):
        with pytest.raises(CorruptFileError) as info:
            if source == "path":
                os.truncate(path, length)
                ap.load(path)
            else:
                load_from(source, plain_file[:length], tmp_path)
        assert file_name(source, tmp_path) in str(info.value)
        assert length == 0 or WHERE.search(str(info.value)), (length, str(info.value))


def test_truncation_message_names_the_record(plain_file):
    with pytest.raises(CorruptFileError, match=r"truncated: record 0 \('G' at offset 16\)"):
        ap.load(OneWay(plain_file[:100]))
    # When the size is known, the declared length is refused before anything is read.
    with pytest.raises(
        CorruptFileError, match=r"record 0 \('G' at offset 16\) declares \d+ bytes, more than"
    ):
        ap.loads(plain_file[:100])


def test_appended_data_raises_for_paths_and_bytes(plain_file, tmp_path):
    path = tmp_path / "f.pkl"
    path.write_bytes(plain_file + b"\0")
    with pytest.raises(CorruptFileError, match="data follows the object"):
        ap.load(path)
    with pytest.raises(CorruptFileError, match="data follows the object"):
        ap.loads(plain_file + b"x")
    with pytest.raises(CorruptFileError, match="data follows the object"):
        ap.loads(pickle.dumps([1]) + b"x")


def test_objects_back_to_back_still_load_one_by_one_from_a_file(tmp_path):
    path = tmp_path / "several.pkl"
    with open(path, "wb") as f:
        ap.dump([1], f)
        ap.dump(np.arange(3), f)
        pickle.dump("plain", f)
    with open(path, "rb") as f:
        assert ap.load(f) == [1]
        np.testing.assert_array_equal(ap.load(f), np.arange(3))
        assert ap.load(f) == "plain"
        assert f.read() == b""


# -- what verify=False and mmap skip ------------------------------------------------------


def buffer_payload_offsets(data: bytes, trailers: bool = False, gaps: bool = False) -> list[int]:
    """Offsets of the bytes of buffers (and, with ``trailers``, of the checksums of the
    records holding them; with ``gaps``, of the zero bytes between a group's buffers)."""
    found = []
    for record in records(data):
        if record.kind == b"B":
            found += range(record.offset, record.offset + record.length)
        elif record.kind == b"G":
            members = group_members(data, record)
            for member in members:
                found += range(member.offset, member.offset + member.length)
            if gaps:
                table_end = record.offset + 16 + 8 * len(members)
                ends = [table_end] + [m.offset + m.length for m in members[:-1]]
                for end, member in zip(ends, members, strict=True):
                    found += range(end, member.offset)
        else:
            continue
        if trailers:
            end = record.offset + record.length
            found += range(end, end + fmt.TRAILER.size)
    return found


@pytest.mark.parametrize("mode", ["verify=False", "mmap"])
def test_unverified_loads_skip_only_buffer_checksums(mode, plain_file, tmp_path):
    """Outside buffers every change still raises; inside (or in their checksums) it loads."""
    # mmap reads no group's payload, so it checks no gap between its buffers.
    payload = set(buffer_payload_offsets(plain_file, trailers=True, gaps=mode == "mmap"))
    path = tmp_path / "f.pkl"
    path.write_bytes(plain_file)
    kwargs = {"verify": False} if mode == "verify=False" else {"mmap_mode": "r"}
    for offset in changed_in_place(path, plain_file):
        if offset in payload:
            ap.load(path, **kwargs)  # unchecked by request: loads, with the changed byte
        else:
            with pytest.raises(CorruptFileError):
                ap.load(path, **kwargs)


def test_verify_is_keyword_only():
    data = ap.dumps([1])
    with pytest.raises(TypeError):
        ap.loads(data, False)
    assert ap.loads(data, verify=False) == [1]


def test_default_load_catches_a_damaged_buffer(plain_file):
    damaged = bytearray(plain_file)
    damaged[buffer_payload_offsets(plain_file)[5]] ^= 1
    with pytest.raises(CorruptFileError, match=r"record 0 \('G' at offset 16\) is damaged"):
        ap.loads(bytes(damaged))


# -- compressed ---------------------------------------------------------------------------


CODECS = [c for c in COMPRESSIONS if c != "none"]


@pytest.fixture(scope="module")
def compressed_files() -> dict[str, tuple[bytes, object]]:
    out = {}
    for codec in CODECS:
        data = dumped("small_mixed", codec)
        out[codec] = (data, ap.loads(data))
    return out


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("source", ["bytes", "stream"])
def test_compressed_every_truncation_raises(codec, source, compressed_files, tmp_path):
    data, _ = compressed_files[codec]
    for length in range(len(data)):
        with pytest.raises(CorruptFileError) as info:
            load_from(source, data[:length], tmp_path)
        assert file_name(source, tmp_path) in str(info.value)


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_changed_bytes_raise_or_load_the_same(codec, compressed_files, tmp_path):
    """Every offset, three changes each (all 255 in the first 16 bytes): no wrong data."""
    data, reference = compressed_files[codec]
    same_offsets = set()
    for offset in range(len(data)):
        flips = range(1, 256) if offset < 16 else FLIPS
        for flip in flips:
            damaged = bytearray(data)
            damaged[offset] ^= flip
            if outcome("bytes", bytes(damaged), tmp_path, reference) == "same":
                same_offsets.add(offset)
    # The bytes that may change without effect are header fields the codec ignores
    # (gzip's flags, time stamp and OS; bzip2's block size; lzma's dictionary size)
    # and bits deflate or bzip2 never look at: a few percent of the offsets at most.
    assert len(same_offsets - set(range(16))) <= len(data) // 30, sorted(same_offsets)


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_changes_raise_from_streams_and_paths(codec, compressed_files, tmp_path):
    data, reference = compressed_files[codec]
    for offset in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        for source in ("stream", "path"):
            outcome(source, bytes(damaged), tmp_path, reference)


def test_codec_errors_name_the_record_and_offset(compressed_files):
    data, _ = compressed_files["gzip"]
    with pytest.raises(CorruptFileError) as info:
        ap.loads(data[: len(data) // 2])
    message = str(info.value)
    assert "gzip stream is truncated" in message
    assert re.search(r"decompressed offset \d+\), reading .*record \d+", message), message


# -- damaged magics and plain pickles ---------------------------------------------------


@pytest.mark.parametrize("offset", range(8))
def test_damaged_container_magic_is_named(offset, plain_file):
    damaged = bytearray(plain_file)
    damaged[offset] ^= 0x20
    with pytest.raises(CorruptFileError, match=r"container header is damaged.*offset 0"):
        ap.loads(bytes(damaged))


def test_first_bytes_no_pickle_starts_with():
    for head in (b"\x00\x01", b"\x95\x00", b"\x80\x09", b"\xff" * 8):
        with pytest.raises(CorruptFileError, match="not an arraypickle file"):
            ap.loads(head + bytes(20))


class Fussy:
    """A class whose own code fails on load: its error must reach the caller unchanged."""

    def __init__(self):
        self.state = 1

    def __setstate__(self, state):
        raise TypeError("Fussy cannot be restored")


def test_errors_of_the_code_a_plain_pickle_names_propagate():
    with pytest.raises(TypeError, match="Fussy cannot be restored"):
        ap.loads(pickle.dumps(Fussy()))
    with pytest.raises(ModuleNotFoundError):
        ap.loads(b"cno_such_module\nx\n.")


@pytest.mark.parametrize("safe", [False, True])
def test_a_class_gone_from_its_module_raises_attribute_error(safe, monkeypatch):
    # Renamed or moved since the dump: pickle and joblib raise AttributeError, and code
    # that falls back on it (an old model format) must see the same.
    import types

    module = types.ModuleType("ap_gone")
    monkeypatch.setitem(sys.modules, "ap_gone", module)
    Gone = type("Gone", (), {"__module__": "ap_gone"})
    module.Gone = Gone
    for data in (ap.dumps(Gone()), pickle.dumps(Gone())):
        del module.Gone
        kwargs = {"safe": True, "trusted": ["ap_gone.Gone"]} if safe else {}
        with pytest.raises(AttributeError, match="Gone"):
            ap.loads(data, **kwargs)
        module.Gone = Gone
    damaged = pickle.dumps(Gone()).replace(b"Gone", b"G-ne")
    with pytest.raises(ap.CorruptFileError, match="AttributeError"):
        ap.loads(damaged)


def test_errors_of_the_code_an_arraypickle_file_names_propagate():
    with pytest.raises(TypeError, match="Fussy cannot be restored") as info:
        ap.loads(ap.dumps(Fussy()))
    assert info.value.__notes__ == ["(raised while arraypickle loaded <bytes>)"]


class Sealed(Exception):
    """An exception that takes no attributes, notes included."""

    def __setattr__(self, name, value):
        raise TypeError("sealed")


class RaisesSealed:
    def __reduce__(self):
        return _raise, (Sealed,)


def test_an_error_that_refuses_a_note_propagates_as_it_is():
    with pytest.raises(Sealed, match="raised by its own constructor") as info:
        ap.loads(ap.dumps(RaisesSealed()))
    assert not hasattr(info.value, "__notes__")


def test_numpys_own_errors_on_a_damaged_plain_pickle_name_the_file(tmp_path):
    # A masked array's shape made 2**62: numpy.ma's __setstate__ (Python code) calls
    # ndarray's, whose MemoryError propagates as numpy's own, with a note.
    data = pickle.dumps(np.ma.array([1.0, 2.0], mask=[0, 1]), protocol=2)
    assert data.count(b"K\x02\x85") == 1  # the shape (2,): BININT1 2, TUPLE1
    path = tmp_path / "masked.pkl"
    path.write_bytes(
        data.replace(b"K\x02\x85", b"\x8a\x08" + (2**62).to_bytes(8, "little") + b"\x85")
    )
    for safe in (False, True):
        with pytest.raises(MemoryError) as info:
            ap.load(path, safe=safe)
        assert str(path) in info.value.__notes__[0]


class OwnError:
    """A class whose own code raises what the unpickler raises on a damaged stream."""

    def __init__(self, error: type[Exception], where: str) -> None:
        self.error = error
        self.where = where

    def __reduce__(self):
        if self.where == "constructor":
            return _raise, (self.error,)
        return OwnError, (self.error, "nowhere"), {"error": self.error}

    def __setstate__(self, state):
        raise state["error"]("raised by its own __setstate__")


def _raise(error):
    raise error("raised by its own constructor")


@pytest.mark.parametrize("where", ["setstate", "constructor"])
@pytest.mark.parametrize("error", [EOFError, pickle.UnpicklingError])
@pytest.mark.parametrize("writer", ["arraypickle", "arraypickle-gzip", "pickle", "joblib"])
def test_a_classs_own_eof_and_unpickling_errors_are_not_damage(tmp_path, writer, error, where):
    # pickle and joblib let them through; calling the file corrupt would have a cache
    # delete a sound file.
    value = [np.arange(3), OwnError(error, where)]
    path = tmp_path / "f.pkl"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(value, protocol=5))
    elif writer == "joblib":
        pytest.importorskip("joblib").dump(value, path)
    else:
        ap.dump(value, path, compress="gzip" if writer.endswith("gzip") else 0)
    with pytest.raises(error, match="raised by its own") as info:
        ap.load(path)
    assert not isinstance(info.value, ap.ArrayPickleError)
    # The message is the class's own; a note names the file.
    assert info.value.__notes__ == [f"(raised while arraypickle loaded {str(path)!r})"]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_load(protocol):
    value = {"a": [1, 2.5, "x", b"y", None, True], "t": (1,), "s": {3}}
    assert ap.loads(pickle.dumps(value, protocol=protocol)) == value


def test_malformed_plain_pickles_raise_corrupt():
    for data in (
        b"K\x01K\x02R.",  # REDUCE on an int
        b"(I1\nI2\nu.",  # SETITEMS on nothing
        b"]q\x00h\x05.",  # a memo index never stored
        b"\x80\x05\x8e" + b"\xff" * 8,  # BINBYTES8 of an absurd length
        b"\x80\x05\x95" + b"\xff" * 8,  # FRAME of an absurd length
        b"c\x01\x02\nx\n.",  # a module name that is not a name
        b"VAPK\r\n\x1a.",
    ):
        with pytest.raises(CorruptFileError):
            ap.loads(data)


# -- offsets within each record name the record --------------------------------------------


def test_messages_name_file_and_record(tmp_path):
    path = tmp_path / "model.pkl"
    ap.dump({"w": np.arange(1000.0), "name": "m"}, path)
    data = bytearray(path.read_bytes())
    data[200] ^= 1  # inside the buffer payload
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as info:
        ap.load(path)
    assert str(info.value).startswith(repr(str(path)))
    assert "record 0 ('G' at offset 16) is damaged (checksum mismatch)" in str(info.value)


def test_empty_inputs(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    for load in (lambda: ap.load(path), lambda: ap.loads(b""), lambda: ap.load(OneWay(b""))):
        with pytest.raises(CorruptFileError, match="empty"):
            load()


def test_loaded_file_is_closed_after_an_error(tmp_path, plain_file):
    path = tmp_path / "f.pkl"
    path.write_bytes(plain_file[:50])
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(20):
        with pytest.raises(CorruptFileError):
            ap.load(path)
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before + 1


def test_buffers_hashed_on_the_helper_thread_match_hashing_in_line(monkeypatch):
    """Uncompressed dumps hash large buffers on a helper thread: same bytes as in line,
    for contiguous arrays and for the reused chunk buffer of a non-contiguous one."""
    from arraypickle import _writer

    big = np.arange(3_000_000, dtype=np.float64)
    value = [big, big[::3], np.asfortranarray(big.reshape(1000, 3000)), big[:10]]
    threaded = ap.dumps(value)
    monkeypatch.setattr(_writer, "_THREADED_HASH", 1 << 62)
    assert ap.dumps(value) == threaded
    again = ap.loads(threaded)
    assert all(np.array_equal(a, b) for a, b in zip(again, value, strict=True))


def test_a_failing_uncompressed_dump_leaves_no_hashing_thread():
    import threading

    class Full:
        def __init__(self):
            self.written = 0

        def write(self, data):
            self.written += memoryview(data).nbytes
            if self.written > 1 << 20:
                raise OSError("disk full")
            return memoryview(data).nbytes

    with pytest.raises(OSError, match="disk full"):
        ap.dump(np.ones(4_000_000), Full())
    assert not [t for t in threading.enumerate() if t.name == "arraypickle-helper"]
