"""A plugin object registered for one test, and the registry as it was after it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from arraypickle import _plugins


@contextlib.contextmanager
def registered(item: Any, register: Callable[[Any], None]) -> Iterator[Any]:
    """``item`` registered by ``register`` for the block; afterwards the registry holds
    what it held before (what else the test's process registered from code included)."""
    registry = _plugins.get_registry()
    before = registry._state()
    try:
        register(item)
        yield item
    finally:
        registry._restore(before)
