"""Writing a container: header, records, checksums, aligned buffers, in one forward pass."""

from __future__ import annotations

import contextlib
import pickle
from typing import Any, BinaryIO

import numpy as np

from . import _format as fmt
from ._helper import HelperThread
from ._memory import byte_chunks, byte_view, contiguous_bytes


def abandon(stream: Any) -> None:
    """Stop a codec's writer after a failure: ``abort`` where it has one (a parallel
    writer drops its queued chunks instead of compressing them, so Ctrl-C returns at
    once), else ``close``. Its own error is dropped: the first error is the one to report."""
    stop = getattr(stream, "abort", None) or stream.close
    with contextlib.suppress(Exception):
        stop()


def write_all(write: Any, data: Any) -> None:
    """Call ``write`` until all of ``data`` is written (raw files may write less)."""
    view = byte_view(data)
    total = len(view)
    done = write(view)
    if done is None or done == total:
        return
    while done < total:
        step = write(view[done:])
        if not step:
            raise OSError(f"short write: {done} of {total} bytes written")
        done += step


# Payloads up to this size are copied into the pending bytes (see ContainerWriter).
_SMALL = 16 << 10
# Pending bytes are written once they reach this size.
_PENDING_LIMIT = 64 << 10
# A GROUP record's payload, table included, stays within this size.
_GROUP_LIMIT = 64 << 10
# Buffers from this size are hashed on a helper thread while they are written
# (uncompressed dumps only: compressed ones keep every core busy compressing).
_THREADED_HASH = 4 << 20
_ZEROS = bytes(fmt.ALIGNMENT)


def _small_bytes(arr: np.ndarray, order: str) -> bytes:
    """The bytes of a small array (at most 16 KiB), laid out as byte_chunks lays out
    large ones (any order but 'F' is C), by ndarray's own tobytes (a subclass may
    override it). A copy: measured faster than joining a view of the array's memory,
    and its bytes are the writer's alone, so they are kept as they are, not joined
    again."""
    return np.ndarray.tobytes(arr, "F" if order == "F" else "C")


class ContainerWriter:
    """Writes one container to ``out``; its :meth:`write` is the pickler's file.

    Record headers, trailers and small payloads collect as pending bytes and reach
    ``out`` in one write, joined, before the next large payload (or at 64 KiB, or at
    :meth:`finish`): an object of many small arrays costs one write per 64 KiB, not
    three per array. Large payloads are written from the array's own memory.

    Small buffers go into GROUP records, up to 64 KiB each: a reader then reads, checks
    and files a record per group, not per buffer (for an object of many small arrays,
    most of the cost of loading it). A group is written before anything that follows
    it in the file: the next opcodes (which refer to its buffers), a buffer of its own.

    ``out`` may offer ``write_array(data, itemsize)``: buffer payloads then go through
    it, telling array-aware codecs the element size of what they compress (a group's
    one by one, its table and gaps through ``write``).
    """

    def __init__(self, out: BinaryIO, *, hash_thread: bool = False) -> None:
        self._write = out.write
        self._write_array = getattr(out, "write_array", None)
        self._hashing = HelperThread() if hash_thread else None
        header = fmt.pack_header()
        self._pending: list[bytes] = [header]
        self._pending_bytes = len(header)
        self.offset = len(header)
        self.records = 0
        self.buffers = 0
        # The payloads of the group being gathered, with their element sizes.
        self._group: list[tuple[bytes, int]] = []
        self._group_end = 0  # where its last buffer ends, counted from its data's start

    def _add(self, *parts: bytes) -> None:
        """Append ``parts`` to the pending bytes (``offset`` counts them as written)."""
        self._pending += parts
        size = sum(map(len, parts))
        self._pending_bytes += size
        self.offset += size
        if self._pending_bytes >= _PENDING_LIMIT:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            write_all(self._write, data)

    def _header(self, kind: bytes, flags: int, length: int) -> bytes:
        """A record header at ``offset``, and the padding that aligns a buffer after it."""
        pad = fmt.padding(self.offset) if kind in fmt.ALIGNED_KINDS else 0
        return fmt.pack_record(kind, pad, flags, length) + _ZEROS[:pad]

    def _small_record(self, kind: bytes, flags: int, payload: Any, owned: bool = False) -> int:
        """Add a whole record with a small ``payload`` to the pending bytes; its index.

        ``payload`` is joined (copied) at once, so it may be a view of memory that
        changes later; ``owned`` bytes (nobody else's, immutable) are kept as they are."""
        index = self.records
        header = self._header(kind, flags, len(payload))
        trailer = fmt.TRAILER.pack(fmt.record_checksum(payload, index))
        if owned:
            self._add(header, payload, trailer)
        else:
            self._add(b"".join((header, payload, trailer)))
        self.records += 1
        return index

    def _large_header(self, kind: bytes, flags: int, length: int) -> int:
        """Write the pending bytes and the header of a record whose payload comes next."""
        header = self._header(kind, flags, length)
        self._pending.append(header)
        self.offset += len(header)
        self._flush()
        self.records += 1
        return self.records - 1

    def _large_record(self, kind: bytes, flags: int, payload: Any, length: int) -> None:
        """Write a whole record whose ``payload`` (``length`` bytes, in one piece) is
        written from its own memory, after the pending bytes."""
        index = self._large_header(kind, flags, length)
        checksum = fmt.record_checksum(payload, index)  # first: the write then reads cache
        write_all(self._write, payload)
        self.offset += length
        self._add(fmt.TRAILER.pack(checksum))

    def _add_to_group(self, payload: bytes, itemsize: int) -> None:
        """Gather a small buffer's ``payload`` (bytes of its own) into the group."""
        size = len(payload)
        start = fmt.aligned(self._group_end) if self._group else 0
        table = fmt.aligned(fmt.group_table_size(len(self._group) + 1))
        if self._group and table + start + size > _GROUP_LIMIT:
            self._flush_group()
            start = 0
        self._group.append((payload, itemsize))
        self._group_end = start + size

    def _flush_group(self) -> None:
        """Write the gathered buffers as one GROUP record (added to the pending bytes,
        unless an array-aware codec is to get each buffer with its element size)."""
        buffers = self._group
        self._group = []
        table = fmt.pack_group_table([len(b) for b, _ in buffers], self.records)
        parts = [table]  # then each buffer's gap and payload
        end = len(table)
        for payload, _ in buffers:
            gap = -end % fmt.ALIGNMENT
            parts += (_ZEROS[:gap], payload)
            end += gap + len(payload)
        if self._write_array is None:
            self._small_record(fmt.KIND_GROUP, 0, b"".join(parts), owned=True)
            return
        hasher = fmt.record_hasher(self._large_header(fmt.KIND_GROUP, 0, end))
        hasher.update(table)
        write_all(self._write, table)
        for (payload, itemsize), gap in zip(buffers, parts[1::2], strict=True):
            hasher.update(gap)
            write_all(self._write, gap)
            hasher.update(payload)
            # as every buffer reaches write_array: a 1-D uint8 array
            self._write_array(np.frombuffer(payload, np.uint8), itemsize)
        self.offset += end
        self._add(fmt.TRAILER.pack(hasher.intdigest()))

    def write(self, data: bytes | pickle.PickleBuffer) -> int:
        """Take one frame of pickle opcodes from the pickler as a PICKLE record."""
        if self._group:  # before the opcodes that refer to its buffers
            self._flush_group()
        view = byte_view(data)
        size = len(view)
        if size <= _SMALL:
            self._small_record(fmt.KIND_PICKLE, 0, view)
        else:
            self._large_record(fmt.KIND_PICKLE, 0, view, size)
        return size

    def write_array(self, arr: np.ndarray, order: str, flags: int = 0) -> int:
        """Write ``arr``'s bytes in ``order`` as a BUFFER record; return its index.

        The bytes go from the array's memory to ``out``; only a non-contiguous array
        is copied, a bounded chunk at a time.
        """
        nbytes = arr.nbytes
        small = nbytes <= _SMALL
        if small and nbytes and not flags:
            self._add_to_group(_small_bytes(arr, order), arr.dtype.itemsize)
            self.buffers += 1
            return self.buffers - 1
        if self._group:  # buffers are numbered in the order of their records
            self._flush_group()
        if small and self._write_array is None:
            # NEXT_BUFFER (the flag is per record), or empty (groups hold none)
            self._small_record(fmt.KIND_BUFFER, flags, _small_bytes(arr, order), owned=True)
        elif (
            self._write_array is None
            and nbytes < _THREADED_HASH
            and (whole := contiguous_bytes(arr, order)) is not None
        ):
            # The common case, without the chunking machinery: one hash, one write.
            self._large_record(fmt.KIND_BUFFER, flags, whole, nbytes)
        else:
            self._write_large(arr, order, flags, nbytes)
        self.buffers += 1
        return self.buffers - 1

    def _write_large(self, arr: np.ndarray, order: str, flags: int, nbytes: int) -> None:
        index = self._large_header(fmt.KIND_BUFFER, flags, nbytes)
        itemsize = arr.dtype.itemsize
        hasher = fmt.record_hasher(index)
        hashing = self._hashing if nbytes >= _THREADED_HASH else None
        for chunk in byte_chunks(arr, order):
            if hashing is not None:
                hashing.submit(hasher.update, chunk)
            else:
                hasher.update(chunk)
            if self._write_array is not None:
                self._write_array(chunk, itemsize)
            else:
                write_all(self._write, chunk)
            if hashing is not None:
                hashing.wait()  # a non-contiguous array's chunk buffer is reused next
            self.offset += chunk.nbytes
        self._add(fmt.TRAILER.pack(hasher.intdigest()))

    def write_picklebuffer(self, buffer: pickle.PickleBuffer) -> None:
        """Write a buffer some object's own reduction handed out (read back by NEXT_BUFFER)."""
        # raw() refuses a non-contiguous buffer, as pickle itself does in-band.
        with buffer.raw() as view:
            self.write_array(np.frombuffer(view, np.uint8), "C", fmt.FLAG_NEXT_BUFFER)

    def close(self) -> None:
        """Stop the hashing thread, if any (after :meth:`finish`, or after a failure)."""
        if self._hashing is not None:
            self._hashing.close()

    def finish(self) -> None:
        """Write the END record, and everything still pending."""
        if self._group:
            self._flush_group()
        self._small_record(fmt.KIND_END, 0, fmt.END.pack(self.records, self.buffers))
        self._flush()
