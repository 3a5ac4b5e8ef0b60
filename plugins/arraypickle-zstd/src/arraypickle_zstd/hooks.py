"""The hook implementations arraypickle finds through the ``arraypickle`` entry point."""

from __future__ import annotations

from arraypickle import hookimpl

from .codec import ZstdCodec


@hookimpl
def arraypickle_register_codecs() -> list[ZstdCodec]:
    return [ZstdCodec()]
