"""The targets of issues 2, 3 and 4, checked against one run's figures.

Every ratio compares figures of the same run (medians). A target whose rows were not
measured (a plugin missing, a feature not built yet) is reported as ``n/a`` with why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB = 1e6


class Missing(Exception):
    """A figure a target needs was not measured."""


Get = Callable[[str, str, str, str], float]


@dataclass(frozen=True)
class Target:
    """``measure(get) <op> bound``; ``get(case, config, library, metric)`` reads a figure."""

    issue: int
    case: str
    config: str
    text: str
    measure: Callable[[Get], float]
    op: str  # "<=", ">=" or "<"
    bound: float
    unit: str  # "x", "ms", "MB" or "%"
    cell: str = ""  # the column of the arraypickle row the report marks with the status

    def check(self, get: Get) -> dict[str, Any]:
        row = {
            "issue": self.issue,
            "case": self.case,
            "config": self.config,
            "text": self.text,
            "required": f"{self.op} {self.bound:g}{self.unit}",
            "cell": self.cell,
        }
        try:
            value = self.measure(get)
        except Missing as exc:
            return {**row, "measured": None, "status": "n/a", "note": str(exc)}
        ok = {"<=": value <= self.bound, ">=": value >= self.bound, "<": value < self.bound}
        return {**row, "measured": value, "status": "pass" if ok[self.op] else "fail", "note": ""}


AP, PK, JL = "arraypickle", "pickle5", "joblib"
ALL_CASES = ("faces", "seed", "dict", "forest")
ARRAY_CASES = ("faces", "seed")
SMALL_OBJECT_CASES = ("dict", "forest")


def vs_pickle(issue: int, case: str, config: str, op: str, bound: float) -> Target:
    """Our ``op`` time over pickle-5's (same configuration): at most ``bound``."""

    def measure(get: Get) -> float:
        return get(case, config, AP, f"{op}_s") / get(case, config, PK, f"{op}_s")

    text = f"{op} time / pickle-5" + (" + gzip 3" if config == "zlib3" else "")
    return Target(issue, case, config, text, measure, "<=", bound, "x", f"pk_{op}")


def vs_joblib(issue: int, case: str, config: str, op: str, bound: float) -> Target:
    """joblib's ``op`` time over ours (same configuration): at least ``bound``."""

    def measure(get: Get) -> float:
        return get(case, config, JL, f"{op}_s") / get(case, config, AP, f"{op}_s")

    return Target(
        issue, case, config, f"joblib {op} time / ours", measure, ">=", bound, "x", f"jl_{op}"
    )


def size_vs_joblib(issue: int, case: str, config: str, percent: float) -> Target:
    """Our file size within ``percent`` of joblib's."""

    def measure(get: Get) -> float:
        ours, theirs = get(case, config, AP, "file_size"), get(case, config, JL, "file_size")
        return 100.0 * abs(ours - theirs) / theirs

    return Target(
        issue, case, config, "file size gap to joblib", measure, "<=", percent, "%", "size"
    )


def mmap_time(case: str) -> Target:
    def measure(get: Get) -> float:
        return get(case, "none", AP, "mmap_s") * 1e3

    return Target(2, case, "none", "mmap load time", measure, "<", 10, "ms", "mmap")


def dump_memory(issue: int, case: str, config: str) -> Target:
    """Peak RSS during the dump above the RSS before it (the data): at most 48 MB."""

    def measure(get: Get) -> float:
        return get(case, config, AP, "dump_peak") / MB

    return Target(
        issue, case, config, "dump peak memory above the data", measure, "<=", 48, "MB",
        "dump_peak",
    )  # fmt: skip


def load_memory(case: str, config: str) -> Target:
    """Peak RSS during the load above the RSS after it (the result): at most 48 MB."""

    def measure(get: Get) -> float:
        peak = get(case, config, AP, "load_peak")
        return (peak - get(case, config, AP, "load_retained")) / MB

    return Target(
        2, case, config, "load peak memory above the result", measure, "<=", 48, "MB",
        "load_peak",
    )  # fmt: skip


def threads_scaling(case: str) -> Target:
    def measure(get: Get) -> float:
        return get(case, "zlib3-t1", AP, "dump_s") / get(case, "zlib3-t2", AP, "dump_s")

    return Target(
        4, case, "zlib3-t2", "zlib dump time threads=1 / threads=2", measure, ">=", 1.7, "x",
    )  # fmt: skip


def blosc_cost(case: str) -> Target:
    def measure(get: Get) -> float:
        return get(case, "blosc", AP, "dump_s") / get(case, "none", AP, "dump_s")

    return Target(
        3, case, "blosc", "blosc dump time / uncompressed dump", measure, "<=", 1.5, "x",
    )  # fmt: skip


def targets() -> list[Target]:
    """Every target, in the order the report lists them."""
    out = [vs_pickle(2, c, "none", op, 1.15) for c in ALL_CASES for op in ("dump", "load")]
    out += [vs_joblib(2, "dict", "none", "dump", 10), vs_joblib(2, "dict", "none", "load", 3)]
    out += [vs_joblib(2, "faces", "none", "load", 3)]
    out += [mmap_time(c) for c in ARRAY_CASES]
    for case in ARRAY_CASES:
        for config in ("none", "zlib3"):
            out += [dump_memory(2, case, config), load_memory(case, config)]
    for case in ARRAY_CASES:
        out += [vs_joblib(3, case, "lz4-3", "dump", 1.7), vs_joblib(3, case, "lz4-3", "load", 1.5)]
        out += [size_vs_joblib(3, case, "lz4-3", 5)]
    out += [blosc_cost("faces")]
    for case in ARRAY_CASES:
        out += [vs_joblib(4, case, "zlib3", "dump", 1.6), vs_joblib(4, case, "zlib3", "load", 1.2)]
        out += [size_vs_joblib(4, case, "zlib3", 2), threads_scaling(case)]
    out += [
        vs_pickle(4, c, "zlib3", op, 1.0) for c in SMALL_OBJECT_CASES for op in ("dump", "load")
    ]
    out += [
        dump_memory(4, c, cfg) for c in ARRAY_CASES for cfg in ("lz4-3", "blosc", "snappy", "zstd")
    ]
    return out


def check_all(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's measured value and status, from the run's rows."""
    index = {(r["case"], r["config"], r["library"]): r for r in rows}

    def get(case: str, config: str, library: str, metric: str) -> float:
        row = index.get((case, config, library))
        if row is None:
            raise Missing(f"{library} {config} {case}: not measured in this run")
        if row["status"] != "ok":
            raise Missing(f"{library} {config} {case}: {row['note'] or row['status']}")
        value = row["summary"].get(metric)
        if value is None:
            raise Missing(f"{library} {config} {case}: no {metric}")
        return value

    return [t.check(get) for t in targets()]
