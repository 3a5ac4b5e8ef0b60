"""Walking a pickle opcode stream without executing it: is it one well-formed pickle?

``arraypickle verify`` needs to know that the opcodes of a container form one pickle
ending at STOP, without unpickling (nothing the file names may run); a load of a plain
pickle needs the memo indices checked before the C unpickler sees them.
``pickletools.genops`` could do both but decodes every argument in Python, several
calls per opcode: 12 s for a dict of a million floats that loads in 2 s. This walker
only finds where each opcode ends (its argument sizes come from ``pickletools``' own
table), in chunks as they arrive, skipping long arguments without copying them. Runs
of common opcodes are passed over by one regular expression (the engine's loop costs
40 to 60 ns an opcode; a Python loop, about 150), so the loop only sees the rest.
"""

from __future__ import annotations

import pickletools
import re
from collections.abc import Callable
from typing import Any

_FIXED, _COUNTED, _LINES = range(3)

_STOP = ord(".")
_NEXT_BUFFER = 0x97
_FRAME = 0x95
_BINSTRING = ord("T")
_PUT = ord("p")
_LONG_BINPUT = ord("r")
# A PUT this far beyond the entries stored is refused: CPython's C unpickler (before
# the fix of gh-115952) grows its memo array to twice the index and zeroes it, so one
# changed byte (BUILD 'b' -> LONG_BINPUT 'r' takes the next 4 bytes as the index) could
# make it claim up to 64 GiB. Picklers never skip ahead: their indices are len(memo).
MEMO_SKIP_MAX = 1 << 20
# A PUT's text line longer than this is refused: a pickler writes ``p<index>\n``, and a
# line kept whole while it grows across chunks would be searched again each time.
_PUT_LINE_MAX = 64


def run_of(code: int, size: int) -> Callable[..., re.Match[bytes] | None]:
    """The ``match`` of a run of opcode ``code``, each ``size`` bytes with its argument
    (a list of floats is mostly ``G`` and 8 bytes): one regex call for the whole run."""
    one = re.escape(bytes([code])) + b".{%d}" % (size - 1)
    return re.compile(b"(?:" + one + b")+", re.DOTALL).match


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


def _runs() -> re.Pattern[bytes]:
    """A regular expression matching a run of whole opcodes the walker need not see.

    The regex engine follows the common opcodes at C speed: those of a fixed size,
    text lines, and strings or bytes up to :data:`_SHORT` long. Left out, so that the
    walker's loop sees them: STOP, NEXT_BUFFER (counted), FRAME (its end is kept),
    long arguments, and memo stores that could name an index past
    :data:`MEMO_SKIP_MAX` (judged).
    """
    any_ = b"."  # with DOTALL: any byte (the engine tests it fastest)

    ops = {op.name: op.code for op in pickletools.opcodes}

    def codes(names: str) -> bytes:
        return b"[" + b"".join(re.escape(ops[n].encode("latin-1")) for n in names.split()) + b"]"

    def counted(names: str, size: int) -> bytes:
        # One branch per length (the engine rejects a branch on its first byte).
        lengths = b"|".join(
            re.escape(n.to_bytes(size, "little")) + any_ + b"{%d}" % n for n in range(_SHORT + 1)
        )
        return codes(names) + b"(?:" + lengths + b")"

    branches = [
        codes(
            "MEMOIZE MARK EMPTY_LIST EMPTY_DICT EMPTY_TUPLE EMPTY_SET APPEND APPENDS SETITEM "
            "SETITEMS ADDITEMS TUPLE TUPLE1 TUPLE2 TUPLE3 LIST DICT FROZENSET NONE NEWTRUE "
            "NEWFALSE POP DUP POP_MARK REDUCE BUILD OBJ NEWOBJ NEWOBJ_EX STACK_GLOBAL "
            "BINPERSID READONLY_BUFFER"
        ),
        counted("SHORT_BINUNICODE SHORT_BINBYTES SHORT_BINSTRING LONG1", 1),
        codes("BINFLOAT") + any_ + b"{8}",
        codes("BININT1 BINGET BINPUT PROTO EXT1") + any_,
        codes("BININT LONG_BINGET EXT4") + any_ + b"{4}",
        # LONG_BINPUT below 2**20, never judged.
        b"r" + any_ + b"{2}[\\x00-\\x0f]\\x00",
        codes("BININT2 EXT2") + any_ + b"{2}",
        counted("BINUNICODE BINBYTES BINSTRING", 4),
        # PUT below 10**6 (< 2**20), never judged.
        b"p[0-9]{1,6}\\n",
        codes("INT LONG STRING UNICODE FLOAT GET PERSID") + b"[^\\n]*+\\n",
        codes("GLOBAL INST") + b"[^\\n]*+\\n[^\\n]*+\\n",
    ]
    return re.compile(b"(?:" + b"|".join(branches) + b")*+", re.DOTALL)


# Strings and bytes up to this long are followed by the regex engine.
_SHORT = 40
_RUN = _runs()


class OpcodeWalker:
    """Feed it the opcode stream in chunks; it raises ``ValueError`` on malformed opcodes.

    After STOP, :attr:`stopped` is true and :meth:`feed` returns how many bytes of the
    chunk follow STOP (a well-formed container has none).

    ``strict=False`` leaves malformed opcodes to the unpickler: the walk stops there
    quietly. With ``memo_guard``, a memo store more than :data:`MEMO_SKIP_MAX` beyond
    the entries stored so far raises ``ValueError`` (see ``_joblib_stream``), and so do
    what would put the walk out of step with CPython's unpickler: a text PUT not written
    as picklers write it, an opcode that runs past the end of its frame (the unpickler
    drops the frame's last bytes and reads the argument after it) and a frame that
    begins inside another (pickle's pure-Python unpickler refuses both).
    """

    def __init__(self, *, strict: bool = True, memo_guard: bool = False, origin: int = 0) -> None:
        self.stopped = False
        self.next_buffers = 0  # NEXT_BUFFER opcodes met
        self.offset = 0  # in the opcode stream, where the unwalked part starts
        self._strict = strict
        self._guard = memo_guard
        self._origin = origin  # added to offsets in messages: where the stream starts
        # Bounds the memo entries stored so far, less MEMO_SKIP_MAX: BINPUT names one
        # of 256, the regex passes over stores below MEMO_SKIP_MAX, and each store
        # judged adds one (a pickler's indices are consecutive, so a judged one is at
        # most this far past the last). MEMOIZE appends, which allocates nothing ahead.
        # A pickler dumping objects one after another keeps numbering from where the
        # last ended, so the bytes before this stream in its file count as entries too.
        self._memo = 256 + origin
        self._pending = bytearray()  # the start of an opcode the previous chunk cut
        self._skip = 0  # bytes of a long argument still to come
        self._newlines = 0  # ends of text lines still to pass (an argument not kept)
        self._frame_end: int | None = None  # where the current frame ends (guard only)

    def feed(self, chunk: Any) -> int:
        """Walk the next ``chunk`` (bytes-like) of the stream."""
        if self.stopped:
            return len(chunk)
        if isinstance(chunk, (bytes, bytearray)):
            data: Any = chunk
        else:
            view = memoryview(chunk).cast("B")
            if self._skip:  # a long argument's bytes: passed over, never copied
                take = min(self._skip, len(view))
                self._skip -= take
                self.offset += take
                view = view[take:]
            whole = type(view.obj) is bytes and len(view.obj) == len(view)
            data = view.obj if whole else bytes(view)
        if self._pending:
            self._pending += data
            data = self._pending
            self._pending = bytearray()
        return self._walk(data)

    def _walk(self, data: Any) -> int:
        n = len(data)
        pos = min(self._skip, n)
        self._skip -= pos
        while self._newlines and pos < n:
            newline = data.find(b"\n", pos)
            pos = n if newline < 0 else newline + 1
            self._newlines -= newline >= 0
        table, run = _TABLE, _RUN.match
        while pos < n:
            if self._frame_end is None:
                pos = run(data, pos).end()
            else:
                pos = run(data, pos, min(self._frame_end - self.offset, n)).end()
                if self.offset + pos >= self._frame_end:
                    self._frame_end = None  # a frame, or unframed opcodes, may follow
            if pos == n:
                break
            op = data[pos]
            entry = table[op]
            if entry is None:
                if self._strict:
                    raise ValueError(f"no opcode {op:#04x} at offset {self._at(pos)}")
                return self._stop(n, n)
            kind, size, signed = entry
            if kind == _FIXED:
                end = pos + 1 + size
                if end > n:
                    break
                self._in_frame(end, pos)
                if op == _STOP:
                    return self._stop(end, n)
                if op == _NEXT_BUFFER:
                    self.next_buffers += 1
                elif op == _LONG_BINPUT and self._guard:
                    self._judge(int.from_bytes(data[pos + 1 : end], "little"), pos, "LONG_BINPUT")
                elif op == _FRAME and self._guard:
                    if self._frame_end is not None:
                        raise ValueError(f"a frame begins inside another at offset {self._at(pos)}")
                    self._frame_end = self._at(end) + int.from_bytes(data[pos + 1 : end], "little")
            elif kind == _COUNTED:
                head = pos + 1 + size
                if head > n:
                    break
                # CPython's unpickler reads BINSTRING's length unsigned (pickletools: signed).
                signed = signed and not (op == _BINSTRING and self._guard)
                length = int.from_bytes(data[pos + 1 : head], "little", signed=signed)
                if length < 0:
                    if self._strict:
                        raise ValueError(f"negative length at offset {self._at(pos)}")
                    return self._stop(n, n)
                end = head + length
                self._in_frame(end, pos)
                if end > n:
                    self._skip = end - n
                    end = n
            else:
                search = pos + 1
                left = size
                while left:
                    newline = data.find(b"\n", search)
                    if newline < 0:
                        break
                    left, search = left - 1, newline + 1
                seen = n if left else search  # the opcode's end, or as much as is here
                self._in_frame(seen, pos)
                put = op == _PUT and self._guard
                if put and seen - pos > _PUT_LINE_MAX:
                    raise ValueError(
                        f"PUT at offset {self._at(pos)} with a line of over "
                        f"{_PUT_LINE_MAX} bytes (picklers write its index alone)"
                    )
                if left:
                    if put:
                        break  # kept whole: its index is judged once the line is in
                    self._newlines = left
                    end = n
                elif put:
                    self._judge_line(data[pos + 1 : search], pos)
                    end = search
                else:
                    end = search
            pos = end
        if pos < n:
            self._in_frame(n, pos)  # an opcode cut short: it runs to n at least
        self._pending = bytearray(data[pos:])
        self.offset += pos
        return 0

    def _at(self, pos: int) -> int:
        return self._origin + self.offset + pos

    def _in_frame(self, end: int, pos: int) -> None:
        """Raise unless the opcode at ``pos`` ending at ``end`` stays in its frame."""
        if self._frame_end is not None and self.offset + end > self._frame_end:
            raise ValueError(
                f"the opcode at offset {self._at(pos)} runs past the end of its frame "
                f"(offset {self._origin + self._frame_end})"
            )

    def resync(self, offset: int) -> None:
        """Go on at ``offset``, where an opcode starts (bytes before it were no opcodes).

        Raises ``ValueError`` if an opcode was left unfinished: the unpickler would take
        the rest of it from what comes next.
        """
        if self._pending or self._skip or self._newlines:
            raise ValueError(
                f"the opcode at offset {self._at(0)} is cut short by data that is not opcodes"
            )
        self.offset = offset
        self._pending = bytearray()
        self._skip = self._newlines = 0
        self._frame_end = None

    def _stop(self, end: int, n: int) -> int:
        self.stopped = True
        self.offset += end
        return n - end

    def _judge_line(self, line: Any, pos: int) -> None:
        line = bytes(line)
        if b"\0" in line:
            # CPython's unpickler parses a copy that a NUL ends: int() would not agree.
            raise ValueError(f"PUT at offset {self._at(pos)} with the line {line!r}")
        try:
            idx = int(line)  # C's rules otherwise: spaces, signs, underscores, CRLF
        except ValueError:
            return  # the unpickler refuses it itself
        self._judge(idx, pos, "PUT")

    def _judge(self, idx: int, pos: int, opname: str) -> None:
        if idx > self._memo + MEMO_SKIP_MAX:
            raise ValueError(
                f"{opname} at offset {self._at(pos)} stores memo entry {idx:,}, far "
                "past the entries stored before it (picklers number them in order; "
                f"CPython's unpickler would claim {16 * idx:,} bytes for it)"
            )
        self._memo += 1
