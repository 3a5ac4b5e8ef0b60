"""The array-wrapper conformance kit: :class:`WrapperConformance`."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraypickle
from arraypickle._errors import CorruptFileError
from arraypickle._reader import ContainerReader
from arraypickle.wrapper import checked_buffer, checked_data, checked_exposed, checked_order

from ._registry import registered
from ._samples import assert_same

__all__ = ["WrapperConformance"]

#: What a ``rebuild`` may raise on a ``meta`` and buffers that disagree: the load turns
#: each into a :class:`arraypickle.CorruptFileError` naming the wrapper.
REFUSALS = (CorruptFileError, ValueError, TypeError, IndexError, KeyError)

MMAP_MODES = ("r", "r+", "c")


def _exposed(wrapper: Any, obj: Any) -> tuple[Any, list[tuple[np.ndarray, str]]] | None:
    """``expose(obj)`` checked as ``dump`` checks it: ``meta`` and each buffer's data
    (an array over the object's memory) with its order; None if declined."""
    exposed = wrapper.expose(obj)
    if exposed is None:
        return None
    meta, buffers = checked_exposed(wrapper, obj, exposed)
    pairs = []
    for buffer in buffers:
        data, order = checked_buffer(wrapper, obj, buffer)
        pairs.append((checked_data(wrapper, obj, data), checked_order(wrapper, obj, order)))
    return meta, pairs


def _laid_out(wrapper: Any, obj: Any) -> tuple[Any, list[np.ndarray]] | None:
    """``(meta, buffers)`` of ``obj`` as ``rebuild`` would get them from a file: each
    buffer 1-D ``uint8`` in its order, 64-byte aligned and writable; None if declined."""
    exposed = _exposed(wrapper, obj)
    if exposed is None:
        return None
    meta, pairs = exposed
    return meta, [_aligned(data.tobytes(order=order)) for data, order in pairs]


def _memory_of(wrapper: Any, obj: Any) -> list[np.ndarray]:
    """The arrays over the memory ``obj``'s exposed buffers live in (none if declined)."""
    exposed = _exposed(wrapper, obj)
    return [] if exposed is None else [data for data, _ in exposed[1]]


def _memory_root(obj: Any) -> Any:
    """What holds ``obj``'s memory at the end of its chain of arrays and memoryviews."""
    while True:
        if isinstance(obj, np.ndarray) and obj.base is not None:
            obj = obj.base
        elif isinstance(obj, memoryview):
            obj = obj.obj
        else:
            return obj


def _aligned(data: bytes) -> np.ndarray:
    raw = np.empty(len(data) + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start : start + len(data)]
    out[:] = np.frombuffer(data, np.uint8)
    return out


@contextlib.contextmanager
def _about(n: int, sample: Any) -> Iterator[None]:
    """A failure inside names the sample: its place in ``samples()`` and its type."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"sample {n} ({type(sample).__qualname__}): {exc}") from exc


class WrapperConformance:
    """The tests every array wrapper must pass.

    Subclass it as ``Test...`` in a test module, name the wrapper and give sample
    objects of its types; pytest collects the inherited ``test_*`` methods::

        # tests/test_blob_conformance.py
        from arraypickle.testing import WrapperConformance

        class TestBlobConformance(WrapperConformance):
            wrapper = "example.blob"  # an installed wrapper's name, or a wrapper object

            def samples(self):
                return [Blob(bytearray(b"abc" * 1000)), Blob(bytearray())]

    The kit needs pytest and hypothesis (arraypickle's ``test`` extra). It checks:

    * the contract's members: a non-empty ``name``, ``types`` a tuple of types, the
      wrapper installed under its name; every sample an instance of one of the types
      that ``expose`` takes apart, every :meth:`declined` sample one it leaves to
      pickle, and some sample with a non-empty buffer to write out of band;
    * round trips of every sample through ``dumps``/``loads``, uncompressed and with
      zlib, and through a file loaded with every ``mmap_mode``; samples nested in
      containers, and one object twice in a list loads as one object twice;
    * ``rebuild`` keeps the memory it is given: the buffers the loaded object exposes
      lie on the buffers the load handed ``rebuild`` or, with ``mmap_mode``, on the
      file's mapping, not on a copy (see :meth:`copies`);
    * the same object dumps to the same bytes twice (caches key files by their bytes);
    * safe loading: ``get_untrusted_types`` lists every global the wrapper's ``meta``
      needs, and with those trusted the file loads under ``safe=True``;
    * ``rebuild`` given a ``meta`` and buffers that disagree (a buffer cut in half, a
      buffer missing) raises :class:`arraypickle.CorruptFileError` or one of the
      errors the load turns into one (``ValueError``, ``TypeError``, ``IndexError``,
      ``KeyError``), or builds an object whose buffers hold no more bytes than it was
      given. Whether the buffers agree with each other (indices into another buffer,
      say) only ``rebuild`` can know: check it there;
    * with :attr:`objects` set, a hypothesis property test round trips what it draws.

    A wrapper given as an object (rather than the name of an installed one) is
    registered for each test, in place of an installed wrapper of its name or types;
    afterwards the registry holds what it held before.

    Attributes and methods to set or override:

    ``wrapper``
        The name of an installed wrapper, or a wrapper object.
    ``samples()``
        The objects to round-trip: instances of the wrapper's types that ``expose``
        takes apart, with their variations (empty, big, each layout and dtype).
    ``declined()``
        Instances of the types that ``expose`` leaves to pickle (``[]``).
    ``assert_equal(expected, actual)``
        Whether a loaded object equals the one dumped. By default: the same type (an
        ``np.memmap`` for an ``np.ndarray`` under ``mmap_mode``), an equal ``meta`` and
        the same bytes in each buffer, as ``expose`` gives them. It sees no more than
        ``expose`` gives: override it to check what else the type holds.
    ``copies(sample, mmap_mode)``
        Whether loading ``sample`` must copy its buffers (False): a sample stored in
        the other byte order, swapped into a new array when mapped, say.
    ``objects``
        A hypothesis strategy of objects to round-trip, or None.
    ``hypothesis_settings``
        The property test's settings (40 examples, no deadline, no example database).
    """

    wrapper: Any = None
    objects: st.SearchStrategy[Any] | None = None
    hypothesis_settings = settings(max_examples=40, deadline=None, database=None)

    def samples(self) -> Sequence[Any]:
        """The objects to round-trip (override it)."""
        return []

    def declined(self) -> Sequence[Any]:
        """Objects of the wrapper's types that ``expose`` leaves to pickle."""
        return []

    def copies(self, sample: Any, mmap_mode: str | None) -> bool:
        """Whether a load of ``sample`` (with ``mmap_mode``) must copy its buffers."""
        return False

    def assert_equal(self, expected: Any, actual: Any) -> None:
        """Assert that ``actual``, loaded, equals ``expected``, dumped (override it to
        compare more strictly)."""
        mapped = type(expected) is np.ndarray and type(actual) is np.memmap
        assert mapped or type(actual) is type(expected), f"{type(actual)} != {type(expected)}"
        wrapper = self._subject
        want, got = _laid_out(wrapper, expected), _laid_out(wrapper, actual)
        if want is None or got is None:
            assert want is got, "expose declined one of the two objects, not the other"
            return
        assert_same(want[0], got[0], "meta")
        assert len(got[1]) == len(want[1]), f"{len(got[1])} buffers, not {len(want[1])}"
        for i, (w, g) in enumerate(zip(want[1], got[1], strict=True)):
            assert np.array_equal(w, g), f"buffer {i} differs"

    # -- fixtures -----------------------------------------------------------------

    @pytest.fixture
    def subject(self) -> Iterator[Any]:
        """The wrapper under test, installed in the registry for the test's duration."""
        if isinstance(self.wrapper, str):
            installed = arraypickle.wrappers()
            if self.wrapper not in installed:
                pytest.fail(f"array wrapper {self.wrapper!r} is not installed")
            self._subject = installed[self.wrapper]
            yield self._subject
            return
        if self.wrapper is None:
            pytest.fail(f"{type(self).__name__} must set `wrapper`")
        # Forced: the object under test, not an installed version of it.
        with registered(self.wrapper, lambda w: arraypickle.register_wrapper(w, force=True)):
            self._subject = self.wrapper
            yield self.wrapper

    def _samples(self) -> list[Any]:
        samples = list(self.samples())
        if not samples:
            pytest.fail(f"{type(self).__name__}.samples() gave no objects")
        return samples

    def _all(self) -> list[Any]:
        return self._samples() + list(self.declined())

    # -- the contract -------------------------------------------------------------

    def test_contract_members(self, subject: Any) -> None:
        assert isinstance(subject.name, str) and subject.name
        assert isinstance(subject.types, tuple) and subject.types
        assert all(isinstance(t, type) for t in subject.types)
        assert arraypickle.wrappers()[subject.name] is subject
        for n, sample in enumerate(self._all()):
            with _about(n, sample):
                assert isinstance(sample, subject.types), "not an instance of `types`"

    def test_expose_takes_the_samples_apart(self, subject: Any) -> None:
        out_of_band = False
        for n, sample in enumerate(self._samples()):
            with _about(n, sample):
                laid_out = _laid_out(subject, sample)
                assert laid_out is not None, "expose declined it (list it in declined())"
                out_of_band = out_of_band or any(len(b) for b in laid_out[1])
        for sample in self.declined():
            assert subject.expose(sample) is None, f"expose took {sample!r} apart"
        assert out_of_band, (
            "no sample has a non-empty buffer to write out of band: expose put everything in meta"
        )

    @pytest.mark.parametrize("compress", [0, "zlib"])
    def test_round_trip(self, subject: Any, compress: Any) -> None:
        for n, sample in enumerate(self._all()):
            with _about(n, sample):
                blob = arraypickle.dumps(sample, compress=compress)
                self.assert_equal(sample, arraypickle.loads(blob))

    @pytest.mark.parametrize("mmap_mode", [None, *MMAP_MODES])
    def test_round_trip_through_a_file(self, subject: Any, mmap_mode: Any, tmp_path: Any) -> None:
        path = tmp_path / "samples.pkl"
        samples = self._all()
        arraypickle.dump(samples, path)
        loaded = arraypickle.load(path, mmap_mode=mmap_mode)
        for n, (sample, out) in enumerate(zip(samples, loaded, strict=True)):
            with _about(n, sample):
                self.assert_equal(sample, out)

    def test_nested_and_shared(self, subject: Any) -> None:
        for n, sample in enumerate(self._samples()):
            with _about(n, sample):
                obj = {"twice": [sample, sample], "in": ({"deep": [sample]}, np.arange(3))}
                out = arraypickle.loads(arraypickle.dumps(obj))
                first, second = out["twice"]
                assert first is second, "one object dumped twice loaded as two"
                self.assert_equal(sample, first)
                assert out["in"][0]["deep"][0] is first
                assert np.array_equal(out["in"][1], np.arange(3))

    @pytest.mark.parametrize("mmap_mode", [None, "r"])
    def test_rebuild_keeps_the_memory_it_is_given(
        self, subject: Any, mmap_mode: Any, tmp_path: Any, monkeypatch: Any
    ) -> None:
        given_buffers: list[Any] = []
        take_slot = ContainerReader.take_slot

        def spy(reader: ContainerReader, index: int) -> Any:
            # What the load hands the wrapper (the numpy wrapper's mapped slots included).
            given_buffers.append(take_slot(reader, index))
            return given_buffers[-1]

        monkeypatch.setattr(ContainerReader, "take_slot", spy)
        for n, sample in enumerate(self._samples()):
            if self.copies(sample, mmap_mode):
                continue
            path = tmp_path / f"sample{n}.pkl"
            arraypickle.dump(sample, path)
            given_buffers.clear()
            out = arraypickle.load(path, mmap_mode=mmap_mode)
            for i, data in enumerate(_memory_of(subject, out)):
                if data.nbytes == 0:
                    continue
                if mmap_mode is None:
                    kept = any(np.may_share_memory(data, b) for b in given_buffers)
                else:  # on the file's mapping, however the load handed it over
                    kept = isinstance(_memory_root(data), mmap.mmap)
                assert kept, (
                    f"sample {n} ({type(sample).__qualname__}): buffer {i} of the loaded "
                    "object is not on the memory the load gave rebuild: rebuild copied "
                    "it, or expose of the loaded object exposes a copy"
                )

    def test_same_object_same_bytes(self, subject: Any) -> None:
        for n, sample in enumerate(self._all()):
            with _about(n, sample):
                assert arraypickle.dumps(sample) == arraypickle.dumps(sample)

    def test_safe_loading(self, subject: Any) -> None:
        for n, sample in enumerate(self._all()):
            with _about(n, sample):
                blob = arraypickle.dumps(sample)
                untrusted = arraypickle.get_untrusted_types(blob)
                self.assert_equal(sample, arraypickle.loads(blob, safe=True, trusted=untrusted))

    @pytest.mark.parametrize("damage", ["a buffer cut in half", "a buffer missing"])
    def test_rebuild_refuses_buffers_that_disagree_with_meta(
        self, subject: Any, damage: str
    ) -> None:
        for n, sample in enumerate(self._samples()):
            meta, buffers = _laid_out(subject, sample) or (None, [])
            for i in range(len(buffers)):
                if damage == "a buffer missing":
                    given = buffers[:i] + buffers[i + 1 :]
                elif len(buffers[i]):
                    given = [*buffers[:i], buffers[i][: len(buffers[i]) // 2], *buffers[i + 1 :]]
                else:
                    continue
                what = f"sample {n} ({type(sample).__qualname__}), {damage} (buffer {i})"
                try:
                    rebuilt = subject.rebuild(meta, given)
                except REFUSALS:
                    continue
                except Exception as exc:
                    pytest.fail(
                        f"{what}: rebuild raised {type(exc).__name__}: {exc}. When meta and "
                        "buffers disagree, raise arraypickle.CorruptFileError (or "
                        "ValueError, TypeError, IndexError, KeyError)"
                    )
                claimed = sum(data.nbytes for data in _memory_of(subject, rebuilt))
                available = sum(b.nbytes for b in given)
                assert claimed <= available, (
                    f"{what}: rebuild made an object of {claimed} bytes from {available}"
                )

    def test_property_round_trip(self, subject: Any) -> None:
        if self.objects is None:
            pytest.skip(f"{type(self).__name__}.objects is None: no property test")

        @self.hypothesis_settings
        @given(st.data())
        def check(data: Any) -> None:
            obj = data.draw(self.objects)
            self.assert_equal(obj, arraypickle.loads(arraypickle.dumps(obj)))

        check()
