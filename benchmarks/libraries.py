"""How each library dumps, loads and memory-maps, for one configuration.

Imported only inside the measuring process, and only the library it measures, so the
other libraries' imports do not weigh on its memory or timings.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from configs import Config

Dump = Callable[[Any, str], None]
Load = Callable[[str], Any]


def operations(library: str, config: Config) -> tuple[Dump, Load, Load | None]:
    """``(dump, load, mmap_load)`` for ``library`` under ``config`` (mmap_load may be None)."""
    arg = config.compress[library]
    if library == "arraypickle":
        import arraypickle

        kwargs = dict(config.ap_kwargs)

        def ap_dump(obj: Any, path: str) -> None:
            arraypickle.dump(obj, path, compress=arg, **kwargs)

        def ap_load(path: str) -> Any:  # the same threads as the dump
            return arraypickle.load(path, **kwargs)

        def ap_mmap(path: str) -> Any:
            return arraypickle.load(path, mmap_mode="r")

        return ap_dump, ap_load, ap_mmap if config.mmap else None
    if library == "joblib":
        import joblib

        def jl_dump(obj: Any, path: str) -> None:
            joblib.dump(obj, path, compress=arg)

        def jl_mmap(path: str) -> Any:
            return joblib.load(path, mmap_mode="r")

        return jl_dump, joblib.load, jl_mmap if config.mmap else None
    if library == "pickle5":
        opener = _stream_opener(arg)

        def pk_dump(obj: Any, path: str) -> None:
            with opener(path, "wb") as f:
                pickle.dump(obj, f, protocol=5)

        def pk_load(path: str) -> Any:
            with opener(path, "rb") as f:
                return pickle.load(f)

        return pk_dump, pk_load, None
    raise ValueError(f"unknown library {library!r}")


def _stream_opener(arg: tuple[str, int] | None) -> Callable[[str, str], Any]:
    """``open``-like for the stream pickle-5 is written through."""
    if arg is None:
        return open
    name, level = arg
    if name == "gzip":
        import gzip

        return lambda path, mode: gzip.open(path, mode, compresslevel=level)
    if name == "lz4":
        import lz4.frame

        # the same frame settings joblib uses for compress=('lz4', level)
        return lambda path, mode: lz4.frame.open(path, mode, compression_level=level)
    raise ValueError(f"no pickle-5 stream for {name!r}")
