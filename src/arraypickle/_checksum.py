"""Record checksums: xxh3-64.

Measured on the 2-core machine this project targets, over 300 MB in memory:
xxh3-64 16.4 GB/s, xxh64 8.5 GB/s, zlib.crc32 3.2 GB/s, zlib.adler32 2.7 GB/s.
Loading 300 MB from the page cache runs at about 3 GB/s, so crc32 would double a load.
The dump hashes in line, a piece at a time just before writing it: writing to the page
cache is bound by memory bandwidth, and a helper thread hashing the same memory
measured no faster. The load hashes large buffers on one helper thread per load
(:class:`HashThread`) while it reads the next piece, and small ones in line, a 512 KiB
piece at a time right after reading it, while it is in cache (``_reader``; the
measurements are in docs/integrity.md). Checking those smaller buffers on the helper
thread too, while the next records are read, measured slower: a fitted forest (401
buffers of 1-250 KB) loaded in 1.5-1.6 times pickle's time instead of 1.3-1.4, the
handovers of the GIL costing more than the hashes they moved.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import xxhash

digest = xxhash.xxh3_64_intdigest
Hasher = xxhash.xxh3_64


class HashThread:
    """One helper thread that hashes pieces while the caller reads the next ones.

    On an otherwise idle core this hides the hash almost entirely: loading 300 MB from
    the page cache measured 0.060 s with it, 0.056 s without hashing and 0.066-0.074 s
    hashing in line. The thread lives for one load (started on first use, stopped by
    :meth:`close`), so nothing outlives a fork. A piece handed to :meth:`update` must
    not change until :meth:`wait` returns.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hasher, piece, done = item
            if done is not None:
                done.set()
            elif self._error is None:
                try:
                    hasher.update(piece)
                except BaseException as exc:  # re-raised by wait() in the caller's thread
                    self._error = exc

    def update(self, hasher: Any, piece: memoryview) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="arraypickle-hash", daemon=True)
            self._thread.start()
        self._queue.put((hasher, piece, None))

    def wait(self) -> None:
        """Return when every piece handed over so far is hashed."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put((None, None, done))
        done.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
