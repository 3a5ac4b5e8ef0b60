"""The types of what the public API takes: file objects by what they can do.

``dump`` writes to anything with ``write``, ``load`` reads from anything with ``read``
(pipes, sockets, ``gzip.GzipFile``, ``tempfile.SpooledTemporaryFile``...), so the
annotations are protocols of that one method rather than ``typing.BinaryIO``, which
most of those objects do not claim to be.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

# Positional-only parameters: an implementation may name them as it likes.


class Writable(Protocol):
    """A binary file to write to: ``dump``'s file objects, and a codec's output."""

    def write(self, data: bytes, /) -> int | None: ...


class Readable(Protocol):
    """A binary file to read from: ``load``'s file objects, and a codec's input."""

    def read(self, size: int, /) -> bytes | None: ...


class WriterStream(Writable, Protocol):
    """What a codec's ``open_writer`` returns: closing it finishes the stream."""

    def close(self) -> None: ...


class ReaderStream(Readable, Protocol):
    """What a codec's ``open_reader`` returns (``readinto`` is used where it has one)."""

    def close(self) -> None: ...


Path = str | os.PathLike[str]
# 0/False, True, a zlib level, a codec name, or (codec name, level).
Compress = bool | int | str | tuple[str, int]
# ``progress=``: a bar (True), none (False, None), or ``callback(done_bytes, total_bytes)``,
# total None when unknown (a stream).
ProgressCallback = Callable[[int, int | None], Any]
Progress = bool | ProgressCallback | None
