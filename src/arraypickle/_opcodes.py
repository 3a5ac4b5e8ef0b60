"""Walking a pickle opcode stream without executing it: is it one well-formed pickle?

``arraypickle verify`` needs to know that the opcodes of a container form one pickle
ending at STOP, without unpickling (nothing the file names may run).
``pickletools.genops`` does that but decodes every argument in Python, several calls
per opcode: 12 s for a dict of a million floats that loads in 2 s. This walker only
finds where each opcode ends (its argument sizes come from ``pickletools``' own
table), in chunks as the records arrive, skipping long arguments without copying them.
"""

from __future__ import annotations

import pickletools
from typing import Any

_FIXED, _COUNTED, _LINES = range(3)

_STOP = ord(".")
_NEXT_BUFFER = 0x97


def _table() -> list[tuple[int, int, bool] | None]:
    """Per opcode byte: (kind, size, signed); None for bytes that are no opcode."""
    counted = {
        pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
        pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
        pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
        pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
    }
    table: list[tuple[int, int, bool] | None] = [None] * 256
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            entry = (_FIXED, 0, False)
        elif arg.n >= 0:
            entry = (_FIXED, arg.n, False)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            entry = (_LINES, 2 if arg.name == "stringnl_noescape_pair" else 1, False)
        else:
            size, signed = counted[arg.n]
            entry = (_COUNTED, size, signed)
        table[ord(op.code)] = entry
    return table


_TABLE = _table()


class OpcodeWalker:
    """Feed it the opcode stream in chunks; it raises ``ValueError`` on malformed opcodes.

    After STOP, :attr:`stopped` is true and :meth:`feed` returns how many bytes of the
    chunk follow STOP (a well-formed container has none).
    """

    def __init__(self) -> None:
        self.stopped = False
        self.next_buffers = 0  # NEXT_BUFFER opcodes met
        self.offset = 0  # in the opcode stream, where the unwalked part starts
        self._pending = bytearray()  # the start of an opcode the previous chunk cut
        self._skip = 0  # bytes of a long argument still to come
        # For a text argument cut by a chunk: lines still to find, and where in the
        # pending bytes to look next (so a long line costs linear time however cut).
        self._lines: tuple[int, int] | None = None

    def feed(self, chunk: Any) -> int:
        """Walk the next ``chunk`` (bytes-like) of the stream."""
        if self.stopped:
            return len(chunk)
        view = memoryview(chunk)
        if self._skip:
            take = min(self._skip, len(view))
            self._skip -= take
            self.offset += take
            view = view[take:]
        if self._pending:
            self._pending += view
            data: Any = self._pending
        elif isinstance(view.obj, (bytes, bytearray)) and len(view.obj) == len(view):
            data = view.obj  # the whole record: no copy
        else:
            data = bytes(view)
        return self._walk(data)

    def _walk(self, data: Any) -> int:
        table = _TABLE
        n = len(data)
        pos = 0
        while pos < n:
            op = data[pos]
            entry = table[op]
            if entry is None:
                raise ValueError(f"no opcode {op:#04x} at offset {self.offset + pos}")
            kind, size, signed = entry
            if kind == _FIXED:
                end = pos + 1 + size
                if end > n:
                    break
                if op == _STOP:
                    self.stopped = True
                    self.offset += end
                    return n - end
                if op == _NEXT_BUFFER:
                    self.next_buffers += 1
            elif kind == _COUNTED:
                head = pos + 1 + size
                if head > n:
                    break
                length = int.from_bytes(data[pos + 1 : head], "little", signed=signed)
                if length < 0:
                    raise ValueError(f"negative length at offset {self.offset + pos}")
                end = head + length
                if end > n:
                    self._skip = end - n
                    pos = n
                    break
            else:
                left, search = size, pos + 1
                if self._lines is not None:  # resuming the opcode at pos 0
                    left, search = self._lines
                    self._lines = None
                while left:
                    newline = data.find(b"\n", search)
                    if newline < 0:
                        break
                    left, search = left - 1, newline + 1
                if left:
                    self._lines = (left, len(data) - pos)
                    break
                end = search
            pos = end
        if pos or data is not self._pending:
            self._pending = bytearray(data[pos:])
        self.offset += pos
        return 0
