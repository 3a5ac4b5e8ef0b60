"""What the figures were measured on: hardware, OS, versions, date, load."""

from __future__ import annotations

import datetime
import importlib.metadata as md
import os
import platform
import sys
from typing import Any

# Distributions whose versions shape the figures (codec libraries and plugins included).
DISTRIBUTIONS = (
    "arraypickle",
    "numpy",
    "joblib",
    "scikit-learn",
    "pluggy",
    "xxhash",
    "lz4",
    "python-snappy",
    "cramjam",
    "blosc",
    "zstandard",
    "arraypickle-lz4",
    "arraypickle-snappy",
    "arraypickle-blosc",
    "arraypickle-zstd",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _transparent_hugepages() -> str | None:
    """The kernel's THP settings (they decide how numpy's big allocations fault in)."""
    found = []
    for knob in ("enabled", "defrag"):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/{knob}") as f:
                value = f.read().split("[")[1].split("]")[0]
        except (OSError, IndexError):
            return None
        found.append(f"{knob}={value}")
    return " ".join(found)


def describe() -> dict[str, Any]:
    """The machine and software, as recorded in the results."""
    versions = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    ram = _ram_bytes()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_start": load_average(),
        "transparent_hugepages": _transparent_hugepages(),
    }
