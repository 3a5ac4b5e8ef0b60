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
    import gc, json, os, resource, sys, time
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
            images[start:start + m] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8) / np.float32(255)
        return {
            "data": images.reshape(n, -1),
            "images": images,
            "target": rng.integers(0, people, n),
            "target_names": np.array([f"Person_{i:04d}" for i in range(people)]),
            "DESCR": "Synthetic stand-in for Labeled Faces in the Wild (resize=0.5). " * 20,
        }

    bunch = face_bunch()
    path = os.path.join(directory, "bunch.pkl")
    dumps, loads = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        dump(bunch, path, compress=compress)
        dumps.append(time.perf_counter() - t)
        gc.collect()
        t = time.perf_counter()
        out = load(path)
        loads.append(time.perf_counter() - t)
        assert np.array_equal(out["images"], bunch["images"])
        del out
        gc.collect()
    print(json.dumps({"dump": min(dumps), "load": min(loads), "size": os.path.getsize(path)}))
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
                f"{name:14s} dump {r['dump']:6.2f} s  load {r['load']:6.2f} s  "
                f"size {r['size'] / 1e6:7.1f} MB",
                flush=True,
            )
    print()
    if {"lz4-3", "joblib-lz4-3"} <= results.keys():
        ours, theirs = results["lz4-3"], results["joblib-lz4-3"]
        print(f"lz4-3 vs joblib: dump {theirs['dump'] / ours['dump']:.2f}x faster, "
              f"load {theirs['load'] / ours['load']:.2f}x faster, "
              f"size {ours['size'] / theirs['size']:.3f}x")
    if {"blosc", "raw"} <= results.keys():
        print(f"blosc dump / uncompressed dump: {results['blosc']['dump'] / results['raw']['dump']:.2f}x")


if __name__ == "__main__":
    main()
