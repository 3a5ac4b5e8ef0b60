"""What a BUILD opcode may do under safe loading, judged by the scan before anything runs.

BUILD hands the object below it a state of the file's choosing: ``__setstate__(state)``,
or attribute assignment when there is none. For the stdlib types of the allow-list
that only sets values, but some cases do more, and the scan refuses them:

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
  it; without the copy, the state would change the process's shared dtype). numpy
  keeps the fields dict it is given: the dicts of an accepted state are marked
  :data:`FROZEN`, and the scan refuses item assignment to them afterwards.
- **numpy's** ``ndarray.__setstate__`` reads as many items from an object array's list
  as the shape says, without checking the list's length. The list must be one the
  stream itself built, holding at least that many items. It also frees the array's
  memory while views made of it may still read it: a state is accepted only on what
  numpy's reconstructors made (empty, see below), and only once.
- **Other numpy objects** (scalars, dtype classes, ``_frombuffer``'s arrays) never get a
  state from numpy's own pickles; a BUILD on them is refused.
- **The stdlib's allow-listed objects** take a state only when their class reads it
  itself (``uuid.UUID``) or their own pickles carry one (:data:`STATEFUL`), and then
  only new, plain attribute names: numpy reads ``__array_interface__`` from an
  instance, and an attribute hides the class's own (``view``, or the ``append`` the
  unpickler calls). APPEND(S)/ADDITEMS on them is refused but for a deque.
- **A joblib wrapper** gets one state, the loader's to read (it then puts the array in
  the wrapper's place).

A target the scan cannot know (``UNKNOWN``: a float, a big container, the result of
a call whose callable came from an unknown place) is refused as well: fail closed, as
is a BUILD on what calling an enum returns (its shared member). Names the caller
trusts by string are not known to the scan, and their BUILDs are the caller's to trust.

Some calls are judged here too (:func:`check_call`), as they read memory without a
BUILD: an ndarray class (or ``_frombuffer``) over a buffer needs bytes as the buffer
(not an array's memory), a dtype the scan knows to hold no objects, and to stay
inside it (numpy 2.4 builds an object array over the file's bytes, and takes a
negative offset); without a buffer, ndarray classes and numpy's reconstructors must
be asked for an empty array (else numpy hands out uninitialized memory), and
``copyreg._reconstructor`` may not have a numpy class as its base (the same memory);
``scalar(dtype, data)`` needs bytes, or a 0-d array a state filled (numpy copies an
element out of it unchecked); ``bytes``, ``bytearray``, ``str(x, encoding)`` and
numpy's ``bytes_``/``str_`` need data the stream gave (over an array they copy its
memory: heap addresses); the reconstructors make ndarray classes only; ``numpy.dtype``
takes the specs numpy writes; ``numpy.object_`` (which returns its argument) is never
called; arraypickle's view form sets plain new attributes only. The scan itself
refuses calls of anything but a global.

Numbers: a dtype check costs about 40 µs the first time a description is met, an
array check about 1 µs, only at BUILDs on numpy objects.
"""

from __future__ import annotations

import collections
import copyreg
import enum
import functools
from math import prod
from typing import Any

import numpy as np

from . import _format as fmt
from ._allowlist import allowed, chararray
from ._names import JOBLIB_NUMPY_WRAPPERS
from ._numpy import struct_dtype
from ._scanvalues import (
    BUFFER,
    DATA,
    FROZEN,
    LOST,
    UNKNOWN,
    BuiltList,
    GlobalRef,
    Made,
    ScanError,
    brief,
)

# numpy's flag for a struct laid out with align=True (NPY_ALIGNED_STRUCT).
_ALIGNED_STRUCT = 0x80
# What calling these globals makes: bytes (or an error), never a list.
_BYTES_MAKERS = frozenset({"_codecs.encode", "builtins.bytes", "builtins.bytearray"})


def _is_bytes(value: Any) -> bool:
    """Whether ``value`` is bytes-like data: never an object's memory."""
    t = type(value)
    return (
        value is DATA
        or value is BUFFER
        or t is bytes
        or t is str
        or (t is Made and value.name in _BYTES_MAKERS)
    )


class Refused(ScanError):
    """A BUILD (or a numpy constructor's call) that safe loading refuses; the message
    says why."""


def check_build(target: Any, state: Any, budget: WalkBudget | None = None) -> None:
    """Raise :class:`Refused` unless a BUILD of ``state`` on ``target`` is harmless.
    ``budget``: the scan's, which dtype states draw on as the defaultdict walks do."""
    t = type(target)
    if t is Made:
        kind = _kind_of(target)
        if kind == "free":
            return
        if kind == "dtype":
            _check_dtype(target, state, budget)
        elif kind == "array":
            if target.built:
                raise Refused("a second state for one array (views of its memory may exist)")
            target.size = _check_array(state)
            target.built = True
        elif kind == "plain":
            _check_plain(target, state)
        elif kind == "joblib":
            # The joblib loader reads the array its first state describes and puts it in
            # the wrapper's place: a second state would reach that array unchecked.
            if target.built:
                raise Refused(f"a second state for a joblib array wrapper ({target.name})")
            target.built = True
        else:
            raise Refused(f"a state for the result of {target.name}, which never takes one")
    elif t is GlobalRef:
        raise Refused(
            f"a state for the global {target.name} itself (it would change it for the "
            "whole process)"
        )
    elif target is UNKNOWN or target is BUFFER or target is DATA:
        # A buffer is an array the loader hands out (NEXT_BUFFER): no state for it.
        raise Refused(f"a state for an object the scan cannot see ({brief(target)})")
    # Literals and lists take no state (the unpickler raises): nothing to refuse.


class WalkBudget:
    """How many objects the costly checks of one scan (the defaultdict walks of numpy
    calls' arguments, the resolution of dtype states) may still follow.

    Each check looks at an object once, but the memo lets a stream hand one big tuple
    to many calls or states, each walked whole: time quadratic in the stream (a 1 MB
    stream took over ten minutes). The allowance grows with the opcodes read, so a scan
    stays linear; a stream past it is refused. Real arguments of numpy calls are a few
    objects (a dtype's name, a shape), far below the allowance, and a dtype state made
    of parts already judged is not walked again (``verdicts``)."""

    FIXED = 1_000_000
    PER_OPCODE = 16

    __slots__ = ("limit", "used", "verdicts")

    def __init__(self) -> None:
        self.used = 0
        self.limit = self.FIXED
        # dtype states accepted so far, by what they are made of (see _check_dtype).
        self.verdicts: dict[Any, tuple[np.dtype, tuple[Any, ...]]] = {}

    def allow(self, opcodes: int) -> None:
        """Set the allowance for a scan that has read ``opcodes`` opcodes so far."""
        self.limit = self.FIXED + self.PER_OPCODE * opcodes


def check_call(
    name: str, args: Any, kwargs: Any = None, defaultdicts: WalkBudget | None = None
) -> None:
    """Raise :class:`Refused` for a call of an ndarray class over a buffer, unless the
    scan knows its dtype holds no objects (numpy would read the bytes as pointers) and
    no offset or strides reach outside it (numpy 2.4 takes a negative offset); for a
    call that hands numpy a ``defaultdict`` (numpy reads the optional keys of a mapping
    given as a dtype: the factory would run). ``defaultdicts``: the walks' budget once
    the stream has named ``collections.defaultdict`` (None before: none can be there,
    and the walk of the arguments, a third of an array-heavy scan, is skipped)."""
    if defaultdicts is not None:
        _check_no_defaultdict(name, args, kwargs, defaultdicts)
    params = _buffered().get(name)
    if params is None:
        special = _special_calls().get(name)
        if special is not None:
            special(name, args, kwargs)
        return
    if type(args) is not tuple or not (
        kwargs is None or (type(kwargs) is dict and LOST not in kwargs)
    ):
        raise Refused(f"a call of {name} with arguments the scan cannot see")
    kwargs = kwargs or {}
    given = dict(zip(params, args, strict=False))
    given.update(kwargs)
    buffer = given.get("buf" if "buf" in params else "buffer")
    if buffer is None:
        _empty(name, given.get("shape"))  # else numpy hands out uninitialized memory
        return
    if not _is_bytes(buffer):
        # An array's own memory (an object array's pointers, say) is not a buffer to
        # view as numbers, nor to write through.
        raise Refused(f"a call of {name} over a buffer that is not bytes ({brief(buffer)})")
    offset, strides = given.get("offset", 0), given.get("strides")
    if type(offset) is not int or offset < 0 or strides is not None:
        raise Refused(f"a call of {name} over a buffer, at offset {brief(offset)} or with strides")
    # numpy divides the buffer by the item size to fill in a -1 (SIGFPE when 0).
    if _size(given.get("shape")) is None:
        raise Refused(f"a call of {name} over a buffer, with a shape unknown or negative")
    if "dtype" not in params:
        size = given.get("itemsize", 1)
        if type(size) is not int or size <= 0:
            raise Refused(f"a call of {name} over a buffer, with items of size {brief(size)}")
        return  # chararray: bytes or str items
    # recarray's formats make its dtype: not followed.
    real = None if given.get("formats") is not None else dtype_of(given.get("dtype", _DEFAULT))
    if real is None or real.hasobject:
        raise Refused(f"a call of {name} over a buffer, with a dtype that may hold objects")
    if real.itemsize == 0:
        raise Refused(f"a call of {name} over a buffer, with items of size 0")


def _check_no_defaultdict(name: str, args: Any, kwargs: Any, budget: WalkBudget) -> None:
    if name.startswith("numpy.") and _holds_defaultdict((args, kwargs), name, budget):
        raise Refused(
            f"a call of {name} given a defaultdict (numpy reads the optional keys of a "
            "mapping given as a dtype: its factory would run during the load)"
        )
    if allowed().get(name) is fmt.rebuild and type(args) is tuple and len(args) > 1:
        meta = args[1]  # the loader hands the array form's dtype to numpy
        form = type(meta) is tuple and len(meta) > 1 and meta[0] == "a"
        if form and _holds_defaultdict(meta[1], name, budget):
            raise Refused(f"a call of {name} given a defaultdict as a dtype")


def _holds_defaultdict(value: Any, name: str, budget: WalkBudget) -> bool:
    """Whether ``value`` is, or holds in what the scan follows (tuples, dicts, the
    arguments of what a call made), a ``collections.defaultdict``. Each object is
    looked at once: the memo can make a tuple of 65536 references to another."""
    seen: set[int] = set()
    todo = [value]
    while todo:
        budget.used += 1
        if budget.used > budget.limit:
            raise Refused(
                f"a call of {name} whose arguments, with those of the calls before it, "
                f"hold over {budget.limit:,} objects to check for a defaultdict (the "
                "memo hands the same objects to call after call: a check that would "
                "take time quadratic in the stream)"
            )
        item = todo.pop()
        t = type(item)
        if t not in (Made, tuple, dict) or id(item) in seen:
            continue
        seen.add(id(item))
        if t is Made:
            made = made_class(item)  # copyreg._reconstructor makes its first argument
            if made is None or allowed().get(made) is collections.defaultdict:
                return True
            todo.append(item.args)
        elif t is tuple:
            todo.extend(item)
        else:
            todo.extend(item)
            todo.extend(item.values())
    return False


def _empty(name: str, shape: Any) -> None:
    if _size(shape) != 0:
        raise Refused(
            f"{name} asked for memory ({brief(shape)}): numpy would hand out uninitialized "
            "memory; its own pickles ask for an empty array and give it a state"
        )


def _reconstructed(name: str, args: Any, kwargs: Any = None) -> None:
    """``_reconstruct(cls, shape, dtype)`` / ``_mareconstruct(cls, base, shape, dtype)``:
    an empty array, as numpy writes it, that its one state then fills."""
    at = 2 if name.endswith("_mareconstruct") else 1
    cls = args[0] if type(args) is tuple and args else None
    base = np.ma.MaskedArray if at == 2 else np.ndarray
    # _mareconstruct calls cls.__new__ whatever cls is (a Counter would then be taken
    # for an array, and given any state). A class trusted by name is the caller's.
    obj = allowed().get(cls.name) if type(cls) is GlobalRef else None
    if type(cls) is not GlobalRef or not (
        obj is None or (isinstance(obj, type) and issubclass(obj, base))
    ):
        raise Refused(f"{name} of {brief(cls)}, not a class of {base.__name__}")
    _empty(name, args[at] if type(args) is tuple and len(args) > at else None)


def _dtype_spec(name: str, args: Any, kwargs: Any = None) -> None:
    """``numpy.dtype(spec, ...)``: numpy's pickles give a type string or one of its
    scalar types. A mapping the stream built (a ``defaultdict``, whose factory numpy
    would call looking up ``offsets``) or a list is not followed by the scan."""
    if _type_arg(args) is None:
        spec = args[0] if type(args) is tuple and args else args
        raise Refused(f"a call of {name} on a spec numpy's pickles never give ({spec!r:.60})")


def _masked_call(name: str, args: Any, kwargs: Any = None) -> None:
    """``MaskedArray(data, mask)`` ORs ``mask`` into ``data``'s existing mask, in place:
    a mapped array's (a file's bytes under ``mmap_mode='r+'``), or any structured array
    an object hands it as ``_mask``. numpy's pickles never call it (nor ``mvoid``):
    they use ``_mareconstruct`` and a state."""
    raise Refused(f"a call of {name}, which numpy's pickles never make")


def _identity(name: str, args: Any, kwargs: Any = None) -> None:
    """``numpy.object_(x)`` returns ``x`` itself: what is done to its result is done,
    unseen, to a dict or list the scan holds (a dtype's fields, a wrapper's shape).
    numpy's pickles name the type, never call it."""
    raise Refused(f"a call of {name}, which returns its argument itself")


# The instance attributes numpy gives its own ndarray subclasses.
_VIEW_ATTRIBUTES = {np.matrix: frozenset({"_getitem"})}


def _rebuild(name: str, args: Any, kwargs: Any = None) -> None:
    """arraypickle's rebuild: a view form (``("v", cls, base, state)``) sets ``state``
    as attributes of the result, which for an allow-listed class must be those numpy
    gives it (np.matrix's ``_getitem``); a class trusted by name is the caller's."""
    if type(args) is not tuple or len(args) != 4 or type(args[0]) is not str or kwargs:
        raise Refused(f"a call of {name} with arguments the scan cannot see")
    if args[0] != "numpy":
        return  # another wrapper's meta is for its own code (installed, so trusted)
    meta = args[1]
    # Fail closed: a meta the stream made by a call (tuple([...])) is a real tuple to
    # the loader, but not one the scan could look into.
    if type(meta) is not tuple or not meta or type(meta[0]) is not str:
        raise Refused(f"a call of {name} with a numpy meta the scan cannot see ({meta!r:.60})")
    if meta[0] == "a" and len(meta) > 1:
        # Over a buffer (a mapped file's bytes too), objects' items would be pointers.
        real = dtype_of(meta[1])
        if real is not None and (real.hasobject or real.itemsize == 0):
            raise Refused(f"a call of {name} for an array of {real} over a buffer")
    if meta[0] != "v":
        return
    cls = meta[1] if len(meta) > 1 else None
    state = meta[3] if len(meta) > 3 else UNKNOWN
    if type(cls) is not GlobalRef:
        raise Refused(f"a view form of {brief(cls)}, not a global")
    obj = allowed().get(cls.name)
    if obj is None or state is None:
        return
    if type(state) is not dict:
        raise Refused(f"a view form of {cls.name} with attributes the scan cannot see")
    # numpy's own subclasses carry no attributes but np.matrix's flag; others (a
    # masked array made from the view copies its __dict__) are not the file's to set.
    extra = set(state) - _VIEW_ATTRIBUTES.get(obj, frozenset())
    if extra:
        names = ", ".join(sorted(map(repr, extra))[:5])
        raise Refused(f"a view form of {cls.name} setting {names}, which numpy's never carry")


def _scalar(name: str, args: Any, kwargs: Any = None) -> None:
    """``scalar(dtype, data)``: data as bytes, or (for a dtype holding objects) a 0-d
    array the stream filled; numpy copies an element's bytes out of it unchecked."""
    if type(args) is not tuple or len(args) != 2:
        raise Refused(f"a call of {name} with arguments the scan cannot see")
    dtype, data = args
    real = dtype_of(dtype)
    if real is not None and real == np.dtype("O") and real.fields is None:
        return  # scalar(dtype('O'), obj) is obj
    if _is_bytes(data):
        return  # numpy checks the length against the item size
    if type(data) is Made and (data.size or 0) >= 1:
        filled = _kind_of(data) == "array"
        if filled or made_class(data) in JOBLIB_NUMPY_WRAPPERS:
            return  # an array a state (or joblib's wrapper) filled with an element or more
    raise Refused(f"a call of {name} on data the scan cannot see ({brief(data)})")


def _frombuffer(name: str, args: Any, kwargs: Any = None) -> None:
    """``_frombuffer(buffer, dtype, shape, order)``: a view of bytes, never of an array's
    memory (numpy would view an object array's pointers as numbers, writable)."""
    if type(args) is not tuple or not args or not _is_bytes(args[0]):
        raise Refused(f"a call of {name} over something that is not bytes")


def _copied_bytes(name: str, args: Any, kwargs: Any = None) -> None:
    """``bytes(x)``, ``bytearray(x)``, ``str(x, encoding)`` (and numpy's ``bytes_`` and
    ``str_``): x read through the buffer protocol must be data the stream gave, not an
    array's memory (an object array's pointers would come back as bytes: heap
    addresses)."""
    if type(args) is not tuple or kwargs:
        raise Refused(f"a call of {name} with arguments the scan cannot see")
    textual = allowed().get(name) in (str, np.str_)
    if len(args) > 1:
        _known_encoding(name, args[1])
    if not args or (textual and len(args) == 1):
        return  # str(x) formats x; it reads no memory
    first = args[0]
    if _is_bytes(first) or type(first) in (int, bool, tuple, BuiltList):
        return
    raise Refused(f"a call of {name} over {brief(first)}, whose memory the scan cannot see")


# Encodings Python decodes and encodes without looking them up (picklers write
# bytearray(str, 'latin-1') at protocols 0-2). Any other name goes to the codec
# registry, which imports ``encodings.<name>`` (and asks every search function a
# program registered): a module of the file's choosing.
_ENCODINGS = frozenset({"utf-8", "utf8", "latin-1", "latin1", "iso-8859-1", "ascii"})


def _known_encoding(name: str, encoding: Any) -> None:
    if type(encoding) is not str or encoding.lower().replace("_", "-") not in _ENCODINGS:
        raise Refused(
            f"a call of {name} with the encoding {brief(encoding)}: only "
            f"{', '.join(sorted(_ENCODINGS))} (another is looked up, importing a module "
            "the file names)"
        )


def _reconstructor(name: str, args: Any, kwargs: Any = None) -> None:
    """``copyreg._reconstructor(cls, base, state)`` calls ``base.__new__(cls, state)``:
    numpy's classes as the base would allocate memory no state fills, and bytes-like
    ones read the state's memory (as ``bytes(state)`` would)."""
    base = args[1] if type(args) is tuple and len(args) == 3 else None
    obj = allowed().get(base.name) if type(base) is GlobalRef else None
    if obj is None or (getattr(obj, "__module__", None) or "").startswith("numpy"):
        raise Refused(f"a call of {name} with the base {brief(base)} (no pickler writes that)")
    cls = args[0]
    made = allowed().get(cls.name) if type(cls) is GlobalRef else None
    if isinstance(made, type) and not _reduced_by_copyreg(made):
        # Its own __reduce__ pickles it otherwise: built so, it skips its own set-up
        # (an OrderedDict holding items its order does not know: len 2, list() empty).
        raise Refused(
            f"a call of {name} for {cls.name}, which pickles itself otherwise (no pickler "
            "writes that)"
        )
    if obj in _BYTES_LIKE:
        _copied_bytes(base.name, (args[2],))


def _reduced_by_copyreg(cls: type) -> bool:
    """Whether pickle (protocols 0 and 1) writes ``cls`` through
    ``copyreg._reconstructor``: only when it has no reduction of its own."""
    return cls.__reduce__ is object.__reduce__ and cls.__reduce_ex__ is object.__reduce_ex__


# Positional parameters of the ndarray classes that can be built over a buffer.
_SIGNATURES: dict[Any, tuple[str, ...]] = {
    np.ndarray: ("shape", "dtype", "buffer", "offset", "strides", "order"),
    np.recarray: ("shape", "dtype", "buf", "offset", "strides", "formats"),
    chararray(): ("shape", "itemsize", "unicode", "buffer", "offset", "strides"),
}
_BYTES_LIKE = (bytes, bytearray, str, np.bytes_, np.str_)


@functools.lru_cache(maxsize=1)
def _buffered() -> dict[str, tuple[str, ...]]:
    """By allow-listed name (every alias): the parameters of an ndarray class."""
    return {n: _SIGNATURES[obj] for n, obj in allowed().items() if obj in _SIGNATURES}


@functools.lru_cache(maxsize=1)
def _special_calls() -> dict[str, Any]:
    """By allow-listed name (every alias of the object): the check of a call of it."""
    table = allowed()
    by_object = {
        table["numpy.core.multiarray._reconstruct"]: _reconstructed,
        np.ma.core._mareconstruct: _reconstructed,
        table["numpy.core.multiarray.scalar"]: _scalar,
        table["numpy.core.numeric._frombuffer"]: _frombuffer,
        copyreg._reconstructor: _reconstructor,
        np.object_: _identity,
        np.ma.MaskedArray: _masked_call,
        np.ma.core.mvoid: _masked_call,
        np.dtype: _dtype_spec,
        fmt.rebuild: _rebuild,
        **dict.fromkeys(_BYTES_LIKE, _copied_bytes),
    }
    return {name: by_object[obj] for name, obj in table.items() if obj in by_object}


_STRINGDTYPE = "numpy._core._internal._convert_to_stringdtype_kwargs"
_DEFAULT = object()  # no dtype argument: numpy's float64


def dtype_of(value: Any) -> np.dtype | None:
    """The dtype a constructor's dtype argument stands for, when the scan knows it."""
    if value is _DEFAULT:
        return np.dtype(float)
    if type(value) is Made and _kind_of(value) == "dtype":
        return real_dtype(value)
    if type(value) is Made and value.name == _STRINGDTYPE:
        return np.dtypes.StringDType()  # what matters here: it holds objects
    if type(value) is GlobalRef:
        value = allowed().get(value.name)
    if type(value) is str or (isinstance(value, type) and issubclass(value, np.generic)):
        try:
            return np.dtype(value)
        except Exception:  # numpy parses some type strings with ast
            return None
    return None


# -- what a global's result is ---------------------------------------------------------


def made_class(made: Made) -> str | None:
    """The dotted name of the class (or function) whose result ``made`` is:
    ``copyreg._reconstructor`` makes its first argument (None when not a global)."""
    if made.name != "copyreg._reconstructor":
        return made.name
    args = made.args
    cls = args[0] if type(args) is tuple and args else None
    return cls.name if type(cls) is GlobalRef else None


@functools.lru_cache(maxsize=1)
def _kinds() -> dict[int, str]:
    """By id of each allow-listed object: what a BUILD on its result needs."""
    table = allowed()
    kinds: dict[int, str] = {}
    reconstructors = (table["numpy.core.multiarray._reconstruct"], np.ma.core._mareconstruct)
    for obj in table.values():
        if obj is np.ma.core.MaskedConstant:
            kinds[id(obj)] = "never"  # calling it returns the shared np.ma.masked
        elif obj is np.dtype:
            kinds[id(obj)] = "dtype"
        elif obj in reconstructors:
            kinds[id(obj)] = "array"
        elif isinstance(obj, type) and issubclass(obj, np.ndarray):
            # numpy gives a state only to what its reconstructors make, empty: an array
            # called into being with memory (and maybe views of it) never gets one.
            kinds[id(obj)] = "never"
        elif (getattr(obj, "__module__", None) or "").startswith("numpy"):
            kinds[id(obj)] = "never"
        elif isinstance(obj, type) and issubclass(obj, enum.Enum):
            kinds[id(obj)] = "never"  # calling an enum returns its shared member
    # arraypickle's rebuild returns finished objects (a BUILD after it is never written).
    kinds[id(table[f"{fmt.REBUILD_MODULE}.{fmt.REBUILD_NAME}"])] = "never"
    # Every joblib wrapper name is bound to one placeholder (the joblib loader's own
    # bindings come first there); its state is the loader's to read.
    kinds[id(table[next(iter(JOBLIB_NUMPY_WRAPPERS))])] = "joblib"
    return kinds


def is_joblib_wrapper(made: Made) -> bool:
    """Whether ``made`` is one of joblib's array wrappers (any version's), which the
    loader replaces with the array it reads."""
    return _kind_of(made) == "joblib"


def _kind_of(made: Made) -> str:
    """``"dtype"``, ``"array"``, ``"joblib"``, ``"never"``, ``"plain"`` (the rest of
    the allow-list) or ``"free"`` (trusted by name) for what ``made`` is."""
    cls = made_class(made)
    if cls is None:
        return "never"  # copyreg._reconstructor of a class the scan cannot see
    obj = allowed().get(cls)
    if obj is None:
        return "free"  # trusted by name: the caller trusts its states too
    return _kinds().get(id(obj), "plain")


# Allow-listed classes whose own pickles carry the instance __dict__ as a BUILD state
# (a ChainMap's maps, an OrderedDict's attributes). A class with its own __setstate__
# (uuid.UUID) reads its state itself; the others' pickles never carry one.
STATEFUL = frozenset({"collections.ChainMap", "collections.OrderedDict"})
# What the unpickler calls on an object, looked up on the instance: APPEND(S), ADDITEMS.
UNPICKLER_CALLS = frozenset({"append", "extend", "add"})


def takes_items(target: Any) -> bool:
    """Whether SETITEM(S) may go to ``target``: what picklers give items to (dicts,
    the allow-list's dict classes, objects of classes trusted by name; lists and values
    the scan does not follow), never an array (under ``mmap_mode='r+'`` the load would
    write to the file, a companion ``.npy`` of joblib 0.8-0.9 included) or a class."""
    t = type(target)
    if t is GlobalRef or target is BUFFER or target is DATA:
        return False
    if t is not Made:
        return True
    kind = _kind_of(target)
    if kind == "free":
        return True  # trusted by name: the caller trusts what it does with items
    obj = allowed().get(made_class(target) or "")
    return kind == "plain" and isinstance(obj, type) and issubclass(obj, dict)


def check_items(target: Made, opname: str) -> None:
    """APPEND(S)/ADDITEMS on what a global made: the unpickler calls its ``append``,
    ``extend`` or ``add``. Of the allow-listed classes only a deque's pickles use them
    (a list, a set and what a trusted class made are the unpickler's or the caller's)."""
    if _kind_of(target) != "free" and made_class(target) != "collections.deque":
        raise Refused(f"{opname} on {target.name}'s result, whose pickles never use it")


def _check_plain(made: Made, state: Any) -> None:
    """A BUILD without ``__setstate__`` sets the state's items as attributes of the
    object: numpy reads ``__array_interface__`` from an instance (memory at any
    address), and an attribute hides the class's own (a method such as ``view`` or
    ``keys``, which other code then calls). Only new, plain attribute names pass."""
    name = made_class(made) or ""
    cls = allowed().get(name)
    if getattr(cls, "__setstate__", None) is not None:
        return
    if name in STATEFUL and type(state) is dict:
        _check_attributes(f"a state for {name}", cls, state)
        return
    raise Refused(f"a state for {name}, which its own pickles never carry ({state!r:.80})")


def _check_attributes(what: str, cls: Any, state: dict[Any, Any]) -> None:
    """Refuse attribute names that are not plain and new for ``cls``."""
    bad = [
        key
        for key in state
        if type(key) is not str
        or key.startswith("_")
        or hasattr(cls, key)
        or key in UNPICKLER_CALLS
    ]
    if bad:
        raise Refused(
            f"{what} setting {', '.join(map(repr, bad[:5]))} (not a plain new attribute: "
            "numpy reads some from an instance (_mask, _baseclass...), and others hide "
            "the class's own)"
        )


# -- dtypes -----------------------------------------------------------------------------


def _check_dtype(made: Made, state: Any, budget: WalkBudget | None = None) -> None:
    """Accept ``state`` for the dtype ``made`` only if numpy would write exactly it."""
    global _ACCEPTED_NODES
    if made.built:
        raise Refused("a second state for one numpy.dtype")
    if made.used:
        raise Refused("a state for a numpy.dtype already in use")
    args = made.args
    typ = _written_type(_type_arg(args), args)
    shallow = _shallow_key(typ, args, state) if budget is not None else None
    if shallow is not None:
        # The same parts as a state accepted before (dtypes sharing one fields dict
        # through the memo: every view as a recarray makes one): the same verdict,
        # without walking them again. Those parts were frozen by that acceptance.
        key_, parts = shallow
        hit = budget.verdicts.get(key_)  # type: ignore[union-attr]
        if hit is not None and all(a is b for a, b in zip(hit[1], parts, strict=True)):
            made.built = True
            made.real = hit[0]
            return
    real_state, nodes = _resolve_within(state, budget)
    try:
        key: Any = (typ, bool(args[1]), _frozen(real_state))
        expected = _ACCEPTED.get(key)
    except TypeError:  # unhashable metadata
        key = expected = None
    if expected is None:
        expected = _numpy_would_write(typ, bool(args[1]), state, real_state)
        # Kept only while small: a state the memo inflates would hold its copy for the
        # rest of the process (20 of them, 16 MB each, stayed after the scan).
        small = nodes <= _CACHED_NODES_EACH and _ACCEPTED_NODES + nodes <= _CACHED_NODES_ALL
        if key is not None and small and len(_ACCEPTED) < 4096:
            _ACCEPTED[key] = expected
            _ACCEPTED_NODES += nodes
    made.built = True
    made.real = expected
    _freeze(state)
    if shallow is not None:
        budget.verdicts[shallow[0]] = (expected, shallow[1])  # type: ignore[union-attr]


def _shallow_key(typ: Any, args: Any, state: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """A key for ``state`` by its top-level parts: containers by identity (returned too,
    to compare with ``is``), plain values by value; None when it cannot be had."""
    if type(state) is not tuple:
        return None
    parts = []
    containers = []
    for value in state:
        t = type(value)
        if t in (tuple, dict, Made):
            parts.append((0, id(value)))
            containers.append(value)
        elif value is None or t in (str, bytes, int, bool):
            parts.append((t, value))
        else:
            return None
    try:
        key = (type(typ), typ, bool(args[1]), tuple(parts))
        hash(key)
    except TypeError:
        return None
    return key, tuple(containers)


def _written_type(typ: Any, args: Any) -> Any:
    """``typ``, when ``numpy.dtype(*args)`` is a call numpy's pickles make (type, align,
    copy); else Refused."""
    if typ is None or len(args) != 3 or type(args[1]) not in (bool, int) or args[2] not in (1,):
        raise Refused("a state for a numpy.dtype not made as numpy writes it (type, align, copy)")
    return typ


def rebuilt_dtype(args: tuple[Any, ...], state: Any) -> np.dtype:
    """The dtype ``numpy.dtype(*args)`` given ``state`` stands for, where both are plain
    values (a dtype's own pickle, read back). It is built from the description, never
    by ``__setstate__``, which trusts the state (a damaged one crashes numpy); Refused
    unless numpy would write exactly that state."""
    typ = _written_type(_type_arg(args), args)
    return _numpy_would_write(typ, bool(args[1]), state, state)


def _freeze(value: Any) -> None:
    """Mark the dict literals of an accepted dtype state: numpy keeps them (its fields)."""
    t = type(value)
    if t is tuple:
        for v in value:
            _freeze(v)
    elif t is dict and FROZEN not in value:
        for v in value.values():
            _freeze(v)
        value[FROZEN] = True


# Descriptions already judged (a file of many arrays repeats its dtypes): what numpy
# builds from them. dtypes compare and hash by equivalence, which is what the check
# compares anyway.
_ACCEPTED: dict[Any, np.dtype] = {}
_ACCEPTED_NODES = 0
_CACHED_NODES_EACH = 4096  # a structured dtype of hundreds of fields
_CACHED_NODES_ALL = 1 << 18


def _frozen(value: Any) -> Any:
    """``value`` hashable, each part with its type (a key equal to another only when
    :func:`_same` would hold: ``True == 1`` and ``dtype('f8') == None`` must not meet)."""
    t = type(value)
    if t is tuple:
        return (tuple, tuple(_frozen(v) for v in value))
    if t is dict:
        return (dict, tuple((_frozen(k), _frozen(v)) for k, v in value.items()))
    return (t, value)


def _numpy_would_write(typ: Any, align: bool, state: Any, real_state: Any) -> np.dtype:
    try:
        expected = _expected(np.dtype(typ, align=align), real_state)
        reduced = expected.__reduce__()
    except Exception:  # whatever numpy says of the file's description (ast errors too)
        raise Refused(f"a numpy.dtype state that numpy cannot rebuild: {brief(state)}") from None
    if not (_same(reduced[1][0], typ) and _same(_portable(reduced[2]), _portable(real_state))):
        raise Refused(
            f"a numpy.dtype state that is not numpy's own for {expected!r} "
            "(flags, offsets or sizes changed)"
        )
    return expected


def _portable(st: Any) -> Any:
    """A dtype state in the spelling recent numpy writes, where older numpy spells the
    same thing differently.

    - A datetime64 dtype without user metadata: numpy 1.x to 2.2 write ``{}``, numpy
      2.3 and later ``None``.
    - The flags byte: numpy 1.x writes it signed (an aligned struct's 0x90 as -112),
      numpy 2 unsigned (144).
    """
    if type(st) is not tuple or len(st) not in (8, 9):
        return st
    flags = st[7]
    if type(flags) is int and -128 <= flags < 0:
        st = (*st[:7], flags & 0xFF, *st[8:])
    if (
        len(st) == 9
        and type(st[8]) is tuple
        and len(st[8]) == 2
        and type(st[8][0]) is dict
        and not st[8][0]
    ):
        st = (*st[:8], (None, st[8][1]))
    return st


def _type_arg(args: Any) -> Any:
    """The type numpy.dtype was called with, when numpy's writer could have written it:
    a type string, or one of numpy's scalar types (``np.record``), named by the scan or
    itself (a materialized value); else None."""
    if type(args) is not tuple or not args:
        return None
    first = args[0]
    if type(first) is str or type(first) is bytes:
        return _text(first)
    obj = allowed().get(first.name) if type(first) is GlobalRef else first
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
        entries = [fields[field] for field in names]
        formats = [entry[0] for entry in entries]
        out = struct_dtype(names, entries, formats, size, bool(flags & _ALIGNED_STRUCT))
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


# Parts of a dtype state :func:`_resolve` follows (a structured dtype's state has a few
# per field, and fields are followed up to DICT_MAX): a tuple the memo shares with
# itself at every level is small in the file and 2**40 parts to follow.
RESOLVE_NODES = 1 << 18


def _resolve_within(state: Any, budget: WalkBudget | None) -> tuple[Any, int]:
    """:func:`_resolve` of ``state``, and the parts it followed, drawn from the scan's
    ``budget`` too: each state is bounded, but the memo can hand one inflated state to
    BUILD after BUILD (a 243-byte stream scanned for 16 s)."""
    cap = RESOLVE_NODES
    if budget is not None:
        cap = max(0, min(cap, budget.limit - budget.used))
    left = [cap]
    try:
        resolved = _resolve(state, left)  # with nothing left, refused at the first part
    except Refused:
        if left[0] < 0 and cap < RESOLVE_NODES:  # the stream's budget ran out
            raise Refused(
                "a numpy.dtype state past what the scan follows for the stream so far "
                "(the memo hands the same parts to state after state: a check that "
                "would take time quadratic in the stream)"
            ) from None
        raise
    finally:
        if budget is not None:
            budget.used += cap - max(left[0], 0)
    return resolved, cap - max(left[0], 0)


def _resolve(value: Any, budget: list[int] | None = None) -> Any:
    """``value`` with the dtypes the stream made as numpy's own, or Refused."""
    if budget is None:
        budget = [RESOLVE_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise Refused(f"a numpy.dtype state of over {RESOLVE_NODES} parts")
    t = type(value)
    if t is tuple:
        return tuple(_resolve(v, budget) for v in value)
    if t is dict and LOST not in value:
        return {
            _resolve(k, budget): _resolve(v, budget) for k, v in value.items() if k is not FROZEN
        }
    if t is Made:
        if _kind_of(value) == "dtype":
            real = real_dtype(value)
            if real is not None:
                return real
        elif value.name == "_codecs.encode" and type(value.args) is tuple and value.args:
            return _resolve(value.args[0], budget)
    elif value is None or t in (str, bytes, int, bool):
        return value
    raise Refused(f"a numpy.dtype state holding something the scan cannot see: {brief(value)}")


def real_dtype(made: Made) -> np.dtype | None:
    """numpy's dtype for a ``numpy.dtype`` the stream made; it counts as used from now."""
    made.used = True
    if made.real is None and not made.built:
        args = made.args
        typ = _type_arg(args)
        align = args[1] if typ is not None and len(args) > 1 else False
        # Only a value the scan knows: what it stands for (UNKNOWN, a list, a call's
        # result) is true to Python and may be false to numpy (0.0, [], int()).
        if typ is not None and type(align) in (bool, int):
            try:
                made.real = np.dtype(typ, align=bool(align))
            except Exception:  # numpy parses some type strings with ast
                return None
    return made.real


def _text(value: Any) -> Any:
    return value.decode("latin-1") if type(value) is bytes else value


def _same(ours: Any, theirs: Any) -> bool:
    """Whether ``theirs`` (from the file) is ``ours`` (numpy's): same types throughout,
    since numpy's dtype equality accepts strings (``dtype('O') == 'O'``) where its
    ``__setstate__`` needs a dtype. Python 2 wrote str where Python 3 writes bytes."""
    t = type(ours)
    if t is bytes and type(theirs) is str:
        return ours.decode("latin-1") == theirs
    if type(theirs) is not t and not (isinstance(ours, np.dtype) and isinstance(theirs, np.dtype)):
        return False
    if t is tuple:
        return len(ours) == len(theirs) and all(map(_same, ours, theirs))
    if t is dict:
        return ours.keys() == theirs.keys() and all(_same(ours[k], theirs[k]) for k in ours)
    return bool(ours == theirs)


# -- arrays -----------------------------------------------------------------------------


def _check_array(state: Any) -> int | None:
    """Refuse an array state whose object list is shorter than its shape, or whose data
    the scan cannot see (a list it could not count); the number of elements it gives
    the array, when known."""
    if type(state) is not tuple:
        # numpy parses any sequence as a state (a list too): only tuples are judged.
        raise Refused(f"an array state that is not a tuple ({brief(state)})")
    if len(state) in (4, 5):
        _check_data(state[-4], state[-3], state[-1])
        return _size(state[-4])
    if len(state) == 7:  # numpy.ma: (version, shape, dtype, fortran, data, mask, fill)
        _check_data(state[1], state[2], state[4])
        _check_data(state[1], None, state[5])
        return _size(state[1])
    raise Refused(f"an array state of {len(state)} items (numpy writes 4, 5 or 7)")


def _size(shape: Any) -> int | None:
    """The number of elements of a literal shape (an int or a tuple of ints), or None."""
    if type(shape) is int:
        shape = (shape,)
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        return None
    return prod(shape)


def _check_data(shape: Any, dtype: Any, raw: Any) -> None:
    if type(dtype) is Made:
        dtype.used = True
    if _is_bytes(raw):
        return  # numpy checks their length against the shape
    if type(raw) is not BuiltList:
        raise Refused(f"array data the scan cannot see ({brief(raw)})")
    need = _size(shape)
    if need is None:
        raise Refused(f"an object array whose shape the scan cannot see ({brief(shape)})")
    if raw.count < 0:
        raise Refused("an object array given a list changed by item assignment")
    if raw.count < need:
        raise Refused(f"an object array of shape {shape} given a list of {raw.count} items")
