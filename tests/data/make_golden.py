"""Write the golden files of this format version.

Run once per format version; never regenerate existing files.

    python tests/data/make_golden.py

Golden files are the promise that every later release loads what earlier releases
wrote: ``tests/test_golden.py`` loads each one and compares it with the description
frozen beside it. So this script only ever adds a directory ``golden/v<N>/`` for a
format version ``N`` that has none yet; it refuses to touch an existing one. If a
change to arraypickle makes an old golden file fail, the change is what is wrong.

Each version directory holds one object written uncompressed (``object.pkl``) and
with each codec of the standard library (``object.pkl.z``, ``.gz``, ``.bz2``,
``.lzma``, ``.xz``), and ``description.json``: the SHA-256 of every file, and a
description of the loaded object (classes, dtypes, shapes, layouts, and a SHA-256
of every array's values).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
import shutil
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
CODECS = {"object.pkl": 0, "object.pkl.z": "zlib", "object.pkl.gz": "gzip"}
CODECS |= {"object.pkl.bz2": "bz2", "object.pkl.lzma": "lzma", "object.pkl.xz": "xz"}


def build(workdir: pathlib.Path) -> dict:
    """The representative object: every dtype family, subclasses, nesting, views.

    Deterministic (no random numbers) and small, so each file stays a few KB. No
    long double (its size differs between platforms) and no class defined by the
    tests (a golden file must load without them).
    """
    base = np.arange(60, dtype=np.float64).reshape(6, 10) / 8
    ints = {t: (np.arange(-3, 5) * 37).astype(t) for t in ["i1", "i2", "i4", "i8"]}
    ints |= {t: (np.arange(8) * 31).astype(t) for t in ["u1", "u2", "u4", "u8"]}
    floats = {t: (np.arange(-2, 6) / 3).astype(t) for t in ["f2", "f4", "f8"]}
    floats["f8"][:3] = [np.nan, np.inf, -0.0]
    inner = np.dtype([("x", "<u1"), ("y", ">u2")])
    struct_dtype = np.dtype([("id", "<i4"), ("pos", ">f8", (2,)), ("tag", inner), ("name", "S3")])
    structured = np.zeros(4, dtype=struct_dtype)
    structured["id"] = [1, 2, 3, 4]
    structured["pos"] = np.arange(8).reshape(4, 2) / 2
    structured["tag"]["x"], structured["tag"]["y"] = [5, 6, 7, 8], [256, 257, 258, 65535]
    structured["name"] = [b"abc", b"de", b"", b"xyz"]
    memmap = np.memmap(workdir / "source.dat", dtype="<i2", mode="w+", shape=(3, 4))
    memmap[:] = np.arange(12).reshape(3, 4)
    return {
        "bool": np.array([True, False, True]),
        "ints": ints,
        "floats": floats,
        "complex": {"c8": (np.arange(4) + 1j).astype("c8"), "c16": np.array([1 - 2j, np.nan])},
        "datetime": {
            "M8[D]": np.array(["2020-02-29", "NaT", "1969-12-31"], dtype="M8[D]"),
            "M8[ns]": np.array([0, 10**18, -1], dtype="M8[ns]"),
            "m8[s]": np.array([1, -1, 86400], dtype="m8[s]"),
            "m8[us]": np.array(["NaT", 5], dtype="m8[us]"),
        },
        "big_endian": {
            "i4": np.arange(6, dtype=">i4").reshape(2, 3),
            "f8_F": np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3)),
            "U": np.array(["ab", "ĉ"], dtype=">U2"),
            "M8": np.array([1, 2], dtype=">M8[ms]"),
        },
        "structured": structured,
        "structured_nested_subarray": np.ones(2, dtype=[("m", [("a", ">i2")], (2,))]),
        "strings": {"U": np.array(["", "naïve", "日本"]), "S": np.array([b"a\x00b", b"cd"])},
        "void": np.frombuffer(bytes(range(16)), dtype="V4").copy(),
        "objects": np.array([1, "two", None, (3.0,)], dtype=object),
        "zero_d": np.array(2.5),
        "zero_d_big_endian": np.array(-7, dtype=">i8"),
        "empty": np.zeros((0, 3)),
        "empty_F": np.zeros((2, 0), order="F", dtype=">u4"),
        "fortran": np.asfortranarray(base),
        "strided": base[::2, ::-3],
        "transposed_slice": base[1:5, ::2].T,
        "broadcast": np.broadcast_to(np.arange(4, dtype=np.int16), (3, 4)),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "masked": np.ma.array([1.5, 2.5, 3.5], mask=[0, 1, 0], fill_value=-1.0),
        "masked_hard": np.ma.array(np.arange(4), mask=[1, 0, 0, 1], hard_mask=True),
        "recarray": np.rec.fromarrays([np.arange(3), np.arange(3) / 4], names="i,f"),
        "memmap": memmap,
        "same_array": ints["i8"],
        "nested": [{"deep": (base[0], [np.float32(1.5), np.int64(-3), np.datetime64("2001")])}],
        "scalars": [1, -(2**70), 2.5, float("nan"), 1 + 2j, True, None, "text", b"\x00\xff"],
        "pickle_buffer": pickle.PickleBuffer(bytearray(b"out of band, by NEXT_BUFFER" * 3)),
        "sets": [frozenset({1, 2, 3}), {"a"}],
    }


# -- the description ------------------------------------------------------------------


# numpy 1.x's names of classes whose numpy 2 names the descriptions hold.
_NUMPY2_NAMES = {
    "numpy.ma.core.MaskedArray": "numpy.ma.MaskedArray",
    "numpy.recarray": "numpy.rec.recarray",
}


def _class(obj: object) -> str:
    cls = type(obj)
    name = f"{cls.__module__}.{cls.__qualname__}"
    return _NUMPY2_NAMES.get(name, name)


def _leaf_bytes(arr: np.ndarray) -> bytes:
    """An array's values as bytes, field by field (padding is not a value)."""
    if arr.dtype.fields is None:
        return np.ascontiguousarray(arr).tobytes()
    return b"".join(_leaf_bytes(arr[name]) for name in arr.dtype.names)


def _little_endian(arr: np.ndarray) -> np.ndarray:
    """``arr`` with little-endian values, so descriptions match on every platform."""
    dtype = arr.dtype.newbyteorder("<")
    return arr if dtype == arr.dtype else arr.astype(dtype)


def describe(obj: object, *, mapped: bool = False) -> object:
    """A JSON-able description of a loaded object, equal for equal loads.

    Dtypes and values are described little-endian whatever the platform and the
    stored order. With ``mapped``, the description of a memory-mapped load is brought
    to that of a normal load (np.memmap reads as np.ndarray). Keep this function
    stable: the descriptions of old versions were made with it.
    """
    if isinstance(obj, np.ma.MaskedArray):
        mask = obj.mask
        return {
            "kind": "masked",
            "class": _class(obj),
            "data": describe(np.ma.getdata(obj), mapped=mapped),
            "mask": None if mask is np.ma.nomask else describe(np.asarray(mask), mapped=mapped),
            "fill_value": describe(obj.fill_value.item()),
            "hard_mask": bool(obj.hardmask),
        }
    if isinstance(obj, np.ndarray):
        cls = "numpy.ndarray" if mapped and type(obj) is np.memmap else _class(obj)
        if obj.dtype.hasobject:
            items = [describe(x) for x in obj.reshape(-1)]
            return {"kind": "objects", "class": cls, "shape": list(obj.shape), "items": items}
        obj = _little_endian(obj)
        layout = "C" if obj.flags.c_contiguous else "F" if obj.flags.f_contiguous else "-"
        return {
            "kind": "array",
            "class": cls,
            "dtype": json.loads(json.dumps(np.lib.format.dtype_to_descr(obj.dtype))),
            "shape": list(obj.shape),
            "layout": layout,
            "sha256": hashlib.sha256(_leaf_bytes(np.asarray(obj))).hexdigest(),
        }
    if isinstance(obj, np.generic):
        return {"kind": "numpy scalar", "dtype": obj.dtype.str, "hex": obj.tobytes().hex()}
    if isinstance(obj, dict):
        items = [[describe(k), describe(v, mapped=mapped)] for k, v in obj.items()]
        return {"kind": "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"kind": type(obj).__name__, "items": [describe(x, mapped=mapped) for x in obj]}
    if isinstance(obj, (set, frozenset)):
        items = sorted((describe(x) for x in obj), key=json.dumps)
        return {"kind": type(obj).__name__, "items": items}
    if isinstance(obj, (bytes, bytearray)):
        return {"kind": type(obj).__name__, "hex": obj.hex()}
    if isinstance(obj, (float, complex)):
        return {"kind": type(obj).__name__, "repr": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, str)):
        return {"kind": type(obj).__name__, "value": obj}
    raise TypeError(f"no description for {type(obj)}")


def describe_content(loaded: dict, *, mapped: bool = False) -> dict:
    """The description of the golden object as loaded.

    ``pickle_buffer`` comes back as whatever buffer the loader handed the unpickler
    (as with ``pickle.loads(..., buffers=...)``): only its bytes are part of the promise.
    """
    loaded = dict(loaded)
    raw = bytes(memoryview(loaded.pop("pickle_buffer")).cast("B"))
    found = describe(loaded, mapped=mapped)
    found["pickle_buffer_sha256"] = hashlib.sha256(raw).hexdigest()
    return found


IDENTITIES = [[["same_array"], ["ints", "i8"]]]


def _write(ap, target: pathlib.Path, version: int) -> dict:
    from checks import assert_same

    with tempfile.TemporaryDirectory() as tmp:
        obj = build(pathlib.Path(tmp))
        files = {}
        for name, compress in CODECS.items():
            path = target / name
            ap.dump(obj, path, compress=(compress, 6) if compress else 0)
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        loaded = ap.load(target / "object.pkl")
        without_buffer = {k: v for k, v in obj.items() if k != "pickle_buffer"}
        assert_same({k: v for k, v in loaded.items() if k != "pickle_buffer"}, without_buffer)
        return {
            "format_version": version,
            "written_by": {"arraypickle": ap.__version__, "numpy": np.__version__},
            "files": files,
            "identities": IDENTITIES,
            "content": describe_content(loaded),
        }


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    import arraypickle as ap
    from arraypickle import _format

    version = _format.VERSION_MAJOR
    target = HERE / "golden" / f"v{version}"
    if target.exists():
        print(f"{target} exists: golden files are never regenerated.", file=sys.stderr)
        return 1
    target.mkdir(parents=True)
    try:
        description = _write(ap, target, version)
    except BaseException:
        shutil.rmtree(target)  # this run made it: leave no half-written version behind
        raise
    text = json.dumps(description, indent=1, ensure_ascii=False)
    (target / "description.json").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(description['files'])} golden files and description.json to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
