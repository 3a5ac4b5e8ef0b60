"""Parallel chunked compression and decompression: the machinery every codec shares.

Three pieces, public to codec authors through :mod:`arraypickle.codec`:

:class:`Pipeline`
    Runs jobs on a thread pool of its own (at most ``threads`` at once, a bounded
    number in flight) and hands their results to a sink in submission order. With one
    thread it runs each job in the calling thread and starts no thread at all. The
    pool lives only while the pipeline does (a dump or a load), so no idle pool is
    ever inherited by a forked child; a job's exception is raised by the call that
    retires it, and :meth:`Pipeline.abort` cancels what has not started, waits for
    what has, and leaves no thread behind.
:class:`ChunkedWriter`
    A codec writer that gathers small writes (record headers, pickle frames) into
    chunks of ``chunk_size`` bytes, cuts large writes into such chunks, compresses
    each on the pipeline and writes the results in order. Subclasses say how one
    chunk is compressed (:meth:`ChunkedWriter.job`).
:class:`FramedReader`
    A codec reader over a stream of independent frames: frames of known size that fit
    in the caller's buffer are decompressed straight into it, several at once; others
    go through a bounded buffer. Subclasses say how a frame is found and decoded.

:class:`ReadAhead`
    For formats that decode in one sequence (deflate, bzip2, xz): the decoder runs on
    one helper thread, a few pieces ahead of the reader, while the caller hashes,
    copies and unpickles; the caller's thread alone reads the file, and feeds it.

Threads pay only for large data: the first chunk or frame of a stream is handled in
the calling thread, so a stream of less than one chunk starts no thread at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._cores import usable_cores
from ._errors import CorruptFileError, InvalidArgumentError, describe
from ._memory import byte_view
from ._streams import is_seekable, readinto_of
from ._writer import write_all

__all__ = [
    "ChunkedWriter",
    "Frame",
    "FramedReader",
    "Pipeline",
    "ReadAhead",
    "copy_into",
    "resolve_threads",
]


def resolve_threads(threads: int | None) -> int:
    """The thread count ``threads`` asks for: None means every usable core
    (:func:`usable_cores`: the affinity mask, a container's CPU limit and
    ``ARRAYPICKLE_MAX_THREADS`` bound it).

    Parameters:
        threads: None, or an int >= 1.

    Raises:
        ValueError: for anything else.

    Example::

        >>> resolve_threads(1), resolve_threads(None) == usable_cores()
        (1, True)
    """
    if threads is None:
        return usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"threads must be None or an int >= 1, got {threads!r}")
    return threads


def copy_into(out: memoryview, data: Any) -> None:
    """``out[:] = data``, through numpy for large copies: numpy releases the GIL while it
    copies (and while the kernel faults in fresh pages), so other threads run meanwhile.

    Example::

        >>> buf = bytearray(3)
        >>> copy_into(memoryview(buf), b"abc")
        >>> bytes(buf)
        b'abc'
    """
    if len(out) >= _NUMPY_COPY and not out.readonly:
        np.copyto(np.frombuffer(out, np.uint8), np.frombuffer(data, np.uint8))
    else:
        out[:] = data


#: Copies of at least this many bytes go through numpy (see copy_into).
_NUMPY_COPY = 64 << 10


class Pipeline:
    """An ordered, bounded pipeline of jobs over a private thread pool.

    ``submit(fn, *args)`` runs ``fn(*args)`` on one of ``threads`` worker threads;
    results reach ``sink`` (called in the submitting thread) in submission order. At
    most ``depth`` jobs (``threads + 1`` by default: one waiting for each worker to
    finish) are in flight: ``submit`` retires
    the oldest first when there are more. With ``threads == 1`` each job runs at once
    in the calling thread.

    Parameters:
        threads: worker threads, >= 1.
        sink: receives each job's result, in order (None: results are dropped).
        depth: the most jobs in flight.

    Example::

        >>> out = []
        >>> pipe = Pipeline(2, out.append)
        >>> for i in range(5):
        ...     pipe.submit(pow, i, 2)
        >>> pipe.close()
        >>> out
        [0, 1, 4, 9, 16]
    """

    def __init__(
        self, threads: int, sink: Callable[[Any], None] | None = None, depth: int | None = None
    ) -> None:
        self.threads = resolve_threads(threads)
        self._sink = sink
        self._depth = max(1, depth if depth is not None else self.threads + 1)
        self._pending: deque[Future[Any]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet retired."""
        return len(self._pending)

    def submit(self, fn: Callable[..., Any], *args: Any, inline: bool = False) -> None:
        """Run ``fn(*args)``; its result goes to the sink after every earlier one.

        With ``inline`` (or one thread) and nothing in flight, the job runs in the
        calling thread: a last, lone job does not start a pool.
        """
        if self.threads == 1 or (inline and not self._pending):
            self._deliver(fn(*args))
            return
        if os.getpid() != self._pid:  # its workers, if any, stayed in the parent
            raise RuntimeError("a stream opened before os.fork() cannot be used in the child")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="arraypickle")
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._depth:
            self._retire()

    def _deliver(self, result: Any) -> None:
        if self._sink is not None:
            self._sink(result)

    def _retire(self) -> None:
        future = self._pending[0]
        result = future.result()  # re-raises the job's exception here
        self._pending.popleft()
        self._deliver(result)

    def drain(self) -> None:
        """Retire every job in flight, in order."""
        while self._pending:
            self._retire()

    def close(self) -> None:
        """Retire every job, then stop the pool (on failure, :meth:`abort`)."""
        try:
            self.drain()
        except BaseException:
            self.abort()
            raise
        self._shutdown()

    def abort(self) -> None:
        """Drop the jobs not started, wait for the running ones, stop the pool.

        Nothing reaches the sink; the jobs' results and exceptions are discarded.
        Waiting matters: running jobs read memory the caller is about to reuse.
        """
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ChunkedWriter(io.RawIOBase):
    """A writer that compresses its input in chunks, in parallel, written in order.

    Subclasses set :attr:`chunk_size` and implement :meth:`job`; they may override
    :meth:`emit` (what is done with a chunk's result, by default written to the file)
    and :meth:`finish` (the stream's trailer). The stream's header, if any, is
    written by the subclass's ``__init__``.

    Input is cut into chunks at fixed offsets of the byte stream (every chunk but the
    last holds exactly :attr:`chunk_size` bytes), whatever the sizes of the writes and
    the number of threads, so the output is the same for every thread count.
    :meth:`write_elements` cuts array data at element boundaries instead; an
    array-aware writer exposes it as its ``write_array``
    (``write_array = ChunkedWriter.write_elements``).

    ``write`` honours the writer contract: when it returns, no job reads the caller's
    memory any more. Writes up to :attr:`copy_limit` bytes are copied into chunks the
    writer owns, so the pipeline keeps running across writes; larger ones are
    compressed in place, and ``write`` waits for their chunks before returning.

    Parameters:
        fileobj: where the compressed stream goes (written from the calling thread only).
        threads: worker threads (1: everything in the calling thread).
    """

    #: Bytes per chunk: big enough that a chunk's compression dwarfs the per-job cost.
    chunk_size: int = 1 << 20
    #: Writes up to this size are copied into owned chunks instead of waited for.
    copy_limit: int = 8 << 20

    def __init__(self, fileobj: Any, threads: int | None = 1) -> None:
        super().__init__()
        self._fp = fileobj
        self._pipe = Pipeline(resolve_threads(threads), self._retired)
        # Chunk buffers of the writer's own, recycled once their job has retired, so
        # that memory stays at (threads + 2) chunks without allocator churn.
        self._free: list[bytearray] = []
        self._buf = bytearray(self.chunk_size)
        self._fill = 0
        self._failed = False
        #: Uncompressed bytes taken so far.
        self.total = 0

    # -- what subclasses provide ------------------------------------------------------

    def job(self, chunk: memoryview, itemsize: int, last: bool) -> Callable[[], Any]:
        """The work of compressing ``chunk``: a callable run on a worker thread.

        Called in the writing thread, in stream order, so it may keep ordered state
        (the previous chunk's tail as a dictionary, a running index). ``chunk`` holds
        whole elements of ``itemsize`` bytes; ``last`` is true once, for the final
        chunk, which may be empty. ``chunk`` is valid until the job has run: its
        memory is then reused, so keep a copy of what later chunks need.
        """
        raise NotImplementedError

    def emit(self, result: Any) -> None:
        """Take one chunk's result, in stream order: by default, write it.

        A result is bytes-like, a sequence of bytes-like objects, or None (nothing).
        """
        if result is None:
            return
        if isinstance(result, (list, tuple)):
            for part in result:
                _write_all(self._fp, part)
        else:
            _write_all(self._fp, result)

    def finish(self) -> None:
        """Write what follows the last chunk (a trailer); called once, by close."""

    def start(self, header: Any) -> None:
        """Write the stream's header (from ``__init__``); on failure the writer is closed."""
        try:
            _write_all(self._fp, header)
        except BaseException:
            self._failed = True
            super().close()  # so that nothing more is written when it is collected
            raise

    # -- the file interface -----------------------------------------------------------

    def writable(self) -> bool:
        return True

    def _retired(self, item: tuple[Any, bytearray | None]) -> None:
        result, buf = item
        self.emit(result)
        if buf is not None and len(buf) == self.chunk_size:
            self._free.append(buf)

    def _submit(
        self, chunk: memoryview, itemsize: int, buf: bytearray | None, last: bool = False
    ) -> None:
        """Submit ``chunk``'s job; ``buf``, the writer's buffer it lives in, comes back.

        The last chunk, and every chunk while the stream is under one chunk long, run
        in the calling thread when nothing is in flight: small streams start no thread.
        """
        inline = last or self.total <= self.chunk_size
        self._pipe.submit(_run_with, self.job(chunk, itemsize, last), buf, inline=inline)

    def _copy(self, data: memoryview, itemsize: int) -> None:
        """Submit a copy of ``data`` (at most a chunk, or one element) in a buffer of ours."""
        n = len(data)
        buf = self._free.pop() if self._free and n <= self.chunk_size else None
        if buf is None:
            buf = bytearray(max(n, self.chunk_size))
        buf[:n] = data
        self._submit(memoryview(buf)[:n], itemsize, buf)

    def _guard(self, action: Callable[[], None]) -> None:
        if self._failed:
            raise ValueError("write to a compressed stream that failed")
        try:
            action()
        except BaseException:
            self._failed = True
            self._pipe.abort()
            raise

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed compressed stream")
        view = byte_view(data)
        n = len(view)
        if self._fill + n < self.chunk_size and not self._failed:  # the common case: gather
            self._buf[self._fill : self._fill + n] = view
            self._fill += n
            self.total += n
            return n
        self._guard(lambda: self._take(view))
        return n

    def _take(self, view: memoryview) -> None:
        size = self.chunk_size
        self.total += len(view)
        if self._fill:
            take = size - self._fill
            self._buf[self._fill :] = view[:take]
            view = view[take:]
            self._fill = size
            self._submit_buffer(last=False)
        whole = len(view) - len(view) % size
        rest = view[whole:]
        self._submit_pieces(view[:whole], size, 1)
        self._buf[: len(rest)] = rest
        self._fill = len(rest)

    def write_elements(self, data: Any, itemsize: int) -> int:
        """Write array bytes of ``itemsize``-byte elements as chunks of their own.

        Gathered bytes go out first as a (short) chunk; the array is then cut into
        chunks of whole elements. Only writers whose :meth:`job` uses ``itemsize``
        want this, as their ``write_array``: arraypickle calls ``write_array`` for
        every array buffer when the writer has one.
        """
        view = byte_view(data)
        n = len(view)

        def take() -> None:
            self.total += n
            if self._fill:
                self._submit_buffer(last=False)
            step = max(itemsize, self.chunk_size - self.chunk_size % itemsize)
            self._submit_pieces(view, step, itemsize)

        self._guard(take)
        return n

    def _submit_pieces(self, view: memoryview, step: int, itemsize: int) -> None:
        """``view`` as chunks of ``step`` bytes: past :attr:`copy_limit`, compressed where
        they lie, all done before this returns (the caller may reuse the memory); else
        copied, the copies compressed while the caller goes on."""
        in_place = len(view) > self.copy_limit
        for start in range(0, len(view), step):
            piece = view[start : start + step]
            if in_place:
                self._submit(piece, itemsize, None)
            else:
                self._copy(piece, itemsize)
        if in_place:
            self._pipe.drain()

    def _submit_buffer(self, *, last: bool) -> None:
        buf, chunk = self._buf, memoryview(self._buf)[: self._fill]
        if last:
            self._buf = bytearray()
        else:
            self._buf = self._free.pop() if self._free else bytearray(self.chunk_size)
        self._fill = 0
        self._submit(chunk, 1, buf, last)

    def abort(self) -> None:
        """Close without finishing the stream: chunks not started are dropped and no
        trailer is written (a dump that failed has nothing worth compressing further)."""
        self._failed = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._failed:
                self._guard(self._close_stream)
        finally:
            self._pipe.abort()  # a no-op after a clean close
            super().close()

    def _close_stream(self) -> None:
        self._submit_buffer(last=True)
        self._pipe.drain()
        self.finish()


def _run_with(work: Callable[[], Any], buf: bytearray | None) -> tuple[Any, bytearray | None]:
    return work(), buf


def _write_all(fileobj: Any, data: Any) -> None:
    write_all(fileobj.write, data)


# Bytes a payload's stated length may claim before input backs it (FramedReader.take).
_TAKE_TRUST = 16 << 20


class Frame:
    """One frame of a :class:`FramedReader` stream, as its subclass found it.

    Parameters:
        size: the decompressed size, when the frame states it (None: unknown; the
            frame is then streamed through :meth:`FramedReader.stream`).
        payload: what the subclass needs to decode it (its compressed bytes).
        info: anything else the subclass keeps with it.
    """

    __slots__ = ("info", "payload", "size")

    def __init__(self, size: int | None, payload: Any, info: Any = None) -> None:
        self.size = size
        self.payload = payload
        self.info = info


class FramedReader(io.RawIOBase):
    """A reader over a stream of independently decodable frames.

    Subclasses implement :meth:`next_frame` (read the next frame from the input, in
    the calling thread, with :meth:`take`; None at the clean end of the stream) and
    :meth:`decode_into` (decode a frame of known size into a buffer of exactly that
    size; runs on a worker thread). Frames of unknown size, or larger than
    :attr:`max_frame`, go through :meth:`stream`, which yields their decompressed
    bytes in bounded pieces.

    ``readinto(buf)`` decodes every frame that fits in ``buf`` straight into it, on
    up to ``threads`` threads at once, and waits for them before returning; a frame
    that straddles the end of ``buf`` is decoded into a buffer of the reader's own
    and served from there. :attr:`read_size` tells the caller (arraypickle's
    container reader) what size of ``readinto`` keeps every thread busy in place.

    Parameters:
        fileobj: the compressed stream, positioned at its first frame.
        threads: worker threads (1: everything in the calling thread).
    """

    #: The codec's name, for error messages.
    codec_name: str = "compressed"
    #: A typical frame's decompressed size (what the codec's writer produces).
    frame_size: int = 1 << 20
    #: Frames per thread in one ``readinto`` of :attr:`read_size` bytes.
    frames_per_read: int = 4
    #: The largest frame decoded as a whole (larger ones are streamed).
    max_frame: int = 64 << 20
    #: Compressed bytes read from the file per call, for headers and small frames.
    read_piece: int = 256 << 10

    def __init__(self, fileobj: Any, threads: int | None = 1) -> None:
        super().__init__()
        self._fp = fileobj
        self.threads = resolve_threads(threads)
        self._pipe = Pipeline(self.threads, None)
        self._in = bytearray()
        self._in_pos = 0
        self._out = memoryview(b"")
        self._out_pos = 0
        self._stream: Iterator[Any] | None = None
        self._eof = False
        self._seen = 0
        #: Set by :meth:`finish_stream`: the stream must not be read past its end.
        self.final = False
        self.name = getattr(fileobj, "name", None)

    @property
    def read_size(self) -> int:
        """The ``readinto`` size at which whole frames are decoded in place on every thread."""
        return self.frame_size * self.frames_per_read * self.threads

    # -- what subclasses provide ------------------------------------------------------

    def next_frame(self) -> Frame | None:
        """Read the next frame from the input; None at the clean end of the stream."""
        raise NotImplementedError

    def decode_into(self, frame: Frame, out: memoryview) -> None:
        """Decode ``frame`` into ``out`` (``len(out) == frame.size``); on a worker thread.

        Raise :meth:`corrupt` unless the frame decodes to exactly ``frame.size`` bytes.
        """
        raise NotImplementedError

    def stream(self, frame: Frame) -> Iterator[Any]:
        """Yield the decompressed bytes of a frame of unknown size, in bounded pieces.

        It reads the rest of the frame with :meth:`read_input` and gives back what it
        read past the frame's end with :meth:`unread`.
        """
        raise self.corrupt("has a frame of unknown size")
        yield b""  # pragma: no cover

    def end_of_stream(self) -> None:
        """After the frame that held the object's end (see :meth:`finish_stream`):
        read and check what ends the stream, if the format has such a thing (an end
        frame), and nothing after it. By default, nothing."""

    # -- input, for subclasses -------------------------------------------------------

    def corrupt(self, what: str) -> CorruptFileError:
        """The error for a damaged stream: ``<file>: <codec> stream <what>``."""
        return CorruptFileError(f"{describe(self._fp)}: {self.codec_name} stream {what}")

    def _buffered(self) -> int:
        return len(self._in) - self._in_pos

    def at_end(self) -> bool:
        """Whether the input has no more bytes."""
        if self._buffered():
            return False
        more = self._fp.read(self.read_piece)
        if not more:
            return True
        self._in, self._in_pos = bytearray(more), 0
        return False

    def take(self, n: int, what: str) -> Any:
        """Exactly ``n`` input bytes (bytes-like); a truncated stream raises :meth:`corrupt`.

        ``n`` may come straight from a frame header: a damaged one costs no more memory
        than the input holds, plus 16 MiB, before the truncation is found.
        """
        have = self._buffered()
        if n >= self.read_piece and have < n:
            # A large payload: what is buffered, then the rest read straight into place.
            # ``n`` comes from the stream: memory beyond _TAKE_TRUST is claimed only as
            # input arrives (a damaged length must not zero gigabytes first).
            out = bytearray(min(n, have + _TAKE_TRUST))
            out[:have] = self._in[self._in_pos :]
            self._in, self._in_pos = bytearray(), 0
            readinto = readinto_of(self._fp)
            while have < n:
                if have == len(out):
                    out.extend(bytes(min(n, 2 * have) - have))
                with memoryview(out) as view:
                    if readinto is not None:
                        step = readinto(view[have:]) or 0
                    else:
                        data = self._fp.read(len(out) - have) or b""
                        step = len(data)
                        view[have : have + step] = data
                if not step:
                    raise self.corrupt(f"is truncated ({what})")
                have += step
            return out
        self._ensure(n, what)
        start = self._in_pos
        self._in_pos += n
        return bytes(self._in[start : start + n])

    def peek(self, offset: int, n: int, what: str) -> bytes:
        """``n`` input bytes at ``offset`` from the current position, without taking them."""
        self._ensure(offset + n, what)
        start = self._in_pos + offset
        return bytes(self._in[start : start + n])

    def unpack(self, offset: int, layout: struct.Struct, what: str) -> tuple[Any, ...]:
        """``layout.unpack`` of the input at ``offset`` from the position (not taken):
        cheaper than :meth:`peek` for walking many small headers."""
        self._ensure(offset + layout.size, what)
        return layout.unpack_from(self._in, self._in_pos + offset)

    def _ensure(self, n: int, what: str) -> None:
        have = self._buffered()
        while have < n:
            more = self._fp.read(max(self.read_piece, n - have))
            if not more:
                raise self.corrupt(f"is truncated ({what})")
            if self._in_pos:
                del self._in[: self._in_pos]
                self._in_pos = 0
            self._in += more
            have += len(more)

    def read_input(self, n: int) -> bytes:
        """Up to ``n`` input bytes (b'' at the end of the file), for streamed frames."""
        if self._buffered():
            start = self._in_pos
            self._in_pos = min(len(self._in), start + n)
            return bytes(self._in[start : self._in_pos])
        return self._fp.read(n) or b""

    def unread(self, data: bytes) -> None:
        """Give back input read past the end of a streamed frame."""
        if data:
            self._in = bytearray(data) + self._in[self._in_pos :]
            self._in_pos = 0

    # -- the file interface -----------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = byte_view(b)
        total = len(view)
        done = 0
        try:
            while done < total:
                if self._out_pos < len(self._out):
                    take = min(total - done, len(self._out) - self._out_pos)
                    part = self._out[self._out_pos : self._out_pos + take]
                    copy_into(view[done : done + take], part)
                    self._out_pos += take
                    done += take
                    continue
                if self._stream is not None:
                    piece = next(self._stream, None)
                    if piece is None:
                        self._stream = None
                    else:
                        self._out, self._out_pos = byte_view(piece), 0
                    continue
                if self._eof:
                    break
                frame = self.next_frame()
                if frame is None:
                    self._eof = True
                elif frame.size is None or frame.size > self.max_frame:
                    self._stream = self.stream(frame)
                else:
                    # In the calling thread: the first frame_size bytes (small streams
                    # start no thread), and a frame that ends this read when no other is
                    # in flight (the caller would only wait for it: reads this small are
                    # the unpickler's or a small array's, and handing each frame to a
                    # worker made a random forest's lz4 load 30% slower).
                    inline = self._seen < self.frame_size or frame.size >= total - done
                    self._seen += frame.size
                    if frame.size <= total - done:
                        out = view[done : done + frame.size]
                        self._pipe.submit(self.decode_into, frame, out, inline=inline)
                        done += frame.size
                    else:
                        # Straddles the end of the caller's buffer: decoded into our
                        # own, alongside the frames in flight, served once they are done.
                        buf = bytearray(frame.size)
                        self._pipe.submit(self.decode_into, frame, memoryview(buf), inline=inline)
                        self._pipe.drain()
                        self._out, self._out_pos = memoryview(buf), 0
            self._pipe.drain()
        except BaseException:
            self._pipe.abort()
            raise
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._out_pos + size <= len(self._out):  # small reads: record headers
            start = self._out_pos
            self._out_pos += size
            return bytes(self._out[start : self._out_pos])
        buf = bytearray(size)
        got = self.readinto(buf)
        del buf[got:]
        return bytes(buf)

    def finish_stream(self) -> int | None:
        """End the read with the stream that held the object (the codec contract's
        ``finish_stream``): frames are read whole, so only :meth:`end_of_stream` may
        read on. Returns the input bytes read past the stream (buffered, untaken).

        Raises:
            CorruptFileError: the stream holds decompressed data after the object.
        """
        self.final = True
        if self._out_pos < len(self._out):
            raise self.corrupt("holds data after the object")
        if self._stream is not None:
            for piece in self._stream:
                if len(piece):
                    raise self.corrupt("holds data after the object")
            self._stream = None
        if not self._eof:
            self.end_of_stream()
        return self._buffered()

    def close(self) -> None:
        if not self.closed:
            self._pipe.abort()
            self._out = memoryview(b"")
            self._stream = None
        super().close()


_NEED = object()  # from the helper: "my input queue is empty"
_END = object()  # from the helper: "the decoder is done"


class _Feed:
    """The compressed input as the helper thread of a :class:`ReadAhead` sees it."""

    def __init__(self, inq: queue.Queue[bytes], outq: queue.Queue[Any]) -> None:
        self._inq = inq
        self._outq = outq
        self._eof = False
        self.name = None

    def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        try:
            data = self._inq.get_nowait()
        except queue.Empty:
            self._outq.put(_NEED)
            data = self._inq.get()
        if not data:
            self._eof = True
        return data


class ReadAhead:
    """Runs a sequential decoder on one helper thread, a bounded distance ahead of its reader.

    ``produce(feed)`` is the decoder: it reads compressed bytes with ``feed.read(n)``
    and yields decompressed pieces (bytes-like). The calling thread reads ``fileobj``
    (``piece`` bytes at a time, at most ``depth`` pieces ahead; from a source that
    cannot seek, only when the decoder asks) and hands the bytes over, so the file is
    only ever touched by the caller; :meth:`next` returns the
    decoder's pieces in order (b'' at the end) and re-raises its exceptions.
    :meth:`close` stops the helper and waits for it.

    Parameters:
        fileobj: the compressed input.
        produce: the decoder, run on the helper thread.
        piece: bytes per read of ``fileobj``.
        depth: pieces of input, and of output, held at most.

    Example::

        >>> import io, zlib
        >>> src = io.BytesIO(zlib.compress(b"x" * 100))
        >>> def produce(feed):
        ...     d = zlib.decompressobj()
        ...     while data := feed.read(10):
        ...         yield d.decompress(data)
        >>> ahead = ReadAhead(src, produce)
        >>> b"".join(iter(ahead.next, b"")) == b"x" * 100
        True
        >>> ahead.close()
    """

    def __init__(
        self,
        fileobj: Any,
        produce: Callable[[Any], Iterator[Any]],
        *,
        piece: int = 256 << 10,
        depth: int = 4,
    ) -> None:
        self._fp = fileobj
        self._piece = piece
        # A source that cannot seek may be a live stream (a socket whose sender waits
        # for an answer): a read past the bytes the decoder needs could wait forever,
        # so input is read only when the decoder asks for it.
        self._depth = depth if is_seekable(fileobj) else 0
        self._inq: queue.Queue[bytes] = queue.Queue()
        self._outq: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._in_eof = False
        #: Bytes read from ``fileobj`` so far.
        self.read_bytes = 0
        self._done = False
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, args=(produce,), name="arraypickle-readahead", daemon=True
        )
        self._top_up()
        self._thread.start()
        self._pid = os.getpid()

    def _run(self, produce: Callable[[Any], Iterator[Any]]) -> None:
        try:
            for out in produce(_Feed(self._inq, self._outq)):
                if self._stop:
                    return
                if len(out):
                    self._outq.put(out)
            self._outq.put(_END)
        except BaseException as exc:  # handed to the reader, raised there
            self._outq.put(exc)

    def _top_up(self, at_least: int = 0) -> None:
        while not self._in_eof and (at_least > 0 or self._inq.qsize() < self._depth):
            data = self._fp.read(self._piece) or b""
            self.read_bytes += len(data)
            self._inq.put(data)
            self._in_eof = not data
            at_least -= 1

    def next(self) -> Any:
        """The next decompressed piece; b'' at the end of the stream."""
        if self._done:
            return b""
        if os.getpid() != self._pid:  # the helper thread stayed in the parent
            raise RuntimeError("a stream opened before os.fork() cannot be used in the child")
        while True:
            self._top_up()
            item = self._outq.get()
            if item is _NEED:
                self._top_up(at_least=1)
                continue
            if item is _END:
                self._done = True
                return b""
            if isinstance(item, BaseException):
                self._done = True
                raise item
            return item

    def close(self) -> None:
        """Stop the helper thread and wait for it (its pending output is dropped)."""
        self._stop = True
        self._done = True
        self._inq.put(b"")  # wakes a helper waiting for input; it sees the end
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # wakes a helper waiting to hand out
                self._outq.get(timeout=0.05)
        self._thread.join()
