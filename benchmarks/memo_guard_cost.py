"""What the memo guard costs on plain pickles and joblib files.

A load of a file without checksums walks its opcodes for damaged memo indices unless
``verify=False`` (docs/integrity.md). For a few opcode-heavy objects, saved as a
protocol-5 pickle and by ``joblib.dump``, this loads each file in turn with
``arraypickle.load``, ``arraypickle.load(verify=False)``, ``pickle.load`` (the pickle)
and ``joblib.load`` (the joblib file), uncompressed as the main benchmark writes them
(``benchmarks/libraries.py``), in one process, rotating the order each round,
and prints medians and the guard's ratio.

    python benchmarks/memo_guard_cost.py [--rounds 7] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from configs import CONFIGS
from libraries import operations

import arraypickle as ap


def objects(quick: bool) -> dict[str, Any]:
    n = 10_000 if quick else 1_000_000
    r = random.Random(0)
    return {
        "dict of 1M floats": {r.random(): r.random() for _ in range(n)},
        "list of 500k short strings": [f"s{r.random()}" for _ in range(n // 2)],
        "200k small records": [{"a": i, "b": [i, 2.0], "c": (str(i),)} for i in range(n // 5)],
        "2,000 arrays of 1,000 floats": [np.random.rand(1000) for _ in range(n // 500)],
    }


def measure(path: str, loaders: dict[str, Callable[[str], Any]], rounds: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in loaders}
    names = list(loaders)
    for name in names:
        loaders[name](path)  # warm the page cache and the imports
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            value = loaders[name](path)
            times[name].append(time.perf_counter() - start)
            del value
    medians = {name: round(statistics.median(t), 4) for name, t in times.items()}
    return {
        "file_bytes": os.path.getsize(path),
        "medians_s": medians,
        "guard_ratio": round(medians["arraypickle"] / medians["verify=False"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small objects (a smoke run)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def ours(path: str) -> Any:
        return ap.load(path)

    def unverified(path: str) -> Any:
        return ap.load(path, verify=False)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, obj in objects(args.quick).items():
            for kind, library in (("pickle", "pickle5"), ("joblib", "joblib")):
                save, theirs, _ = operations(library, CONFIGS["none"])
                path = os.path.join(tmp, f"object.{kind}")
                save(obj, path)
                loaders = {"arraypickle": ours, "verify=False": unverified, kind: theirs}
                rows.append({"object": label, "file": kind, **measure(path, loaders, args.rounds)})
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        m = row["medians_s"]
        print(
            f"{row['object']:30} {row['file']:7} arraypickle {m['arraypickle']:.3f} s, "
            f"verify=False {m['verify=False']:.3f} s, {row['file']} {m[row['file']]:.3f} s: "
            f"guard x{row['guard_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
