"""Telling a damaged file from a foreign one, and the unpickler's complaints from user errors.

A file arraypickle wrote starts with the container magic or a codec's magic. When a
byte of that magic is damaged, detection by first bytes (``_api._read``) no longer
recognises the file and would hand it to the plain-pickle fallback, which then runs
the C unpickler over binary data. This module keeps that from producing wrong data
or stray exception types:

* :func:`check_unrecognised` rejects first bytes that are a damaged container magic
  or cannot start any pickle;
* :func:`unpickler_failure` turns what the unpickler raises on malformed opcodes
  (whatever the type: ``ValueError``, ``TypeError``, ``MemoryError``, ``KeyError``...)
  into :class:`CorruptFileError`, while exceptions raised by code the pickle names
  (a class's ``__setstate__``, a missing module or class) propagate unchanged.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
from types import TracebackType

import numpy as np

from . import _format as fmt
from ._errors import ArrayPickleError, CorruptFileError, NumpyVersionError
from ._numpy import NUMPY1

# First bytes a pickle can start with: PROTO (protocol 2 and later always start so),
# and the opcodes protocols 0 and 1 start objects with (MARK, empty containers,
# literals, strings, GLOBAL, PERSID). Anything else cannot begin a pickle.
_PROTO = 0x80
_PICKLE_STARTS = frozenset(b"()]}NIJKLMFGSTUVXcP")

# What the C unpickler raises, itself, on malformed opcodes.
_UNPICKLER_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,  # bad protocol, literals, UTF-8; UnicodeDecodeError is one
    OverflowError,
    MemoryError,  # a length argument no allocation can meet
    KeyError,  # a memo index never stored
    IndexError,
    TypeError,  # an opcode applied to a value of the wrong kind
    AttributeError,
    struct.error,
    LookupError,  # a codec name _codecs.encode does not know
    SystemError,  # numpy's C code on a state no pickler writes
    RuntimeError,  # numpy's scalar() on data no pickler writes (not RecursionError)
)

# Where an exception raised by unpickling machinery itself comes from: arraypickle's
# own code, around the C unpickler (whose frames add no traceback entries).
_UNPICKLER_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def data_follows(name: str, offset: int) -> CorruptFileError:
    """The error for a whole file (a path, ``bytes``) with data after its object."""
    return CorruptFileError(
        f"{name}: data follows the object at offset {offset} (appended or damaged data; "
        "objects written back to back load one by one from an open file)"
    )


def damaged_magic(head: bytes) -> bool:
    """Whether ``head`` (first bytes, no codec matched) is a damaged or cut container magic.

    No pickle starts with ``89`` (protocol 2+ starts with ``80``) and no codec matched,
    so a first byte ``89`` means a damaged magic; with 8 bytes in hand, one byte off the
    magic anywhere also does (a flip of the first byte would otherwise read as a
    pickle).
    """
    if head[:1] == fmt.MAGIC[:1]:
        return True
    if len(head) >= len(fmt.MAGIC):
        return sum(a != b for a, b in zip(head[:8], fmt.MAGIC, strict=True)) <= 1
    return False


def could_start_pickle(head: bytes) -> bool:
    """Whether a pickle stream may begin with ``head`` (at least one byte)."""
    if head[0] == _PROTO:
        return len(head) < 2 or head[1] <= pickle.HIGHEST_PROTOCOL
    return head[0] in _PICKLE_STARTS


def check_unrecognised(head: bytes, name: str, at: int = 0) -> None:
    """Raise unless ``head``, which matched no known magic, may start a plain pickle;
    ``at``: its offset in the file (0 where not known: a stream's, counted from the
    load's first byte)."""
    where = f"offset {at}"
    if damaged_magic(head):
        raise CorruptFileError(
            f"{name}: the container header is damaged or truncated at {where} "
            f"(first bytes {head[:8].hex(' ')}; expected {fmt.MAGIC.hex(' ')})"
        )
    if not could_start_pickle(head):
        from ._plugins import DISABLE_ENV, blocked_names

        blocked = ", ".join(sorted(blocked_names()))
        # A blocked plugin's codecs are not known, so neither are their magics.
        guess = (
            f"a damaged header, or a stream of a codec whose plugin {DISABLE_ENV} blocks "
            f"({blocked})?"
            if blocked
            else "a damaged header?"
        )
        raise CorruptFileError(
            f"{name}: not an arraypickle file, a stream of a known codec, or a pickle "
            f"(first bytes at {where}: {head[:8].hex(' ')}; {guess})"
        )


def _innermost(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def _ours(tb: TracebackType) -> bool:
    """Whether the frame of ``tb`` runs arraypickle's own code."""
    return tb.tb_frame.f_code.co_filename.startswith(_UNPICKLER_CODE)


def raised_by_pickler(exc: BaseException) -> bool:
    """Whether ``exc`` came from the C pickler itself (no Python code outside
    arraypickle was running): not from an object's own ``__reduce__``."""
    tb = _innermost(exc.__traceback__)
    return tb is not None and _ours(tb)


def refused_by_pickling(exc: BaseException) -> bool:
    """Whether ``exc``, caught in the frame that called the pickler's ``dump``, is
    pickling's refusal of something the object holds, not a failure of some code.

    The C pickler refuses what it cannot save by reference: a local class or function
    (``AttributeError``), a module-level lambda (``PicklingError``). What cannot be
    pickled at all refuses with ``TypeError``: in C the pickler called (a lock, a
    generator: no frame past the caller's), or with the standard message in Python
    (``copyreg`` at protocols 0 and 1, ``socket.__getstate__``). Any other
    ``TypeError`` (arraypickle's own code's, a ``__reduce__``'s own) is not one.
    """
    if not isinstance(exc, TypeError):
        return raised_by_pickler(exc)
    tb = exc.__traceback__
    return (tb is not None and tb.tb_next is None) or str(exc).startswith("cannot pickle ")


def raised_in_named_code(exc: BaseException) -> bool:
    """Whether ``exc``, caught in the frame that called the unpickler's ``load``, was
    raised in Python code the pickle named (a class's ``__setstate__`` or constructor,
    ``copyreg``'s reconstructor): the first frame the unpickler entered is not
    arraypickle's own (its reads, ``find_class``, ``rebuild``)."""
    tb = exc.__traceback__
    entered = tb.tb_next if tb is not None else None
    return entered is not None and not _ours(entered)


def failed_lookup(exc: BaseException) -> bool:
    """Whether ``exc`` is ``find_class`` not finding a name in a module that imported:
    a class or function renamed or moved since the dump, which ``pickle`` and joblib
    raise as the ``AttributeError`` it is (a name that is not even an identifier is
    damage)."""
    tb = _innermost(exc.__traceback__)
    if not isinstance(exc, AttributeError) or tb is None:
        return False
    if tb.tb_frame.f_code.co_name != "find_class":
        return False
    name = tb.tb_frame.f_locals.get("name")
    return isinstance(name, str) and all(part.isidentifier() for part in name.split("."))


# What numpy 1.x's dtype.__setstate__ says of the flags numpy 2 writes for an aligned
# structured dtype (0x90 no longer fits its signed char).
_NUMPY2_ALIGNED = "incorrect value for flags variable (overflow)"


def unpickler_failure(exc: BaseException, name: str, where: str = "") -> ArrayPickleError | None:
    """The :class:`CorruptFileError` to raise for ``exc`` from an unpickler, or None
    (a :class:`NumpyVersionError` for a sound file this numpy cannot read).

    ``exc`` counts as the unpickler's own complaint when it is of a type the C
    unpickler raises on bad opcodes and no Python code outside arraypickle was running
    when it was raised (C code does not add
    traceback entries; a class's ``__setstate__`` or the import machinery does). The
    unpickler's own ``EOFError`` and ``UnpicklingError`` may also come from the codecs
    arraypickle reads through (gzip's "ended before the end-of-stream marker"), so for
    them only code the pickle named is the user's. An import of a module whose name is
    not even an identifier is damage too. ``where`` prefixes the description. ``exc``
    must be caught in the frame that called ``load``.
    """
    if NUMPY1 and type(exc) is ValueError and str(exc) == _NUMPY2_ALIGNED:
        # Not damage: a cache must not throw the file away as corrupt.
        return NumpyVersionError(
            f"{name}: the file holds an aligned structured dtype (align=True) as numpy 2 "
            f"writes it, which numpy {np.__version__} cannot read; load it under numpy 2"
        )
    if isinstance(exc, ArrayPickleError) or (
        isinstance(exc, ImportError) and not isinstance(exc, ModuleNotFoundError)
    ):
        return None
    if isinstance(exc, ModuleNotFoundError):
        module = exc.name or ""
        if module and all(part.isidentifier() for part in module.split(".")):
            return None
        return CorruptFileError(
            f"{name}: {where}the pickle stream names a module {module!r}: damaged"
        )
    if (
        not isinstance(exc, _UNPICKLER_ERRORS)
        or isinstance(exc, RecursionError | NotImplementedError)
        or failed_lookup(exc)
    ):
        return None
    if isinstance(exc, pickle.UnpicklingError | EOFError):
        if raised_in_named_code(exc):
            return None  # pickle and joblib let a class's own EOFError through too
        detail = str(exc) or type(exc).__name__
    elif raised_by_pickler(exc):
        detail = f"{type(exc).__name__}: {exc}"
    else:
        return None
    return CorruptFileError(f"{name}: {where}the pickle stream is invalid: {detail[:200]}")


# How a codec's reader names the stream it was handed: describe()'s forms.
_LEADING_NAME = re.compile(r"^(?:<[\w.]+>|'[^']*'|\"[^\"]*\"): ")


def renamed(exc: CorruptFileError, name: str) -> CorruptFileError:
    """``exc`` naming the file as the caller knows it (a codec's reader names the raw
    stream it was handed, a ``<BytesIO>`` or ``<Prefixed>``)."""
    text = str(exc)
    if text.startswith(name):
        return exc
    return CorruptFileError(f"{name}: {_LEADING_NAME.sub('', text, count=1)}")


def raised_by_the_system(exc: BaseException) -> bool:
    """Whether ``exc`` is an error of the system under the codec (a disk's EIO, a
    socket's timeout or reset), not a codec's word for damaged data: the ``OSError``s
    codecs raise for that (bz2's "Invalid data stream", gzip's ``BadGzipFile``) carry
    no ``errno``, and a timeout is never the data's fault."""
    return isinstance(exc, OSError) and (
        exc.errno is not None or isinstance(exc, (TimeoutError, ConnectionError))
    )
