"""What the opcode scan knows of the values on its simulated stack.

The scan (:mod:`._scan`) keeps small literals as themselves (str, bytes, int, bool,
None, tuples and dicts up to ``LITERAL_MAX`` and ``DICT_MAX`` items) and stands for everything
else with the objects below. They are shared with the BUILD checks of
:mod:`._buildcheck`, which judge states from them.
"""

from __future__ import annotations

import reprlib
from typing import Any


class ScanError(Exception):
    """The stream is not a pickle the unpickler would accept (truncated, bad opcode...),
    or one safe loading refuses (:class:`._buildcheck.Refused`)."""


class _Marker:
    """A value (or dict key) of the scan's own, compared by identity."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A value the scan does not follow (a float, a big container...).
UNKNOWN = _Marker("UNKNOWN")
#: bytes or text the scan skipped without keeping (too long to be a name, or not
#: decodable as one): never a list, never a name.
DATA = _Marker("DATA")
#: An out-of-band buffer (NEXT_BUFFER): bytes the loader takes from the file.
BUFFER = _Marker("BUFFER")
#: A key added to the dict literals of an accepted numpy dtype state: numpy keeps
#: those dicts, so the stream may not change them afterwards.
FROZEN = _Marker("FROZEN")
#: The only key of a dict literal the scan stopped following (grown past
#: ``DICT_MAX`` items, or given a key it cannot hash): the dict object stays the
#: same, so every reference to it (the memo's too) sees that it is no longer known.
LOST = _Marker("LOST")


class GlobalRef:
    """A global named by the stream (its dotted name after Python 2 renames)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"GlobalRef({self.name!r})"


class Made:
    """The result of calling (REDUCE, NEWOBJ, OBJ, INST) a global with literal or
    unknown args.

    For :mod:`._buildcheck`: ``used`` says the value was fetched from the memo or
    duplicated (it may be in use elsewhere), ``built`` that a BUILD gave it a state,
    ``real`` the numpy dtype it stands for once known, ``size`` the elements of the
    array it is once a state (or joblib's reader) filled it. ``nest``: how deep it
    nests, as a tuple, a deque or an object array (see ``_scan.NEST_MAX``), and
    ``placed`` what holds it: False nothing, None several (or unknown), else the one
    container; both set by the scan."""

    __slots__ = ("args", "built", "name", "nest", "placed", "real", "size", "used")

    def __init__(self, name: str, args: Any) -> None:
        self.name = name
        self.args = args
        self.used = False
        self.built = False
        self.real: Any = None
        self.size: int | None = None
        self.nest = 0
        self.placed: Any = False

    def __repr__(self) -> str:
        return f"Made({self.name!r})"


class BuiltList:
    """A list the stream built (EMPTY_LIST, LIST), with how many items it has so far
    (-1 once the stream assigned to it by a key other than an int, a slice maybe), and
    ``nest``: how deep the items it was given nest (see ``_scan.NEST_MAX``)."""

    __slots__ = ("copied", "count", "nest")

    def __init__(self, count: int = 0, nest: int = 0) -> None:
        self.count = count
        self.nest = nest
        self.copied = False  # its items were copied into another container

    def __repr__(self) -> str:
        return f"BuiltList({self.count})"


class Nested:
    """A tuple the scan does not follow (over ``_scan.LITERAL_MAX`` items) that holds
    tuples: UNKNOWN, but for how deep it nests them (``depth``)."""

    __slots__ = ("depth",)

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Nested({self.depth})"


def _brief_repr() -> reprlib.Repr:
    brief = reprlib.Repr()
    brief.maxlevel = 3
    brief.maxtuple = brief.maxlist = brief.maxdict = brief.maxset = 6
    brief.maxstring = brief.maxother = 80
    return brief


_BRIEF = _brief_repr()


def brief(value: Any) -> str:
    """``repr(value)`` cut short: a file's value in a message. A tuple the memo shares
    with itself at every level is a few hundred bytes and 2**40 items to print."""
    return _BRIEF.repr(value)
