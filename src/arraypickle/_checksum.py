"""Record checksums: xxh3-64.

Measured on the 2-core machine this project targets, over 300 MB in memory:
xxh3-64 16.4 GB/s, xxh64 8.5 GB/s, zlib.crc32 3.2 GB/s, zlib.adler32 2.7 GB/s.
Loading 300 MB from the page cache runs at about 2.3 GB/s, so crc32 would add ~70% to
a load and xxh3 ~14% when run in line; :class:`Hasher` runs large pieces on a helper
thread (xxhash releases the GIL) so the hash overlaps the next read or write.

On load, the reader instead hands it pieces of 512 KiB, hashed in line right after
each is read, while still in cache: measured again on that machine while it was shared
(docs/integrity.md), that cost 16-30% of a 300 MB load against 66-75% for 16 MiB
pieces hashed on the helper thread, which found no idle core to run on.
"""

from __future__ import annotations

import threading

import xxhash

digest = xxhash.xxh3_64_intdigest

# Below this, starting a thread costs more than the hash it would hide.
_OVERLAP_MIN = 1 << 20


class Hasher:
    """xxh3-64 over a sequence of pieces, hashing large pieces in the background.

    A piece handed to :meth:`update` must stay unchanged until the next call to
    :meth:`update` or :meth:`intdigest`, which wait for it.
    """

    __slots__ = ("_error", "_state", "_thread")

    def __init__(self) -> None:
        self._state = xxhash.xxh3_64()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self, piece: memoryview) -> None:
        try:
            self._state.update(piece)
        except BaseException as exc:  # re-raised in the caller's thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    def update(self, piece: memoryview) -> None:
        self.wait()
        if len(piece) < _OVERLAP_MIN:
            self._state.update(piece)
            return
        # A thread per large piece rather than a pool: pools break in forked children.
        self._thread = threading.Thread(target=self._run, args=(piece,), daemon=True)
        self._thread.start()

    def intdigest(self) -> int:
        self.wait()
        return self._state.intdigest()
