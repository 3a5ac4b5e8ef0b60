"""File objects for tests: a pipe, a slow socket, a full disk, a socket kept open."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import arraypickle

__all__ = ["Trickle", "Unseekable", "load_from_kept_open_socket"]


class Unseekable(io.RawIOBase):
    """A file object over ``BytesIO`` that cannot seek or tell, like a pipe.

    Example::

        out = Unseekable()
        arraypickle.dump(obj, out, compress="lz4")
        arraypickle.load(Unseekable(out.getvalue()))
    """

    def __init__(self, data: bytes = b"") -> None:
        super().__init__()
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return self._buf.readinto(b)

    def write(self, b: Any) -> int:
        return self._buf.write(b)

    def getvalue(self) -> bytes:
        return self._buf.getvalue()


class Trickle(io.RawIOBase):
    """A non-seekable reader whose reads return 1 to ``most`` bytes, whatever was asked
    (a slow socket): a reader that takes a short read for the end of its input fails.

    Parameters:
        data: what the reads return, in order.
        most: the longest read; reads cycle through 1 to ``most`` bytes.

    Example::

        arraypickle.load(Trickle(arraypickle.dumps(obj, compress="lz4")))
    """

    def __init__(self, data: bytes, most: int = 7) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._most = most
        self._turn = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        self._turn += 1
        n = min(len(b), 1 + self._turn % self._most, len(self._data) - self._pos)
        memoryview(b).cast("B")[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def load_from_kept_open_socket(
    blobs: Sequence[bytes], *, answer: bool = True, timeout: float = 60, **load_kwargs: Any
) -> list[Any]:
    """Send ``blobs`` over a loopback socket pair whose sender never closes its end
    while the receiver loads one object per blob (load_kwargs go to ``load``).

    With ``answer``, each blob is sent once the receiver has loaded the previous one
    (a request and its reply); without, all are sent at once. Returns what each load
    returned or raised. A load that waits for the end of the input fails the test
    after ``timeout`` seconds instead of hanging (the sender then closes its end).

    Parameters:
        blobs: the dumped objects, one per load.
        answer: send each blob only after the previous one loaded.
        timeout: seconds a load may wait before the test fails.
        load_kwargs: passed to :func:`arraypickle.load`.

    Example::

        >>> blobs = [arraypickle.dumps(n, compress="zlib") for n in range(3)]
        >>> load_from_kept_open_socket(blobs)
        [0, 1, 2]
    """
    left, right = socket.socketpair()
    loaded = [threading.Event() for _ in blobs]
    done = threading.Event()
    results: list[Any] = []

    def send() -> None:
        with contextlib.suppress(OSError), left.makefile("wb") as f:
            for i, blob in enumerate(blobs):
                if answer and i and not loaded[i - 1].wait(timeout):
                    return
                f.write(blob)
                f.flush()
            done.wait(timeout)

    def receive() -> None:
        with right.makefile("rb") as f:
            for event in loaded:
                try:
                    results.append(arraypickle.load(f, **load_kwargs))
                except Exception as exc:  # kept for the test to look at
                    results.append(exc)
                event.set()

    sender = threading.Thread(target=send, daemon=True)
    receiver = threading.Thread(target=receive, daemon=True)
    with left, right:
        sender.start()
        receiver.start()
        receiver.join(timeout)
        hung = receiver.is_alive()
        done.set()
        if hung:  # the sender closes its end: the load sees the end of the input
            sender.join(timeout)
            left.close()
            receiver.join(timeout)
        sender.join(timeout)
    if hung:
        pytest.fail(f"a load from a socket kept open by its sender hung ({len(results)} done)")
    return results


class _Failing(io.RawIOBase):
    """A file that takes ``budget`` bytes, then fails every write, like a full disk."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self._budget = budget

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = memoryview(b).nbytes
        if n > self._budget:
            raise OSError(28, "no space left on device")
        self._budget -= n
        return n
