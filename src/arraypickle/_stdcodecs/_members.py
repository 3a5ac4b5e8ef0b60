"""Streams that may follow one another (bz2, xz), written a chunk per stream, in parallel.

bzip2 and xz decoders, the command-line tools included, read concatenated streams as
one. Each chunk of the input is compressed on a worker thread into a complete stream
of its own, and the streams are written in order. A stream of a chunk costs a header
and a trailer (a few dozen bytes) and the matches that would have reached into the
previous chunk: chunks are several times the format's block (bz2) or dictionary (xz)
size, so the ratio barely moves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._parallel import ChunkedWriter


class MembersWriter(ChunkedWriter):
    """Writes ``compress(chunk)`` for each chunk: complete streams, back to back.

    Parameters:
        fileobj: where the streams go (left open by close).
        compress: makes one complete stream of a chunk (runs on a worker thread).
        chunk_size: input bytes per stream.
        threads: worker threads.
    """

    def __init__(
        self,
        fileobj: Any,
        compress: Callable[[Any], bytes],
        chunk_size: int,
        threads: int | None = 1,
    ) -> None:
        self.chunk_size = chunk_size
        super().__init__(fileobj, threads)
        self._compress = compress
        self._streams = 0

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        if last and not len(chunk) and self._streams:
            return lambda: None  # every byte is in a stream already
        self._streams += 1
        return functools.partial(self._compress, chunk)
