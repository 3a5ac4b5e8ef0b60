"""arraypickle: persist Python objects holding big numpy arrays into one file.

Fast (the C pickler, array buffers written and read without copies), bounded in
memory, optionally compressed by codecs that install as plugins. The call shapes are
those of ``joblib.dump`` and ``joblib.load``.
"""

from ._api import dump, dumps, load, loads
from ._errors import (
    ArrayPickleError,
    CorruptFileError,
    EmptyFileError,
    FileModeError,
    InvalidArgumentError,
    MissingDependencyError,
    NumpyVersionError,
    PluginConflictError,
    ResourceLimitError,
    UnknownCodecError,
    UnknownWrapperError,
    UnpicklableError,
    UntrustedTypeError,
)
from ._plugins import codecs, register_codec, register_wrapper, wrappers
from ._safe import get_untrusted_types
from ._version import __version__
from .codec import Codec
from .hookspecs import hookimpl
from .wrapper import ArrayWrapper, Buffer, Exposed

__all__ = [
    "ArrayPickleError",
    "ArrayWrapper",
    "Buffer",
    "Codec",
    "CorruptFileError",
    "EmptyFileError",
    "Exposed",
    "FileModeError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "NumpyVersionError",
    "PluginConflictError",
    "ResourceLimitError",
    "UnknownCodecError",
    "UnknownWrapperError",
    "UnpicklableError",
    "UntrustedTypeError",
    "__version__",
    "codecs",
    "dump",
    "dumps",
    "get_untrusted_types",
    "hookimpl",
    "load",
    "loads",
    "register_codec",
    "register_wrapper",
    "wrappers",
]
