"""Golden files: every release loads what every earlier format version wrote.

``tests/data/golden/v<N>/`` holds files written once by ``tests/data/make_golden.py``
and the description of what they load to. They are never regenerated: a failure
here means a change broke files users already have.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib

import numpy as np
import pytest

import arraypickle as ap
from conftest import DATA, load_script

GOLDEN = DATA / "golden"

make_golden = load_script(DATA / "make_golden.py")


def golden_files() -> list[tuple[pathlib.Path, str]]:
    found = []
    for version in sorted(GOLDEN.glob("v*")):
        description = json.loads((version / "description.json").read_text(encoding="utf-8"))
        found += [(version, name) for name in description["files"]]
    return found


FILES = golden_files()


def description(version: pathlib.Path) -> dict:
    return json.loads((version / "description.json").read_text(encoding="utf-8"))


def test_there_are_golden_files_of_the_current_format_version():
    from arraypickle import _format

    assert (GOLDEN / f"v{_format.VERSION_MAJOR}" / "description.json").exists()
    for each in ("v1", "v2"):
        names = {name for version, name in FILES if version.name == each}
        assert names == {
            "object.pkl",
            *(f"object.pkl{e}" for e in [".z", ".gz", ".bz2", ".lzma", ".xz"]),
        }
    for version, name in FILES:
        assert (version / name).stat().st_size < 16 << 10  # kept small


def test_golden_v1_covers_both_kinds_of_buffer_record():
    from layout import buffers

    flags = {r.flags for r in buffers((GOLDEN / "v1" / "object.pkl").read_bytes())}
    assert flags == {0, 1}  # by index (array wrappers) and by NEXT_BUFFER (PickleBuffer)


def test_golden_v2_holds_groups_and_a_buffer_record():
    from layout import buffers, records

    data = (GOLDEN / "v2" / "object.pkl").read_bytes()
    kinds = [(r.kind, r.flags) for r in records(data)]
    # Its arrays (all small) in a GROUP record; the PickleBuffer by NEXT_BUFFER, alone.
    assert (b"G", 0) in kinds and (b"B", 1) in kinds
    lengths = [b.length for b in buffers(data)]
    assert 0 in lengths and len(lengths) == len(
        buffers((GOLDEN / "v1" / "object.pkl").read_bytes())
    )


@pytest.mark.parametrize(("version", "name"), FILES, ids=[f"{v.name}/{n}" for v, n in FILES])
def test_golden_file_is_unchanged(version, name):
    data = (version / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == description(version)["files"][name], (
        "golden files are never rewritten: restore this one from version control"
    )


def pick(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def check(loaded, expected, *, mapped=False):
    assert make_golden.describe_content(loaded, mapped=mapped) == expected["content"]
    for first, second in expected["identities"]:
        assert pick(loaded, first) is pick(loaded, second)


@pytest.mark.parametrize(("version", "name"), FILES, ids=[f"{v.name}/{n}" for v, n in FILES])
def test_golden_file_loads(version, name):
    expected = description(version)
    path = version / name
    check(ap.load(path), expected)
    with open(path, "rb") as f:
        check(ap.load(f), expected)
    check(ap.loads(path.read_bytes()), expected)
    check(ap.load(OneByteAtATime(path.read_bytes())), expected)


@pytest.mark.parametrize("mode", ["r", "c"])
@pytest.mark.parametrize("version", sorted(GOLDEN.glob("v*")), ids=lambda v: v.name)
def test_golden_file_memory_maps(version, mode):
    path = version / "object.pkl"
    loaded = ap.load(path, mmap_mode=mode)
    check(loaded, description(version), mapped=True)
    assert isinstance(loaded["fortran"], np.memmap) and loaded["fortran"].flags.f_contiguous
    assert loaded["big_endian"]["i4"].dtype == np.dtype(">i4")  # stays as stored


def test_the_maker_never_regenerates(capsys):
    assert make_golden.main() == 1
    assert "never regenerated" in capsys.readouterr().err


class OneByteAtATime(io.RawIOBase):
    """A non-seekable stream as slow as they come."""

    def __init__(self, data):
        super().__init__()
        self._buf = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        return self._buf.readinto(memoryview(b)[:1])
