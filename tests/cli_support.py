"""Helpers shared by the command-line tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from arraypickle._cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run ``arraypickle ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def info_json(capsys: Any, path: str, *more: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, "info", "--json", path, *more)
    assert code == 0, err
    return json.loads(out)


def run_subprocess(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m arraypickle ARGV`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "arraypickle", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def arrays_of(obj: Any, path: str = "") -> list[tuple[str, np.ndarray]]:
    """Every array in ``obj`` with the path ``arraypickle info`` gives it (dicts, lists,
    tuples, instance attributes and object-array elements)."""
    found: list[tuple[str, np.ndarray]] = []
    if isinstance(obj, np.ndarray):
        found.append((path, obj))
        if isinstance(obj, np.ma.MaskedArray) and obj.mask is not np.ma.nomask:
            found.append((f"{path}.mask", np.asarray(obj.mask)))
        if obj.dtype.hasobject:
            for i, value in enumerate(obj.ravel()):
                found.extend(arrays_of(value, f"{path}[{i}]"))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found.extend(arrays_of(v, f"{path}[{k!r}]"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found.extend(arrays_of(v, f"{path}[{i}]"))
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in vars(obj).items():
            found.extend(arrays_of(v, f"{path}.{k}"))
    return found


def dtype_of(entry: dict[str, Any]) -> np.dtype:
    """The dtype of an array of ``info --json``, from its ``descr``."""
    descr = entry["descr"]
    if isinstance(descr, str):
        return np.dtype(descr)
    return np.lib.format.descr_to_dtype([_tuples(field) for field in descr])


def _tuples(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, list):
        return [_tuples(v) for v in value]
    return value


# The names a file gives each class (numpy 1.x names MaskedArray by its module).
CLASS_NAMES = {
    np.ndarray: {"numpy.ndarray"},
    np.matrix: {"numpy.matrix"},
    np.recarray: {"numpy.rec.recarray", "numpy.recarray", "numpy.core.records.recarray"},
    np.ma.MaskedArray: {"numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray"},
}


def check_against(report: dict[str, Any], loaded: Any, stream: bytes | None) -> None:
    """``report``'s arrays are ``loaded``'s: same paths, classes, dtypes, shapes; and
    the bytes at each offset of ``stream`` (the decompressed file) are the array's."""
    expected = arrays_of(loaded)
    got = report["arrays"]
    assert [a["path"] for a in got] == [p for p, _ in expected]
    for entry, (path, arr) in zip(got, expected, strict=True):
        dtype = dtype_of(entry)
        assert dtype.newbyteorder("=") == arr.dtype.newbyteorder("="), path
        assert tuple(entry["shape"]) == arr.shape, path
        assert entry["nbytes"] == arr.nbytes, path
        names = CLASS_NAMES.get(type(arr))
        if names is not None:
            assert entry["class"] in names, path
        layout = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
        if arr.ndim > 1 and arr.size > 1:
            assert entry["order"] == layout, path
        if stream is not None and entry["offset"] is not None and not dtype.hasobject:
            raw = stream[entry["offset"] : entry["offset"] + entry["nbytes"]]
            as_stored = np.asarray(arr).astype(dtype, copy=False)
            assert raw == as_stored.tobytes(order=entry["order"]), path
