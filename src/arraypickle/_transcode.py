"""Re-compressing a container without unpickling it: records copied, checksums verified.

A container's bytes do not depend on the codec that wraps it, so changing the codec
(or adding or removing one) is a copy of the decompressed container into the new
codec's writer. :func:`copy_container` copies it record by record in bounded pieces,
verifying every record header's CRC and every payload's xxh3 checksum on the way: a
damaged file raises :class:`CorruptFileError` instead of being propagated. Nothing in
the file is unpickled, imported or called, so this is also the safe way to
re-compress a file nobody trusts. Records keep their offsets, so buffers stay 64-byte
aligned. A file whose buffers were memory-mapped for writing (header flag) comes out
sealed again: its buffers' checksums are computed afresh and the flag cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _format as fmt
from ._errors import CorruptFileError
from ._streams import read_full, readinto_of
from ._writer import write_all

# Payload bytes read and written per step (two such buffers are held).
PIECE = 4 << 20


class _Copier:
    def __init__(self, src: Any, out: Any, name: str, itemsizes: Mapping[int, int]) -> None:
        self._src = src
        self._readinto = readinto_of(src)
        self._write = out.write
        self._write_array = getattr(out, "write_array", None)
        self._name = name
        self._itemsizes = itemsizes
        self.offset = 0
        self._buf = bytearray(PIECE)

    def corrupt(self, what: str, at: int | None = None) -> CorruptFileError:
        return CorruptFileError(
            f"{self._name}: {what} (container offset {self.offset if at is None else at})"
        )

    def exact(self, n: int, what: str) -> bytes:
        data = read_full(self._src, n)
        if len(data) < n:
            raise self.corrupt(f"truncated: {what} needs {n} bytes, {len(data)} remain")
        self.offset += n
        return data

    def fill(self, view: memoryview, what: str) -> None:
        done = 0
        while done < len(view):
            if self._readinto is not None:
                step = self._readinto(view[done:]) or 0
            else:
                data = self._src.read(len(view) - done) or b""
                step = len(data)
                view[done : done + step] = data
            if not step:
                raise self.corrupt(f"truncated: {what} is cut short", self.offset + done)
            done += step
        self.offset += done

    def emit(self, data: Any) -> None:
        write_all(self._write, data)

    def payload(self, length: int, what: str, index: int, itemsize: int, reseal: bool) -> None:
        """Copy record ``index``'s payload and checksum, checking it (or, with
        ``reseal``, writing the checksum of the bytes as they are now)."""
        hasher = fmt.record_hasher(index)
        self.copy(length, what, hasher, itemsize)
        self.seal(hasher, what, reseal)

    def group(self, length: int, what: str, index: int, first: int, reseal: bool) -> int:
        """Copy GROUP record ``index``'s payload and checksum as :meth:`payload` does,
        each buffer (from buffer ``first`` on) with its element size; return how many
        buffers it holds."""
        try:
            table, layout = fmt.read_group_table(lambda n: self.exact(n, what), index, length)
        except fmt.FormatError as exc:
            raise self.corrupt(f"{what}: {exc}") from None
        hasher = fmt.record_hasher(index)
        hasher.update(table)
        self.emit(table)
        end = len(table)
        for i, (at, size) in enumerate(layout):
            gap = self.exact(at - end, what)
            if any(gap):  # refused by every load: not to be sealed into a copy
                raise self.corrupt(f"the padding in {what} is not zero")
            hasher.update(gap)
            self.emit(gap)
            self.copy(size, what, hasher, self._itemsizes.get(first + i, 1))
            end = at + size
        self.seal(hasher, what, reseal)
        return len(layout)

    def copy(self, length: int, what: str, hasher: Any, itemsize: int) -> None:
        """Copy ``length`` bytes of ``what``, hashing them; ``itemsize``: their element
        size, for an array-aware writer."""
        if itemsize > PIECE:  # whole elements no longer fit a piece (a file's choice)
            itemsize = 1
        piece = PIECE - PIECE % itemsize
        array_aware = self._write_array is not None and itemsize > 1 and length % itemsize == 0
        left = length
        while left:
            n = min(piece, left)
            view = memoryview(self._buf)[:n]
            self.fill(view, what)
            hasher.update(view)
            if array_aware:
                self._write_array(np.frombuffer(view, np.uint8), itemsize)
            else:
                self.emit(view)
            left -= n

    def seal(self, hasher: Any, what: str, reseal: bool) -> None:
        """Copy the checksum of the payload ``hasher`` hashed, checking it (or, with
        ``reseal``, writing the hasher's)."""
        trailer = self.exact(fmt.TRAILER.size, f"the checksum of {what}")
        if reseal:
            trailer = fmt.TRAILER.pack(hasher.intdigest())
        elif fmt.TRAILER.unpack(trailer)[0] != hasher.intdigest():
            raise self.corrupt(f"{what} is damaged (checksum mismatch)")
        self.emit(trailer)


def copy_container(
    src: Any, out: Any, name: str, itemsizes: Mapping[int, int] | None = None
) -> int:
    """Copy the container at ``src``'s position into ``out``, verifying it; returns its size.

    ``itemsizes`` maps buffer indices to the element size of their arrays; a writer
    with ``write_array`` (an array-aware codec) then gets buffers with their element
    size. Raises :class:`CorruptFileError` at the first damaged or missing byte.

    Examples:

        >>> with open("in.pkl", "rb") as f, open("out.pkl", "wb") as out:
        ...     copy_container(f, out, "'in.pkl'")
    """
    copier = _Copier(src, out, name, itemsizes or {})
    try:
        header = fmt.parse_header(copier.exact(fmt.HEADER.size, "the container header"))
    except fmt.FormatError as exc:
        raise copier.corrupt(str(exc), 0) from None
    reseal = bool(header.flags & fmt.HEADER_FLAG_MAPPED_WRITABLE)
    groups = header.major >= 2  # GROUP records come from version 2
    copier.emit(fmt.pack_header(header.flags & ~fmt.HEADER_FLAG_MAPPED_WRITABLE))
    records = buffers = 0
    while True:
        start = copier.offset
        raw = copier.exact(fmt.RECORD.size, "a record header")
        try:
            kind, pad, flags, length = fmt.parse_record(raw)
        except fmt.FormatError as exc:
            raise copier.corrupt(str(exc), start) from None
        what = f"record {records} ({kind.decode('latin-1')!r} at offset {start})"
        if not fmt.padding_ok(kind, pad, start, groups):
            raise copier.corrupt(f"{what} declares {pad} bytes of padding", start)
        padding = copier.exact(pad, f"the padding of {what}")
        if any(padding):
            raise copier.corrupt(f"the padding of {what} is not zero")
        copier.emit(raw + padding)
        if kind == fmt.KIND_END:
            if length != fmt.END.size:
                raise copier.corrupt(f"{what}: END record of the wrong size")
            payload = copier.exact(length, what)
            trailer = copier.exact(fmt.TRAILER.size, f"the checksum of {what}")
            if fmt.record_checksum(payload, records) != fmt.TRAILER.unpack(trailer)[0]:
                raise copier.corrupt(f"{what} is damaged (checksum mismatch)")
            if fmt.END.unpack(payload) != (records, buffers):
                raise copier.corrupt(
                    f"records are missing: END counts {fmt.END.unpack(payload)} records and "
                    f"buffers, the file holds {records} and {buffers}"
                )
            copier.emit(payload + trailer)
            return copier.offset
        if kind == fmt.KIND_BUFFER:
            copier.payload(length, what, records, copier._itemsizes.get(buffers, 1), reseal)
            buffers += 1
        elif kind == fmt.KIND_GROUP and groups:
            buffers += copier.group(length, what, records, buffers, reseal)
        elif kind == fmt.KIND_PICKLE or flags & fmt.FLAG_SKIPPABLE:
            copier.payload(length, what, records, 1, reseal=False)
        else:
            raise copier.corrupt(f"{what} has an unknown kind")
        records += 1
