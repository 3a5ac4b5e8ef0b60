"""One measuring process: one case, one library, one configuration, several repeats.

Run by the harness as ``python measure.py SPEC_JSON RESULT_JSON``; never imports the
libraries it does not measure. First a tiny untimed warm-up (one-time initialisation is
not what the repeats measure; its time is kept as ``first_call_s``). Each repeat:
``os.sync()`` then a timed dump, then ``os.sync()`` and a timed load (warm page cache:
the file was just written), then, for uncompressed files, a timed memory-mapped load
(the mapping only, no data read). Peak memory is the peak RSS during the operation
above the RSS just before it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

import memory
import numpy as np
from cases import CASES, load_case
from configs import CONFIGS
from libraries import operations

# Per repeat: wall seconds, process CPU seconds, and bytes (peak above the start, kept).
METRICS = (
    "dump_s",
    "load_s",
    "mmap_s",
    "dump_cpu_s",
    "load_cpu_s",
    "dump_peak",
    "load_peak",
    "load_retained",
)


def _equal(a: Any, b: Any) -> bool:
    """Deep equality of what the cases hold (arrays by value, dtype and shape)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if type(a).__module__.startswith("sklearn"):
        # estimators and their Cython trees: equal when their states are
        return type(a) is type(b) and _equal(a.__getstate__(), b.__getstate__())
    return bool(a == b)


def _timed(op: Any, *args: Any) -> tuple[Any, float, float, memory.PeakMemory]:
    """``(result, wall seconds, CPU seconds of the process, memory)`` of ``op(*args)``."""
    gc.collect()
    memory.release_freed_memory()
    os.sync()
    with memory.PeakMemory() as mem:
        cpu = time.process_time()
        start = time.perf_counter()
        out = op(*args)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return out, elapsed, cpu, mem


def _disable_numpy_hugepage() -> None:
    """Stop numpy from asking for transparent huge pages on its big allocations.

    With THP ``defrag=madvise``, a fault in such memory may compact memory first: on a
    busy machine some loads into numpy-allocated arrays then take several times longer.
    """
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    _set_madvise_hugepage(False)


def _warm_up(dump: Any, load: Any, mmap_load: Any, path: str) -> float:
    """Dump and load a tiny object, untimed by the benchmark: lazy imports and plugin
    discovery happen once per process, and are not what the repeats measure."""
    start = time.perf_counter()
    dump({"warm-up": np.arange(8.0)}, path)
    load(path)
    if mmap_load is not None:
        mmap_load(path)
    os.remove(path)
    return time.perf_counter() - start


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure as ``spec`` says; return the raw figures (seconds, bytes)."""
    case = CASES[spec["case"]]
    config = CONFIGS[spec["config"]]
    if not spec.get("numpy_hugepage", True):
        _disable_numpy_hugepage()
    dump, load, mmap_load = operations(spec["library"], config)
    before = memory.rss()
    obj = load_case(case, spec["quick"], spec["cache_dir"])
    # Untimed: touch (and give back) three times the case's memory, enough for a load's
    # result and any library's temporary copies, so that no repeat pays this VM's
    # one-time cost of first-touched memory (see arraypickle._demo.pretouch_memory).
    memory.pretouch(3 * max(memory.rss() - before, 0))
    path = spec["path"]
    first_call_s = _warm_up(dump, load, mmap_load, f"{path}.warmup")
    cpu0 = os.times()
    raw: dict[str, list[float]] = {k: [] for k in METRICS}
    verified = None
    mmap_error = None
    for repeat in range(spec["repeats"]):
        if os.path.exists(path):  # every dump writes a new file, as the first one did
            os.remove(path)
        _, seconds, cpu, mem = _timed(dump, obj, path)
        raw["dump_s"].append(seconds)
        raw["dump_cpu_s"].append(cpu)
        raw["dump_peak"].append(mem.peak_extra)
        out, seconds, cpu, mem = _timed(load, path)
        raw["load_s"].append(seconds)
        raw["load_cpu_s"].append(cpu)
        raw["load_peak"].append(mem.peak_extra)
        raw["load_retained"].append(mem.retained)
        if repeat == 0 and spec.get("verify", True):
            verified = _equal(obj, out)
        del out
        if mmap_load is not None:
            try:
                out, seconds, _, _ = _timed(mmap_load, path)
            except OSError as exc:
                # joblib maps each array with a file descriptor of its own: an object
                # of more arrays than the process may open fails (EMFILE). Its dump and
                # load figures stand; its mapped load is reported as failing.
                mmap_error = f"{type(exc).__name__}: {exc}"
                mmap_load = None
                continue
            raw["mmap_s"].append(seconds)
            del out
    cpu1 = os.times()
    size = os.path.getsize(path)
    os.remove(path)
    return {
        "raw": raw,
        "file_size": size,
        "verified": verified,
        "first_call_s": first_call_s,
        "mmap_error": mmap_error,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "memory_method": memory.METHOD,
    }


def main(argv: list[str]) -> int:
    spec_json, result_path = argv
    result = run(json.loads(spec_json))
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
