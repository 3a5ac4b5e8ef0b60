"""What a BUILD opcode may do under safe loading, judged by the scan before anything runs.

BUILD hands the object below it a state of the file's choosing: ``__setstate__(state)``,
or attribute assignment when there is none. For the stdlib types of the allow-list
that only sets values, but four cases do more, and the scan refuses them:

- **A BUILD on a global itself** (a class or function, not an instance) sets
  attributes of that class for the whole process: ``Counter.most_common = int``.
  No pickler writes it.
- **numpy's** ``dtype.__setstate__`` **believes its state.** The flags, field offsets
  and item size it sets are trusted by every later use, so a forged state (an object
  field without the flag saying so, an offset past the item size) makes numpy read
  raw bytes as object pointers. A dtype state is accepted only when it is exactly
  the state numpy writes for the dtype that numpy's own constructors build from the
  same description (so flags and layout are numpy's, not the file's); once per
  dtype, before the dtype is used anywhere else (fetched from the memo or
  duplicated), and only on a fresh dtype (``dtype(..., copy=True)``, as numpy writes
  it; without the copy, the state would change the process's shared dtype).
- **numpy's** ``ndarray.__setstate__`` reads as many items from an object array's list
  as the shape says, without checking the list's length. The list must be one the
  stream itself built, holding at least that many items.
- **Other numpy objects** (scalars, dtype classes, ``_frombuffer``'s arrays) never get a
  state from numpy's own pickles; a BUILD on them is refused.

A target the scan cannot know (``UNKNOWN``: a memo entry past the scan's budget, a
float...) is refused as well: fail closed. Names the caller trusts by string are not
known to the scan, and their BUILDs are the caller's to trust.

Numbers: a dtype check costs about 20 µs, an array check about 1 µs, only at BUILDs on
numpy objects; the walk's cost per opcode is unchanged.
"""

from __future__ import annotations

import copyreg
from math import prod
from typing import Any

import numpy as np

from . import _format as fmt
from ._allowlist import allowed
from ._scanvalues import DATA, UNKNOWN, BuiltList, GlobalRef, Made, ScanError

# numpy's flag for a struct laid out with align=True (NPY_ALIGNED_STRUCT).
_ALIGNED_STRUCT = 0x80
# What calling these globals makes: bytes (or an error), never a list.
_BYTES_MAKERS = frozenset({"_codecs.encode", "builtins.bytes", "builtins.bytearray"})


class UnsafeBuild(ScanError):
    """A BUILD that safe loading refuses (the message says why)."""


def check_build(target: Any, state: Any) -> None:
    """Raise :class:`UnsafeBuild` unless a BUILD of ``state`` on ``target`` is harmless."""
    t = type(target)
    if t is Made:
        kind = _kind_of(target.name, target.args)
        if kind == "free":
            return
        if kind == "dtype":
            _check_dtype(target, state)
        elif kind == "array":
            _check_array(state)
        else:
            raise UnsafeBuild(f"a state for the result of {target.name}, which numpy never writes")
    elif t is GlobalRef:
        raise UnsafeBuild(
            f"a state for the global {target.name} itself (it would change it for the "
            "whole process)"
        )
    elif target is UNKNOWN:
        raise UnsafeBuild("a state for an object the scan cannot see")
    # Literals and lists take no state (the unpickler raises): nothing to refuse.


# -- what a global's result is ---------------------------------------------------------

_KINDS: dict[int, str] | None = None


def _kinds() -> dict[int, str]:
    """By id of each allow-listed object: what a BUILD on its result needs."""
    table = allowed()
    kinds: dict[int, str] = {}
    reconstructors = (table["numpy.core.multiarray._reconstruct"], np.ma.core._mareconstruct)
    for obj in table.values():
        if obj is np.dtype:
            kinds[id(obj)] = "dtype"
        elif (isinstance(obj, type) and issubclass(obj, np.ndarray)) or obj in reconstructors:
            kinds[id(obj)] = "array"
        elif (getattr(obj, "__module__", None) or "").startswith("numpy"):
            kinds[id(obj)] = "never"
    # arraypickle's rebuild returns finished objects (a BUILD after it is never written).
    kinds[id(table[f"{fmt.REBUILD_MODULE}.{fmt.REBUILD_NAME}"])] = "never"
    return kinds


def _kind_of(name: str, args: Any) -> str:
    """``"dtype"``, ``"array"``, ``"never"`` or ``"free"`` for what calling the global
    ``name`` with ``args`` made (``copyreg._reconstructor`` makes its first arg)."""
    global _KINDS
    if _KINDS is None:
        _KINDS = _kinds()
    table = allowed()
    obj = table.get(name)
    if obj is copyreg._reconstructor:
        cls = args[0] if type(args) is tuple and args else None
        if type(cls) is not GlobalRef:
            return "array"  # a class the scan cannot see: maybe an ndarray subclass
        obj = table.get(cls.name)
    if obj is None:
        return "free"  # trusted by name: the caller trusts its states too
    return _KINDS.get(id(obj), "free")


# -- dtypes -----------------------------------------------------------------------------


def _check_dtype(made: Made, state: Any) -> None:
    """Accept ``state`` for the dtype ``made`` only if numpy would write exactly it."""
    if made.built:
        raise UnsafeBuild("a second state for one numpy.dtype")
    if made.used:
        raise UnsafeBuild("a state for a numpy.dtype already in use")
    args = made.args
    typ = _type_arg(args)
    if typ is None or len(args) != 3 or type(args[1]) not in (bool, int) or args[2] not in (1,):
        raise UnsafeBuild(
            "a state for a numpy.dtype not made as numpy writes it (type, align, copy)"
        )
    real_state = _resolve(state)
    try:
        key: Any = (typ, bool(args[1]), _frozen(real_state))
        expected = _ACCEPTED.get(key)
    except TypeError:  # unhashable metadata
        key = expected = None
    if expected is None:
        expected = _numpy_would_write(typ, bool(args[1]), state, real_state)
        if key is not None and len(_ACCEPTED) < 4096:
            _ACCEPTED[key] = expected
    made.built = True
    made.real = expected


# Descriptions already judged (a file of many arrays repeats its dtypes): what numpy
# builds from them. dtypes compare and hash by equivalence, which is what the check
# compares anyway.
_ACCEPTED: dict[Any, np.dtype] = {}


def _frozen(value: Any) -> Any:
    """``value`` hashable: dicts as their items."""
    t = type(value)
    if t is tuple:
        return tuple(_frozen(v) for v in value)
    if t is dict:
        return (dict, tuple((k, _frozen(v)) for k, v in value.items()))
    return value


def _numpy_would_write(typ: Any, align: bool, state: Any, real_state: Any) -> np.dtype:
    try:
        expected = _expected(np.dtype(typ, align=align), real_state)
        reduced = expected.__reduce__()
    except Exception:  # whatever numpy says of the file's description (ast errors too)
        raise UnsafeBuild(f"a numpy.dtype state that numpy cannot rebuild: {state!r}") from None
    same = reduced[1][0] == typ and reduced[2] == real_state
    if not same and (_norm(reduced[1][0]) != _norm(typ) or _norm(reduced[2]) != _norm(real_state)):
        raise UnsafeBuild(
            f"a numpy.dtype state that is not numpy's own for {expected!r} "
            "(flags, offsets or sizes changed)"
        )
    return expected


def _type_arg(args: Any) -> Any:
    """The type numpy.dtype was called with, when numpy's writer could have written it:
    a type string, or one of numpy's scalar types (``np.record``); else None."""
    if type(args) is not tuple or not args:
        return None
    first = args[0]
    if type(first) is str or type(first) is bytes:
        return _text(first)
    if type(first) is GlobalRef:
        obj = allowed().get(first.name)
        if isinstance(obj, type) and issubclass(obj, np.generic):
            return obj
    return None


def _expected(base: np.dtype, st: Any) -> np.dtype:
    """The dtype numpy's constructors build from the description in a dtype state."""
    if type(st) is not tuple or len(st) not in (8, 9) or st[0] not in (3, 4):
        raise ValueError("not a version 3 or 4 dtype state")
    _, order, sub, names, fields, size, _, flags = st[:8]
    user = meta = st[8] if len(st) == 9 else None
    if sub is not None:
        inner, shape = sub
        out = np.dtype((inner, shape))
    elif names is not None:
        formats, offsets, titles = [], [], []
        for field in names:
            entry = fields[field]
            formats.append(entry[0])
            offsets.append(entry[1])
            titles.append(entry[2] if len(entry) == 3 else None)
        spec = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": size}
        if any(t is not None for t in titles):
            spec["titles"] = titles
        out = np.dtype(spec, align=bool(flags & _ALIGNED_STRUCT))
    elif base.kind in "mM" and meta is not None:
        user, (unit, num, _, _) = meta
        unit = _text(unit)
        out = base if unit == "generic" else np.dtype(f"{base.str[1:]}[{num}{unit}]")
    else:
        out = base
    if out.type is not base.type:  # a structured np.record dtype
        out = np.dtype((base.type, out))
    if order in ("<", ">") and out.byteorder != "|":
        out = out.newbyteorder(order)
    if user is not None:
        out = np.dtype(out, metadata=user)
    return out


def _resolve(value: Any) -> Any:
    """``value`` with the dtypes the stream made as numpy's own, or UnsafeBuild."""
    t = type(value)
    if t is tuple:
        return tuple(_resolve(v) for v in value)
    if t is dict:
        return {_resolve(k): _resolve(v) for k, v in value.items()}
    if t is Made:
        if _kind_of(value.name, value.args) == "dtype":
            real = real_dtype(value)
            if real is not None:
                return real
        elif value.name == "_codecs.encode" and type(value.args) is tuple and value.args:
            return _resolve(value.args[0])
    elif value is None or t in (str, bytes, int, bool):
        return value
    raise UnsafeBuild(f"a numpy.dtype state holding something the scan cannot see: {value!r}")


def real_dtype(made: Made) -> np.dtype | None:
    """numpy's dtype for a ``numpy.dtype`` the stream made; it counts as used from now."""
    made.used = True
    if made.real is None and not made.built:
        args = made.args
        typ = _type_arg(args)
        if typ is not None:
            try:
                made.real = np.dtype(typ, align=len(args) > 1 and bool(args[1]))
            except Exception:  # numpy parses some type strings with ast
                return None
    return made.real


def _text(value: Any) -> Any:
    return value.decode("latin-1") if type(value) is bytes else value


def _norm(value: Any) -> Any:
    """Python 2 wrote str where Python 3 writes bytes: compare them as text."""
    t = type(value)
    if t is bytes:
        return value.decode("latin-1")
    if t is tuple or t is list:
        return tuple(_norm(v) for v in value)
    if t is dict:
        return {_norm(k): _norm(v) for k, v in value.items()}
    return value


# -- arrays -----------------------------------------------------------------------------


def _check_array(state: Any) -> None:
    """Refuse an array state whose object list is shorter than its shape, or whose data
    the scan cannot see (a list it could not count)."""
    if type(state) is not tuple:
        if state is UNKNOWN or type(state) is Made:
            raise UnsafeBuild("an array state the scan cannot see")
        return  # numpy (or the subclass) rejects it, reading nothing
    if len(state) in (4, 5):
        _check_data(state[-4], state[-3], state[-1])
    elif len(state) == 7:  # numpy.ma: (version, shape, dtype, fortran, data, mask, fill)
        _check_data(state[1], state[2], state[4])
        _check_data(state[1], None, state[5])


def _check_data(shape: Any, dtype: Any, raw: Any) -> None:
    if type(dtype) is Made:
        dtype.used = True
    t = type(raw)
    if raw is DATA or t is bytes or t is str:
        return  # numpy checks their length against the shape
    if t is Made and raw.name in _BYTES_MAKERS:
        return
    if t is not BuiltList:
        raise UnsafeBuild(f"array data the scan cannot see ({raw!r})")
    if type(shape) is int:
        shape = (shape,)
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise UnsafeBuild(f"an object array whose shape the scan cannot see ({shape!r})")
    if raw.count < 0:
        raise UnsafeBuild("an object array given a list changed by item assignment")
    need = prod(shape)
    if raw.count < need:
        raise UnsafeBuild(f"an object array of shape {shape} given a list of {raw.count} items")
