"""The hook implementations arraypickle finds through the ``arraypickle`` entry point."""

from __future__ import annotations

from arraypickle import hookimpl

from .codec import RleCodec


@hookimpl
def arraypickle_register_codecs() -> list[RleCodec]:
    return [RleCodec()]
