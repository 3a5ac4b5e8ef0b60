"""The globals a file may import under safe loading, each with the reason it is safe.

Safe mode (``load(..., safe=True)``) lets a pickle stream name only the globals listed
here, plus what the caller passes as ``trusted``. A name maps to the object the loader
hands the unpickler; the loader never imports what the file names, it looks the name
up in this table. That is why one object can stand under several names (numpy 1.x and
2.x moved their reconstruction functions from ``numpy.core`` to ``numpy._core``, and
older numpy named its subclasses by their defining modules) and why a few names map
to a *substitute* rather than to the real object.

What it takes to be listed: calling the object (the REDUCE, NEWOBJ, OBJ and INST
opcodes call whatever a global names, with arguments the file chooses) and calling the
methods the unpickler reaches on its instances (``__setstate__``, ``__setitem__``,
``append``, ``extend``, ``add``) must neither run code nor touch anything outside the
process: no import by name, no attribute lookup by name, no file, socket, subprocess
or environment access. Values built this way may be large (resource exhaustion is out
of scope, see ``docs/security.md``) but never *do* anything.

Kept out on purpose, although harmless-looking:

- ``builtins.type`` (three arguments create a class), ``getattr``/``setattr``,
  ``eval``/``exec``/``compile``/``open``/``__import__``/``globals``/``vars``,
  ``print``/``input``/``breakpoint``, ``map``/``filter``/``sorted``/``min``/``max``
  (they call a callable the file provides), ``classmethod``/``staticmethod``/``property``.
  (``getattr(<global>, '<name>')``, how picklers write a classmethod, is read as the
  global ``<global>.<name>`` and judged by this list as that name: see ``_safe``.)
- ``operator.*getter``, ``functools.partial``/``reduce``, ``pkgutil.resolve_name``,
  ``importlib.import_module``: they reach anything by name or call anything.
- ``_codecs.encode`` itself: it looks codecs up by name (importing ``encodings.*``
  modules; some codecs decompress). Only the latin-1 use pickle makes is substituted.
- numpy ufuncs (``numpy.add``...) and ``numpy.core._ufunc_reconstruct`` (imports a module
  by name), ``numpy.load``/``fromfile``/``memmap`` (file I/O), ``numpy.testing``,
  ``numpy.random`` pickles (trust them with ``trusted=`` if you need them).
- ``zoneinfo.ZoneInfo._unpickle`` (reads time-zone files chosen by the file).

``collections.defaultdict`` is listed: its default factory is whatever the stream
passes, a global of the file (checked as every global is, so ``defaultdict(list)``
loads and a ``defaultdict(os.system)`` is refused) or a value the stream made. It is
called, with no arguments, whenever a missing key is read: by the caller's code
later, and during the load by any code that reads the mapping (numpy reads a dtype
spec's optional keys so; safe loading refuses a dtype spec that is not a type string
or a numpy scalar type, as numpy writes it).
"""

from __future__ import annotations

import _compat_pickle
import array
import collections
import copyreg
import datetime
import decimal
import fractions
import functools
import pathlib
import uuid
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _format as fmt
from ._errors import InvalidArgumentError
from ._names import JOBLIB_WRAPPER_MODULES


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` in pickles of protocol 0-2 (how they hold bytes).

    pickle writes ``bytes`` as ``_codecs.encode(text, 'latin1')`` below protocol 3;
    only that use is let through.
    """
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise TypeError("safe mode: _codecs.encode is allowed only as encode(str, 'latin1')")
    return obj.encode("latin-1")


# (names, object getter, why it is safe). Getters run once, on first use of safe mode.
_Entry = tuple[tuple[str, ...], Callable[[], Any], str]


def _builtins() -> list[_Entry]:
    values = (bool, int, float, complex, str, bytes, bytearray)
    containers = (list, tuple, dict, set, frozenset)
    return [
        *(
            ((f"builtins.{t.__name__}",), lambda t=t: t, "value constructor: parses its arguments")
            for t in values
        ),
        *(
            ((f"builtins.{t.__name__}",), lambda t=t: t, "container: holds what it is given")
            for t in containers
        ),
        (("builtins.range",), lambda: range, "lazy arithmetic sequence"),
        (("builtins.slice",), lambda: slice, "holds three values"),
        (("builtins.object",), lambda: object, "bare instance; copyreg._reconstructor's base"),
        (("builtins.Ellipsis",), lambda: Ellipsis, "a constant"),
        (("builtins.NotImplemented",), lambda: NotImplemented, "a constant"),
    ]


def _stdlib() -> list[_Entry]:
    return [
        (
            ("copyreg._reconstructor",),
            lambda: copyreg._reconstructor,
            "protocol 0/1 instances: calls base.__new__(cls) / base.__init__ where cls and "
            "base are globals of the file, checked against this same list",
        ),
        (
            ("_codecs.encode",),
            lambda: _latin1_encode,
            "substitute: bytes in protocol 0-2 pickles; only encode(str, 'latin1')",
        ),
        (("collections.OrderedDict",), lambda: collections.OrderedDict, "dict subclass"),
        (("collections.Counter",), lambda: collections.Counter, "dict subclass"),
        (("collections.deque",), lambda: collections.deque, "container"),
        (("collections.ChainMap",), lambda: collections.ChainMap, "holds the mappings given"),
        (
            ("collections.defaultdict",),
            lambda: collections.defaultdict,
            "dict subclass; its factory is a separate global, checked on its own",
        ),
        *(
            ((f"datetime.{t.__name__}",), lambda t=t: t, "value type built from numbers/bytes")
            for t in (
                datetime.date,
                datetime.time,
                datetime.datetime,
                datetime.timedelta,
                datetime.timezone,
            )
        ),
        (("array.array",), lambda: array.array, "typed container of numbers"),
        (
            ("array._array_reconstructor",),
            lambda: array._array_reconstructor,
            "protocol 3+ arrays: a subtype of array.array (a global of the file, checked "
            "separately; anything else refused) over the bytes given",
        ),
        (("decimal.Decimal",), lambda: decimal.Decimal, "value type parsed from a string"),
        (("fractions.Fraction",), lambda: fractions.Fraction, "value type parsed from a string"),
        (("uuid.UUID",), lambda: uuid.UUID, "value type built from an int"),
        (("uuid.SafeUUID",), lambda: uuid.SafeUUID, "an enum of three constants"),
        *(
            (
                # Python 3.13 moved them to pathlib._local, the name its pickles give.
                (f"pathlib.{t.__name__}", f"pathlib._local.{t.__name__}"),
                lambda t=t: t,
                "path value: string parsing, no I/O",
            )
            for t in (
                pathlib.PurePosixPath,
                pathlib.PureWindowsPath,
                pathlib.PosixPath,
                pathlib.WindowsPath,
            )
        ),
    ]


def chararray() -> type:
    """numpy's ``chararray`` class, without the DeprecationWarning numpy 2.5 gives on
    reaching it: files may name it, and a warning would reach the user at every import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.char.chararray


def _numpy_reconstructors() -> dict[str, Any]:
    """The functions numpy's own reductions name, taken from what this numpy returns."""
    arr = np.empty(1)
    return {
        "_reconstruct": arr.__reduce__()[0],
        "_frombuffer": arr.__reduce_ex__(5)[0],
        "scalar": np.float64(0).__reduce__()[0],
    }


def _numpy() -> list[_Entry]:
    core = _numpy_reconstructors()
    both = ("numpy.core", "numpy._core")
    entries: list[_Entry] = [
        (("numpy.ndarray", "numpy.core.multiarray.ndarray"), lambda: np.ndarray, "array type"),
        (("numpy.dtype",), lambda: np.dtype, "dtype from a type string or field list"),
        (
            tuple(f"{m}.multiarray._reconstruct" for m in both),
            lambda: core["_reconstruct"],
            "ndarray.__new__(cls, shape, dtype) for an ndarray subclass cls of the file",
        ),
        (
            tuple(f"{m}.numeric._frombuffer" for m in both),
            lambda: core["_frombuffer"],
            "protocol-5 arrays: frombuffer(buffer, dtype).reshape(shape)",
        ),
        (
            tuple(f"{m}.multiarray.scalar" for m in both),
            lambda: core["scalar"],
            "numpy scalars: a dtype and its bytes (object dtype: the object given)",
        ),
        (
            ("numpy.ma.core._mareconstruct",),
            lambda: np.ma.core._mareconstruct,
            "masked arrays: empty data and mask of the subclass and dtype given",
        ),
        (
            ("numpy.matrix", "numpy.matrixlib.defmatrix.matrix"),
            lambda: np.matrix,
            "ndarray subclass; string input goes through ast.literal_eval",
        ),
        (
            ("numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray"),
            lambda: np.ma.MaskedArray,
            "ndarray subclass",
        ),
        (("numpy.ma.core.MaskedConstant",), lambda: np.ma.core.MaskedConstant, "np.ma.masked"),
        (("numpy.ma.core.mvoid",), lambda: np.ma.core.mvoid, "masked structured scalar"),
        (
            tuple(
                f"{m}.recarray"
                for m in ("numpy", "numpy.rec", "numpy.core.records", "numpy._core.records")
            ),
            lambda: np.recarray,
            "ndarray subclass",
        ),
        (
            tuple(
                f"{m}.record"
                for m in ("numpy", "numpy.rec", "numpy.core.records", "numpy._core.records")
            ),
            lambda: np.record,
            "structured scalar",
        ),
        (
            tuple(
                f"{m}.chararray"
                for m in (
                    "numpy",
                    "numpy.char",
                    "numpy.core.defchararray",
                    "numpy._core.defchararray",
                )
            ),
            chararray,
            "ndarray subclass",
        ),
        (
            tuple(f"{m}.memmap" for m in ("numpy", "numpy.core.memmap", "numpy._core.memmap")),
            lambda: np.ndarray,
            "substitute: np.memmap(filename, mode='w+') would create files; memmap pickles "
            "come back as plain arrays, as arraypickle stores them anyway",
        ),
    ]
    convert = getattr(
        getattr(getattr(np, "_core", None), "_internal", None),
        "_convert_to_stringdtype_kwargs",
        None,
    )
    if convert is not None:
        entries.append(
            (
                ("numpy._core._internal._convert_to_stringdtype_kwargs",),
                lambda: convert,
                "StringDType(coerce, na_object)",
            )
        )
    # Scalar types and dtype classes: calling them builds one value.
    # vars(), not getattr(): numpy 1.x warns on attributes such as np.bool.
    public = vars(np)
    scalar_types = {t for t in np.sctypeDict.values() if isinstance(t, type)}
    for t in sorted(scalar_types, key=lambda t: t.__name__):
        names = {f"numpy.{t.__name__}"} if public.get(t.__name__) is t else set()
        for alias in ("bool_", "bool", "object_", "str_", "bytes_", "void"):
            if public.get(alias) is t:
                names.add(f"numpy.{alias}")
        if t is np.bool_:
            names.add("numpy.bool")  # numpy 2's name for it, which numpy 1.x lacks
        if names:
            entries.append((tuple(sorted(names)), lambda t=t: t, "numpy scalar type"))
    dtypes = getattr(np, "dtypes", None)
    for attr in sorted(getattr(dtypes, "__all__", ())):
        cls = getattr(dtypes, attr, None)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            entries.append(((f"numpy.dtypes.{attr}",), lambda c=cls: c, "dtype class"))
    return entries


def _joblib_wrapper_outside_a_joblib_stream(*args: Any, **kwargs: Any) -> Any:
    raise TypeError("safe mode: joblib's array wrappers are only read by the joblib loader")


def _arraypickle() -> list[_Entry]:
    return [
        (
            (f"{fmt.REBUILD_MODULE}.{fmt.REBUILD_NAME}",),
            lambda: fmt.rebuild,
            "bound by the reader to its own rebuild: an installed wrapper plugin rebuilds "
            "the object from the container's buffers and meta (whose globals are checked)",
        ),
        (
            tuple(f"{m}.{cls}" for cls, modules in JOBLIB_WRAPPER_MODULES.items() for m in modules),
            lambda: _joblib_wrapper_outside_a_joblib_stream,
            "joblib's array wrappers: joblib is never imported; arraypickle's joblib reader "
            "binds these names to its own placeholders, which read the array bytes that "
            "follow (or, for joblib 0.8-0.9, companion files beside the loaded file, by "
            "plain name only); elsewhere they refuse to run",
        ),
    ]


def entries() -> list[_Entry]:
    """Every allow-list entry: ``(names, getter, justification)``; for review and docs."""
    return [*_builtins(), *_stdlib(), *_numpy(), *_arraypickle()]


@functools.lru_cache(maxsize=1)
def allowed() -> dict[str, Any]:
    """The allow-list: dotted name -> the object the unpickler gets for it."""
    table: dict[str, Any] = {}
    for names, getter, _why in entries():
        obj = getter()
        for name in names:
            table[name] = obj
    return table


def numpy_alias(module: str, name: str) -> Any:
    """numpy's object for ``module.name`` when the allow-list lists it (as the name
    numpy 1.x or 2.x gives it), else None. Substitutes are not aliases: None for them."""
    if module != "numpy" and not module.startswith("numpy."):
        return None
    return _numpy_aliases().get(f"{module}.{name}")


@functools.lru_cache(maxsize=1)
def _numpy_aliases() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for names, getter, why in _numpy():
        if not why.startswith("substitute"):
            obj = getter()
            table.update(dict.fromkeys(names, obj))
    return table


def normalize(module: str, name: str) -> str:
    """The dotted name a (module, name) pair stands for, after pickle's Python 2 renames.

    The C unpickler renames Python 2 modules (``__builtin__``, ``copy_reg``...) for
    protocols below 3. Applying the renames always is safe: a renamed name is checked
    and resolved here, never imported.
    """
    key = (module, name)
    if key in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[key]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def trusted_names(
    trusted: Iterable[Any] | str | type | Callable[..., Any] | None,
) -> dict[str, Any]:
    """``trusted`` as dotted name -> object (None where the name is to be imported).

    Accepts ``'module.qualname'`` strings and the classes or functions themselves, in
    any iterable, or one of them alone.
    """
    if trusted is None:
        return {}
    if isinstance(trusted, str) or callable(trusted):
        trusted = [trusted]
    try:
        items = list(trusted)
    except TypeError:
        raise InvalidArgumentError(
            "trusted must be an iterable of 'module.qualname' strings, classes or functions, "
            f"got {trusted!r}"
        ) from None
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, str):
            if "." not in item.strip(".") or " " in item:
                raise InvalidArgumentError(
                    f"trusted names look like 'module.qualname', got {item!r}"
                )
            out.setdefault(item, None)
            continue
        module = getattr(item, "__module__", None)
        qualname = getattr(item, "__qualname__", None)
        owner = getattr(item, "__self__", None)
        if isinstance(owner, type) and isinstance(getattr(item, "__name__", None), str):
            # A classmethod is pickled as getattr(<its class>, '<name>'), which safe
            # loading names <its class>.<name>: the class it was taken from, which may
            # inherit it, and whose module a classmethod written in C does not carry.
            module, qualname = owner.__module__, f"{owner.__qualname__}.{item.__name__}"
        if not callable(item) or not isinstance(module, str) or not isinstance(qualname, str):
            raise InvalidArgumentError(
                f"trusted entries must be 'module.qualname' strings, classes or functions, "
                f"got {item!r}"
            )
        out[f"{module}.{qualname}"] = item
    return out
