"""Codec plugin speed on the face bunch: arraypickle vs joblib, ratios from one run.

Usage::

    python benchmarks/plugins_speed.py            # every row, best of 3
    python benchmarks/plugins_speed.py --repeat 5 --rows lz4-3,blosc

Each row runs in a fresh process that builds the face-dataset-shaped bunch (13,233
float32 images 62x47 of 8-bit values / 255, stored as ``images`` and as the reshaped
view ``data``, plus targets and names: about 309 MB in pickle), then dumps and loads it
``--repeat`` times into a temporary directory, keeping the best time of each. The
printed ratios compare rows of the same run; the lead's benchmark harness owns the
published table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

# row name -> (library, compress argument)
# Peak extra memory: the peak RSS during the first dump (load) above the RSS before it
# (minus the loaded object's arrays, for load), via Linux's /proc/self/clear_refs.
ROWS = {
    "raw": ("arraypickle", 0),
    "joblib-raw": ("joblib", 0),
    "lz4-3": ("arraypickle", ("lz4", 3)),
    "joblib-lz4-3": ("joblib", ("lz4", 3)),
    "lz4-1": ("arraypickle", ("lz4", 1)),
    "blosc": ("arraypickle", "blosc"),
    "zstd": ("arraypickle", "zstd"),
    "snappy": ("arraypickle", "snappy"),
}

CHILD = textwrap.dedent(
    """
    import gc, json, os, sys, time
    import numpy as np

    library, compress, repeat, directory = json.loads(sys.argv[1])
    compress = tuple(compress) if isinstance(compress, list) else compress
    if library == "joblib":
        from joblib import dump, load
    else:
        from arraypickle import dump, load

    def face_bunch(n=13_233, people=5_749):
        rng = np.random.default_rng(0)
        images = np.empty((n, 62, 47), np.float32)
        for start in range(0, n, 1000):
            m = min(1000, n - start)
            coarse = rng.integers(0, 256, (m, 9, 7)).astype(np.float32)
            big = coarse.repeat(8, axis=1).repeat(8, axis=2)
            for axis in (1, 2):  # box blur of width 8 through cumulative sums
                c = np.cumsum(big, axis=axis, dtype=np.float32)
                lo = np.take(c, range(0, big.shape[axis] - 8), axis=axis)
                hi = np.take(c, range(8, big.shape[axis]), axis=axis)
                big = (hi - lo) / 8
            pixels = big[:, :62, :47] + rng.integers(-3, 4, (m, 62, 47))
            pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
            images[start:start + m] = pixels / np.float32(255)
        return {
            "data": images.reshape(n, -1),
            "images": images,
            "target": rng.integers(0, people, n),
            "target_names": np.array([f"Person_{i:04d}" for i in range(people)]),
            "DESCR": "Synthetic stand-in for Labeled Faces in the Wild (resize=0.5). " * 20,
        }

    bunch = face_bunch()
    size = sum(a.nbytes for a in (bunch["data"], bunch["images"], bunch["target"]))

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

    def start_peak():
        # Reset the peak RSS (Linux: clear_refs 5) and return the current RSS.
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS")

    path = os.path.join(directory, "bunch.pkl")
    dumps, loads, cpu_dumps, cpu_loads, extra = [], [], [], [], {}
    for i in range(repeat):
        before, w, c = start_peak(), time.perf_counter(), time.process_time()
        dump(bunch, path, compress=compress)
        dumps.append(time.perf_counter() - w)
        cpu_dumps.append(time.process_time() - c)
        if i == 0:
            extra["dump"] = status("VmHWM") - before
        gc.collect()
        before, w, c = start_peak(), time.perf_counter(), time.process_time()
        out = load(path)
        loads.append(time.perf_counter() - w)
        cpu_loads.append(time.process_time() - c)
        if i == 0:
            extra["load"] = status("VmHWM") - before - size
        assert np.array_equal(out["images"], bunch["images"])
        del out
        gc.collect()
    print(json.dumps({
        "dump": min(dumps), "load": min(loads), "cpu_dump": min(cpu_dumps),
        "cpu_load": min(cpu_loads), "size": os.path.getsize(path),
        "dump_extra": extra["dump"], "load_extra": extra["load"],
    }))
    os.unlink(path)
    """
)


def run_row(name: str, repeat: int, directory: str) -> dict[str, float]:
    library, compress = ROWS[name]
    arg = json.dumps([library, compress, repeat, directory])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, arg], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS))
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    results = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as directory:
        for name in rows:
            results[name] = run_row(name, args.repeat, directory)
            r = results[name]
            print(
                f"{name:14s} dump {r['dump']:6.2f} s (cpu {r['cpu_dump']:5.2f})  "
                f"load {r['load']:6.2f} s (cpu {r['cpu_load']:5.2f})  "
                f"size {r['size'] / 1e6:6.1f} MB  peak extra: dump {r['dump_extra'] / 1e6:5.0f} MB"
                f", load {r['load_extra'] / 1e6:5.0f} MB",
                flush=True,
            )
    print()
    if {"lz4-3", "joblib-lz4-3"} <= results.keys():
        ours, theirs = results["lz4-3"], results["joblib-lz4-3"]
        for kind in ("dump", "load"):
            print(
                f"lz4-3 vs joblib {kind}: {theirs[kind] / ours[kind]:.2f}x faster "
                f"(cpu time {theirs['cpu_' + kind] / ours['cpu_' + kind]:.2f}x)"
            )
        print(f"lz4-3 size / joblib's: {ours['size'] / theirs['size']:.3f}")
    if {"blosc", "raw"} <= results.keys():
        blosc, raw = results["blosc"], results["raw"]
        print(
            f"blosc dump / uncompressed dump: {blosc['dump'] / raw['dump']:.2f}x "
            f"(cpu time {blosc['cpu_dump'] / raw['cpu_dump']:.2f}x)"
        )


if __name__ == "__main__":
    main()
