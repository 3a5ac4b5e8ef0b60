"""The configurations: one compression setting, expressed for each library that has it.

A configuration is data: adding a compressed row is adding an entry to ``CONFIGS``.
``compress`` maps a library to its argument; a library that is absent is not run.
For ``pickle5``, the argument names a standard stream the pickle is written through
(``("gzip", 3)``, ``("lz4", 3)``): "pickle-5 followed by that codec".
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any

LIBRARIES = ("arraypickle", "pickle5", "joblib")
LIBRARY_TITLES = {"arraypickle": "arraypickle", "pickle5": "pickle-5", "joblib": "joblib"}


@dataclass(frozen=True)
class Config:
    """One compression setting across libraries."""

    name: str
    title: str
    compress: dict[str, Any]
    codec: str | None = None  # the arraypickle codec it needs (plugin check)
    ap_kwargs: dict[str, Any] = field(default_factory=dict)
    cases: tuple[str, ...] | None = None  # None: every case
    mmap: bool = False  # measure mmap loads (uncompressed only)


CONFIGS = {
    c.name: c
    for c in (
        Config(
            "none",
            "uncompressed",
            {"arraypickle": 0, "pickle5": None, "joblib": 0},
            mmap=True,
        ),
        Config(
            "zlib3",
            "zlib 3 (`compress=3`)",
            {"arraypickle": 3, "pickle5": ("gzip", 3), "joblib": 3},
            codec="zlib",
        ),
        Config(
            "zlib3-t1",
            "zlib 3, `threads=1`",
            {"arraypickle": 3},
            codec="zlib",
            ap_kwargs={"threads": 1},
            cases=("faces", "seed"),
        ),
        Config(
            "zlib3-t2",
            "zlib 3, `threads=2`",
            {"arraypickle": 3},
            codec="zlib",
            ap_kwargs={"threads": 2},
            cases=("faces", "seed"),
        ),
        Config(
            "lz4-3",
            "lz4 3 (`compress=('lz4', 3)`)",
            {"arraypickle": ("lz4", 3), "pickle5": ("lz4", 3), "joblib": ("lz4", 3)},
            codec="lz4",
        ),
        Config(
            "lz4-3-t1",
            "lz4 3, `threads=1`",
            {"arraypickle": ("lz4", 3)},
            codec="lz4",
            ap_kwargs={"threads": 1},
            cases=("faces", "seed"),
        ),
        Config("blosc", "blosc (`compress='blosc'`)", {"arraypickle": "blosc"}, codec="blosc"),
        Config("snappy", "snappy (`compress='snappy'`)", {"arraypickle": "snappy"}, codec="snappy"),
        Config("zstd", "zstd (`compress='zstd'`)", {"arraypickle": "zstd"}, codec="zstd"),
    )
}

# The Python modules each pickle-5 stream and joblib codec needs.
STREAM_MODULES = {"gzip": "gzip", "lz4": "lz4.frame"}
JOBLIB_CODEC_MODULES = {"lz4": "lz4"}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def skip_reason(config: Config, library: str) -> str | None:
    """Why ``library`` cannot run ``config`` here (None: it can)."""
    arg = config.compress[library]
    if library == "arraypickle":
        import arraypickle

        if config.codec and config.codec not in arraypickle.codecs():
            return (
                f"arraypickle codec {config.codec!r} not installed "
                f"(plugin arraypickle-{config.codec} not available yet)"
            )
        params = inspect.signature(arraypickle.dump).parameters
        missing = [k for k in config.ap_kwargs if k not in params]
        if missing:
            return f"arraypickle.dump() has no {', '.join(missing)} argument yet (issue 4)"
        return None
    if library == "joblib":
        if not _has_module("joblib"):
            return "joblib not installed"
        if isinstance(arg, tuple) and not _has_module(JOBLIB_CODEC_MODULES.get(arg[0], arg[0])):
            return f"joblib needs the {arg[0]!r} package for this codec"
        return None
    if library == "pickle5":
        if arg is not None and not _has_module(STREAM_MODULES[arg[0]]):
            return f"the {STREAM_MODULES[arg[0]]!r} module is not installed"
        return None
    raise ValueError(f"unknown library {library!r}")
