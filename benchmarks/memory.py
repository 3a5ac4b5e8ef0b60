"""Peak resident memory of this process during an operation, above where it started.

On Linux the kernel keeps the peak (``VmHWM``) and lets a process reset it by writing
``5`` to ``/proc/self/clear_refs``: exact, and free while the operation runs. Elsewhere
a thread samples the RSS every millisecond (psutil), which can miss short spikes.
"""

from __future__ import annotations

import os
import threading
import time

from arraypickle import _demo

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kb(key: str) -> int:
    with open(_STATUS) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def _can_reset_peak() -> bool:
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        _status_kb("VmHWM:")
        return True
    except OSError:
        return False


HAVE_CLEAR_REFS = os.path.exists(_CLEAR_REFS) and _can_reset_peak()
METHOD = "VmHWM reset via /proc/self/clear_refs" if HAVE_CLEAR_REFS else "psutil sampling, 1 ms"


# Memory freed by an earlier repeat can stay in the C heap, where the next operation
# reuses it without growing the RSS (glibc raises its mmap threshold after big frees):
# giving it back before each operation (glibc's malloc_trim, as the demo does) makes
# every repeat start from the same footing.
release_freed_memory = _demo.release_freed_memory
pretouch = _demo.pretouch_memory


def rss() -> int:
    """The resident set size now, in bytes."""
    if HAVE_CLEAR_REFS:
        return _status_kb("VmRSS:") * 1024
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """``with PeakMemory() as m: op()``, then ``m.peak_extra`` (bytes above the start)."""

    def __init__(self) -> None:
        self.start = 0
        self.peak = 0
        self.end = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.start = rss()
        if HAVE_CLEAR_REFS:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")
        else:
            self.peak = self.start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        if HAVE_CLEAR_REFS:
            self.peak = _status_kb("VmHWM:") * 1024
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
        self.end = rss()
        self.peak = max(self.peak, self.end)

    @property
    def peak_extra(self) -> int:
        """Peak RSS during the block minus RSS before it."""
        return max(0, self.peak - self.start)

    @property
    def retained(self) -> int:
        """RSS after the block minus RSS before it (what the result holds)."""
        return self.end - self.start
