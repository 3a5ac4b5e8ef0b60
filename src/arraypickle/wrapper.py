"""The array-wrapper contract: how a buffer-backed type is written and rebuilt.

An array wrapper tells arraypickle which objects carry big buffers and how to take
them apart and put them back together. The buffers bypass the pickler: each is written
from the object's own memory, 64-byte aligned, and read back (or memory-mapped) into
the memory the rebuilt object will use. numpy arrays go through a built-in wrapper;
plugins add their own through the ``arraypickle_register_wrappers`` hook.

A wrapper is any object with these members (:class:`ArrayWrapper` is a convenient base):

``name: str``
    Unique among installed wrappers, and stored in every file that holds such objects:
    never rename a wrapper once files exist.
``types: tuple[type, ...]``
    Instances of these types, and of their subclasses, are offered to ``expose``.
    The most specific type claimed wins; two wrappers claiming one type conflict.
    Exact instances of the types the C pickler saves itself (``int``, ``float``,
    ``str``, ``bytes``, ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``) are
    never offered: it does not consult ``reducer_override`` for them. Their
    subclasses are.
``expose(obj) -> Exposed | None``
    Take ``obj`` apart. Return ``None`` to let pickle handle this object as usual
    (numpy does so for object arrays). ``Exposed.meta`` is pickled normally and may
    hold further arrays (they go through their own wrappers); ``Exposed.buffers`` are
    written out of band, in order.
``rebuild(meta, buffers) -> object``
    Put the object back together. ``buffers`` holds one 1-D ``uint8`` numpy array per
    exposed buffer, with exactly the bytes written (non-contiguous data laid out in
    the ``order`` it was exposed with). They are writable, 64-byte aligned, and yours
    to keep: build the object on top of them without copying. When the caller asked
    for memory mapping they are ``np.memmap`` slices of the file in the caller's mode
    (read-only for ``'r'``).

Example, a type whose payload is any buffer (made with a ``bytearray``, it comes back
holding the loaded ``uint8`` array itself: ``rebuild`` keeps that memory, uncopied)::

    class Blob:
        def __init__(self, data): self.data = data

    class BlobWrapper(ArrayWrapper):
        name = "example.blob"
        types = (Blob,)

        def expose(self, obj):
            return Exposed(meta=None, buffers=[Buffer(np.frombuffer(obj.data, np.uint8))])

        def rebuild(self, meta, buffers):
            return Blob(buffers[0])

Test a wrapper with the conformance kit, :class:`arraypickle.testing.WrapperConformance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

# The contract; the checks below are the core's, for what wrappers return.
__all__ = ["ArrayWrapper", "Buffer", "Exposed"]


class Buffer(NamedTuple):
    """One out-of-band buffer of an exposed object.

    ``data`` is a numpy array of any non-object dtype, contiguous or not, or any
    object exporting a contiguous buffer. ``order`` ('C' or 'F') is the layout of the
    bytes written, whatever ``data``'s own: ``Buffer(a, 'F')`` writes ``a``'s elements
    in Fortran order (straight from its memory when ``a`` is F-contiguous, else
    copied), and ``rebuild`` gets them back in that order. Expose an F-contiguous
    array with ``order='F'`` to write it without a copy. Any other order is refused.
    """

    data: Any
    order: str = "C"


class Exposed(NamedTuple):
    """What :meth:`ArrayWrapper.expose` returns: picklable ``meta`` and the buffers."""

    meta: Any
    buffers: Sequence[Buffer] = ()


class ArrayWrapper:
    """Base class for array wrappers (optional: any object with the members works).

    What each member means is the contract in this module's docstring, whose example
    is a whole wrapper.

    Example::

        >>> class BlobWrapper(ArrayWrapper):
        ...     name, types = "example.blob", (Blob,)
        ...
        ...     def expose(self, obj):
        ...         return Exposed(None, [Buffer(np.frombuffer(obj.data, np.uint8))])
        ...
        ...     def rebuild(self, meta, buffers):
        ...         return Blob(buffers[0])
    """

    name: str = ""
    types: tuple[type, ...] = ()

    def expose(self, obj: Any) -> Exposed | None:
        """Take ``obj`` apart, or return ``None`` to let pickle handle it as usual.

        Args:
            obj: An instance of one of :attr:`types` (or of a subclass).

        Returns:
            ``Exposed(meta, buffers)``: ``meta`` is pickled normally (arrays in it go
            through their own wrappers), each :class:`Buffer` written out of band.
        """
        raise NotImplementedError

    def rebuild(self, meta: Any, buffers: list[np.ndarray]) -> Any:
        """Put an object back together from what :meth:`expose` gave.

        Args:
            meta: The ``meta`` that ``expose`` returned, unpickled.
            buffers: One 1-D ``uint8`` array per exposed buffer, writable, 64-byte
                aligned and the caller's to keep (``np.memmap`` slices of the file
                under ``mmap_mode``).

        Returns:
            The object, built on the buffers' memory without copying it.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# What dump makes of a wrapper's answer. A wrapper is plugin code: a wrong answer
# must fail the dump naming the wrapper, never write something that loads wrong.


def broken(wrapper: Any, obj: Any, what: str) -> Exception:
    from ._errors import UnpicklableError

    return UnpicklableError(
        f"array wrapper {getattr(wrapper, 'name', wrapper)!r}, exposing a "
        f"{type(obj).__qualname__}: {what}"
    )


def _pair(wrapper: Any, obj: Any, value: Any, what: str, expected: str) -> tuple[Any, Any]:
    try:
        first, second = value
    except (TypeError, ValueError):
        raise broken(wrapper, obj, f"{what} {type(value).__name__}, not {expected}") from None
    return first, second


def checked_exposed(wrapper: Any, obj: Any, exposed: Any) -> Exposed:
    """``exposed`` as an :class:`Exposed`, or an error naming the wrapper."""
    meta, buffers = _pair(wrapper, obj, exposed, "expose returned", "Exposed(meta, buffers)")
    return Exposed(meta, checked_buffers(wrapper, obj, buffers))


def checked_buffers(wrapper: Any, obj: Any, buffers: Any) -> list[Any]:
    """An exposed object's buffers as a list, or an error naming the wrapper."""
    try:
        return list(buffers)
    except TypeError:
        raise broken(
            wrapper, obj, f"its buffers are a {type(buffers).__name__}, not a list of Buffer"
        ) from None


def checked_buffer(wrapper: Any, obj: Any, buffer: Any) -> tuple[Any, str]:
    """``(data, order)`` of one exposed buffer, or an error naming the wrapper."""
    return _pair(wrapper, obj, buffer, "a buffer is a", "Buffer(data, order)")


def checked_order(wrapper: Any, obj: Any, order: Any) -> str:
    """A buffer's ``order``, 'C' or 'F', or an error naming the wrapper."""
    if order == "C" or order == "F":
        return str(order)
    raise broken(wrapper, obj, f"a buffer's order is {order!r}, not 'C' or 'F'")


def checked_data(wrapper: Any, obj: Any, data: Any) -> np.ndarray:
    """A buffer's ``data`` as a numpy array (itself, or a uint8 view of a contiguous
    buffer); object dtypes refused: their bytes are pointers into this process."""
    if not isinstance(data, np.ndarray):
        try:
            view = memoryview(data)
        except TypeError as exc:
            raise broken(wrapper, obj, f"a buffer's data is unusable: {exc}") from None
        try:
            # With its own dtype (an object array's memoryview is refused below), and
            # any layout: the writer lays out the bytes in the buffer's order.
            data = np.asarray(view)
        except (TypeError, ValueError, NotImplementedError):
            if not view.c_contiguous:
                raise broken(wrapper, obj, "a buffer's data is a non-contiguous buffer") from None
            data = np.frombuffer(view, np.uint8)
    if data.dtype.hasobject:
        raise broken(
            wrapper,
            obj,
            f"a buffer has dtype {data.dtype}, which holds Python objects: out-of-band "
            "buffers hold raw bytes (put objects in meta, where they pickle)",
        )
    return data
