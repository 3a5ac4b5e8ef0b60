"""Listing the globals a pickle stream names, without executing any of it.

:class:`OpcodeScanner` walks one pickle opcode stream (protocols 0 to 5) and
simulates just enough of the unpickler's stack and memo to name every global the
stream would import: ``GLOBAL`` and ``INST`` carry their names; ``STACK_GLOBAL`` takes
two strings from the stack, which may have come through the memo (``MEMOIZE``/``PUT``
then ``GET``); ``EXT1/2/4`` go through ``copyreg``'s extension registry. A name the
scan cannot know statically (``STACK_GLOBAL`` over something that is not a literal
string, an unregistered extension code) is reported as :data:`UNRESOLVED`, which no
allow-list admits: the scan fails closed.

The scanner reads from a *source* (:mod:`._scansource`): a buffered file
(:class:`BlockSource`), an exact reader that never reads past the pickle's STOP and
can copy what it reads aside (:class:`ExactSource`, for pipes), or the PICKLE records
of a container (``_symbolic.ContainerSource`` under a :class:`BlockSource`). Payloads
of big ``BINBYTES``/``BYTEARRAY8``/string opcodes are skipped, never held, so memory
stays bounded by the block size plus the simulated stack and memo. The memo keeps a
reference per entry, as the unpickler's own memo does (short strings and small literals
themselves, lists as their item counts, everything else as placeholders), so what a GET
fetches is always known.

Each BUILD is judged by :mod:`._buildcheck` (safe loading refuses states that would
harm the process); :class:`Refused`, a :class:`ScanError`, says why.

Formats that interrupt the opcode stream with raw data (joblib writes each array's
bytes right after the ``BUILD`` of its ``NumpyArrayWrapper``) plug in by overriding
:meth:`OpcodeScanner.on_build`: it gets the object and the state of each BUILD as the
walk knows them (globals are :class:`GlobalRef`, calls of globals :class:`Made`, small
literals such as str, bytes, int, bool, None, tuples and dicts are themselves), and may
consume raw bytes from the source, or walk a nested stream, before the walk resumes.
:class:`JoblibScanner` does that for joblib's single-file format.
"""

from __future__ import annotations

import codecs
import copyreg
import pickletools
import re
import struct
import sys
from itertools import repeat
from typing import Any

from ._allowlist import normalize
from ._buildcheck import (
    STATEFUL,
    Refused,
    WalkBudget,
    check_build,
    check_call,
    check_items,
    dtype_of,
    is_joblib_wrapper,
    made_class,
    takes_items,
)
from ._names import JOBLIB_NUMPY_WRAPPERS, NUMPY_SCALARS, UNRESOLVED
from ._opcodes import MEMO_SKIP_MAX, run_of
from ._scansource import LINE_MAX, BlockSource, Resume
from ._scanvalues import (
    BUFFER,
    DATA,
    FROZEN,
    LOST,
    UNKNOWN,
    BuiltList,
    GlobalRef,
    Made,
    Nested,
    ScanError,
    brief,
)

# Picklers spell an attribute of a global, such as the classmethod zoneinfo.ZoneInfo's
# reduction names, as a call of getattr: the walk reads getattr(<global>, '<name>') as
# the global '<global>.<name>', and lists getattr itself only when used otherwise.
GETATTR = "builtins.getattr"
# A global's dotted name longer than this is listed as <unresolved>, not kept: real ones
# are far shorter, and a small stream could otherwise fill memory with distinct long
# names (STACK_GLOBAL over memoized strings, or chained getattr calls: n^2 bytes).
GLOBAL_NAME_MAX = 1024

# Strings and bytes up to this long are kept (names, a dtype's field names and units);
# longer ones are skipped, never held (DATA).
NAME_MAX = 1 << 16
# Picklers number memo entries in order; a stream that does not is followed up to
# this many entries, then refused (what a GET fetches must always be known: a second
# reference to a list or a dtype is what the BUILD checks watch for).
SPARSE_MEMO_MAX = 1 << 20
# Tuples up to this many items are followed (a structured dtype's state names every
# field); bigger ones become UNKNOWN. Dicts (fields, metadata) are followed up to
# DICT_MAX items, once a numpy dtype is named, then become LOST: each item costs a
# Python step, and data holds big dicts.
LITERAL_MAX = 1 << 16
DICT_MAX = 4096
# Tuples (and slices, from Python 3.12) hash their items recursively in C, with no
# depth check: a tuple nested some 100,000 deep (one TUPLE1 opcode a level, 150 KB)
# overflows the C stack when it is hashed as a dict key or a set item, and the process
# dies, in the scan as in the load. numpy's object arrays and collections.deque free
# their items recursively too (lists, dicts and tuples defer deep frees): 300,000 of
# them nested die when freed. No pickler writes nesting deeper than Python's recursion
# limit (1000 by default: save() recurses once a level), so the scan refuses those
# nested deeper than this, however they are made: literals, tuple(x) or deque(x) of
# any x (a list's items, a deque's...), copyreg's _reconstructor over tuple, slice(),
# items appended to a deque, an object array's items. A deque or an object array
# counts as _FREE_LEVEL levels.
NEST_MAX = 1000
# A range is lazy, and pickles as range(start, stop, step); a call given one iterates
# it, in C: collections.deque(range(10**15), 0) runs for months from 68 bytes. No
# object pickle writes hands a constructor a range this long.
RANGE_ITEMS_MAX = 1 << 32
# Calls whose result holds the items of their first argument.
_ITEM_MAKERS = frozenset({"builtins.tuple", "collections.deque"})
# A deque, an object array or a structured void over one counts this many levels:
# their frees take more C stack a level (numpy's about 1.8 KB), and a thread's stack
# may be small (512 KB on macOS frees some 800 nested object arrays, not more).
_FREE_LEVEL = 5
# Runs of BININT/BININT2 up to this long are decoded (a shape has at most 64 sizes).
INT_RUN_MAX = 64


# -- the opcode walk ----------------------------------------------------------------

# Opcode classes of the walk. _GENERIC ops have a fixed-size argument (or none) and a
# fixed stack effect: pop ``npop`` (never below the last mark), push ``npush`` unknowns.
# _INLINE ops are walked before the table is consulted (see the shortcuts in ``scan``).
(
    _GENERIC,
    _INLINE,
    _STR,
    _BYTES,
    _LINE,
    _INT,
    _TO_MARK,
    _GET,
    _PUT,
    _MEMOIZE,
    _GLOBAL,
    _STACK_GLOBAL,
    _EXT,
    _POP,
    _DUP,
    _BUILD,
    _CALL,
    _STOP,
    _SETITEM,
    _SETITEMS,
    _APPEND,
    _CALL_EX,
    _FRAME,
    _KEEP,
) = range(24)

_LEN_PREFIX = {-2: (1, "<B"), -3: (4, "<i"), -4: (4, "<I"), -5: (8, "<Q")}
_INT_ARG = {"BININT": "<i", "BININT1": "<B", "BININT2": "<H"}
_KEPT_BYTES = ("SHORT_BINBYTES", "BINBYTES")
# Integers past 2**31 (LONG1, LONG4) up to this many bytes are decoded: a shape of
# (0, 2**40) is one a pickler writes, and the checks must read it.
_LONGS = ("LONG1", "LONG4")
LONG_KEPT = 16
_STRINGS = {
    "SHORT_BINUNICODE": "utf8",
    "BINUNICODE": "utf8",
    "BINUNICODE8": "utf8",
    "SHORT_BINSTRING": "ascii",
    "BINSTRING": "ascii",
}
_SPECIAL = {
    "MARK": _INLINE,
    "GET": _GET,
    "BINGET": _GET,
    "LONG_BINGET": _GET,
    "PUT": _PUT,
    "BINPUT": _PUT,
    "LONG_BINPUT": _PUT,
    "MEMOIZE": _MEMOIZE,
    "GLOBAL": _GLOBAL,
    "INST": _GLOBAL,
    "STACK_GLOBAL": _STACK_GLOBAL,
    "EXT1": _EXT,
    "EXT2": _EXT,
    "EXT4": _EXT,
    "POP": _POP,
    "DUP": _DUP,
    "BUILD": _BUILD,
    "FRAME": _FRAME,
    "READONLY_BUFFER": _KEEP,
    "REDUCE": _CALL,
    "NEWOBJ": _CALL,
    "NEWOBJ_EX": _CALL_EX,
    "APPEND": _APPEND,
    "STOP": _STOP,
    "SETITEM": _SETITEM,
    "SETITEMS": _SETITEMS,
    "TUPLE1": _INLINE,
    "TUPLE2": _INLINE,
    "TUPLE3": _INLINE,
}


def _table() -> list[tuple[Any, ...] | None]:
    """Per opcode byte: (class, name, argument size or length-prefix info, npop, npush)."""
    table: list[tuple[Any, ...] | None] = [None] * 256
    for op in pickletools.opcodes:
        code = ord(op.code)
        n = op.arg.n if op.arg is not None else 0
        marked = any(s is pickletools.markobject for s in op.stack_before)
        npop = len(op.stack_before)
        npush = len(op.stack_after)
        name = op.name
        if name in _SPECIAL:
            cls = _SPECIAL[name]
        elif name in _INT_ARG:
            cls = _INT
        elif name in _STRINGS or name in ("STRING", "UNICODE"):
            cls = _STR
        elif n == -1:
            cls = _LINE
        elif n < -1:
            cls = _BYTES
        elif marked:
            cls = _TO_MARK
            # items consumed below the mark (APPENDS' list stays: pop 0, push 0)
            npop = op.stack_before.index(pickletools.markobject)
            npush = len(op.stack_after) - npop if npop else len(op.stack_after)
        else:
            cls = _GENERIC
        table[code] = (cls, name, n, npop, npush)
    return table


_TABLE = _table()


# Opcodes that push one value and consume nothing, with their size (opcode plus fixed
# argument): BINFLOAT, BININT, BININT1, BININT2, NONE, NEWTRUE, NEWFALSE, EMPTY_TUPLE,
# EMPTY_LIST, EMPTY_DICT, EMPTY_SET, NEXT_BUFFER. A run of one of them (a list or dict
# of floats is mostly that) is matched by a regex instead of opcode by opcode; the
# one-byte ones always are, and never reach the table's classes.
_RUN_SIZES = {
    **{ord(op): size for op, size in (("G", 9), ("J", 5), ("K", 2), ("M", 3))},
    **dict.fromkeys(b"N\x88\x89)]}\x8f\x97", 1),
}


_RUNS = {code: (run_of(code, size), size) for code, size in _RUN_SIZES.items()}
# BININT and BININT2 runs short enough to be a shape: a decoder per length.
_INT_RUNS = {
    ord(op): [struct.Struct("<" + ("x" + fmt_) * k) for k in range(INT_RUN_MAX + 1)]
    for op, fmt_ in (("J", "i"), ("M", "H"))
}
_CONST_RUNS = {ord("N"): None, 0x88: True, 0x89: False, ord(")"): (), 0x97: BUFFER}
# numpy.dtype states are checked (._buildcheck), and the attributes a state sets on
# an allow-listed object: from the first mention of such a class, dict literals are
# followed too (fields, attribute names). From a defaultdict's, so that one inside a
# dict handed to numpy is seen.
_TRACKED_NAMES = frozenset({"numpy.dtype", "collections.defaultdict", *STATEFUL})


class OpcodeScanner:
    """Walks pickle streams from sources, collecting the dotted names of their globals.

    ``names`` accumulates over every :meth:`scan` (one per pickle stream). Raises
    :class:`ScanError` where the unpickler itself would fail on the stream.
    """

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.opcodes = 0
        #: For :meth:`on_build`: the BUILD is not the last opcode of its pickle frame
        #: (an unpickler has the rest of the frame in hand: it runs it before reading on).
        self.mid_frame = False
        #: What the last :meth:`scan` unpickles to, as far as the walk knows.
        self.result: Any = UNKNOWN
        #: The first state or call safe loading refuses (see :mod:`._buildcheck`).
        self.refused: Refused | None = None
        self._walks = WalkBudget()
        # Tuples nesting others, with how deep (see NEST_MAX): id -> (tuple, depth).
        # Each is held, so its id stays its own; those the walk dropped are pruned.
        self._nests: dict[int, tuple[Any, int]] = {}
        self._prune_at = _PRUNE_MIN
        # The deepest nesting made so far: the bound for what a container the walk
        # does not follow (a deque, a dict's keys) may hold.
        self._deepest = 0
        # getattr globals the current scan pushed (also again from the memo) and has
        # not read as an attribute of a global: getattr itself is listed if any remain
        self._getattrs = 0

    # -- hooks for formats that interleave raw data with opcodes ------------------

    #: Globals after which the walk tracks every literal for :meth:`on_build` (before
    #: them, runs of floats, ints and Nones go by fast, as unknowns).
    literal_after: frozenset[str] = frozenset()

    def on_build(self, obj: Any, state: Any, source: BlockSource) -> None:
        """Called at each BUILD with the object (a :class:`Made` when a global made it)
        and its state; may read or skip raw bytes of ``source`` (a :class:`BlockSource`
        resuming where the walk stopped) or :meth:`scan` a nested stream from it. The
        default does nothing and is not called."""

    # -- the walk -----------------------------------------------------------------

    def scan(self, source: BlockSource) -> bytes:
        """Walk one pickle stream from ``source`` up to and including its STOP.

        Returns what was read from ``source`` past the STOP (to hand back to a
        caller that goes on reading the same source)."""
        table = _TABLE
        names = self.names
        stack: list[Any] = []
        marks: list[int] = []
        fence = 0
        # Every entry is kept, as the unpickler keeps every object: a list while the
        # indices come in order (8 bytes an entry, as the unpickler's own table).
        memo: Any = []
        # The unpickler may hold a frame apart from what follows it (when it read the
        # frame whole): an opcode running past the frame's end then takes its argument
        # from elsewhere than the walk would. No pickler writes one (pickle.py refuses
        # it), so the walk raises. ``framed``: the walk is inside the frame that ends at
        # ``frame_end`` (in ``source.handed`` terms).
        framed = False
        frame_end = 0
        # The frame's end as an index into ``fbuf``: the walk's buffer when it was
        # computed (it is recomputed when the buffer changes).
        fbuf, fstop = b"", 0
        unknown = UNKNOWN
        unpack_from = struct.unpack_from
        buf = b""
        i = end = 0
        count = 0
        hooked = type(self).on_build is not OpcodeScanner.on_build
        # Hooks see int and empty-container literals; the fast path pushes unknowns.
        fast = True
        triggers = (self.literal_after if hooked else frozenset()) | _TRACKED_NAMES
        outer_getattrs, self._getattrs = self._getattrs, 0  # a hook may scan a nested stream
        runs = _RUNS
        int_runs = _INT_RUNS
        const_runs = _CONST_RUNS
        nests = self._nests

        while True:
            if i >= end:
                buf = source.more(buf[i:], 1)
                i, end = 0, len(buf)
                if not end:
                    raise ScanError("truncated: the pickle stream ends before STOP")
            if framed:
                if buf is not fbuf:
                    fbuf, fstop = buf, frame_end - (source.handed - end)
                if i >= fstop:
                    if i > fstop:
                        raise ScanError(f"opcode {count} runs past the end of its pickle frame")
                    framed = False
            code = buf[i]
            # The opcodes that make most of an object-heavy stream (a list of records
            # is mostly short strings, memo writes and reads, small tuples and marks)
            # take these shortcuts, which do what their general case below does in
            # its commonest form; any other form falls through to it.
            if code == 0x94:  # MEMOIZE
                if type(memo) is list and len(stack) > fence:
                    memo.append(stack[-1])
                    i += 1
                    count += 1
                    continue
            elif code == 0x8C:  # SHORT_BINUNICODE: kept whole, never past NAME_MAX
                if i + 1 < end:
                    stop = i + 2 + buf[i + 1]
                    if stop <= end:
                        try:
                            stack.append(buf[i + 2 : stop].decode("utf-8", "surrogatepass"))
                        except UnicodeDecodeError:
                            stack.append(DATA)
                        i = stop
                        count += 1
                        continue
            elif code == 0x68:  # BINGET
                if i + 1 < end and type(memo) is list:
                    idx = buf[i + 1]
                    value = memo[idx] if idx < len(memo) else unknown
                    kind = type(value)
                    if kind is not Made and kind is not GlobalRef:
                        stack.append(value)
                        i += 2
                        count += 1
                        continue
            elif code == 0x28:  # MARK
                fence = len(stack)
                marks.append(fence)
                i += 1
                count += 1
                continue
            elif 0x85 <= code <= 0x87:  # TUPLE1, TUPLE2, TUPLE3
                k = code - 0x84
                i += 1
                count += 1
                if len(stack) - k < fence:
                    raise _underflow(count)
                items = stack[-k:]
                del stack[-k:]
                # How deep the tuple nests, as _tuple would find, while its items are
                # literals and tuples (0: one is not).
                depth = 1
                for item in items:
                    kind = type(item)
                    if kind is tuple:
                        kept = nests.get(id(item))  # held there: the id is this tuple's
                        if kept is None:
                            depth = depth if depth > 2 else 2
                        elif kept[1] >= depth:
                            depth = kept[1] + 1
                    elif kind is Made or kind is Nested:
                        depth = 0
                        break
                if 0 < depth <= self._deepest:  # nothing new to judge
                    value = tuple(items)
                    if depth > 1:
                        self._keep_nesting(value, depth)
                    stack.append(value)
                else:
                    stack.append(self._tuple(items, table[code][1], count))
                continue
            if code in runs:
                # A run of one opcode that pushes a value and consumes nothing (ints,
                # floats, None, bools, empty containers), matched in C: a list of
                # floats or ints is mostly that.
                match, width = runs[code]
                j = i + width
                if j < end and buf[j] != code:  # a lone one: no run to match
                    if code in const_runs:
                        stack.append(const_runs[code])
                    elif code == 0x4B:  # BININT1
                        stack.append(buf[i + 1])
                    elif code == 0x4A or code == 0x4D:  # BININT, BININT2
                        stack.append(int.from_bytes(buf[i + 1 : j], "little", signed=code == 0x4A))
                    elif code == 0x5D:  # EMPTY_LIST
                        stack.append(BuiltList())
                    elif code == 0x7D and not fast:  # EMPTY_DICT
                        stack.append({})
                    else:
                        stack.append(unknown)
                    i = j
                    count += 1
                    continue
                m = match(buf, i)
                if m is not None:
                    j = m.end()
                    if framed and j > fstop:
                        # A run may go on past the frame's end, between two opcodes only.
                        if (fstop - i) % width:
                            at = count + 1 + (fstop - i) // width
                            raise ScanError(f"opcode {at} runs past the end of its pickle frame")
                        framed = False
                    k = (j - i) // width
                    if code == 0x4B:  # BININT1: the values are the bytes
                        stack.extend(buf[i + 1 : j : 2])
                    elif code in const_runs:
                        stack.extend(repeat(const_runs[code], k))
                    elif code in int_runs and k <= INT_RUN_MAX:
                        stack.extend(int_runs[code][k].unpack_from(buf, i))
                    elif code == 0x5D:  # EMPTY_LIST: one each, they get counted
                        stack.extend([BuiltList() for _ in range(k)])
                    elif code == 0x7D and not fast:  # EMPTY_DICT, a dtype state's fields
                        stack.extend([{} for _ in range(k)])
                    else:
                        stack.extend(repeat(unknown, k))
                    count += k
                    i = j
                    continue
            i += 1
            count += 1
            spec = table[code]
            if spec is None:
                raise ScanError(f"invalid opcode 0x{code:02x} at opcode {count}")
            cls, opname, n, npop, npush = spec
            # Fixed-size arguments are made available here.
            if n > 0 and i + n > end:
                buf = source.more(buf[i:], n)
                i, end = 0, len(buf)
                if n > end:
                    raise ScanError(f"truncated: {opname} needs {n} bytes")

            if cls == _TO_MARK:
                i += max(n, 0)
                if not marks:
                    raise ScanError(f"{opname} without a MARK")
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                fence = marks[-1] if marks else 0
                self._marked(stack, items, opname, npop, npush, fence, count, fast)
            elif cls in (_SETITEMS, _SETITEM):
                if cls == _SETITEMS:
                    if not marks:
                        raise ScanError("SETITEMS without a MARK")
                    k = marks.pop()
                    items = stack[k:]
                    del stack[k:]
                    fence = marks[-1] if marks else 0
                else:
                    if len(stack) - 2 < fence:
                        raise _underflow(count)
                    items = stack[-2:]
                    del stack[-2:]
                if len(stack) <= fence:
                    raise _underflow(count)
                self._set_items(stack, items, opname, count)
            elif cls == _GENERIC:
                i += n
                if npop:
                    if len(stack) - npop < fence:
                        raise _underflow(count)
                    del stack[-npop:]
                if npush:
                    stack.append(unknown)
            elif cls in (_STR, _BYTES):
                if n == -1:  # STRING, UNICODE: one line
                    line, buf, i, end = self._line(source, buf, i, end, opname, True)
                    stack.append(DATA if line is None else _decode_line(opname, line))
                    continue
                value, buf, i, end = self._payload(source, buf, i, end, cls, opname, n)
                stack.append(value)
            elif cls in (_MEMOIZE, _PUT):
                if cls == _MEMOIZE:
                    idx = len(memo)  # the number of entries, as in the unpickler
                else:
                    if n == -1:
                        line, buf, i, end = self._line(source, buf, i, end, opname)
                        idx = _int_line(line, opname)
                    else:
                        (idx,) = unpack_from("<B" if n == 1 else "<I", buf, i)
                        i += n
                if len(stack) <= fence:
                    raise ScanError(f"{opname} with an empty stack")
                if idx < 0:  # memo[-1] would overwrite an entry; the unpickler refuses it
                    raise ScanError(f"{opname} with a negative index ({idx})")
                if idx > len(memo) + MEMO_SKIP_MAX:
                    raise ScanError(
                        f"{opname} {idx} with {len(memo)} memo entries stored (the "
                        f"unpickler would allocate {16 * idx:,} bytes for it)"
                    )
                memo = _memo_store(memo, idx, stack[-1])
            elif cls == _GET:
                if n == -1:
                    line, buf, i, end = self._line(source, buf, i, end, opname)
                    idx = _int_line(line, opname)
                else:
                    (idx,) = unpack_from("<B" if n == 1 else "<I", buf, i)
                    i += n
                if type(memo) is list:
                    value = memo[idx] if 0 <= idx < len(memo) else unknown
                else:
                    value = memo.get(idx, unknown)
                if type(value) is Made:
                    value.used = True
                elif type(value) is GlobalRef and value.name == GETATTR:
                    self._getattrs += 1
                stack.append(value)
            elif cls == _INT:
                (value,) = unpack_from(_INT_ARG[opname], buf, i)
                i += n
                stack.append(value)
            elif cls in (_CALL, _CALL_EX):
                k = 2 if cls == _CALL else 3  # NEWOBJ_EX: cls, args, kwargs
                if len(stack) - k < fence:
                    raise _underflow(count)
                func, args = stack[-k], stack[1 - k]
                kwargs = stack[-1] if k == 3 else None
                del stack[-k:]
                value = self._call(func, args, kwargs, opname, count)
                if type(value) is GlobalRef and value.name in triggers:
                    fast = False
                stack.append(value)
            elif cls == _APPEND:
                if len(stack) - 2 < fence:
                    raise _underflow(count)
                item = stack.pop()
                if type(stack[-1]) is Made:
                    self._check_items(stack[-1], opname, count)
                    self._gives(stack[-1], self._nesting((item,), stack[-1]), opname, count)
                if type(stack[-1]) is BuiltList:
                    stack[-1].count += 1
                    self._holds(stack[-1], (item,))
            elif cls == _GLOBAL:
                line, buf, i, end = self._line(source, buf, i, end, opname)
                line2, buf, i, end = self._line(source, buf, i, end, opname)
                try:
                    module = line[:-1].decode("utf-8")
                    qualname = line2[:-1].decode("utf-8")
                except UnicodeDecodeError:
                    raise ScanError(f"{opname} names a global that is not UTF-8") from None
                dotted = _global_name(module, qualname)
                if opname == "INST":
                    names.add(dotted)
                else:
                    self._name(dotted)
                if dotted in triggers:
                    fast = False
                if opname == "INST":
                    if not marks:
                        raise ScanError("INST without a MARK")
                    k = marks.pop()
                    args = self._tuple(stack[k:], opname, count)
                    del stack[k:]
                    fence = marks[-1] if marks else 0
                    self._check_call(dotted, args, None, opname, count)
                    stack.append(self._made(dotted, args, opname, count))
                else:
                    stack.append(GlobalRef(dotted))
            elif cls == _STACK_GLOBAL:
                if len(stack) - 2 < fence:
                    raise _underflow(count)
                module, qualname = stack[-2], stack[-1]
                del stack[-2:]
                if type(module) is str and type(qualname) is str:
                    dotted = _global_name(module, qualname)
                    self._name(dotted)
                    if dotted in triggers:
                        fast = False
                    stack.append(GlobalRef(dotted))
                else:
                    names.add(UNRESOLVED)
                    stack.append(unknown)
            elif cls == _EXT:
                (ext,) = unpack_from("<B" if n == 1 else "<H" if n == 2 else "<i", buf, i)
                i += n
                pair = copyreg._inverted_registry.get(ext)
                if pair is None:
                    names.add(UNRESOLVED)
                    stack.append(unknown)
                else:
                    dotted = normalize(*pair)
                    self._name(dotted)
                    stack.append(GlobalRef(dotted))
            elif cls == _BUILD:
                if len(stack) - 2 < fence:
                    raise _underflow(count)
                state = stack.pop()
                if hooked:
                    # (BUILD has no argument: fstop is the current buffer's, when framed.)
                    self.mid_frame = framed and i < fstop
                    # A hook reads on past a frame that ends here (joblib's raw array).
                    framed = self.mid_frame
                self._build(stack[-1], state, count)
                if hooked:
                    resume = Resume(source, buf[i:])
                    self.on_build(stack[-1], state, resume)
                    buf, i, end = resume.leftover, 0, len(resume.leftover)
            elif cls == _KEEP:  # READONLY_BUFFER: the same buffer, read-only
                if len(stack) <= fence:
                    raise _underflow(count)
            elif cls == _FRAME:
                if framed:
                    # The unpickler would keep the outer frame (a wrapper's BUILD in it
                    # would still be mid-frame) and read the inner one from wherever it
                    # stood. No pickler nests frames.
                    raise ScanError(f"a FRAME in the middle of a pickle frame at opcode {count}")
                (length,) = unpack_from("<Q", buf, i)
                i += 8
                frame_end = source.handed - (end - i) + length
                fbuf, fstop = buf, i + length
                framed = length > 0
            elif cls == _POP:
                if marks and marks[-1] == len(stack):
                    marks.pop()
                    fence = marks[-1] if marks else 0
                elif len(stack) > fence:
                    stack.pop()
                else:
                    raise _underflow(count)
            elif cls == _DUP:
                if len(stack) <= fence:
                    raise _underflow(count)
                value = stack[-1]
                if type(value) is Made:
                    value.used = True
                elif type(value) is GlobalRef and value.name == GETATTR:
                    self._getattrs += 1
                stack.append(value)
            elif cls == _LINE:
                line, buf, i, end = self._line(source, buf, i, end, opname, True)
                # INT and LONG (protocol 0's ints and bools) are kept; FLOAT, PERSID not.
                stack.append(_int_value(line) if opname in ("INT", "LONG") else unknown)
            elif cls == _STOP:
                if len(stack) <= fence:
                    raise _underflow(count)
                if framed and i < fstop:  # as at BUILD: fstop is the current buffer's
                    # The unpickler holding the frame drops its rest, which the walk
                    # would hand on (a joblib object array's stream is followed by more
                    # of the outer one). Picklers end the last frame with STOP.
                    raise ScanError(f"the pickle stops at opcode {count}, inside a frame")
                if self._getattrs > 0:
                    names.add(GETATTR)
                self._getattrs = outer_getattrs
                self.opcodes += count
                self.result = stack[-1]
                return buf[i:]
            else:  # pragma: no cover - every class is handled above
                raise AssertionError(opname)

    def _call(self, func: Any, args: Any, kwargs: Any, opname: str, count: int) -> Any:
        """What REDUCE, NEWOBJ or NEWOBJ_EX (``kwargs`` not None) of ``func`` makes."""
        if (
            type(func) is GlobalRef
            and func.name == GETATTR
            and opname == "REDUCE"
            and type(args) is tuple
            and len(args) == 2
            and type(args[0]) is GlobalRef
            and args[0].name != UNRESOLVED
            and type(args[1]) is str
            and args[1].isidentifier()
            and len(args[0].name) + len(args[1]) < GLOBAL_NAME_MAX
        ):
            self._getattrs -= 1
            dotted = f"{args[0].name}.{args[1]}"
            self.names.add(dotted)
            return GlobalRef(dotted)
        if type(func) is GlobalRef:
            self._check_call(func.name, args, kwargs, opname, count)
            # Keyword arguments (NEWOBJ_EX) are not followed: what the call makes is
            # then not known from its args (dtype(..., align=True)).
            known = kwargs is None or (type(kwargs) is dict and not kwargs)
            return self._made(func.name, args if known else UNKNOWN, opname, count)
        # What a call made, called in turn: numpy.object_(x) returns x, so
        # object_(numpy.ndarray)(...) would pass every check. No pickler calls anything
        # but a global.
        self._refuse(f"{opname} at opcode {count}: a call of {brief(func)}, not a global")
        return UNKNOWN

    def _set_items(self, stack: list[Any], items: list[Any], opname: str, count: int) -> None:
        """SETITEM(S) of ``items`` (keys and values, in turn) to the stack's top."""
        target = stack[-1]
        if type(target) is dict:
            if FROZEN in target:
                self._refuse(
                    f"{opname} at opcode {count}: item assignment to a dict a numpy "
                    "dtype holds (numpy keeps it: its fields would change)"
                )
            _set_items(stack, items)
        elif type(target) is Made and made_class(target) == "collections.ChainMap":
            self._refuse(
                f"{opname} at opcode {count}: item assignment through a ChainMap "
                "(it writes to a dict the stream may also have given a numpy dtype)"
            )
        elif not takes_items(target):
            self._refuse(
                f"{opname} at opcode {count}: item assignment to {brief(target)}, not a "
                "mapping (an array's items: a mapped file's bytes, written by the load)"
            )
        elif type(target) is BuiltList:
            self._holds(target, items[1::2])
            if not all(type(key) is int for key in items[::2]):
                target.count = -1  # lst[slice(...)] = []: no longer countable

    def _build(self, obj: Any, state: Any, count: int) -> None:
        """Judge BUILD of ``state`` on ``obj`` (see :mod:`._buildcheck`)."""
        try:
            check_build(obj, state, self._budget(count))
        except Refused as exc:
            self._refuse(f"BUILD at opcode {count}: {exc}")
        if type(obj) is Made and type(state) is tuple:
            # An object array's items come in its state, as a list, copied.
            lists = [part for part in state if type(part) is BuiltList]
            if lists:
                depth = max(listed.nest for listed in lists)
                self._gives(obj, depth, "BUILD", count, lists)
                for listed in lists:
                    listed.copied = True

    def _marked(
        self,
        stack: list[Any],
        items: list[Any],
        opname: str,
        npop: int,
        npush: int,
        fence: int,
        count: int,
        fast: bool,
    ) -> None:
        """An opcode taking the ``items`` above its MARK (APPENDS, ADDITEMS, TUPLE, LIST,
        OBJ, DICT, FROZENSET); ``fence``: where the stack's next mark now stands."""
        if npop:  # APPENDS, ADDITEMS: the container below the mark stays
            if len(stack) - npop < fence:
                raise _underflow(count)
            target = stack[-1]
            if type(target) is Made:
                self._check_items(target, opname, count)
                self._gives(target, self._nesting(items, target), opname, count)
            if type(target) is BuiltList:
                target.count += len(items)
                self._holds(target, items)
        elif opname == "TUPLE":
            stack.append(self._tuple(items, opname, count))
        elif opname == "LIST":
            listed = BuiltList(len(items))
            self._holds(listed, items)
            stack.append(listed)
        elif opname == "OBJ":
            if not items:
                raise _underflow(count)
            cls, args = items[0], self._tuple(items[1:], opname, count)
            if type(cls) is GlobalRef:
                self._check_call(cls.name, args, None, opname, count)
                stack.append(self._made(cls.name, args, opname, count))
            else:
                self._refuse(f"OBJ at opcode {count}: a call of {brief(cls)}, not a global")
                stack.append(UNKNOWN)
        elif opname == "DICT" and not fast:
            stack.append({})
            _set_items(stack, items)
        elif npush:  # DICT, FROZENSET
            stack.append(UNKNOWN)

    @staticmethod
    def _payload(
        source: BlockSource, buf: bytes, i: int, end: int, cls: int, opname: str, n: int
    ) -> tuple[Any, bytes, int, int]:
        """A length-prefixed argument (strings, bytes, LONG1/LONG4): its value as the
        walk keeps it, and where the walk resumes. Short names, bytes and longs are
        kept; anything longer is skipped, never held (DATA)."""
        size, fmt_ = _LEN_PREFIX[n]
        if i + size > end:
            buf = source.more(buf[i:], size)
            i, end = 0, len(buf)
            if size > end:
                raise ScanError(f"truncated: {opname} needs its length")
        (length,) = struct.unpack_from(fmt_, buf, i)
        i += size
        if length < 0:
            raise ScanError(f"{opname} with a negative length")
        if (length <= NAME_MAX and (cls == _STR or opname in _KEPT_BYTES)) or (
            length <= LONG_KEPT and opname in _LONGS
        ):
            # Short: kept whole (a name, a dtype's unit or byte order).
            if i + length > end:
                buf = source.more(buf[i:], length)
                i, end = 0, len(buf)
                if length > end:
                    raise ScanError(f"truncated: {opname} needs {length} bytes")
            raw = buf[i : i + length]
            i += length
            if opname in _LONGS:
                return int.from_bytes(raw, "little", signed=True), buf, i, end
            if cls != _STR:
                return raw, buf, i, end
            try:
                value: Any = raw.decode("utf-8", "surrogatepass")
                if _STRINGS[opname] == "ascii" and not value.isascii():
                    value = DATA
            except UnicodeDecodeError:
                value = DATA
            return value, buf, i, end
        if i + length <= end:
            i += length
        else:
            source.skip(length - (end - i))
            buf, i, end = b"", 0, 0
        return (UNKNOWN if opname in _LONGS else DATA), buf, i, end

    def _name(self, dotted: str) -> None:
        """Note a global pushed on the stack: its name, or one more use of getattr."""
        if dotted == GETATTR:
            self._getattrs += 1
        else:
            self.names.add(dotted)

    def _check_call(self, name: str, args: Any, kwargs: Any, opname: str, count: int) -> None:
        walks = self._budget(count) if "collections.defaultdict" in self.names else None
        try:
            check_call(name, args, kwargs, walks)
        except Refused as exc:
            self._refuse(f"{opname} at opcode {count}: {exc}")
        if "builtins.range" in self.names and type(args) is tuple and name != "builtins.range":
            for arg in args:
                if type(arg) is Made and arg.name == "builtins.range" and _huge_range(arg.args):
                    self._refuse(
                        f"{opname} at opcode {count}: a call of {name} over a range of over "
                        f"{RANGE_ITEMS_MAX:,} items (iterating it takes hours to months, in "
                        "C, which no signal interrupts)"
                    )

    def _budget(self, count: int) -> WalkBudget:
        """The costly checks' budget, allowed for the opcodes read so far."""
        self._walks.allow(self.opcodes + count)
        return self._walks

    def _check_items(self, target: Made, opname: str, count: int) -> None:
        try:
            check_items(target, opname)
        except Refused as exc:
            self._refuse(f"{opname} at opcode {count}: {exc}")

    # -- nesting (see NEST_MAX) ---------------------------------------------------

    def _nesting(self, items: Any, holder: Any = None) -> int:
        """How deep the most deeply nested of ``items`` nests (0: none is a tuple, a
        deque or an object array). They are now held by ``holder`` (None: by what is
        being built, or by several): see :meth:`_gives`."""
        nests = self._nests
        deepest = 0
        for item in items:  # runs for every tuple of the stream: kept lean
            kind = type(item)
            if kind is tuple:
                kept = nests.get(id(item))  # held there: the id is this tuple's
                if kept is not None and kept[1] > deepest:
                    deepest = kept[1]
                elif not deepest:
                    deepest = 1
            elif kind is Made:
                placed = item.placed
                if placed is False:
                    item.placed = holder
                elif placed is not holder:
                    item.placed = None
                if item.nest > deepest:
                    deepest = item.nest
            elif kind is Nested and item.depth > deepest:
                deepest = item.depth
        return deepest

    def _tuple_depth(self, value: tuple[Any, ...]) -> int:
        """How deep a tuple the walk built nests: :meth:`_tuple` kept it if over 1."""
        kept = self._nests.get(id(value))  # held there: the id is this tuple's
        return 1 if kept is None else kept[1]

    def _too_deep(self, depth: int, opname: str, count: int) -> bool:
        """Whether ``depth`` is refused (else it is the deepest so far)."""
        if depth <= NEST_MAX:
            self._deepest = depth
            return False
        self._refuse(
            f"{opname} at opcode {count}: tuples, deques or object arrays nested more than "
            f"{NEST_MAX} deep (hashing or freeing them would overflow the C stack)"
        )
        return True

    def _tuple(self, items: list[Any], opname: str, count: int) -> Any:
        """What the walk keeps of a tuple of ``items``: the tuple itself, or UNKNOWN
        (:class:`Nested` when it holds tuples) past LITERAL_MAX items."""
        depth = self._nesting(items) + 1
        if depth > self._deepest and self._too_deep(depth, opname, count):
            return UNKNOWN  # never built: the walk itself would hash it
        if len(items) > LITERAL_MAX:
            return UNKNOWN if depth == 1 else Nested(depth)
        value = tuple(items)
        if depth > 1:
            self._keep_nesting(value, depth)
        return value

    def _keep_nesting(self, value: tuple[Any, ...], depth: int) -> None:
        """Remember how deep ``value``, a tuple holding tuples, nests."""
        nests = self._nests
        nests[id(value)] = (value, depth)
        if len(nests) > self._prune_at:
            for key in _unreferenced(nests):
                del nests[key]
            self._prune_at = 2 * len(nests) + _PRUNE_MIN

    def _holds(self, listed: BuiltList, items: Any) -> None:
        """``listed`` was given ``items`` (a tuple of its items nests one deeper)."""
        depth = self._nesting(items, listed)
        if depth > listed.nest:
            listed.nest = depth

    def _gives(self, made: Made, depth: int, opname: str, count: int, lists: Any = ()) -> None:
        """``made`` (a deque, an object array...) now holds what nests ``depth`` deep
        (from ``lists``, for an object array's state).

        Its nesting is taken when it is placed in another container: items given to
        it after that would deepen what holds it unseen (deques appended to one
        another from the innermost out, arrays built after they were put in an outer
        one's state), so they are refused. Picklers fill a container before placing
        it anywhere, except one that holds itself: a deque in itself, an array in the
        list of its own state (that no other container copied first)."""
        placed = made.placed
        if not (
            placed is False
            or placed is made
            or any(placed is listed and not listed.copied for listed in lists)
        ):
            self._refuse(
                f"{opname} at opcode {count}: items given to what {made.name} made, held by "
                "another container already (no pickler writes this, except for one that holds "
                "itself; it would hide how deep containers nest)"
            )
            return
        depth += _FREE_LEVEL
        if depth > made.nest and (
            depth <= self._deepest or not self._too_deep(depth, opname, count)
        ):
            made.nest = depth

    def _made(self, name: str, args: Any, opname: str, count: int) -> Made:
        """The :class:`Made` a call of ``name`` makes, with how deep it nests (see
        NEST_MAX): for ``tuple(x)`` and ``deque(x)`` (and copyreg's
        ``_reconstructor(cls, tuple, x)``), a level over x's items (five for a deque);
        for ``slice(...)`` (hashed like a tuple from Python 3.12), a level over its
        arguments; for any other call, the deepest of its arguments (it may hand one
        back), five levels more for a numpy scalar (a structured void holds its
        array); later items given to it count too (:meth:`_gives`)."""
        made = Made(name, args)
        if name in _ITEM_MAKERS:
            level = _FREE_LEVEL if name == "collections.deque" else 1
            if type(args) is not tuple:
                depth = self._deepest + level
            else:
                depth = self._items_nest(args[0]) - 1 + level if args else level
        elif name == "builtins.slice":
            depth = self._tuple_depth(args) if type(args) is tuple else self._deepest + 1
        elif (
            name == "copyreg._reconstructor"
            and type(args) is tuple
            and len(args) == 3
            and type(args[1]) is GlobalRef
            and args[1].name == "builtins.tuple"
        ):
            depth = self._items_nest(args[2])
        elif type(args) is tuple:
            # Anything else may hand back or hold what it is given (numpy's scalar()
            # returns an object array's item, or a structured void over an array):
            # its deepest argument, which _tuple measured (and marked placed).
            depth = self._tuple_depth(args) - 1
            if depth and name in NUMPY_SCALARS:
                depth += _FREE_LEVEL
        else:
            return made
        if depth > self._deepest and self._too_deep(depth, opname, count):
            return made  # refused: the load will not run
        made.nest = depth
        return made

    def _items_nest(self, source: Any) -> int:
        """How deep a tuple of ``source``'s items nests."""
        kind = type(source)
        if kind is tuple:
            return self._tuple_depth(source)
        if kind is Nested:
            return source.depth
        if kind is BuiltList:
            source.copied = True  # its items are held by the call's result too
            return source.nest + 1
        if kind is Made and source.nest:
            return source.nest  # a tuple, a deque, an object array: its items are known
        if kind in (str, bytes, int, bool) or source is None or source is DATA:
            return 1
        return self._deepest + 1  # a container the walk does not follow

    def _refuse(self, why: str) -> None:
        """Keep the first refusal and walk on: the names of the whole stream are still
        wanted (an untrusted global is reported as such, before any refused state)."""
        if self.refused is None:
            self.refused = Refused(why)

    @staticmethod
    def _line(
        source: BlockSource, buf: bytes, i: int, end: int, opname: str, long: bool = False
    ) -> tuple[Any, bytes, int, int]:
        """The opcode's line argument, newline included, and where the walk resumes.

        ``long``: the argument may be data (a protocol-0 string or number) longer than
        :data:`LINE_MAX`; it is then skipped, never held, and the line is None."""
        nl = buf.find(b"\n", i)
        if nl < 0:
            buf = source.more_line(buf[i:])
            i, end = 0, len(buf)
            nl = buf.find(b"\n")
            if nl < 0 and long and end >= LINE_MAX:
                while nl < 0:
                    buf = source.more_line(b"")
                    if not buf:
                        break
                    nl = buf.find(b"\n")
                else:
                    return None, buf, nl + 1, len(buf)
            if nl < 0:
                raise ScanError(f"truncated: {opname} needs a newline-terminated argument")
        return buf[i : nl + 1], buf, nl + 1, end


def _memo_store(memo: Any, idx: int, value: Any) -> Any:
    """Store ``value`` at ``idx``; the memo, a list while indices come in order, else
    (from the first one that does not) a dict."""
    if type(memo) is list:
        if idx == len(memo):
            memo.append(value)
            return memo
        if idx < len(memo):
            memo[idx] = value
            return memo
        memo = dict(enumerate(memo))
    memo[idx] = value
    if len(memo) > SPARSE_MEMO_MAX:
        raise ScanError(f"the memo is filled out of order past {SPARSE_MEMO_MAX} entries")
    return memo


def _underflow(count: int) -> ScanError:
    return ScanError(f"unpickling stack underflow at opcode {count}")


def _set_items(stack: list[Any], items: list[Any]) -> None:
    """SETITEM(S) on the dict literal on top of ``stack``; one too big, or given a key
    the scan cannot hash, is emptied and marked :data:`LOST`, in place."""
    target = stack[-1]
    if LOST in target:
        return
    if len(target) + len(items) // 2 > DICT_MAX:
        _lose(target)
        return
    for j in range(0, len(items) - 1, 2):
        key = items[j]
        if not (isinstance(key, (str, bytes, int, tuple)) or key is None):
            _lose(target)
            return
        try:
            target[key] = items[j + 1]
        except TypeError:
            _lose(target)
            return


def _lose(target: dict[Any, Any]) -> None:
    target.clear()
    target[LOST] = True


def _global_name(module: str, qualname: str) -> str:
    dotted = normalize(module, qualname)
    return dotted if len(dotted) <= GLOBAL_NAME_MAX else UNRESOLVED


def _huge_range(args: Any) -> bool:
    """Whether ``range(*args)`` has more than RANGE_ITEMS_MAX items (False when the
    scan cannot tell, or range would refuse the arguments)."""
    if type(args) is not tuple or not all(type(a) is int for a in args):
        return False
    try:
        return range(*args).__len__() > RANGE_ITEMS_MAX  # len() overflows past 2**63
    except (TypeError, ValueError, OverflowError):
        return True  # more items than an index holds


def _unreferenced(nests: dict[int, tuple[Any, int]]) -> list[int]:
    """The keys of ``nests`` whose tuple nothing else holds (the walk dropped it)."""
    return [key for key, refs in _references(nests).items() if refs <= _ALONE]


def _references(nests: dict[int, tuple[Any, int]]) -> dict[int, int]:
    return {key: sys.getrefcount(value) for key, (value, _) in nests.items()}


def _alone() -> int:
    # What _references counts for a tuple held by its entry alone, measured through
    # the same code (the count differs between Python versions).
    return _references({0: ((object(),), 0)})[0]


_ALONE = _alone()
_PRUNE_MIN = 1024


_DECIMAL = re.compile(rb"-?(0|[1-9][0-9]{0,30})L?\n")


def _int_value(line: bytes | None) -> Any:
    """What an INT or LONG line pushes (INT's ``01``/``00`` are True/False), when the
    line is plain decimal as picklers write it; else UNKNOWN (the unpickler reads
    ``0777`` as octal and ``0x1f`` as hex, which the scan does not follow)."""
    if line is None:
        return UNKNOWN
    if line in (b"01\n", b"00\n"):
        return line == b"01\n"
    if _DECIMAL.fullmatch(line) is None:
        return UNKNOWN
    return int(line[:-1].rstrip(b"L"))


def _int_line(line: bytes, opname: str) -> int:
    try:
        return int(line[:-1])
    except ValueError:
        raise ScanError(f"{opname} with a bad index {line[:40]!r}") from None


def _decode_line(opname: str, line: bytes) -> Any:
    """The str a STRING or UNICODE opcode pushes (as the C unpickler decodes it)."""
    body = line[:-1]
    try:
        if opname == "UNICODE":
            return body.decode("raw-unicode-escape")
        if len(body) >= 2 and body[0] == body[-1] and body[:1] in (b"'", b'"'):
            text = codecs.escape_decode(body[1:-1])[0]
            return text.decode("ascii") if len(text) <= NAME_MAX else DATA
    except (UnicodeDecodeError, ValueError):
        return DATA
    raise ScanError(f"{opname}: the argument is not a quoted string")


# -- joblib files ----------------------------------------------------------------------


# More than any file holds (2**62 bytes: seeks past 2**63 overflow).
_MAX_ARRAY_BYTES = 1 << 62


class JoblibScanner(OpcodeScanner):
    """Also walks joblib's files: a pickle stream interrupted, right after the BUILD of
    each ``NumpyArrayWrapper``, by the array's raw bytes (or, for an object array, by
    a nested pickle stream, whose globals count like the others).

    What it skips must be exactly what the loader reads (``_joblib.read_numpy_wrapper``),
    or opcodes would run unseen: the dtype is the one the load will have (numpy's,
    made from the call's type and align and any state the BUILD checks accepted), the
    padding byte is read when the alignment is not None, and a state it cannot size
    raises :class:`ScanError`. A stream without wrappers is walked as by
    :class:`OpcodeScanner` (the hook then never acts).
    """

    literal_after = JOBLIB_NUMPY_WRAPPERS

    def __init__(self) -> None:
        super().__init__()
        self._nested = 0  # depth of the object arrays' pickles being walked

    def on_build(self, obj: Any, state: Any, source: BlockSource) -> None:
        if type(obj) is not Made or not is_joblib_wrapper(obj):
            return
        if self._nested:
            # The loader refuses it (_joblib._NestedWrapper) and reads no bytes for it:
            # skipping them here would leave opcodes the walk never saw.
            raise ScanError("a joblib array wrapper inside a nested object-array pickle")
        if self.mid_frame:
            # joblib ends the frame at the wrapper's BUILD; the loader reads the array
            # from after the frame, and swaps it for the wrapper, while the unpickler
            # runs what the frame still holds (any version's wrapper: the swap would
            # then replace whatever the rest of the frame left on top).
            raise ScanError("a joblib array wrapper in the middle of a pickle frame")
        if made_class(obj) not in JOBLIB_NUMPY_WRAPPERS:
            return  # joblib < 0.10: the array is in a companion file
        shape = state.get("shape") if type(state) is dict else None
        dt = dtype_of(state.get("dtype")) if type(state) is dict else None
        if (
            type(shape) is not tuple
            or not all(type(n) is int and n >= 0 for n in shape)
            or dt is None
        ):
            raise ScanError("a joblib array wrapper whose shape or dtype cannot be read")
        if dt.itemsize == 0:
            raise ScanError("a joblib array wrapper of items of size 0 (joblib never writes one)")
        if dt.hasobject:
            self._nested += 1
            try:
                source.push_back(self.scan(source))  # type: ignore[attr-defined]
            finally:
                self._nested -= 1
            nested = self.result  # the array the nested pickle makes: its own size
            obj.size = nested.size if type(nested) is Made else None
            obj.nest = self._nesting((nested,))  # the load puts it in the wrapper's place
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            (pad,) = source.read(1) or b"\xff"  # type: ignore[attr-defined]
            if pad > 64:
                raise ScanError("a joblib array with a bad alignment padding")
            source.skip(pad)
        count = 1
        for n in shape:
            count *= n
        if count * dt.itemsize > _MAX_ARRAY_BYTES:
            # Past what a file can hold (a seek there overflows): the loader refuses it.
            raise ScanError(
                f"a joblib array wrapper declaring {count * dt.itemsize:,} bytes of array data"
            )
        obj.size = count  # elements, for scalar() over this array (_buildcheck)
        source.skip(count * dt.itemsize)
