"""The exception hierarchy, and the check of True/False arguments that raises into it.

Every error arraypickle raises on purpose derives from :class:`ArrayPickleError`.
Errors about bad input (a damaged file, an unknown codec, a wrong argument) also derive
from :class:`ValueError`, because that is what ``joblib.dump`` and ``joblib.load`` raised
for them and callers already catch it.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np


class ArrayPickleError(Exception):
    """Base class of every error raised by arraypickle."""


class CorruptFileError(ArrayPickleError, ValueError):
    """The file is truncated, damaged, or not something arraypickle can read.

    The message names the file and, where known, the record or offset at fault.

    Not a :class:`pickle.UnpicklingError`, though ``pickle.load`` raises one for a
    stream that is not a pickle: CPython's unpickler replaces an ``UnpicklingError``
    that the file it reads raises, between two opcodes, by ``EOFError("Ran out of
    input")``, and the message saying what is wrong would be lost. Nor an
    :class:`EOFError`, which ``pickle.load`` raises for some truncations: a loop
    reading objects back to back until ``EOFError`` would take a truncated last object
    for the end of the stream (only :class:`EmptyFileError`, nothing at all to load,
    is one).
    """


class ResourceLimitError(CorruptFileError):
    """Loading the file needs more than arraypickle grants a load: an xz or lzma stream
    asking for a dictionary over 256 MiB (xz's largest preset uses 64 MiB), as
    decompression bombs do. Decompress it with ``xz -d`` if you trust it.

    The file may be sound, but a :class:`CorruptFileError` all the same: a damaged
    ``.lzma`` header (it has no checksum) reads as such a request, and a file this
    arraypickle will not load is, to a cache, one to write again.
    """


class EmptyFileError(CorruptFileError, EOFError):
    """There is nothing to load: the file is empty, or the stream is at its end.

    Also an :class:`EOFError`, which ``pickle.load`` raises at the end of a stream: a
    loop that loads objects written back to back into one file stops on it.
    """


class UnknownCodecError(ArrayPickleError, ValueError):
    """A codec was asked for (by name, extension or magic number) that is not installed."""


class UnknownWrapperError(ArrayPickleError, ValueError):
    """The file stores an array type whose wrapper plugin is not installed."""


class NumpyVersionError(ArrayPickleError, ValueError):
    """The file is sound, but holds a numpy object this numpy version cannot build.

    numpy 1.x cannot read the aligned structured dtypes (``align=True``) numpy 2
    writes; load such a file under numpy 2.
    """


class UnpicklableError(ArrayPickleError, pickle.PicklingError, AttributeError, TypeError):
    """The object holds something the pickler refuses: what it cannot save by
    reference (a local class or function, a lambda), what cannot be pickled at all (a
    lock, a generator, a module, an open file), a reduction it cannot use (a
    ``__reduce__`` returning neither a string nor a tuple), or what an array wrapper
    exposed wrongly (the message names the wrapper).

    Python 3.11's C pickler raises ``AttributeError`` for the first, ``TypeError`` for
    the second, and joblib's pure-Python pickler ``pickle.PicklingError``: this is all
    three, so any of those ``except`` clauses catches it.
    """


class InvalidArgumentError(ArrayPickleError, ValueError, TypeError):
    """An argument is wrong: a ``compress`` level outside 0..9, an unknown ``mmap_mode``,
    a file name that is neither ``str`` nor ``os.PathLike``, a text-mode, closed or
    non-blocking file object, a malformed ``trusted`` name, ``storage_options`` for a
    local file, a URL whose store cannot write...

    A :class:`ValueError`, as joblib raised for these, and a :class:`TypeError` too,
    since some of them are about an argument's type: either ``except`` catches it
    (scikit-learn's ``InvalidParameterError`` is both for the same reason).
    """


class FileModeError(InvalidArgumentError, io.UnsupportedOperation):
    """A file object open the other way: a dump into a file opened for reading, or a
    load from one opened for writing.

    Also an :class:`io.UnsupportedOperation` (so an :class:`OSError` and a
    :class:`ValueError`), which is what ``io``, and so ``pickle`` and joblib, raise there:
    the ``except`` clauses written for them catch it.
    """


class PluginConflictError(ArrayPickleError):
    """A codec or array wrapper cannot be registered: two plugins claim the same codec
    name, extension, magic number or array type, or the codec or wrapper is malformed
    (its name, magic or extensions are unusable, a member is missing); the message
    names the plugin and what is wrong."""


class UntrustedTypeError(ArrayPickleError):
    """Safe loading met globals that are neither allow-listed nor ``trusted``.

    ``names`` lists every such global of the file (sorted ``module.qualname``
    strings; ``'<unresolved>'`` for one the scan could not name), found before
    anything in the file ran.
    """

    def __init__(self, message: str, names: list[str] | None = None) -> None:
        super().__init__(message)
        self.names = list(names or ())


def as_flag(name: str, value: Any, expected: str = "True or False") -> bool:
    """``value`` as a bool, refusing what is not one: ``verify="no"`` would be true.
    numpy's own bool (from a comparison or a mask) is one."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InvalidArgumentError(f"{name} must be {expected}, got {value!r}")


def describe(fileobj_or_name: object) -> str:
    """A short human name for a path or file object, for error messages."""
    if isinstance(fileobj_or_name, str):
        return repr(fileobj_or_name)
    name = getattr(fileobj_or_name, "name", None)
    if isinstance(name, (str, bytes)) and name:
        return repr(name if isinstance(name, str) else name.decode(errors="replace"))
    return f"<{type(fileobj_or_name).__name__}>"


class MissingDependencyError(ArrayPickleError, ImportError):
    """An optional dependency a call needs is not installed; the message names it.

    Raised, for example, for a URL path (``s3://...``) without fsspec or without the
    fsspec backend for that protocol.
    """


# Tracebacks and reprs name the errors as users import and catch them (``arraypickle.
# CorruptFileError``), not by this private module.
for _error in (
    ArrayPickleError,
    CorruptFileError,
    ResourceLimitError,
    EmptyFileError,
    UnknownCodecError,
    UnknownWrapperError,
    NumpyVersionError,
    UnpicklableError,
    InvalidArgumentError,
    FileModeError,
    PluginConflictError,
    UntrustedTypeError,
    MissingDependencyError,
):
    _error.__module__ = "arraypickle"
del _error
