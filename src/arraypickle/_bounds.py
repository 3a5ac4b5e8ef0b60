"""What an allow-listed call may allocate under safe loading, judged before it runs.

A pickle's data comes with the file: a string, a list or an array buffer costs the
file its own bytes. A few allowed constructors can instead be asked for memory (or
time) out of nothing: ``bytes(10**10)``, ``list(range(10**10))``, an array allocated
by shape (``numpy.ndarray((10**10,))``, ``_reconstruct`` and ``_mareconstruct`` with
a shape other than numpy's ``(0,)``, ``recarray``, ``chararray``), ``numpy.void(n)``,
``Fraction('1e100000000')`` (a power of ten with a hundred million digits). pickle
itself never writes such calls: it stores the data and builds from it.

The safe scan (:mod:`._scan`) reports every call of a global with what it knows of
the arguments (literals; :data:`UNKNOWN` where it does not know). :func:`refusal`
says why a call of an allow-listed object would be refused: a size above
:data:`ALLOC_MAX` bytes, a ``range`` longer than :data:`ELEMENTS_MAX` handed to
anything, or a size the scan cannot bound (fail closed). Calls of names the caller
trusts are not judged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from ._allowlist import allowed
from ._errors import CorruptFileError
from ._scan import DATA, UNKNOWN, GlobalRef, Made

#: The most bytes the calls of one load may be asked to allocate beyond their arguments.
ALLOC_MAX = 64 << 20
#: The most elements of a ``range`` handed to a call (which may expand it).
ELEMENTS_MAX = 1 << 20
#: The largest decimal exponent ``Fraction`` may be asked to expand.
EXPONENT_MAX = 4300

_EXPONENT = re.compile(r"[eE]\s*([-+]?\s*\d[\d_]*)")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def _range_length(made: Made) -> int | None:
    args = made.args
    if type(args) is not tuple or not args or not all(type(a) is int for a in args):
        return None
    try:
        return len(range(*args))
    except (TypeError, ValueError, OverflowError):
        return None


def _elements(shape: Any) -> int | None:
    """The element count of a literal shape (an int or a tuple of ints)."""
    if type(shape) is int:
        return max(shape, 0)
    if type(shape) is tuple and all(type(n) is int for n in shape):
        return math.prod(max(n, 0) for n in shape)
    return None


def _itemsize(dtype: Any) -> int | None:
    """The item size of a literal dtype: a type string, or ``numpy.dtype(string, ...)``."""
    if type(dtype) is Made and dtype.name == "numpy.dtype" and type(dtype.args) is tuple:
        dtype = dtype.args[0] if dtype.args else UNKNOWN
    if type(dtype) not in (str, bytes) or len(dtype) > 64:
        return None
    try:
        return np.dtype(dtype.decode("latin-1") if type(dtype) is bytes else dtype).itemsize
    except (TypeError, ValueError, SyntaxError):
        return None


def _array(shape: Any, dtype: Any, what: str) -> str | None:
    elements = _elements(shape)
    if elements == 0:
        return None
    if elements is None:
        return f"{what} with a shape the scan cannot bound"
    itemsize = _itemsize(dtype)
    if itemsize is None:
        return f"{what} of {elements} elements of a dtype the scan cannot bound"
    if elements * itemsize > ALLOC_MAX:
        return f"{what} of {elements * itemsize} bytes"
    return None


def _arg(args: tuple[Any, ...], index: int, default: Any = None) -> Any:
    return args[index] if len(args) > index else default


def _bytes(args: tuple[Any, ...]) -> str | None:
    if len(args) != 1 or type(args[0]) in (str, bytes):
        return None  # no argument, or text with its encoding: data from the file
    size = args[0]
    if type(size) is int:
        return f"a bytes object of {size} bytes" if size > ALLOC_MAX else None
    if size is DATA or (type(size) is Made and size.name in _DATA):
        # Data of the file: a long bytes or str literal; a range is judged as such
        # (and bytes stop at 256).
        return None
    return "a bytes object of a size the scan cannot bound"


# Calls whose results hold the file's own data (or are judged themselves).
_DATA = ("builtins.range", "_codecs.encode")


def _void(args: tuple[Any, ...]) -> str | None:
    size = _arg(args, 0)
    if type(size) is bytes or size is DATA:
        return None
    if type(size) is int:
        return f"a numpy.void of {size} bytes" if size > ALLOC_MAX else None
    return "a numpy.void of a size the scan cannot bound"


def _ndarray(args: tuple[Any, ...]) -> str | None:
    # ndarray(shape, dtype=float, buffer=None, ...) and recarray(shape, dtype, buf):
    # with a buffer, the array is a view of it.
    if _arg(args, 2) is not None:
        return None
    return _array(_arg(args, 0, UNKNOWN), _arg(args, 1, "f8"), "an array allocated by shape")


def _chararray(args: tuple[Any, ...]) -> str | None:
    # chararray(shape, itemsize=1, unicode=False, buffer=None, ...)
    if _arg(args, 3) is not None:
        return None
    itemsize = _arg(args, 1, 1)
    unicode = _arg(args, 2, False)
    dtype = f"{'U' if unicode else 'S'}{itemsize}" if type(itemsize) is int else UNKNOWN
    if type(unicode) is not bool:
        dtype = UNKNOWN
    return _array(_arg(args, 0, UNKNOWN), dtype, "a chararray allocated by shape")


def _reconstruct(args: tuple[Any, ...]) -> str | None:
    return _array(_arg(args, 1, UNKNOWN), _arg(args, 2, UNKNOWN), "an array allocated by shape")


def _mareconstruct(args: tuple[Any, ...]) -> str | None:
    return _array(_arg(args, 2, UNKNOWN), _arg(args, 3, UNKNOWN), "a masked array's data")


def _exponent(text: str) -> str | None:
    for match in _EXPONENT.finditer(text):
        exponent = int(re.sub(r"[\s_]", "", match.group(1)))
        if abs(exponent) > EXPONENT_MAX:
            return f"a number with the decimal exponent {exponent} to expand"
    return None


def _fraction(args: tuple[Any, ...]) -> str | None:
    # Fraction('1e100000000') and Fraction(Decimal(...)) compute the power of ten.
    text = _arg(args, 0)
    if type(text) is str:
        return _exponent(text)
    if len(args) != 1 or type(text) in (int, float, bytes):
        return None
    return _decimal_value(text)


def _int(args: tuple[Any, ...]) -> str | None:
    # int(Decimal('1e100000000')) computes the power of ten too; int(text) stops
    # at 4300 digits by itself.
    value = _arg(args, 0)
    return None if type(value) is str or value is DATA else _decimal_value(value)


def _decimal_value(value: Any) -> str | None:
    if type(value) in (int, float, bool):
        return None
    if type(value) is Made and value.name == "decimal.Decimal":
        text = value.args[0] if type(value.args) is tuple and value.args else None
        if type(text) is str:
            return _exponent(text)
    return "a number the scan cannot see, to expand"


def _reconstructor(args: tuple[Any, ...]) -> str | None:
    # copyreg._reconstructor(cls, base, state) calls base.__new__(cls, state).
    base = _arg(args, 1, UNKNOWN)
    if type(base) is not GlobalRef:
        return "copyreg._reconstructor over a base type the scan cannot see"
    rule = _rules().get(base.name)
    return rule((_arg(args, 2),)) if rule is not None else None


_RULE_NAMES: dict[str, Callable[[tuple[Any, ...]], str | None]] = {}


def _rules() -> dict[str, Callable[[tuple[Any, ...]], str | None]]:
    """Dotted name -> rule, for every allow-list name of a judged object."""
    if not _RULE_NAMES:
        import copyreg

        table = allowed()
        by_object: dict[int, Callable[[tuple[Any, ...]], str | None]] = {
            id(bytes): _bytes,
            id(bytearray): _bytes,
            id(np.void): _void,
            id(np.ndarray): _ndarray,
            id(np.recarray): _ndarray,
            id(np.char.chararray): _chararray,
            id(table["numpy.core.multiarray._reconstruct"]): _reconstruct,
            id(table["numpy.ma.core._mareconstruct"]): _mareconstruct,
            id(Fraction): _fraction,
            id(int): _int,
            id(copyreg._reconstructor): _reconstructor,
        }
        for name, obj in table.items():
            rule = by_object.get(id(obj))
            if rule is not None:
                _RULE_NAMES[name] = rule
    return _RULE_NAMES


def watched() -> frozenset[str]:
    """The names after which the scan must track literal arguments precisely."""
    return frozenset(_rules()) | {"builtins.range"}


# Calls that may expand an iterable argument into a new container or array.
_EXPANDING_NAMES = (
    "builtins.list",
    "builtins.tuple",
    "builtins.set",
    "builtins.frozenset",
    "builtins.dict",
    "builtins.bytes",
    "builtins.bytearray",
    "collections.deque",
    "collections.Counter",
    "collections.OrderedDict",
    "collections.defaultdict",
    "numpy.matrix",
    "numpy.ma.MaskedArray",
)


def _expanding(name: str) -> bool:
    if name in _EXPANDING_NAMES or name in _rules():
        return True
    obj = allowed().get(name)
    return isinstance(obj, type) and issubclass(obj, np.generic)  # scalar(seq) is an array


class Budget:
    """What the calls of one safe load may allocate out of nothing, in total.

    ``skip`` names calls not judged (the caller's trusted names). The scan reports
    each call to :meth:`call`; the first refusal is kept, and :meth:`check` raises it
    once the scan is over (after the check of the names, which takes precedence).
    """

    def __init__(self, skip: Callable[[str], bool]) -> None:
        self._skip = skip
        self.spent = 0
        self.refused: str | None = None
        self.watched = watched()

    def call(self, name: str, args: Any, lossy: bool, kwargs: Any = None) -> None:
        """A call of ``name`` with ``args`` (and ``kwargs``) as the scan knows them;
        ``lossy``: the scan has dropped memo entries (an unknown may be anything)."""
        if self.refused is not None or name == "builtins.range" or self._skip(name):
            return
        if name not in allowed():
            return  # refused by name anyway
        reason = self._judge(name, args, lossy, kwargs)
        if reason is not None:
            self.refused = describe(name, reason)

    def _judge(self, name: str, args: Any, lossy: bool, kwargs: Any) -> str | None:
        expanding = _expanding(name)
        if type(args) is not tuple or (kwargs is not None and type(kwargs) is not dict):
            # UNKNOWN: an empty tuple on the walk's fast path, or a tuple too long for
            # these callables, unless memo entries were dropped; a Made: built by a
            # call, maybe around a range.
            seen = (args is UNKNOWN or kwargs is UNKNOWN) and not lossy
            return "arguments the scan cannot see" if expanding and not seen else None
        values = [*args, *(kwargs.values() if kwargs else ())]
        if expanding and lossy and any(v is UNKNOWN for v in values):
            return "an argument the scan lost track of"
        for value in values:
            if type(value) is Made and value.name == "builtins.range":
                length = _range_length(value)
                if length is None:
                    return "a range the scan cannot bound"
                if length > ELEMENTS_MAX:
                    return f"a range of {length} elements"
                if expanding:
                    self.spent += length * _RANGE_ITEM
        if kwargs and name in _rules():
            return "keyword arguments the scan does not judge"
        rule = _rules().get(name)
        if rule is None:
            return None
        reason = rule(args)
        if reason is not None:
            return reason
        self.spent += _cost(name, args)
        if self.spent > ALLOC_MAX:
            return f"more than {_mib(ALLOC_MAX)} in all, with the calls before it"
        return None

    def check(self, file: str) -> None:
        if self.refused is not None:
            raise CorruptFileError(f"{file}: refusing to load under safe loading: {self.refused}")


# Bytes per element of a list built from a range (a pointer and an int object).
_RANGE_ITEM = 36


def _cost(name: str, args: tuple[Any, ...]) -> int:
    """Bytes a call passed by its rule allocates (0 when it holds the file's data)."""
    rule = _rules()[name]
    if rule in (_bytes, _void):
        size = _arg(args, 0)
        return size if type(size) is int and len(args) == 1 else 0
    shape, dtype = {
        _ndarray: (_arg(args, 0), _arg(args, 1, "f8")),
        _reconstruct: (_arg(args, 1), _arg(args, 2)),
        _mareconstruct: (_arg(args, 2), _arg(args, 3)),
    }.get(rule, (None, None))
    elements = _elements(shape) or 0
    return elements * (_itemsize(dtype) or 1)


def describe(name: str, reason: str) -> str:
    return (
        f"a call of {name} with {reason}: memory the file does not hold (safe loading "
        f"allows {_mib(ALLOC_MAX)} in all and ranges of {ELEMENTS_MAX} elements; "
        "trust the name to lift this)"
    )
