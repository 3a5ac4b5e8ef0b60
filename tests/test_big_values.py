"""Big bytes, bytearray and str values: the pickler writes each payload as a PICKLE
record of its own, which the load reads straight into the object the unpickler makes
(checked before the unpickler gets it), not into a buffer copied after."""

from __future__ import annotations

import io

import numpy as np
import pytest

import arraypickle as ap
from arraypickle._reader import DIRECT_MIN
from arraypickle.testing import Trickle, Unseekable
from layout import records
from peak_rss import PEAK_SCRIPT, run_measured

# Either side of the direct read's threshold, and past the two-thread read's (8 MiB).
SIZES = [DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, 9 << 20]


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def value(kind: str, n: int, seed: int = 0) -> bytes | bytearray | str:
    data = payload(n, seed)
    if kind == "bytearray":
        return bytearray(data)
    if kind == "str":  # latin-1 text: its UTF-8 payload is longer than the str
        return data.decode("latin-1")
    return data


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "str"])
def test_big_values_round_trip(tmp_path, kind, n):
    big = value(kind, n)
    obj = {"before": [1, "x"], "big": big, "again": big, "after": np.arange(5)}
    path = tmp_path / "v.pkl"
    ap.dump(obj, path)
    for threads in (1, 2):
        out = ap.load(path, threads=threads)
        assert type(out["big"]) is type(big) and out["big"] == big
        assert out["again"] is out["big"]  # the memo still shares it
        assert out["before"] == [1, "x"] and out["after"].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("compress", [0, "gzip", "zstd", "lz4"])
@pytest.mark.parametrize("source", ["path", "bytes", "pipe", "trickle"])
def test_big_values_from_every_kind_of_source(tmp_path, compress, source):
    if isinstance(compress, str) and compress not in ap.codecs():
        pytest.skip(f"{compress} is not installed")
    obj = [value("bytes", 3 << 20, 1), value("bytearray", 2 << 20, 2), value("str", 1 << 20, 3)]
    data = ap.dumps(obj, compress=compress)
    path = tmp_path / "v.pkl"
    path.write_bytes(data)
    loaded = {
        "path": lambda: ap.load(path),
        "bytes": lambda: ap.loads(data),
        "pipe": lambda: ap.load(Unseekable(data)),
        "trickle": lambda: ap.load(Trickle(data, most=1 << 16)),
    }[source]()
    assert loaded == obj


@pytest.mark.parametrize("safe", [False, True])
def test_two_objects_in_one_file_object(safe):
    # A direct read stops at its record: the next object's bytes stay in the file.
    first, second = value("bytes", 2 << 20, 4), {"n": value("bytearray", 2 << 20, 5)}
    f = io.BytesIO()
    ap.dump(first, f)
    ap.dump(second, f)
    f.seek(0)
    assert ap.load(f, safe=safe) == first
    assert ap.load(f, safe=safe) == second


def _payload_record(data: bytes) -> tuple[int, int]:
    """(offset, length) of the biggest PICKLE record's payload in a container."""
    big = max((r for r in records(bytes(data)) if r.kind == b"P"), key=lambda r: r.length)
    return big.offset, big.length


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("where", ["first byte", "middle", "last byte"])
def test_a_damaged_big_payload_is_refused(tmp_path, where, threads):
    big = value("bytes", 9 << 20, 6)
    data = bytearray(ap.dumps({"big": big}))
    start, length = _payload_record(data)
    assert length == len(big)
    at = {"first byte": start, "middle": start + length // 2, "last byte": start + length - 1}
    data[at[where]] ^= 0x40
    path = tmp_path / "v.pkl"
    path.write_bytes(data)
    with pytest.raises(ap.CorruptFileError, match="checksum mismatch"):
        ap.load(path, threads=threads)
    with pytest.raises(ap.CorruptFileError, match="checksum mismatch"):
        ap.load(Unseekable(bytes(data)))


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.999])
def test_a_file_cut_inside_a_big_payload_is_refused(tmp_path, keep):
    data = ap.dumps({"big": value("bytes", 3 << 20, 7)})
    start, length = _payload_record(data)
    cut = data[: start + int(length * keep)]
    path = tmp_path / "v.pkl"
    path.write_bytes(cut)
    for load in (lambda: ap.load(path), lambda: ap.load(Unseekable(cut))):
        with pytest.raises(ap.CorruptFileError, match=r"truncated|more than the file holds"):
            load()


def test_verify_and_info_read_big_values(tmp_path):
    path = tmp_path / "v.pkl"
    ap.dump({"big": value("bytes", 3 << 20, 8)}, path)
    from arraypickle._inspect import inspect_path
    from arraypickle._verify import verify

    verify(str(path))  # raises on any damage
    assert inspect_path(str(path)).stream_size == path.stat().st_size


CUT_PIPE = """
import json, sys
import arraypickle as ap
from arraypickle.testing import Unseekable

data = open(sys.argv[1], "rb").read()
for cut in map(int, sys.argv[2:]):
    try:
        ap.load(Unseekable(data[:cut]))
    except ap.CorruptFileError as exc:
        assert "truncated" in str(exc), exc
    else:
        raise SystemExit(f"cut at {cut} loaded")
print(json.dumps({"refused": len(sys.argv) - 2}))
"""


def test_a_big_payload_cut_short_in_a_pipe_is_refused_without_a_crash(tmp_path):
    # Past 4 MiB, pieces of the unpickler's bytes object are hashed on the helper
    # thread; a truncation raised while it still hashed them, and the unpickler freed
    # the object under it (a segfault). Run apart: a crash must fail the test, not pytest.
    path = tmp_path / "v.pkl"
    ap.dump(value("bytes", 24 << 20, 9), path)
    start, _ = _payload_record(path.read_bytes())
    cuts = [start + k * (2 << 20) + 7 for k in range(1, 12)]
    assert run_measured(CUT_PIPE, str(path), *map(str, cuts)) == {"refused": len(cuts)}


CRAFTED_STR = (
    PEAK_SCRIPT
    + """
import arraypickle as ap
from arraypickle._writer import ContainerWriter

out = io.BytesIO()
writer = ContainerWriter(out)
writer.write(b"\\x80\\x05\\x8d" + (2 << 30).to_bytes(8, "little"))  # a 2 GiB str...
writer.write(b"abc")  # ...of which 3 bytes follow, in a record of their own
writer.finish()
data = out.getvalue()
peak = Peak()
try:
    ap.loads(data)
except ap.CorruptFileError as exc:
    assert "truncated" in str(exc), exc
print(json.dumps({"extra": peak.extra(), "size": len(data)}))
"""
)


def test_a_crafted_str_length_costs_no_memory_before_its_bytes_arrive():
    # The str's buffer is allocated at the declared length, but left unwritten: only
    # the bytes that arrive take memory (a zeroed bytearray took the whole 2 GiB).
    measured = run_measured("import io\n" + CRAFTED_STR)
    assert measured["size"] < 1000 and measured["extra"] < 64 << 20, measured
