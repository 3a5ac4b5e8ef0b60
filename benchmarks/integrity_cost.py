"""What verifying checksums on load costs: ``load(verify=True)`` vs ``verify=False``.

Dumps an array-heavy object (the face-dataset-shaped bunch of the main benchmark, about
300 MB), then loads it alternately with and without verification, in one process, and
prints the median time of each and their ratio. Loads read from the page cache (the
file was just written), which is the case where hashing is most visible.

    python benchmarks/integrity_cost.py [--rounds 9] [--threads N] [--dir /tmp] [--json]

``--threads`` is passed to both loads (default: every core, as ``load``'s default); with
two or more, the two 154 MB buffers are read on two threads (docs/guide.md, Parallelism).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

import arraypickle as ap


def face_bunch() -> dict:
    """13,233 float32 images 62x47 of 8-bit values /255, their flat copy, targets, names."""
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (13233, 62, 47), dtype=np.uint8) / np.float32(255)).astype(
        np.float32
    )
    return {
        "images": images,
        "data": images.reshape(len(images), -1).copy(),
        "target": rng.integers(0, 5749, 13233),
        "target_names": np.array([f"Person {i}" for i in range(5749)]),
        "DESCR": "LFW-shaped bunch",
    }


def measure(path: str, rounds: int, threads: int | None = None) -> dict:
    times: dict[str, list[float]] = {"verify": [], "no_verify": []}
    ap.load(path)  # warm the page cache and the imports
    for i in range(rounds):
        # Alternate the order so drift in machine load hits both alike.
        order = ("verify", "no_verify") if i % 2 == 0 else ("no_verify", "verify")
        for kind in order:
            start = time.perf_counter()
            value = ap.load(path, verify=kind == "verify", threads=threads)
            times[kind].append(time.perf_counter() - start)
            del value
    verify = statistics.median(times["verify"])
    plain = statistics.median(times["no_verify"])
    return {
        "file_bytes": os.path.getsize(path),
        "rounds": rounds,
        "threads": threads,
        "verify_median_s": round(verify, 4),
        "no_verify_median_s": round(plain, 4),
        "ratio": round(verify / plain, 4),
        "verify_all_s": [round(t, 4) for t in times["verify"]],
        "no_verify_all_s": [round(t, 4) for t in times["no_verify"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="load's threads")
    parser.add_argument("--dir", default=None, help="where to write the file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "bunch.pkl")
        ap.dump(face_bunch(), path)
        result = measure(path, args.rounds, args.threads)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['file_bytes'] / 1e6:.0f} MB, {result['rounds']} rounds, "
        f"threads={result['threads']}: "
        f"verify=True {result['verify_median_s']:.3f} s, "
        f"verify=False {result['no_verify_median_s']:.3f} s (medians); "
        f"ratio {result['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
