"""The demo: dump and load a generated dataset with no compression and every codec.

``python -m arraypickle demo`` (see ``_cli/demo.py``) prints, for each codec at its
default level, the file size, compression ratio, dump and load times, peak extra
memory, and whether the loaded data equal the saved data.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._api import dump, load
from ._plugins import KNOWN_CODECS, get_registry
from .codec import default_level

DEFAULT_SIZE_MB = 200.0
DEFAULT_MAX_SECONDS = 60.0
PROBE_BYTES = 1_000_000  # what a codec's speed is estimated on
_SAMPLE_SECONDS = 0.002
MB = 1e6


# -- the dataset ------------------------------------------------------------------------


def make_dataset(size_mb: float = DEFAULT_SIZE_MB, seed: int = 0) -> dict[str, Any]:
    """A dict of a few arrays totalling about ``size_mb`` MB, as a model or dataset holds.

    Half images (8-bit pixels / 255 as float32, smooth like photographs), a quarter
    embeddings (random float32, which barely compress), labels (int64) and a mask
    (bool), plus a little metadata.

    Parameters:
        size_mb: the total size of the arrays in MB (10^6 bytes), > 0.
        seed: the random seed; the same seed gives the same data.

    Example::

        >>> data = make_dataset(1)
        >>> sorted(data)
        ['embeddings', 'images', 'labels', 'mask', 'meta']
    """
    if not size_mb > 0:
        raise ValueError(f"size_mb must be a positive number, got {size_mb!r}")
    rng = np.random.default_rng(seed)
    total = int(size_mb * MB)
    side = 64
    n_images = max(1, total // 2 // (side * side * 4))
    images = np.empty((n_images, side, side), dtype=np.float32)
    for start in range(0, n_images, 1024):  # in slices: building stays within ~50 MB extra
        stop = min(n_images, start + 1024)
        steps = rng.integers(-3, 4, size=(stop - start, side, side), dtype=np.int16)
        pixels = np.clip(128 + np.cumsum(steps, axis=2, dtype=np.int16), 0, 255)
        images[start:stop] = pixels / np.float32(255.0)
    n_rows = max(1, total // 4 // (128 * 4))
    embeddings = rng.standard_normal((n_rows, 128), dtype=np.float32)
    n_labels = max(1, total * 3 // 20 // 8)
    labels = rng.poisson(3.0, size=n_labels).astype(np.int64)
    mask = rng.random(max(1, total // 10)) < 0.1
    meta = {
        "name": "arraypickle demo",
        "seed": seed,
        "classes": [f"class_{i}" for i in range(100)],
        "shapes": {"images": images.shape, "embeddings": embeddings.shape},
    }
    return {"images": images, "embeddings": embeddings, "labels": labels, "mask": mask,
            "meta": meta}  # fmt: skip


def data_bytes(data: dict[str, Any]) -> int:
    """The bytes of the arrays in ``data``."""
    return sum(v.nbytes for v in data.values() if isinstance(v, np.ndarray))


def same(a: Any, b: Any) -> bool:
    """Deep equality: arrays by dtype, shape and value; containers item by item."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and bool(a == b)


# -- peak memory ------------------------------------------------------------------------


def _rss_reader() -> Callable[[], int] | None:
    """A function returning this process's RSS in bytes, or None where none is known."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as f:
            f.read()

        def from_proc() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        return from_proc
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    process = psutil.Process()
    return lambda: int(process.memory_info().rss)


_rss = _rss_reader()


def _load_malloc_trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, ImportError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


# Freed arrays can stay in the C heap, where the next load reuses them without growing
# the RSS: give them back first, so each measurement starts from the same footing.
release_freed_memory = _load_malloc_trim()


def pretouch_memory(nbytes: int) -> None:
    """Write to ``nbytes`` of fresh memory, then give it back (untimed preparation).

    On some virtual machines the first touch of memory costs about 10 us a page, once
    (likely the host backing guest memory on first use): on this project's 2-core VM,
    a process's first 200 MB load took 0.6 s and the later ones 0.05 s, whatever the
    codec, and touching 400 MB beforehand (0.07 s) took the spike away. Doing that once,
    for every measurement alike, keeps the one-time cost out of whichever codec (or
    library) happens to run first.
    """
    if nbytes > 0:
        block = np.ones(nbytes, dtype=np.uint8)
        del block
        release_freed_memory()


class PeakSampler:
    """Samples the RSS every 2 ms on a thread; ``peak_extra`` is the peak above the start.

    Sampling can miss a spike shorter than the period; the demo's figures are a guide
    (the benchmarks read the kernel's exact peak instead).
    """

    def __init__(self) -> None:
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arraypickle-demo-rss", daemon=True)

    def _run(self) -> None:
        assert _rss is not None
        while not self._stop.wait(_SAMPLE_SECONDS):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakSampler:
        if _rss is not None:
            self.start = self.peak = _rss()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if _rss is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss())

    @property
    def peak_extra(self) -> int | None:
        return None if _rss is None else max(0, self.peak - self.start)


# -- running ----------------------------------------------------------------------------


@dataclass
class DemoRow:
    """One line of the demo's table (sizes in bytes, times in seconds)."""

    codec: str
    level: int | None
    file_size: int | None = None
    dump_s: float | None = None
    load_s: float | None = None
    dump_peak: int | None = None
    load_peak: int | None = None
    verified: bool | None = None
    skipped: str = ""


def codec_names(names: list[str] | None) -> list[str]:
    """The codecs a demo of ``names`` runs, each once (None: none and every installed
    codec); :class:`UnknownCodecError` for a name not installed."""
    registry = get_registry()
    if names is None:
        return ["none", *sorted(registry.codecs)]
    for name in names:
        if name != "none":
            registry.codec(name)  # raises UnknownCodecError, listing what is installed
    return list(dict.fromkeys(names))


def _compress_arg(name: str) -> tuple[Any, int | None]:
    if name == "none":
        return 0, None
    level = default_level(get_registry().codec(name))
    return (name, level), level


def _probe_seconds(data: dict[str, Any], compress: Any, directory: str) -> float:
    """Projected dump + load seconds for ``data``, from a slice of each array."""
    total = data_bytes(data)
    share = min(1.0, PROBE_BYTES / max(total, 1))
    sample = {
        k: v[: max(1, int(len(v) * share))] for k, v in data.items() if isinstance(v, np.ndarray)
    }
    path = os.path.join(directory, "probe.pkl")
    start = time.perf_counter()
    dump(sample, path, compress=compress)
    load(path)
    elapsed = time.perf_counter() - start
    os.remove(path)
    return elapsed * total / max(data_bytes(sample), 1)


def run_demo(
    size_mb: float = DEFAULT_SIZE_MB,
    codecs: list[str] | None = None,
    directory: str | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: Callable[[DemoRow], None] | None = None,
    data: dict[str, Any] | None = None,
) -> list[DemoRow]:
    """Dump and load a generated dataset with no compression and each codec.

    Parameters:
        size_mb: the dataset size in MB (see :func:`make_dataset`).
        codecs: codec names (``"none"`` for no compression), each at its default
            level; default: none plus every installed codec.
        directory: where the files go (default: a temporary directory, removed after).
        max_seconds: a codec whose dump and load are projected (from a 1 MB probe)
            to take longer than this is skipped, with the estimate as the reason;
            0 runs every codec. Explicitly named ``codecs`` are never skipped.
        progress: called with each row as soon as it is measured.
        data: the object to use instead of generating one.

    Returns:
        One :class:`DemoRow` per codec.

    Example::

        >>> rows = run_demo(size_mb=1, codecs=["none", "gzip"])
        >>> [r.verified for r in rows]
        [True, True]
    """
    names = codec_names(codecs)
    limit = 0.0 if codecs is not None else max_seconds
    data = make_dataset(size_mb) if data is None else data
    # Twice the data (measured: once was not always enough); briefly, that is one
    # dataset more than a load itself needs.
    pretouch_memory(2 * data_bytes(data))
    rows = []
    with _workdir(directory) as where:
        for name in names:
            compress, level = _compress_arg(name)
            row = DemoRow(name, level)
            if limit and name != "none":
                projected = _probe_seconds(data, compress, where)
                if projected > limit:
                    row.skipped = (
                        f"about {projected:.0f} s on this data, over the {limit:g} s limit "
                        f"(--codecs {name} or --max-seconds 0 runs it)"
                    )
            if not row.skipped:
                _measure(row, data, compress, os.path.join(where, f"demo-{name}.pkl"))
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _measure(row: DemoRow, data: dict[str, Any], compress: Any, path: str) -> None:
    release_freed_memory()
    with PeakSampler() as mem:
        start = time.perf_counter()
        dump(data, path, compress=compress)
        row.dump_s = time.perf_counter() - start
    row.dump_peak = mem.peak_extra
    row.file_size = os.path.getsize(path)
    release_freed_memory()
    with PeakSampler() as mem:
        start = time.perf_counter()
        loaded = load(path)
        row.load_s = time.perf_counter() - start
    row.load_peak = mem.peak_extra
    row.verified = same(data, loaded)
    del loaded
    os.remove(path)


@contextlib.contextmanager
def _workdir(directory: str | None) -> Iterator[str]:
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="arraypickle-demo-") as tmp:
        yield tmp


# -- printing ---------------------------------------------------------------------------

COLUMNS = (
    ("codec", 8),
    ("level", 5),
    ("file MB", 9),
    ("ratio", 7),
    ("dump s", 8),
    ("load s", 8),
    ("dump MB/s", 10),
    ("load MB/s", 10),
    ("dump peak +MB", 14),
    ("load peak +MB", 14),
    ("loaded == saved", 16),
)


def header() -> str:
    return "  ".join(f"{t:<{w}}" if i == 0 else f"{t:>{w}}" for i, (t, w) in enumerate(COLUMNS))


def format_row(row: DemoRow, total: int) -> str:
    """One line of the table; ``total`` is the dataset's array bytes."""
    level = "-" if row.level is None else str(row.level)
    if row.skipped:
        return f"{row.codec:<8}  {level:>5}  skipped: {row.skipped}"

    def mb(v: int | None) -> str:
        return "n/a" if v is None else f"{v / MB:.1f}"

    def speed(seconds: float) -> str:
        rate = total / MB / seconds if seconds > 0 else float("inf")
        return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"

    assert row.file_size is not None and row.dump_s is not None and row.load_s is not None
    cells = [
        row.codec,
        level,
        mb(row.file_size),
        f"{total / row.file_size:.2f}x",
        f"{row.dump_s:.2f}",
        f"{row.load_s:.2f}",
        speed(row.dump_s),
        speed(row.load_s),
        mb(row.dump_peak),
        mb(row.load_peak),
        "yes" if row.verified else "NO",
    ]
    return "  ".join(
        f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
        for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def describe(data: dict[str, Any]) -> str:
    parts = [f"{k} {v.dtype} {v.shape}" for k, v in data.items() if isinstance(v, np.ndarray)]
    return f"{data_bytes(data) / MB:.1f} MB: " + ", ".join(parts)


def footer(total: int) -> list[str]:
    lines = [
        "",
        "ratio: array bytes / file size. Peak memory: RSS above its level before the "
        "operation, sampled every 2 ms; a load's includes the loaded data "
        f"({total / MB:.1f} MB).",
    ]
    missing = [k.distribution for n, k in sorted(KNOWN_CODECS.items())
               if n not in get_registry().codecs]  # fmt: skip
    if missing:
        lines.append("More codecs: pip install " + " ".join(missing))
    return lines


def as_dicts(rows: list[DemoRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
