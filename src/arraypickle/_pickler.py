"""The C pickler, with array buffers routed around it into container records."""

from __future__ import annotations

import pickle
from typing import Any

from . import _format as fmt
from ._writer import ContainerWriter
from .wrapper import as_array


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
        self._index = wrapper_index

    def reducer_override(self, obj: Any) -> Any:
        wrapper = self._index[type(obj)]
        if wrapper is None:
            return NotImplemented
        exposed = wrapper.expose(obj)
        if exposed is None:
            return NotImplemented
        first = self._writer.buffers
        for data, order in exposed.buffers:
            self._writer.write_array(as_array(data), order)
        return fmt.rebuild, (wrapper.name, exposed.meta, first, len(exposed.buffers))
