"""What a stream holds, told from its first bytes, and a codec's reader opened over it.

Every reader of files (load, the safe scan, ``info``, ``verify``, ``convert``) asks the
same questions in the same order: an arraypickle container, joblib 0.8.4-0.9's zlib
framing, a codec's stream (or one of a codec that is not installed), nothing at all, or
else a plain pickle. Asking them in one place keeps the answers, and their errors, the
same for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import _format as fmt
from ._damage import renamed
from ._errors import CorruptFileError, EmptyFileError
from ._joblib_zf import MAGIC as ZF_MAGIC
from ._streams import Guarded, sniff

CONTAINER = "container"
JOBLIB_ZF = "joblib-zf"
COMPRESSED = "compressed"
PLAIN = "plain"


@dataclass(frozen=True)
class Detected:
    """``kind``: one of the four above; ``head``: the bytes that told it; ``stream``:
    the stream read, positioned back where it was (sought back, or with ``head`` put in
    front); ``codec``: for ``COMPRESSED``, whose stream it is."""

    kind: str
    head: bytes
    stream: Any
    codec: Any = None


def detect(stream: Any, name: str, registry: Any, *, inner: bool = False) -> Detected:
    """What ``stream`` holds, from its position.

    ``inner``: ``stream`` is a codec's output, where compressed data is damage (no
    writer nests it). Raises :class:`EmptyFileError` for nothing at all,
    :class:`UnknownCodecError` for the magic of a codec that is not installed.
    """
    magics = registry.magics()
    head, stream = sniff(stream, [fmt.MAGIC, ZF_MAGIC, *magics])
    if head.startswith(fmt.MAGIC):
        return Detected(CONTAINER, head, stream)
    if head.startswith(ZF_MAGIC):
        found = Detected(JOBLIB_ZF, head, stream)
    elif (codec := registry.codec_at(head, name, magics)) is not None:
        found = Detected(COMPRESSED, head, stream, codec)
    elif not head:
        what = "the compressed stream holds nothing" if inner else "the file is empty"
        raise EmptyFileError(f"{name}: {what}")
    else:
        return Detected(PLAIN, head, stream)
    if inner:
        raise CorruptFileError(f"{name}: compressed data nested in compressed data")
    return found


def open_decoder(stream: Any, name: str, codec: Any, threads: int | None = None) -> Any:
    """``codec``'s reader over ``stream``, with ``threads`` for a parallel codec; a
    damaged header the reader finds at once names the file, not the stream it was given."""
    try:
        if threads is not None and getattr(codec, "parallel", False):
            return codec.open_reader(stream, threads=threads)
        return codec.open_reader(stream)
    except CorruptFileError as exc:
        raise renamed(exc, name) from exc


@contextlib.contextmanager
def decoded(stream: Any, name: str, codec: Any) -> Iterator[Guarded]:
    """``codec``'s output from ``stream``, guarded (errors name the file), closed after."""
    reader = open_decoder(stream, name, codec)
    try:
        yield Guarded(reader, name, codec.name)
    finally:
        reader.close()
