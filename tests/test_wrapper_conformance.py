"""The wrapper conformance kit (arraypickle.testing) run against the built-in ``numpy``
wrapper, the test suite's own wrappers and the plugin guide's sketch, and the kit's
own checks shown to fail on wrappers that break the contract."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraypickle as ap
from arraypickle.testing import WrapperConformance, assert_same
from test_plugins_docs import guide, python_blocks
from test_wrappers import Grid, GridWrapper, SignalWrapper, StereoSignal, make_signal


class TestNumpyWrapper(WrapperConformance):
    wrapper = "numpy"
    objects = hnp.arrays(
        hnp.scalar_dtypes(),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    )

    def samples(self):
        grid = np.arange(600, dtype=np.float64).reshape(20, 30)
        return [
            grid,
            np.asfortranarray(grid),
            grid[::3, 1::2],
            np.array(7, np.int16),
            np.empty((0, 5), np.float32),
            np.arange(10, dtype=">i4"),
            np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", ">f8")]),
            np.array(["a", "bcd"]),
            np.array(["2026-11-28"], "datetime64[D]"),
            np.array([1 + 2j, np.nan], np.complex64),
        ]

    def declined(self):
        return [np.array([1, "two"], dtype=object)]  # pickled in band

    def assert_equal(self, expected, actual):
        # Loads give the native byte order: the default comparison would see meta differ.
        assert_same(expected, actual)


class TestSignalWrapper(WrapperConformance):
    wrapper = SignalWrapper()
    objects = st.integers(0, 3000).map(make_signal)

    def samples(self):
        return [make_signal(), make_signal(0), make_signal(1000, cls=StereoSignal)]


def _grids(cells):
    return Grid(cells, np.linspace(0, 1, cells.shape[1], dtype=np.float32), list(cells.shape))


class TestGridWrapper(WrapperConformance):
    wrapper = GridWrapper(Grid)
    objects = hnp.arrays(
        st.sampled_from([np.int32, np.float64, np.dtype(">u2")]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=9),
    ).map(_grids)

    def samples(self):
        cells = np.arange(120, dtype=np.int32).reshape(10, 12)
        weights = np.linspace(0, 1, 12, dtype=np.float32)
        return [
            Grid(cells, weights, ["row"] * 10),
            Grid(np.asfortranarray(cells), weights[::-1], None),
            Grid(cells[::2, ::3], weights[:0], ()),
        ]


def _guide_sketch() -> types.ModuleType:
    """The plugin guide's ``Blob`` sketch, as a module (the kit pickles its objects)."""
    sketch = next(b for b in python_blocks(guide()) if "class BlobWrapper" in b)
    module = types.ModuleType("plugins_guide_blob")
    sys.modules[module.__name__] = module
    exec(compile(sketch, "docs/plugins.md", "exec"), module.__dict__)
    return module


GUIDE = _guide_sketch()


class TestTheGuidesBlobWrapper(WrapperConformance):
    wrapper = GUIDE.BlobWrapper()
    objects = st.binary(max_size=5000).map(lambda b: GUIDE.Blob(bytearray(b)))

    def samples(self):
        return [GUIDE.Blob(bytearray(b"abc" * 1000)), GUIDE.Blob(bytearray())]


# -- the kit catches what breaks the contract ----------------------------------------


class Copying(SignalWrapper):
    name = "tests.copying"

    def rebuild(self, meta, buffers):
        return super().rebuild(meta, [b.copy() for b in buffers])


class Careless(GridWrapper):
    name = "tests.careless"

    def rebuild(self, meta, buffers):
        try:
            return super().rebuild(meta, buffers)
        except Exception as exc:  # the wrong kind: a load would not call it damage
            raise RuntimeError("confused") from exc


def run_kit(kit_class, test, tmp_path, **kwargs):
    """Run one of the kit's tests on ``kit_class`` as pytest would, fixtures by hand."""
    kit = kit_class()
    method = getattr(kit, test)
    fixture = kit_class.subject.__wrapped__(kit)
    subject = next(fixture)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            offered = {"tmp_path": tmp_path, "monkeypatch": monkeypatch, **kwargs}
            wanted = inspect.signature(method).parameters
            method(subject, **{k: v for k, v in offered.items() if k in wanted})
    finally:
        fixture.close()


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_the_kit_finds_a_rebuild_that_copies(tmp_path, mmap_mode):
    class Kit(TestSignalWrapper):
        wrapper = Copying()

    with pytest.raises(AssertionError, match="buffer 0 of the loaded object is not on the memory"):
        run_kit(Kit, "test_rebuild_keeps_the_memory_it_is_given", tmp_path, mmap_mode=mmap_mode)


def test_the_kit_finds_a_rebuild_that_raises_the_wrong_error(tmp_path):
    class Kit(TestGridWrapper):
        wrapper = Careless(Grid)

    with pytest.raises(pytest.fail.Exception, match=r"RuntimeError: confused\. When meta and"):
        run_kit(
            Kit,
            "test_rebuild_refuses_buffers_that_disagree_with_meta",
            tmp_path,
            damage="a buffer missing",
        )


def test_the_default_comparison_sees_a_buffer_that_differs(fresh_registry):
    kit = TestSignalWrapper()
    kit._subject = kit.wrapper
    ap.register_wrapper(kit.wrapper)
    a, b = make_signal(), make_signal()
    b.samples[5] = 99.0
    with pytest.raises(AssertionError, match="buffer 0 differs"):
        kit.assert_equal(a, b)


class TestNumpyWrapperComparedByDefault(WrapperConformance):
    """Native arrays need no comparison of their own: a mapped load's ``np.memmap``
    passes for the ``np.ndarray`` dumped."""

    wrapper = "numpy"
    objects = hnp.arrays(
        st.sampled_from([np.float64, np.int8, np.complex64, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    )

    def samples(self):
        return [np.arange(12.0).reshape(3, 4), np.asfortranarray(np.eye(3, dtype=np.int8))]


@dataclasses.dataclass(frozen=True)
class FrozenBlobWrapper:
    """A wrapper whose attributes cannot be set: the kit must not need to."""

    name: str = "tests.frozen-blob"
    types: tuple = (GUIDE.Blob,)

    def expose(self, obj):
        return ap.Exposed(None, [ap.Buffer(np.frombuffer(obj.data, np.uint8))])

    def rebuild(self, meta, buffers):
        return GUIDE.Blob(buffers[0])


class TestFrozenWrapper(WrapperConformance):
    wrapper = FrozenBlobWrapper()
    objects = st.binary(max_size=500).map(lambda b: GUIDE.Blob(bytearray(b)))

    def samples(self):
        return [GUIDE.Blob(bytearray(b"frozen" * 100))]


class Declining(GUIDE.BlobWrapper):
    name = "tests.declining"

    def expose(self, obj):
        return None


def test_the_kit_fails_a_wrapper_that_declines_a_sample(tmp_path):
    class Kit(TestTheGuidesBlobWrapper):
        wrapper = Declining()

    with pytest.raises(AssertionError, match=r"sample 0 \(Blob\): expose declined it"):
        run_kit(Kit, "test_expose_takes_the_samples_apart", tmp_path)


class AllInMeta(GUIDE.BlobWrapper):
    name = "tests.all-in-meta"

    def expose(self, obj):
        return ap.Exposed(bytes(obj.data), [])

    def rebuild(self, meta, buffers):
        return GUIDE.Blob(bytearray(meta))


def test_the_kit_fails_a_wrapper_that_writes_nothing_out_of_band(tmp_path):
    class Kit(TestTheGuidesBlobWrapper):
        wrapper = AllInMeta()

    with pytest.raises(AssertionError, match="no sample has a non-empty buffer"):
        run_kit(Kit, "test_expose_takes_the_samples_apart", tmp_path)


def test_a_wrapper_object_is_tested_in_place_of_an_installed_version(fresh_registry, tmp_path):
    older = GridWrapper(GUIDE.Blob)
    older.name = "example.blob"
    ap.register_wrapper(older)
    run_kit(TestTheGuidesBlobWrapper, "test_round_trip", tmp_path, compress=0)
    assert ap.wrappers()["example.blob"] is older


def test_a_kit_run_leaves_what_the_process_registered(fresh_registry, tmp_path):
    mine = GridWrapper(StereoSignal)
    mine.name = "tests.mine"
    ap.register_wrapper(mine)
    run_kit(TestTheGuidesBlobWrapper, "test_contract_members", tmp_path)
    assert ap.wrappers()["tests.mine"] is mine
    assert "example.blob" not in ap.wrappers()


class Overreaching(GridWrapper):
    """Builds its cells with ``as_strided`` from the shape in meta, however short the
    buffer: the object would read memory that is not its own."""

    name = "tests.overreaching"

    def rebuild(self, meta, buffers):
        dtype, shape, order, labels = meta
        cells = np.lib.stride_tricks.as_strided(
            buffers[0].view(dtype), shape=shape, strides=np.empty(shape, dtype, order).strides
        )
        return Grid(cells, buffers[1].view(np.float32), labels)


def test_the_kit_finds_a_rebuild_that_reads_past_its_buffers(tmp_path):
    class Kit(TestGridWrapper):
        wrapper = Overreaching(Grid)

    with pytest.raises(AssertionError, match=r"rebuild made an object of \d+ bytes from \d+"):
        run_kit(
            Kit,
            "test_rebuild_refuses_buffers_that_disagree_with_meta",
            tmp_path,
            damage="a buffer cut in half",
        )
