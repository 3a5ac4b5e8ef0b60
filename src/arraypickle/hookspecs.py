"""Hook specifications: what an arraypickle plugin can provide.

A plugin is a module (or any object) holding functions marked with
:data:`arraypickle.hookimpl` and named after the hooks below. Distributions announce
theirs under the entry-point group ``arraypickle``::

    [project.entry-points.arraypickle]
    lz4 = "arraypickle_lz4.hooks"

arraypickle loads them once, on first need. A plugin that fails to import is skipped
with a warning; ``ARRAYPICKLE_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point
name (the built-in codecs are named ``zlib``, ``gzip``, ``bz2``, ``lzma``, ``xz``, and
the numpy wrapper ``numpy``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("arraypickle")


class _HookimplMarker(pluggy.HookimplMarker):
    """Marks a plugin's function as arraypickle's hook implementation (re-exported as
    ``arraypickle.hookimpl``). The function is named after a hook below and returns the
    codecs or array wrappers the plugin provides; see ``docs/plugins.md``.

    Example::

        >>> @arraypickle.hookimpl
        ... def arraypickle_register_codecs():
        ...     return [MyCodec()]
    """

    __slots__ = ()


hookimpl = _HookimplMarker("arraypickle")


@hookspec
def arraypickle_register_codecs() -> Iterable[Any]:
    """Return the codecs this plugin provides (an iterable; ``[]`` for none: a hook
    returning None fails the plugin, as a forgotten ``return`` would otherwise
    register nothing without a word).

    Each codec is an object with ``name``, ``magic``, ``extensions``,
    ``open_writer(fileobj, level)`` and ``open_reader(fileobj)``; see
    :mod:`arraypickle.codec` for the full contract and the optional members.
    Two codecs claiming one name or extension, or magics of which one is a prefix
    of the other, raise :class:`arraypickle.PluginConflictError`.

    Examples:

        >>> @arraypickle.hookimpl
        ... def arraypickle_register_codecs():
        ...     return [MyCodec()]
    """


@hookspec
def arraypickle_register_wrappers() -> Iterable[Any]:
    """Return the array wrappers this plugin provides (an iterable; ``[]`` for none,
    never None).

    Each wrapper is an object with ``name``, ``types``, ``expose(obj)`` and
    ``rebuild(meta, buffers)``; see :mod:`arraypickle.wrapper` for the contract.
    Objects whose type (or a base of it) a wrapper claims have their buffers written
    out of band, 64-byte aligned, and read back into their final memory.

    Examples:

        >>> @arraypickle.hookimpl
        ... def arraypickle_register_wrappers():
        ...     return [BlobWrapper()]
    """
