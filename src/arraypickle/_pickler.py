"""The C pickler, with array buffers routed around it into container records."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import numpy as np

from . import _format as fmt
from ._errors import UnpicklableError
from ._numpy import NumpyWrapper, plain_form
from ._writer import ContainerWriter
from .wrapper import (
    Buffer,
    Exposed,
    broken,
    checked_buffer,
    checked_buffers,
    checked_data,
    checked_exposed,
    checked_order,
)


class Pickler(pickle.Pickler):
    """``pickle.Pickler`` (the C one) writing opcodes and buffers into a container.

    ``reducer_override`` is consulted by the C pickler only for objects it has no fast
    path for (not for str, int, float, dict, list...), so plain data pickles at C speed.
    For an object a wrapper claims, its buffers are written right away as BUFFER
    records, and the object pickles as a call to ``rebuild`` naming them by index.
    """

    def __init__(self, writer: ContainerWriter, protocol: int, wrapper_index: dict) -> None:
        options = {"buffer_callback": writer.write_picklebuffer} if protocol >= 5 else {}
        super().__init__(writer, protocol, **options)
        self._writer = writer
        self._protocol = protocol
        self._index = wrapper_index
        self._write_array = writer.write_array
        # The built-in numpy wrapper, when it is the one plain arrays go to (a plugin
        # may claim them instead): those take the fast path in reducer_override.
        numpy = wrapper_index[np.ndarray]
        self._numpy = numpy.name if type(numpy) is NumpyWrapper else None
        # What a wrapper made of each object, by id (unique: the pickler's memo keeps
        # the objects alive). The C pickler asks again for an object only when its meta
        # leads back to it (a subclass's __dict__ holding the array). Given the same
        # answer, it finds the inner copy memoized and uses it: the buffers are written
        # once, and a meta made afresh each time cannot recurse.
        self._reduced: dict[int, Any] = {}
        # Those objects in order, for refusal: the C pickler pickles a meta after
        # reducer_override has returned, so its refusal of one names neither.
        self._wrapped: list[Any] = []

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray and self._numpy is not None:
            # What the general path below does for a plain array, minus its calls and
            # checks (objects of many small arrays, forests, feel every microsecond).
            meta = plain_form(obj)
            if meta is None:
                return NotImplemented
            return fmt.rebuild, (self._numpy, meta, self._write_array(obj, meta[3]), 1)
        wrapper = self._index[type(obj)]
        if wrapper is None:
            return NotImplemented
        again = self._reduced.get(id(obj))
        if again is not None:
            return again
        exposed = wrapper.expose(obj)
        if exposed is None:
            return NotImplemented
        if type(exposed) is not Exposed:
            exposed = checked_exposed(wrapper, obj, exposed)
        buffers = exposed.buffers
        if type(buffers) is not tuple and type(buffers) is not list:
            buffers = checked_buffers(wrapper, obj, buffers)
        first = self._writer.buffers
        for buffer in buffers:
            # The built-in numpy wrapper hands out Buffers of plain arrays, whose dtype
            # it checked: only other wrappers' buffers take the slow path.
            data, order = buffer if type(buffer) is Buffer else checked_buffer(wrapper, obj, buffer)
            if order != "C" and order != "F":
                order = checked_order(wrapper, obj, order)
            if type(data) is not np.ndarray or data.dtype.hasobject:
                data = checked_data(wrapper, obj, data)
            self._writer.write_array(data, order)
        reduced = self._reduced[id(obj)] = (
            fmt.rebuild,
            (wrapper.name, exposed.meta, first, len(buffers)),
        )
        self._wrapped.append(obj)
        return reduced

    def refusal(self, exc: BaseException) -> UnpicklableError:
        """The error for ``exc``, pickling's refusal of something in the value: naming
        the wrapper whose ``meta`` holds what was refused.

        The C pickler pickles a meta after reducer_override has returned, so its error
        names neither. The metas of the objects wrapped last are pickled again, each
        alone and into nothing, the wrapped objects and arrays in them left out (the
        dump wrote them apart): the first, innermost, to fail the same way holds what
        was refused. Objects in a meta pickle a second time doing so, on a failing
        dump only; a meta whose refusal lies deeper than the last few wrapped objects
        goes unnamed."""
        for obj in itertools.islice(reversed(self._wrapped), BLAME_TRIES):
            _, (name, meta, _, _) = self._reduced[id(obj)]
            try:
                _Alone(self._reduced, self._protocol).dump(meta)
            except Exception as again:
                if type(again) is type(exc) and str(again) == str(exc):
                    return broken(name, obj, f"its meta cannot be pickled: {exc}")
        return UnpicklableError(str(exc))


# How many of the last wrapped objects' metas refusal pickles again.
BLAME_TRIES = 64


class _Alone(pickle.Pickler):
    """Pickles a meta alone, into nothing: what a wrapper took apart in the dump (the
    objects in ``reduced``, by id, and plain arrays) stands in as a constant."""

    def __init__(self, reduced: dict[int, Any], protocol: int) -> None:
        super().__init__(_Discard(), protocol)
        self._reduced = reduced

    def reducer_override(self, obj: Any) -> Any:
        if id(obj) in self._reduced or (type(obj) is np.ndarray and not obj.dtype.hasobject):
            return int, ()
        return NotImplemented


class _Discard:
    """A file that forgets what is written to it."""

    def write(self, data: Any) -> int:
        return len(data)
