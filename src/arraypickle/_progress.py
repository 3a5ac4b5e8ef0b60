"""Progress over bytes: a counting wrapper around the file, reports throttled by bytes.

What is counted is the bytes of the file itself (compressed bytes for a compressed
file), as they pass between arraypickle and the file object: on load the total is the
file's size whenever it can be known (a path, a remote object, a seekable file, bytes);
on dump it is unknown until the end (the array bytes could be summed only by walking the
object first), so reports carry ``None`` until the final call, which gives ``(n, n)``.

``progress=callable`` is called with ``(done_bytes, total_bytes or None)``: once at the
start with ``done == 0``, then each time ``done`` has grown by a step, and once at the
end of a successful call. The step is the larger of :data:`MIN_STEP` and 1/:data:`STEPS`
of the total (of the bytes done so far when the total is unknown), so a file of any size
and any number of records gets at most a few hundred calls (a few thousand for a
terabyte of unknown size), and reported values only grow until the final one (a
compressed load from a file object seeks back over what its decoder read past the
object: the final ``done`` is where the object ends).

``progress=True`` shows a bar on stderr (tqdm's ``tqdm.auto``, so notebooks get their
widget) for files over :data:`BAR_THRESHOLD` bytes; smaller files show nothing. When
the total is unknown the bar appears once that many bytes have passed. Without tqdm a
plain-text line is updated in its place: progress is cosmetic, so a missing optional
dependency never fails a dump or a load.

With ``progress=False`` (the default) nothing is wrapped: it costs nothing.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any

from ._errors import InvalidArgumentError
from ._streams import read_into, read_some_into, readinto_of
from ._typing import Progress, ProgressCallback
from ._writer import write_all

BAR_THRESHOLD = 100 * 2**20
MIN_STEP = 1 << 20
STEPS = 200
# Writes bigger than this are passed on in pieces of this size, counted one by one.
WRITE_PIECE = 8 << 20


class Reporter:
    """Throttles ``(done, total)`` reports to ``sink`` by bytes."""

    def __init__(self, sink: ProgressCallback, close: Callable[[], None] | None = None) -> None:
        self._sink = sink
        self._close = close
        self.total: int | None = None
        self.done = 0
        self.next_at = 0
        self._started = False

    def start(self, total: int | None) -> None:
        if self._started:
            return
        self._started = True
        self.total = total
        self._sink(0, total)
        self.next_at = self._step()

    def _step(self) -> int:
        basis = self.total if self.total is not None else self.done
        return self.done + max(MIN_STEP, basis // STEPS)

    def update_to(self, done: int) -> None:
        """Record ``done`` bytes; report if it passed the next step."""
        if done >= self.next_at:
            self.done = done
            self._sink(done, self.total)
            self.next_at = self._step()

    def finish(self, done: int) -> None:
        # ``done`` as counted, even below the last report: a compressed load from a
        # file object seeks back over what its decoder read past the object.
        self.done = done
        self._sink(self.done, self.total if self.total is not None else self.done)

    def close(self) -> None:
        if self._close is not None:
            self._close()


class _Silent:
    """What ``track`` gives when progress is off: the file objects pass through untouched."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def writer(self, out: Any) -> Any:
        return out

    def reader(self, src: Any) -> Any:
        return src


_SILENT = _Silent()


class _Tracker:
    """Wraps the file objects of one dump or load in counting wrappers.

    As a context manager: the final report is made when the block succeeds, and the
    bar (if any) is closed in every case.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._counter: CountingWriter | CountingReader | None = None

    def __enter__(self) -> _Tracker:
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        try:
            if exc_type is None and self._counter is not None:
                self.reporter.finish(self._counter.done)
        finally:
            self.reporter.close()

    def writer(self, out: Any) -> CountingWriter:
        self.reporter.start(None)
        self._counter = CountingWriter(out, self.reporter)
        return self._counter

    def reader(self, src: Any) -> CountingReader:
        counter = CountingReader(src, self.reporter)
        self.reporter.start(counter.remaining)
        self._counter = counter
        return counter


def track(progress: Progress, action: str, name: str) -> _Tracker | _Silent:
    """Report the progress of one ``action`` ('dump' or 'load') on the file ``name``.

    A context manager whose ``writer(out)`` / ``reader(src)`` return the file object
    to use instead of ``out`` / ``src``; with progress off they return it unchanged.
    """
    if progress is None or progress is False:
        return _SILENT
    return _Tracker(_reporter(progress, f"{action} {_short(name)}"))


def check(progress: Progress) -> None:
    """Refuse a ``progress`` argument that is not a bool, None or a callable."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise InvalidArgumentError(
        "progress must be True, False or a callable taking (done_bytes, total_bytes), "
        f"got {progress!r}"
    )


def _reporter(progress: Progress, desc: str) -> Reporter:
    check(progress)
    if progress is True:
        bar = Bar(desc)
        return Reporter(bar.update, bar.close)
    assert callable(progress)
    return Reporter(progress)


def _short(name: str) -> str:
    name = name.strip("'\"")
    return os.path.basename(name.rstrip("/")) or name


class Bar:
    """A progress bar that appears only for files over :data:`BAR_THRESHOLD` bytes."""

    def __init__(self, desc: str) -> None:
        self._desc = desc
        self._bar: Any = None

    def update(self, done: int, total: int | None) -> None:
        if self._bar is None:
            if max(done, total or 0) <= BAR_THRESHOLD:
                return
            self._bar = _new_bar(self._desc, total, done)
        self._bar.show(done, total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _new_bar(desc: str, total: int | None, done: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextBar(desc, sys.stderr)
    return TqdmBar(tqdm, desc, total, done)


class TqdmBar:
    def __init__(self, tqdm: Any, desc: str, total: int | None, initial: int) -> None:
        # Starting at ``initial`` (a bar that appears late) keeps the rate estimate right.
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=True,
        )

    def show(self, done: int, total: int | None) -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


class TextBar:
    """The fallback without tqdm: one line rewritten in place on a terminal; elsewhere a
    line per tenth of a known total (per doubling of an unknown one)."""

    def __init__(self, desc: str, stream: Any) -> None:
        self._desc = desc
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._mark = -1

    def show(self, done: int, total: int | None) -> None:
        if total:
            line = f"{self._desc}: {done >> 20}/{total >> 20} MiB ({100 * done // total}%)"
            mark = 10 * done // total
        else:
            line = f"{self._desc}: {done >> 20} MiB"
            mark = max(done >> 20, 1).bit_length()
        if self._tty:
            self._stream.write("\r" + line)
        elif mark != self._mark:
            self._stream.write(line + "\n")
        self._mark = mark
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


# -- counting wrappers ------------------------------------------------------------------


class CountingWriter:
    """Counts the bytes written to ``out``; everything else is ``out``'s."""

    def __init__(self, out: Any, reporter: Reporter) -> None:
        self._out = out
        self._write = out.write
        self._reporter = reporter
        self.done = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.nbytes > WRITE_PIECE:
            # One big array is one write: cut it so that reports keep coming.
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            for start in range(0, len(view), WRITE_PIECE):
                piece = view[start : start + WRITE_PIECE]
                write_all(self._write, piece)
                self._count(len(piece))
            return len(view)
        n = self._write(data)
        self._count(view.nbytes if n is None else n)
        return n

    def _count(self, n: int) -> None:
        self.done += n
        if self.done >= self._reporter.next_at:
            self._reporter.update_to(self.done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


class CountingReader:
    """Counts the bytes read from ``src`` (a seek moves the count); the rest is ``src``'s."""

    def __init__(self, src: Any, reporter: Reporter) -> None:
        self._src = src
        self._reporter = reporter
        self.done = 0
        self._origin: int | None = None
        self.size: int | None = None
        self.remaining: int | None = None
        try:
            if src.seekable():
                self._origin = src.tell()
        except (AttributeError, OSError, ValueError):
            pass
        self.size = _total_size(src)
        if self.size is not None:
            self.remaining = max(0, self.size - (self._origin or 0))

    def _count(self, n: int) -> None:
        self.done += n
        if self.done >= self._reporter.next_at:
            self._reporter.update_to(self.done)

    def read(self, size: int | None = -1) -> bytes:
        data = self._src.read(size)
        if data:
            self._count(len(data))
        return data

    def readinto(self, b: Any) -> int:
        n = read_into(self._src, readinto_of(self._src), b)
        self._count(n)
        return n

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._src, "read1", None)
        data = (read1 if read1 is not None else self._src.read)(size)
        if data:
            self._count(len(data))
        return data

    def readinto1(self, b: Any) -> int:
        n = read_some_into(self._src, b)
        self._count(n)
        return n

    def readline(self, size: int | None = -1) -> bytes:
        line = self._src.readline(size)
        self._count(len(line))
        return line

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        pos = self._src.seek(offset, whence)
        if self._origin is not None:
            self.done = pos - self._origin
            if self.done >= self._reporter.next_at:
                self._reporter.update_to(self.done)
        return pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)


def _total_size(src: Any) -> int | None:
    """The whole size of the file behind ``src`` when it can be known cheaply."""
    try:
        return os.fstat(src.fileno()).st_size or None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    if isinstance(src, io.BytesIO):
        return src.getbuffer().nbytes
    size = getattr(src, "size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    return None
