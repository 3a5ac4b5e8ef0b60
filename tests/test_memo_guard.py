"""A damaged memo index in a plain pickle or a joblib file is refused before CPython's
C unpickler sizes its memo table to it (one flipped bit: ``b`` BUILD -> ``r``
LONG_BINPUT, whose next four bytes become the index)."""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import pickletools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraypickle as ap
from arraypickle._opcodes import MEMO_SKIP_MAX, OpcodeWalker
from test_integrity_corpus import OneWay
from test_integrity_opcodes import values

BOMB = b"r\xf0\xff\xff\xff"  # LONG_BINPUT 4294967280: 64 GiB of memo table
REFUSED = "stores memo entry"


class State:
    """An object pickled with a state: its BUILD is what one bit turns into a PUT."""

    def __init__(self) -> None:
        self.x = 1


def build_to_long_binput(protocol: int) -> bytes:
    # The int's BININT makes the next four bytes: index 0x7F7F7F4A (34 GB of table).
    data = pickle.dumps([State(), 0x7F7F7F7F], protocol=protocol)
    builds = [pos for op, _, pos in pickletools.genops(data) if op.name == "BUILD"]
    out = bytearray(data)
    out[builds[0]] ^= 0x10  # 'b' -> 'r'
    return bytes(out)


BOMBS = {
    "LONG_BINPUT": b"\x80\x05]" + BOMB + b".",
    "PUT": b"(lp68719476736\n.",
    "BUILD-bit-flip-p2": build_to_long_binput(2),
    "BUILD-bit-flip-p5": build_to_long_binput(5),
}


def load_from(source: str, data: bytes, tmp_path) -> object:
    if source == "bytes":
        return ap.loads(data)
    if source == "stream":  # no peek: the unpickler reads each opcode exactly
        return ap.load(OneWay(data))
    if source == "gzip":
        return ap.loads(gzip.compress(data))
    path = tmp_path / "bomb.pkl"
    path.write_bytes(data)
    return ap.load(path)


@pytest.mark.parametrize("source", ["bytes", "path", "stream", "gzip"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_damaged_memo_index_is_refused(name, source, tmp_path):
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        load_from(source, BOMBS[name], tmp_path)


def test_the_message_names_the_file_and_the_offset(tmp_path):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(BOMBS["LONG_BINPUT"])
    with pytest.raises(ap.CorruptFileError) as info:
        ap.load(path)
    assert str(path) in str(info.value)
    assert "LONG_BINPUT at offset 3 stores memo entry 4,294,967,280" in str(info.value)
    assert "decompressed" not in str(info.value)
    path.write_bytes(gzip.compress(BOMBS["LONG_BINPUT"]))
    with pytest.raises(ap.CorruptFileError) as info:
        ap.load(path)
    assert "at offset 3 " in str(info.value)
    assert str(info.value).endswith("(offsets in the decompressed stream)")


def joblib_with_bomb(path) -> None:
    """A joblib file whose opcodes after its arrays' bytes put a list at a huge index."""
    joblib = pytest.importorskip("joblib")
    joblib.dump([np.arange(1000.0), np.ones(77, dtype=np.int8), "x"], path)
    data = path.read_bytes()
    assert data.endswith(b"e.")  # APPENDS, STOP: the last opcodes, after every array
    # The last frame holds them: it grows by the opcode put before STOP.
    frame = next(
        f
        for f in range(len(data) - 10, 0, -1)
        if data[f] == 0x95 and f + 9 + int.from_bytes(data[f + 1 : f + 9], "little") == len(data)
    )
    length = int.from_bytes(data[frame + 1 : frame + 9], "little") + len(BOMB)
    head = data[:frame] + b"\x95" + length.to_bytes(8, "little") + data[frame + 9 : -1]
    path.write_bytes(head + BOMB + b".")


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_the_guard_follows_a_joblib_file_past_its_arrays(tmp_path, mmap_mode):
    path = tmp_path / "bomb.joblib"
    joblib_with_bomb(path)
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        ap.load(path, mmap_mode=mmap_mode)
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        ap.load(OneWay(path.read_bytes()))


def test_bytes_after_the_stop_are_not_walked():
    # Objects dumped back to back: the first loads; the damage is the second's.
    stream = io.BytesIO(pickle.dumps({"a": 1}) + BOMBS["LONG_BINPUT"])
    assert ap.load(stream) == {"a": 1}
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        ap.load(stream)


def test_verify_false_leaves_the_memo_to_the_unpickler():
    # A sparse index the unpickler accepts (a 128 MiB table), past the guard's bound.
    data = b"\x80\x02]r" + (1 << 22).to_bytes(4, "little") + b"."
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        ap.loads(data)
    assert ap.loads(data, verify=False) == []


@pytest.mark.parametrize("protocol", [0, 2])
def test_a_picklers_numbering_past_the_bound_is_accepted(protocol):
    # Protocols 0 to 3 number every stored object: PUT or LONG_BINPUT past 2**20.
    value = [str(i) for i in range(MEMO_SKIP_MAX + 50_000)]
    data = pickle.dumps(value, protocol=protocol)
    assert ap.loads(data) == value


def test_a_put_line_cut_across_chunks_is_judged():
    walker = OpcodeWalker(strict=False, memo_guard=True)
    walker.feed(b"(lp6871947")
    with pytest.raises(ValueError, match=REFUSED):
        walker.feed(b"6736\n.")


def feed_in_pieces(walker: OpcodeWalker, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        walker.feed(data[start:cut])
        start = cut


@settings(max_examples=150, deadline=None)
@given(values, st.integers(0, pickle.HIGHEST_PROTOCOL), st.lists(st.integers(0, 10_000)))
def test_the_guard_accepts_what_picklers_write(value, protocol, cuts):
    data = pickle.dumps(value, protocol=protocol)
    walker = OpcodeWalker(strict=False, memo_guard=True)
    feed_in_pieces(walker, data, cuts)
    assert walker.stopped
    assert walker.offset == len(data)


def reference(data: bytes) -> str:
    """pickletools' reading of ``data``: 'far' (a memo store past the guard's bound
    comes first), 'invalid' (something else is wrong first) or 'sound'."""
    stores = 0
    with warnings.catch_warnings():  # genops decoding damaged strings complains
        warnings.simplefilter("ignore")
        try:
            for op, arg, pos in pickletools.genops(data):
                if op.name == "FRAME":  # protocols 0 to 3 have none: a changed byte
                    return "invalid"
                if op.name == "PUT" and b"\0" in data[pos : data.index(b"\n", pos)]:
                    return "invalid"  # int() refuses it, C's parser reads it
                if op.name in ("PUT", "LONG_BINPUT"):
                    if arg > 256 + stores + MEMO_SKIP_MAX:
                        return "far"
                    stores += 1
        except Exception:
            return "invalid"
    return "sound"


# Overwrites: any bytes, or a memo store (what a changed opcode byte makes).
blobs = st.one_of(
    st.binary(min_size=1, max_size=6),
    st.binary(min_size=4, max_size=4).map(lambda index: b"r" + index),
    st.integers(0, 2**40).map(lambda index: b"p%d\n" % index),
)


@settings(max_examples=300, deadline=None)
@given(
    values,
    st.sampled_from([0, 1, 2, 3]),
    st.lists(st.tuples(st.integers(0, 10_000), blobs), max_size=3),
    st.lists(st.integers(0, 10_000), max_size=4),
)
def test_the_guard_refuses_every_far_store(value, protocol, edits, cuts):
    data = bytearray(pickle.dumps(value, protocol=protocol))
    for offset, blob in edits:
        offset %= len(data)
        data[offset : offset + len(blob)] = blob
    data = bytes(data)
    walker = OpcodeWalker(strict=False, memo_guard=True)
    verdict = reference(data)
    if verdict == "far":
        with pytest.raises(ValueError, match=REFUSED):
            feed_in_pieces(walker, data, cuts)
    elif verdict == "sound":
        feed_in_pieces(walker, data, cuts)
    else:
        # The unpickler fails before: the guard, walking ahead of it, may refuse too.
        with contextlib.suppress(ValueError):
            feed_in_pieces(walker, data, cuts)


def test_a_put_line_that_goes_on_is_refused_early():
    # Kept whole while it grows, it would be searched again at each chunk: refused.
    walker = OpcodeWalker(strict=False, memo_guard=True)
    walker.feed(b"(lp")
    with pytest.raises(ValueError, match="a line of over 64 bytes"):
        for _ in range(100):
            walker.feed(b"0" * 1000)
    with pytest.raises(ap.CorruptFileError, match="a line of over 64 bytes"):
        ap.loads(b"(lp" + b" " * 100 + b"5\n.")


def test_an_opcode_past_the_end_of_its_frame_is_refused():
    # The C unpickler would drop the frame's last bytes and read the index after it.
    body = b"]0r\x00\x00\x00"
    data = b"\x80\x04\x95" + len(body).to_bytes(8, "little") + body + b"\x04."
    with pytest.raises(ap.CorruptFileError, match="runs past the end of its frame"):
        ap.loads(data)
    nested = b"\x80\x04\x95\x0c" + bytes(7) + b"]\x95\x01" + bytes(7) + b"0."
    with pytest.raises(ap.CorruptFileError, match="a frame begins inside another"):
        ap.loads(nested)


def test_a_put_line_is_read_only_as_picklers_write_it():
    # C's parser stops at a NUL: the line would read as 67108864 (a 1 GiB table).
    with pytest.raises(ap.CorruptFileError, match="PUT at offset 2 with the line"):
        ap.loads(b"(lp67108864\x00\n.")


def test_put_lines_as_c_reads_them_are_judged_as_such():
    # Windows text-mode pickles end lines with CRLF; C's parser takes spaces too.
    assert ap.loads(b"(lp0\r\nI1\r\na.") == [1]
    assert ap.loads(b"(lp0 \nI1\na.") == [1]
    with pytest.raises(ap.CorruptFileError, match=REFUSED):
        ap.loads(b"(lp 68719476736\r\n.")


def test_an_opcode_cut_by_a_joblib_arrays_data_is_refused(tmp_path):
    # The frame holding the wrapper's BUILD goes on with ']r\x00b': a LONG_BINPUT cut
    # by the array's bytes, whose index the unpickler would take from what follows.
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "cut.joblib"
    joblib.dump([np.arange(4, dtype=np.int64)], path, protocol=4)
    data = path.read_bytes()
    length = int.from_bytes(data[3:11], "little")
    body, rest = data[11 : 11 + length], data[11 + length :]
    assert body.endswith(b"ub") and rest.endswith(b"a.")
    body += b"]r\x00b"
    path.write_bytes(data[:3] + len(body).to_bytes(8, "little") + body + rest[:-2] + b"\x04.")
    with pytest.raises(ap.CorruptFileError, match="cut short by data that is not opcodes"):
        ap.load(path)


def test_objects_one_pickler_dumped_in_turn_load_in_turn():
    # A Pickler keeps numbering its memo across dump() calls: the second object's first
    # store is past 2**20; from a file whose position is known, that is no damage.
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)
    pickler.dump([str(i) for i in range(MEMO_SKIP_MAX + 1000)])
    pickler.dump(["next"])
    buf.seek(0)
    assert len(ap.load(buf)) == MEMO_SKIP_MAX + 1000
    assert ap.load(buf) == ["next"]


def test_binstring_lengths_are_read_as_the_unpickler_reads_them():
    # pickletools reads BINSTRING's length signed, CPython's unpickler unsigned: the
    # guard must skip 2**31 bytes, not stop (and let the unpickler run on unguarded).
    walker = OpcodeWalker(strict=False, memo_guard=True)
    walker.feed(b"\x80\x02T\x00\x00\x00\x80" + bytes(100))
    assert not walker.stopped
    assert walker.offset == 107
