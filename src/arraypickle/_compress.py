"""What ``dump``'s ``compress`` argument (and the file name) ask for."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError
from ._plugins import KNOWN_CODECS, Registry, codec_choices
from .codec import default_level

DEFAULT_CODEC = "zlib"
TRUE_LEVEL = 3  # compress=True, as in joblib


def _native(value: Any) -> Any:
    """numpy's bool and integer scalars (a level read from an array or a config file) as
    Python's. joblib 1.6 refuses them but for 0 (its codecs check for ``int``); taking
    them is the less surprising choice for a number that came out of numpy."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _level_ok(level: object) -> bool:
    return isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 9


def resolve(compress: Any, path: str | None, registry: Registry) -> tuple[Any | None, int]:
    """The codec (None for no compression) and level that ``compress`` asks for.

    The rules follow ``joblib.dump``: ``0``/``False`` none, ``True`` zlib 3, an int
    zlib at that level, a name its default level, ``(name, level)`` exactly that.
    When ``compress`` is not a tuple and ``path`` ends with a codec's extension, that
    codec wins, at the level an int ``compress`` gives or else its default.
    """
    compress = _native(compress)
    if isinstance(compress, tuple) and len(compress) == 2:
        compress = (compress[0], _native(compress[1]))
    if isinstance(compress, tuple):
        if len(compress) != 2 or not isinstance(compress[0], str) or not _level_ok(compress[1]):
            raise InvalidArgumentError(
                f"compress tuple must be (codec name, level 0..9), got {compress!r}. "
                + codec_choices(registry)
            )
        name, level = compress
        codec = registry.codec(name)
        return (codec, level) if level else (None, 0)
    if isinstance(compress, bool):
        name, level = (DEFAULT_CODEC, TRUE_LEVEL) if compress else (None, 0)
    elif isinstance(compress, int):
        if not _level_ok(compress):
            raise InvalidArgumentError(f"compress level must be between 0 and 9, got {compress!r}")
        name, level = (DEFAULT_CODEC, compress) if compress else (None, 0)
    elif isinstance(compress, str):
        name, level = compress, -1
        registry.codec(name)  # unknown names fail even when the extension decides
    else:
        raise InvalidArgumentError(
            f"compress must be a bool, an int 0..9, a codec name or a (name, level) tuple, "
            f"got {compress!r} ({type(compress).__name__}). " + codec_choices(registry)
        )
    if path is not None:
        by_extension = registry.codec_for_path(path)
        if by_extension is None:
            by_extension = _missing_for_path(path, registry)
        if by_extension is not None:
            explicit = isinstance(compress, int) and not isinstance(compress, bool) and compress
            return by_extension, level if explicit else default_level(by_extension)
    if name is None:
        return None, 0
    codec = registry.codec(name)
    return codec, default_level(codec) if level < 0 else level


def _missing_for_path(path: str, registry: Registry) -> None:
    """Raise when ``path`` ends with the extension of a known but missing codec."""
    lowered = path.lower()
    for name, known in KNOWN_CODECS.items():
        if name not in registry.codecs and any(lowered.endswith(e) for e in known.extensions):
            registry.codec(name)
    return None
