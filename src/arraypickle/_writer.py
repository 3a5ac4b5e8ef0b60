"""Writing a container: header, records, checksums, aligned buffers, in one forward pass."""

from __future__ import annotations

import pickle
from typing import Any, BinaryIO

import numpy as np

from . import _format as fmt
from ._checksum import HashThread
from ._memory import byte_chunks, byte_view


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


# Buffers up to this size are written as one joined record (see _write_small).
_SMALL = 16 << 10
# Buffers from this size are hashed on a helper thread while they are written
# (uncompressed dumps only: compressed ones keep every core busy compressing).
_THREADED_HASH = 4 << 20


class ContainerWriter:
    """Writes one container to ``out``; its :meth:`write` is the pickler's file.

    ``out`` may offer ``write_array(data, itemsize)``: buffer payloads then go through
    it, telling array-aware codecs the element size of what they compress.
    """

    def __init__(self, out: BinaryIO, *, hash_thread: bool = False) -> None:
        self._write = out.write
        self._write_array = getattr(out, "write_array", None)
        self._hashing = HashThread() if hash_thread else None
        self.offset = 0
        self.records = 0
        self.buffers = 0
        self._emit(fmt.pack_header())

    def _emit(self, data: Any) -> None:
        write_all(self._write, data)
        self.offset += memoryview(data).nbytes

    def _record_header(self, kind: bytes, flags: int, length: int) -> int:
        """Write a record header (and padding); return the record's index."""
        pad = fmt.padding(self.offset) if kind == fmt.KIND_BUFFER else 0
        self._emit(fmt.pack_record(kind, pad, flags, length) + bytes(pad))
        self.records += 1
        return self.records - 1

    def write(self, data: bytes | pickle.PickleBuffer) -> int:
        """Take one frame of pickle opcodes from the pickler as a PICKLE record."""
        view = memoryview(data)
        index = self._record_header(fmt.KIND_PICKLE, 0, view.nbytes)
        self._emit(view)
        self._emit(fmt.TRAILER.pack(fmt.record_checksum(view, index)))
        return view.nbytes

    def write_array(self, arr: np.ndarray, order: str, flags: int = 0) -> int:
        """Write ``arr``'s bytes in ``order`` as a BUFFER record; return its index.

        The bytes go from the array's memory to ``out``; only a non-contiguous array
        is copied, a bounded chunk at a time.
        """
        nbytes = arr.nbytes
        if nbytes <= _SMALL and self._write_array is None:
            return self._write_small(arr, order, flags)
        index = self._record_header(fmt.KIND_BUFFER, flags, nbytes)
        itemsize = arr.dtype.itemsize
        hasher = fmt.record_hasher(index)
        hashing = self._hashing if nbytes >= _THREADED_HASH else None
        for chunk in byte_chunks(arr, order):
            if hashing is not None:
                hashing.update(hasher, chunk)
            else:
                hasher.update(chunk)
            if self._write_array is not None:
                self._write_array(chunk, itemsize)
            else:
                write_all(self._write, chunk)
            if hashing is not None:
                hashing.wait()  # a non-contiguous array's chunk buffer is reused next
            self.offset += chunk.nbytes
        self._emit(fmt.TRAILER.pack(hasher.intdigest()))
        self.buffers += 1
        return self.buffers - 1

    def _write_small(self, arr: np.ndarray, order: str, flags: int) -> int:
        # One write for the whole record: for small arrays the Python calls of four
        # writes cost more than copying the bytes (a buffered file copies them anyway).
        payload = next(byte_chunks(arr, order))
        pad = fmt.padding(self.offset)
        record = b"".join(
            (
                fmt.pack_record(fmt.KIND_BUFFER, pad, flags, payload.nbytes),
                bytes(pad),
                payload,
                fmt.TRAILER.pack(fmt.record_checksum(payload, self.records)),
            )
        )
        write_all(self._write, record)
        self.offset += len(record)
        self.records += 1
        self.buffers += 1
        return self.buffers - 1

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
        """Write the END record."""
        payload = fmt.END.pack(self.records, self.buffers)
        index = self._record_header(fmt.KIND_END, 0, len(payload))
        self._emit(payload)
        self._emit(fmt.TRAILER.pack(fmt.record_checksum(payload, index)))
