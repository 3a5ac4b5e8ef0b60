"""Sample data for round trips, and the comparison of what was dumped with what loaded."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MiB", "assert_same", "big_array", "sample_bytes", "sample_object"]

MiB = 1 << 20


def sample_bytes(n: int, seed: int = 0) -> np.ndarray:
    """``n`` bytes (uint8), partly incompressible and partly compressible, cheap to compress.

    Up to 64 KiB of random bytes (more than one block of the block-based formats, so
    codecs take their stored path), then zeros with a random byte every 97: every
    codec compresses that quickly, the slow ones (bz2, xz) included.

    Parameters:
        n: the number of bytes.
        seed: the seed of the random bytes.

    Example::

        >>> sample_bytes(5).dtype, len(sample_bytes(1 << 20))
        (dtype('uint8'), 1048576)
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(n, np.uint8)
    cut = min(n // 4, 64 << 10)
    out[:cut] = rng.integers(0, 256, cut, dtype=np.uint8)
    sprinkled = out[cut::97]
    sprinkled[:] = rng.integers(0, 256, len(sprinkled), dtype=np.uint8)
    return out


def big_array(nbytes: int = 64 * MiB) -> np.ndarray:
    """Cheap float64 data of ``nbytes``: zeros with a distinct value every 512 KiB.

    Example::

        >>> float(big_array(1 << 20)[65536])
        2.0
    """
    arr = np.zeros(nbytes // 8)
    arr[::65536] = np.arange(1, len(arr[::65536]) + 1)
    return arr


def sample_object(seed: int = 0) -> dict[str, Any]:
    """A small object with arrays of several dtypes and layouts, and plain data.

    Example::

        >>> assert_same(sample_object(), arraypickle.loads(arraypickle.dumps(sample_object())))
    """
    rng = np.random.default_rng(seed)
    grid = rng.normal(size=(60, 50))
    return {
        "bytes": sample_bytes(150_000, seed),
        "floats": grid,
        "fortran": np.asfortranarray(grid[:, :30]),
        "strided": grid[::3, 1::2],
        "ints": np.arange(-500, 500, dtype=np.int32),
        "records": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i2"), ("b", ">f8")]),
        "objects": np.array([1, "two", None], dtype=object),
        "text": "arraypickle " * 200,
        "nested": [{"k": i, "v": np.full(i, i, dtype=np.int16)} for i in range(20)],
    }


def assert_same(expected: Any, actual: Any, path: str = "obj") -> None:
    """Assert that ``actual`` equals ``expected``, arrays by dtype, shape and values.

    Arrays may differ in byte order only (memory-mapped arrays keep the stored one).
    NaN and NaT are missing values, the same where both have one (a complex number's
    parts are compared apart).

    Parameters:
        expected: the object that was dumped.
        actual: the object that was loaded.
        path: where in the object we are, for the failure message.

    Example::

        >>> assert_same({"a": np.arange(3)}, {"a": np.arange(3)})
    """
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{path}: {type(actual).__name__}"
        # Memory-mapped arrays keep their stored byte order; others come back native.
        native = actual.dtype.newbyteorder("=")
        assert native == expected.dtype.newbyteorder("="), f"{path}: dtype {actual.dtype}"
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape}"
        if expected.dtype.hasobject:
            assert_same(expected.tolist(), actual.tolist(), path)
        elif expected.dtype.names:
            for field in expected.dtype.names:
                assert_same(expected[field], actual[field], f"{path}.{field}")
        else:
            parts = [(expected.real, actual.real), (expected.imag, actual.imag)]
            for e, a in parts if expected.dtype.kind == "c" else [(expected, actual)]:
                same = np.array_equal(a, e, equal_nan=e.dtype.kind in "fmM")
                assert same, f"{path}: values differ"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), path
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, f"{path}[{i}]")
    else:
        assert _same_value(expected, actual), f"{path}: loaded {actual!r}, dumped {expected!r}"


def _same_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, (complex, np.complexfloating)) and isinstance(
        actual, (complex, np.complexfloating)
    ):
        parts = ((expected.real, actual.real), (expected.imag, actual.imag))
        return all(_same_value(e, a) for e, a in parts)
    try:
        # NaN and NaT differ from themselves: two of them are the same missing value.
        return bool(actual == expected) or bool(expected != expected and actual != actual)
    except (TypeError, ValueError):  # a value whose comparison has no truth value
        return False
