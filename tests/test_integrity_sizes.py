"""Crafted headers: valid CRCs, absurd lengths. Refused before anything is allocated.

From a file (or bytes) the size is known: a length beyond what the file holds is
refused at once. From a non-seekable stream it is not: records are then read in
bounded pieces, so memory follows the bytes that actually arrive, and the load ends
with "truncated" when they stop. Peak memory is measured in a subprocess.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import CorruptFileError
from arraypickle import _format as fmt
from cli_support import run_cli
from test_integrity_corpus import OneWay, container

ABSURD = [1 << 31, 1 << 40, (1 << 63) - 1, (1 << 64) - 1]
P, B, E = fmt.KIND_PICKLE, fmt.KIND_BUFFER, fmt.KIND_END
G = fmt.KIND_GROUP


def crafted(kind: bytes, length: int, flags: int = 0) -> bytes:
    """A container whose one record declares ``length`` but holds 100 bytes."""
    return container((kind, flags, length, b"\x80" * 100), end=())


@pytest.mark.parametrize("length", ABSURD)
@pytest.mark.parametrize("kind", [P, B, b"X"])
def test_absurd_lengths_from_files_are_refused_before_reading(kind, length, tmp_path):
    data = crafted(kind, length, fmt.FLAG_SKIPPABLE if kind == b"X" else 0)
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    for load in (lambda: ap.loads(data), lambda: ap.load(path)):
        with pytest.raises(CorruptFileError, match=r"declares \d+ bytes, more than the file holds"):
            load()
    with pytest.raises(CorruptFileError, match="more than the file holds"):
        ap.load(path, mmap_mode="r")


@pytest.mark.parametrize("length", ABSURD)
@pytest.mark.parametrize("kind", [P, B])
def test_absurd_lengths_from_streams_end_truncated(kind, length):
    with pytest.raises(CorruptFileError, match=r"truncated|cannot allocate|more than"):
        ap.load(OneWay(crafted(kind, length)))


@pytest.mark.parametrize("kind", [P, B])
def test_absurd_lengths_inside_a_codec_stream(kind):
    out = io.BytesIO()
    writer = ap._plugins.get_registry().codec("gzip").open_writer(out, 1)
    writer.write(crafted(kind, 1 << 40))
    writer.close()
    with pytest.raises(CorruptFileError, match=r"truncated|cannot allocate"):
        ap.loads(out.getvalue())


PEAK_SCRIPT = textwrap.dedent(
    """
    import io, json, resource, sys, time
    sys.path.insert(0, {tests!r})
    import arraypickle as ap
    from test_integrity_corpus import OneWay, container
    from arraypickle import _format as fmt

    kind, length, codec = {kind!r}, {length!r}, {codec!r}
    data = container((kind, 0, length, b"\\x80" * 100), end=())
    if codec:
        out = io.BytesIO()
        w = ap._plugins.get_registry().codec(codec).open_writer(out, 1)
        w.write(data)
        w.close()
        data = out.getvalue()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        ap.load(OneWay(data))
        outcome = "loaded"
    except ap.CorruptFileError as exc:
        outcome = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"outcome": outcome, "extra_kib": after - before,
                      "seconds": time.perf_counter() - start}}))
    """
)


@pytest.mark.parametrize(
    ("kind", "length", "codec"),
    [
        (P, 1 << 34, None),  # 16 GiB of opcodes: below RAM + swap, so it could be allocated
        (B, 1 << 34, None),
        (P, 1 << 44, None),
        (B, 1 << 44, None),
        (P, 1 << 34, "gzip"),
        (B, 1 << 34, "xz"),
    ],
)
def test_absurd_lengths_from_streams_allocate_nothing_big(kind, length, codec, tmp_path):
    tests = str(__import__("pathlib").Path(__file__).parent)
    script = PEAK_SCRIPT.format(tests=tests, kind=kind, length=length, codec=codec)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout)
    assert result["outcome"] != "loaded"
    assert "truncated" in result["outcome"] or "cannot allocate" in result["outcome"]
    assert result["extra_kib"] < 32 * 1024, result  # nothing near the declared size


@pytest.mark.parametrize("size", [10, 1_000_000])  # a group record's, a buffer record's
def test_a_file_cut_inside_a_buffers_padding_is_called_truncated(size, tmp_path):
    arr = np.arange(size, dtype=np.uint8) % 251
    data = ap.dumps(arr)
    pos, kind, pad, _flags, _length = record_headers(data)[0]
    assert kind == (G if size <= 16 << 10 else B)
    payload = pos + fmt.RECORD.size + pad
    assert payload % fmt.ALIGNMENT == 0 and data[payload - 2 : payload] == b"\0\0"
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: payload - 1])
    with pytest.raises(CorruptFileError, match=r"truncated: the padding of record 0 .* remain"):
        ap.load(path)


def test_end_counts_must_match():
    opcodes = b"\x80\x05K\x01."
    good = container((P, 0, len(opcodes), opcodes))
    assert ap.loads(good) == 1
    for counts in [(0, 0), (2, 0), (1, 1)]:
        with pytest.raises(CorruptFileError, match="records are missing"):
            ap.loads(container((P, 0, len(opcodes), opcodes), end=counts))


def test_end_record_of_the_wrong_size():
    opcodes = b"\x80\x05K\x01."
    data = container((P, 0, len(opcodes), opcodes), end=())
    data += fmt.pack_record(E, 0, 0, 8) + bytes(8) + bytes(8)
    with pytest.raises(CorruptFileError, match="END record of the wrong size"):
        ap.loads(data)


def test_unknown_kinds_refused_unless_skippable(tmp_path):
    opcodes = b"\x80\x05K\x01."
    extra = b"future data"
    pickle_record = (P, 0, len(opcodes), opcodes)
    skippable = container((b"X", fmt.FLAG_SKIPPABLE, len(extra), extra), pickle_record)
    assert ap.loads(skippable) == 1
    required = container((b"X", 0, len(extra), extra), pickle_record)
    with pytest.raises(CorruptFileError, match="unknown kind"):
        ap.loads(required)
    # A skipped record's checksum is still checked.
    damaged = bytearray(skippable)
    damaged[damaged.index(extra)] ^= 1
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        ap.loads(bytes(damaged))
    # Mapped loads too (they map buffers unread, but a skipped record is read).
    path = tmp_path / "skip.ap"
    path.write_bytes(skippable)
    assert ap.load(path, mmap_mode="r") == 1
    path.write_bytes(bytes(damaged))
    for mode in ("r", "c", "r+"):
        with pytest.raises(CorruptFileError, match="checksum mismatch"):
            ap.load(path, mmap_mode=mode)


def record_headers(data: bytes) -> list[tuple[int, bytes, int, int, int]]:
    """``(offset, kind, pad, flags, length)`` of each record header in ``data``."""
    out, pos = [], fmt.HEADER.size
    while pos < len(data):
        kind, pad, flags, length = fmt.parse_record(data[pos : pos + fmt.RECORD.size])
        out.append((pos, kind, pad, flags, length))
        pos += fmt.RECORD.size + pad + length + fmt.TRAILER.size
    return out


def with_pad(data: bytes, index: int, pad: int) -> bytes:
    """``data`` with record ``index`` declaring ``pad`` bytes of padding, and holding
    them, its header's CRC valid: a file made so, not damaged."""
    pos, kind, old, flags, length = record_headers(data)[index]
    header = fmt.pack_record(kind, pad, flags, length)
    return data[:pos] + header + bytes(pad) + data[pos + fmt.RECORD.size + old :]


def first_buffers(kinds: list[bytes]) -> int:
    """The index of the first record holding buffers (B or G)."""
    return next(i for i, kind in enumerate(kinds) if kind in (B, G))


@pytest.mark.parametrize("mmap_mode", [None, "r"])
@pytest.mark.parametrize("size", [8, 1 << 20])  # a group record, a buffer record
def test_buffers_off_the_alignment_are_refused(size, mmap_mode, tmp_path):
    """A reader gives out buffers at the 64-byte alignment or not at all."""
    data = ap.dumps(np.arange(size // 8, dtype="f8"))
    kinds = [kind for _pos, kind, *_rest in record_headers(data)]
    index = first_buffers(kinds)
    pad = record_headers(data)[index][2]
    path = tmp_path / "crafted.pkl"
    for wrong in {(pad + 8) % 64, (pad + 63) % 64, pad + 64}:
        path.write_bytes(with_pad(data, index, wrong))
        with pytest.raises(CorruptFileError, match=f"declares {wrong} bytes of padding"):
            ap.load(path, mmap_mode=mmap_mode)
    # Pickle and END records have none.
    for index in (kinds.index(P), kinds.index(E)):
        with pytest.raises(CorruptFileError, match="declares 8 bytes of padding"):
            ap.loads(with_pad(data, index, 8))


@pytest.mark.parametrize("size", [8, 1 << 20])
def test_the_walks_that_read_no_payload_refuse_what_the_load_refuses(size, tmp_path, capsys):
    """``info`` and ``get_untrusted_types`` skip payloads unread, but not the padding
    before them: a file they describe (or clear) is one the load accepts."""
    data = ap.dumps({"a": np.arange(size // 8, dtype="f8")})
    headers = record_headers(data)
    kinds = [kind for _pos, kind, *_rest in headers]
    index = first_buffers(kinds)
    pos, _kind, pad, _flags, _length = headers[index]
    assert pad  # the buffer's header sits at 16: 32 bytes of padding align its payload
    nonzero = bytearray(data)
    nonzero[pos + fmt.RECORD.size + pad - 1] = 1
    wrong = (pad + 8) % 64
    cases = {
        f"declares {wrong} bytes of padding": with_pad(data, index, wrong),
        "declares 3 bytes of padding": with_pad(data, kinds.index(P), 3),  # none allowed
        "padding that is not zero": bytes(nonzero),
    }
    path = tmp_path / "crafted.pkl"
    for problem, crafted in cases.items():
        path.write_bytes(crafted)
        with pytest.raises(CorruptFileError):
            ap.load(path)
        with pytest.raises(CorruptFileError, match=problem):
            ap.get_untrusted_types(path)
        with pytest.raises(CorruptFileError, match=problem):
            ap.get_untrusted_types(OneWay(crafted))  # dropped by reading, not seeking
        code, _out, err = run_cli(capsys, "info", str(path))
        assert code != 0
        assert problem in err
    path.write_bytes(data)
    assert ap.get_untrusted_types(path) == []
    assert run_cli(capsys, "info", str(path))[0] == 0


def test_records_after_end_and_buffers_never_used(tmp_path, capsys):
    opcodes = b"\x80\x05K\x01."
    unused = container((B, 0, 4, b"abcd"), (P, 0, len(opcodes), opcodes))
    with pytest.raises(CorruptFileError, match="buffers were never used"):
        ap.loads(unused)
    twice = container((P, 0, 3, opcodes[:3]), (P, 0, 2, opcodes[3:]), (P, 0, 1, b"."))
    empty_after = container((P, 0, len(opcodes), opcodes), (P, 0, 0, b""))
    for crafted in (twice, empty_after):
        with pytest.raises(CorruptFileError, match=r"a pickle record \(P\) follows the one"):
            ap.loads(crafted)
        with pytest.raises(CorruptFileError, match=r"a pickle record \(P\) follows the one"):
            ap.loads(crafted, safe=True)
        (tmp_path / "crafted.ap").write_bytes(crafted)
        code, _out, err = run_cli(capsys, "verify", str(tmp_path / "crafted.ap"))
        assert code != 0 and "a pickle record (P) follows the one" in err
    with pytest.raises(CorruptFileError, match="opcodes follow the pickle STOP"):
        ap.loads(container((P, 0, len(opcodes) + 1, opcodes + b".")))


def test_crafted_opcodes_with_valid_checksums_raise_corrupt():
    """Only a crafted file has valid checksums over bad opcodes; still a library error."""
    for opcodes in (b"K\x01K\x02R.", b"\x80\x05\x8e" + b"\xff" * 8, b"]h\x09.", b"(u."):
        with pytest.raises(CorruptFileError, match="pickle stream is invalid"):
            ap.loads(container((P, 0, len(opcodes), opcodes)))


class RefersToBuffer:
    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return fmt.rebuild, ("numpy", ("a", np.dtype("f8"), (2,), "C"), self.index, 1)


@pytest.mark.parametrize("index", [0, 5, 1 << 62])
def test_rebuild_referring_to_a_missing_buffer(index):
    opcodes = pickle.dumps(RefersToBuffer(index), protocol=5)
    with pytest.raises(CorruptFileError, match=f"buffer {index} is missing"):
        ap.loads(container((P, 0, len(opcodes), opcodes)))


def test_rebuild_with_a_buffer_of_the_wrong_size():
    opcodes = pickle.dumps(RefersToBuffer(0), protocol=5)
    data = container((B, 0, 4, b"abcd"), (P, 0, len(opcodes), opcodes))
    with pytest.raises(CorruptFileError, match="buffer of 4 bytes"):
        ap.loads(data)


def test_a_huge_lzma_dictionary_is_refused_before_it_is_allocated():
    # A .lzma stream (what arraypickle and joblib write for compress='lzma') whose
    # header declares a 1 GiB dictionary: liblzma reserved it, and a skippable record
    # of zeros decoded through it made a 156 KB file take 1.07 GB of memory to load.
    data = ap.dumps(np.arange(10), compress=("lzma", 1))
    bomb = data[:1] + (1 << 30).to_bytes(4, "little") + data[5:]
    for threads in (1, 2):
        with pytest.raises(ap.ResourceLimitError, match="asks for a dictionary of over 256 MiB"):
            ap.loads(bomb, threads=threads)
    # A damaged .lzma header reads as such a request: the promise of CorruptFileError
    # for any changed byte holds.
    assert issubclass(ap.ResourceLimitError, CorruptFileError)


def test_a_256_mib_lzma_dictionary_is_still_granted():
    data = ap.dumps(np.arange(10), compress=("lzma", 1))
    granted = data[:1] + (256 << 20).to_bytes(4, "little") + data[5:]
    assert ap.loads(granted).tolist() == list(range(10))


def test_the_largest_xz_presets_decode_within_the_limit():
    data = np.random.default_rng(0).integers(0, 4, 1 << 20, dtype=np.uint8)
    for codec in ("xz", "lzma"):
        blob = ap.dumps(data, compress=(codec, 9))
        assert np.array_equal(ap.loads(blob), data)
