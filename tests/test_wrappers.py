"""A third party's own buffer-backed type, through the array-wrapper hook.

``Signal`` keeps its samples in a memoryview (not a numpy array) and pickles only
through its wrapper. Its buffers must go out of band, straight from its memory,
and come back as views of the memory they were read (or mapped) into.
"""

from __future__ import annotations

import io
import mmap
import sys
import threading
import types
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _format, _plugins
from checks import load_allocation_max, memory_root
from layout import buffers, pickled


class Signal:
    """Samples (float64) in any buffer, a sample rate, and the channel layout."""

    def __init__(self, samples, rate, channels=None):
        self.samples = memoryview(samples).cast("B").cast("d")
        self.rate = rate
        self.channels = channels

    def __reduce__(self):
        raise TypeError("Signal pickles only through its array wrapper")

    def values(self):
        return np.frombuffer(self.samples, np.float64)


class StereoSignal(Signal):
    """A subclass: offered to the wrapper that claims its base."""


class SignalWrapper(ap.ArrayWrapper):
    name = "tests.signal"
    types = (Signal,)

    def __init__(self):
        self.exposed = 0

    def expose(self, obj):
        if obj.rate is None:
            return None  # leave it to pickle (which refuses it)
        self.exposed += 1
        meta = (type(obj), obj.rate, obj.channels)
        return ap.Exposed(meta, [ap.Buffer(obj.values())])

    def rebuild(self, meta, buffers):
        cls, rate, channels = meta
        return cls(buffers[0], rate, channels)


class GridWrapper:
    """A plain-object wrapper (no base class) with two buffers, one of them strided."""

    name = "tests.grid"
    types = ()

    def __init__(self, cls):
        self.types = (cls,)

    def expose(self, obj):
        order = "F" if obj.cells.flags.f_contiguous and not obj.cells.flags.c_contiguous else "C"
        return ap.Exposed(
            (obj.cells.dtype, obj.cells.shape, order, obj.labels),
            [ap.Buffer(obj.cells, order), ap.Buffer(obj.weights)],
        )

    def rebuild(self, meta, buffers):
        dtype, shape, order, labels = meta
        grid = Grid.__new__(Grid)
        grid.cells = buffers[0].view(dtype).reshape(shape, order=order)
        grid.weights = buffers[1].view(np.float32)
        grid.labels = labels
        return grid


class Grid:
    def __init__(self, cells, weights, labels):
        self.cells, self.weights, self.labels = cells, weights, labels

    def __reduce__(self):
        raise TypeError("Grid pickles only through its array wrapper")


def make_signal(n=10_000, cls=Signal):
    data = bytearray(np.linspace(-1, 1, n).tobytes())
    return cls(data, 44_100, channels={"left": np.arange(3)})


@pytest.fixture
def signals(fresh_registry):
    wrapper = SignalWrapper()
    ap.register_wrapper(wrapper)
    return wrapper


def assert_signal_equal(out, ref):
    assert type(out) is type(ref)
    assert out.rate == ref.rate
    np.testing.assert_array_equal(out.values(), ref.values())
    np.testing.assert_array_equal(out.channels["left"], ref.channels["left"])


def assert_rebuilt_in_place(signal, *, mapped=False):
    """The samples are a view of the buffer the load made: aligned, no copy after."""
    values = signal.values()
    assert values.ctypes.data % 64 == 0
    root = memory_root(np.frombuffer(signal.samples.obj, np.uint8))
    if mapped:
        assert isinstance(root, mmap.mmap)
    else:
        assert isinstance(root, np.ndarray) and root.nbytes <= load_allocation_max(values.nbytes)


class SpyFile(io.RawIOBase):
    """A writable file recording, for each write, the address of the memory it got."""

    def __init__(self):
        super().__init__()
        self.data = bytearray()
        self.addresses = []

    def writable(self):
        return True

    def write(self, b):
        view = memoryview(b)
        self.addresses.append(np.frombuffer(view, np.uint8).ctypes.data if view.nbytes else 0)
        self.data += view.cast("B")
        return view.nbytes


def test_buffers_go_out_of_band_from_the_objects_own_memory(signals):
    signal = make_signal()
    spy = SpyFile()
    ap.dump({"s": signal}, spy)
    assert signals.exposed == 1
    data = bytes(spy.data)
    records = buffers(data)
    payload = signal.values().tobytes()
    assert [r.length for r in records][:1] == [len(payload)]
    assert data[records[0].offset : records[0].offset + records[0].length] == payload
    assert payload[:4096] not in pickled(data)  # not in the opcode stream as well
    assert np.frombuffer(signal.samples, np.uint8).ctypes.data in spy.addresses  # no copy


@pytest.mark.parametrize("compress", [0, "zlib", "gzip"])
def test_round_trip_without_a_copy(tmp_path, signals, compress):
    ref = {"one": make_signal(), "two": make_signal(10, StereoSignal), "n": np.arange(4)}
    ref["again"] = ref["one"]
    path = tmp_path / "s.pkl"
    ap.dump(ref, path, compress=compress)
    out = ap.load(path)
    assert_signal_equal(out["one"], ref["one"])
    assert_signal_equal(out["two"], ref["two"])
    assert out["again"] is out["one"]
    assert_rebuilt_in_place(out["one"])
    out["one"].samples[0] = 5.0  # yours to keep: writable
    assert out["one"].values()[0] == 5.0


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_memory_mapped(tmp_path, signals, mode):
    ref = make_signal()
    path = tmp_path / "s.pkl"
    ap.dump([ref], path)
    (out,) = ap.load(path, mmap_mode=mode)
    assert_signal_equal(out, ref)
    assert_rebuilt_in_place(out, mapped=True)
    assert isinstance(out.samples.obj, np.memmap) and out.samples.obj.mode == mode
    assert out.samples.readonly == (mode == "r")


def test_loading_without_the_wrapper_names_it(signals):
    data = ap.dumps(make_signal())
    _plugins.reset()  # a process that does not have the plugin
    with pytest.raises(ap.UnknownWrapperError, match=r"'tests\.signal'"):
        ap.loads(data)


def test_expose_may_decline(signals):
    declined = Signal(bytearray(16), None)
    with pytest.raises(TypeError, match="only through its array wrapper"):
        ap.dumps(declined)


def test_plain_object_wrapper_with_strided_and_fortran_buffers(fresh_registry):
    ap.register_wrapper(GridWrapper(Grid))
    base = np.arange(600, dtype=np.int32).reshape(20, 30)
    grids = [
        Grid(base[::2, ::-3], np.ones(5, np.float32), ["a"]),
        Grid(np.asfortranarray(base), np.zeros(0, np.float32), None),
    ]
    out = ap.loads(ap.dumps(grids, compress="xz"))
    for got, want in zip(out, grids, strict=True):
        np.testing.assert_array_equal(got.cells, want.cells)
        np.testing.assert_array_equal(got.weights, want.weights)
        assert got.labels == want.labels
    assert out[1].cells.flags.f_contiguous


def test_codecs_get_the_element_size_of_each_buffer(signals):
    sizes = []

    class Writer(io.RawIOBase):
        def __init__(self, fileobj):
            super().__init__()
            self._inner = zlib.compressobj(1, zlib.DEFLATED, -15)
            self._out = fileobj

        def writable(self):
            return True

        def write(self, b):
            self._out.write(self._inner.compress(b))
            return memoryview(b).nbytes

        def write_array(self, b, itemsize):
            assert memoryview(b).nbytes % itemsize == 0
            sizes.append(itemsize)
            return self.write(b)

        def close(self):
            if not self.closed:
                self._out.write(self._inner.flush())
            super().close()

    class Codec:
        name, magic, extensions = "sized", b"SIZ", (".siz",)

        def open_writer(self, fileobj, level):
            fileobj.write(self.magic)
            return Writer(fileobj)

        def open_reader(self, fileobj):
            from arraypickle._stdcodecs._stream import DecompressReader, Inflater

            fileobj.read(3)
            return DecompressReader(
                fileobj, lambda: Inflater(-15), codec="sized", multistream=False
            )

    ap.register_codec(Codec())
    obj = [make_signal(), np.arange(10, dtype=np.int16), np.ones((3, 5), ">c16")[:, ::2]]
    out = ap.loads(ap.dumps(obj, compress="sized"))
    assert sizes == [8, 8, 2, 16]  # signal samples, its channel array, int16, complex
    assert_signal_equal(out[0], obj[0])


WRAPPER_PLUGIN = """
import numpy as np
import arraypickle
from test_wrappers import SignalWrapper

@arraypickle.hookimpl
def arraypickle_register_wrappers():
    return [SignalWrapper()]
"""


def test_a_wrapper_from_an_entry_point_plugin(tmp_path, distribution):
    distribution("apk-signal", {"signal": WRAPPER_PLUGIN})
    ref = make_signal()
    path = tmp_path / "s.pkl"
    ap.dump(ref, path)
    assert buffers(path.read_bytes())[0].length == ref.values().nbytes
    out = ap.load(path)
    assert_signal_equal(out, ref)
    assert_rebuilt_in_place(out)
    info = {p.name: p for p in _plugins.get_registry().plugins}["signal"]
    assert info.wrappers == ["tests.signal"]


def test_wrapper_conflicts(fresh_registry):
    ap.register_wrapper(SignalWrapper())
    twin = SignalWrapper()  # a notebook cell run again: the twin replaces the first
    ap.register_wrapper(twin)
    assert ap.wrappers()["tests.signal"] is twin
    impostor = GridWrapper(Things)
    impostor.name = "tests.signal"
    with pytest.raises(ap.PluginConflictError, match=r"'tests\.signal'.*share a name"):
        ap.register_wrapper(impostor)
    other = GridWrapper(Signal)
    with pytest.raises(ap.PluginConflictError, match=r"'tests\.grid'.*'tests\.signal'.*Signal"):
        ap.register_wrapper(other)
    ap.register_wrapper(other, force=True)
    # A twin replaces its twin only: the type taken by force stays taken.
    with pytest.raises(ap.PluginConflictError, match=r"'tests\.signal'.*'tests\.grid'.*Signal"):
        ap.register_wrapper(SignalWrapper())
    claims_arrays = GridWrapper(np.ndarray)
    claims_arrays.name = "tests.arrays"
    with pytest.raises(ap.PluginConflictError, match=r"'tests\.arrays'.*'numpy'.*ndarray"):
        ap.register_wrapper(claims_arrays)


NOTEBOOK_CELL = """
import numpy as np
import arraypickle as ap

class Frame:
    def __init__(self, data):
        self.data = data

class FrameWrapper(ap.ArrayWrapper):
    name = "tests.frame"
    types = (Frame,)

    def expose(self, obj):
        return ap.Exposed(None, [ap.Buffer(obj.data)])

    def rebuild(self, meta, buffers):
        return Frame(np.frombuffer(buffers[0], np.float64))

ap.register_wrapper(FrameWrapper())
"""


def test_a_notebook_cell_run_again_replaces_its_wrapper(fresh_registry, monkeypatch):
    # Run again, the cell defines new classes of the same names in the same module (a
    # notebook's __main__): its wrapper replaces the one of the first run instead of
    # conflicting with it, and claims the new Frame.
    notebook = types.ModuleType("notebook_main")
    monkeypatch.setitem(sys.modules, "notebook_main", notebook)
    exec(NOTEBOOK_CELL, notebook.__dict__)
    first_wrapper, first_frame = notebook.FrameWrapper, notebook.Frame
    exec(NOTEBOOK_CELL, notebook.__dict__)
    assert notebook.FrameWrapper is not first_wrapper
    assert type(ap.wrappers()["tests.frame"]) is notebook.FrameWrapper
    out = ap.loads(ap.dumps(notebook.Frame(np.arange(3.0))))
    assert type(out) is notebook.Frame and out.data.tolist() == [0.0, 1.0, 2.0]
    claims = _plugins.get_registry().wrapper_index
    assert claims[notebook.Frame] is ap.wrappers()["tests.frame"]
    assert claims[first_frame] is None  # the old class's objects pickle as they are


def test_wrappers_a_factory_makes_are_different_classes(fresh_registry):
    # Same module and qualified name, which leads to neither: not a class defined again.
    def make():
        class Made(ap.ArrayWrapper):
            name, types = "tests.made", (Things,)

            def expose(self, obj):
                return None

            def rebuild(self, meta, buffers):
                return None

        return Made()

    ap.register_wrapper(make())
    with pytest.raises(ap.PluginConflictError, match="share a name"):
        ap.register_wrapper(make())


class Things:
    def __init__(self, items):
        self.items = items


class AnswerWrapper(ap.ArrayWrapper):
    """A wrapper whose expose answers what the test sets (wrong answers included)."""

    name = "tests.things"
    types = (Things,)

    def __init__(self, answer):
        self.answer = answer

    def expose(self, obj):
        return self.answer(obj)

    def rebuild(self, meta, buffers):
        return Things(buffers[0])


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (lambda o: ap.Exposed(None, [ap.Buffer(np.array(o.items, dtype=object))]), "dtype object"),
        (lambda o: ap.Exposed(None, [ap.Buffer(np.array([(1, None)], "i4,O"))]), "Python objects"),
        (lambda o: ap.Exposed(None, [np.array(o.items, dtype=object)]), "a buffer is a ndarray"),
        (lambda o: [np.arange(3)], "returned list, not Exposed"),
        (lambda o: ap.Exposed(None, ["text"]), "a buffer is a str"),
        (lambda o: ap.Exposed(None, [ap.Buffer("text")]), "data is unusable"),
        (
            lambda o: ap.Exposed(None, [ap.Buffer(np.array(o.items, dtype=object).data)]),
            "dtype object",
        ),
        (lambda o: ap.Exposed(None, None), "buffers are a NoneType"),
        (lambda o: ap.Exposed(None, [ap.Buffer(np.arange(3), "X")]), "order is 'X'"),
        (lambda o: ap.Exposed(None, [(np.arange(3), None)]), "order is None"),
    ],
    ids=[
        "object-array",
        "object-field",
        "bare-object-array",
        "list",
        "str-buffer",
        "str-data",
        "object-memoryview",
        "no-buffers",
        "order-X",
        "order-None",
    ],
)
def test_a_wrong_answer_from_expose_fails_the_dump_naming_the_wrapper(
    fresh_registry, tmp_path, answer, says
):
    # An object array's bytes are pointers into this process: written, they loaded as
    # garbage (and told where the heap is). Refused, as every malformed answer.
    ap.register_wrapper(AnswerWrapper(answer))
    path = tmp_path / "t.pkl"
    ap.dump([1], path)
    with pytest.raises(ap.UnpicklableError, match=r"array wrapper 'tests\.things'") as info:
        ap.dump(Things(["secret", 42, None]), path)
    assert says in str(info.value)
    assert ap.load(path) == [1]  # the old file is intact


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize(
    ("meta", "says"),
    [
        (threading.Lock(), "cannot pickle '_thread.lock' object"),
        ({"key": lambda: 0}, "lambda"),
        ([1, (2, (x for x in "ab"))], "generator"),
    ],
    ids=["lock", "lambda", "nested"],
)
def test_an_unpicklable_meta_fails_the_dump_naming_the_wrapper(
    fresh_registry, tmp_path, meta, says, protocol
):
    # The C pickler refuses a meta after reducer_override has returned: its own message
    # named neither the wrapper nor its meta.
    ap.register_wrapper(AnswerWrapper(lambda o: ap.Exposed(meta, [ap.Buffer(b"abc")])))
    path = tmp_path / "t.pkl"
    ap.dump([1], path)
    with pytest.raises(ap.UnpicklableError) as info:
        ap.dump({"a": [Things(None)]}, path, protocol=protocol)
    message = str(info.value)
    assert message.startswith("array wrapper 'tests.things', exposing a Things: its meta cannot")
    assert says in message
    assert ap.load(path) == [1]


def test_an_unpicklable_value_after_a_wrapped_one_is_not_blamed_on_the_wrapper(fresh_registry):
    # The wrapper exposed last, with a sound meta, is not what pickling refused.
    ap.register_wrapper(AnswerWrapper(lambda o: ap.Exposed({"n": 1}, [ap.Buffer(b"abc")])))
    with pytest.raises(ap.UnpicklableError) as info:
        ap.dumps([Things(None), threading.Lock()])
    assert str(info.value) == "cannot pickle '_thread.lock' object"


class Tagged(np.ndarray):
    """An ndarray subclass whose attributes are kept (stored in the view form)."""


def test_the_blame_goes_to_the_wrapper_whose_meta_was_being_pickled(fresh_registry):
    # The innermost wrapped object not finished yet: not the last one exposed (a sound
    # array inside), and none at all for a refusal after every wrapped object is done.
    holder = np.arange(3.0).view(Tagged)
    holder.child = np.arange(2.0).view(Tagged)
    holder.lock = threading.Lock()
    with pytest.raises(ap.UnpicklableError) as info:
        ap.dumps(holder)
    assert str(info.value).startswith("array wrapper 'numpy', exposing a Tagged: its meta")
    done = np.arange(3.0).view(Tagged)
    done.note = "fine"
    with pytest.raises(ap.UnpicklableError) as info:
        ap.dumps([done, threading.Lock()])
    assert str(info.value) == "cannot pickle '_thread.lock' object"


def test_the_blame_survives_a_meta_leading_back_to_its_object(fresh_registry):
    # The inner reduction memoizes the object while its outer meta is still being
    # pickled: a rule of "not in the memo yet" blamed no wrapper, or the wrong one.
    ap.register_wrapper(NodeWrapper())
    node = Node(np.arange(3.0))
    node.attrs.update(me=node, lock=threading.Lock())
    array = np.arange(3.0).view(Tagged)
    array.me, array.lock = array, threading.Lock()
    outer, leaf = Node(np.arange(2.0)), Leaf(np.arange(2.0))
    outer.attrs["leaf"] = leaf
    leaf.attrs.update(me=leaf, lock=threading.Lock())
    ap.register_wrapper(LeafWrapper())
    for value, blamed in [
        (node, "'tests.node', exposing a Node"),
        (array, "'numpy', exposing a Tagged"),
        (outer, "'tests.leaf', exposing a Leaf"),
    ]:
        with pytest.raises(ap.UnpicklableError) as info:
            ap.dumps(value)
        assert str(info.value).startswith(f"array wrapper {blamed}: its meta cannot be pickled")


def test_the_blame_pickles_no_wrapped_object_again(fresh_registry):
    # A wrapped object in a meta is what the dump took apart: pickled again plainly, its
    # own refusal looked like the meta's, blaming the wrapper holding it.
    class Handle:
        def __init__(self, open_):
            self.open = open_

        def __reduce__(self):
            raise TypeError("cannot pickle 'Handle' object")

    class HandleWrapper(ap.ArrayWrapper):
        name, types = "tests.handle", (Handle,)

        def expose(self, obj):
            return ap.Exposed("h", []) if obj.open else None

        def rebuild(self, meta, buffers):
            return Handle(True)

    ap.register_wrapper(HandleWrapper())
    handle = Handle(True)
    held = np.arange(3.0).view(Tagged)
    held.handle = handle  # met before: in held's meta, memoized, not wrapped again
    with pytest.raises(ap.UnpicklableError) as info:
        ap.dumps([handle, held, Handle(False)])
    assert str(info.value) == "cannot pickle 'Handle' object"


class Node:
    """An object whose attributes (its wrapper's meta) may lead back to it."""

    def __init__(self, data):
        self.data, self.attrs = data, {}


class NodeWrapper(ap.ArrayWrapper):
    name = "tests.node"
    types = (Node,)

    def expose(self, obj):
        return ap.Exposed(obj.attrs, [ap.Buffer(obj.data)])

    def rebuild(self, meta, buffers):
        out = Node.__new__(Node)
        out.data, out.attrs = buffers[0].view(np.float64), meta  # kept, not copied
        return out


class Leaf(Node):
    pass


class LeafWrapper(NodeWrapper):
    name = "tests.leaf"
    types = (Leaf,)


@pytest.mark.parametrize("protocol", range(6))
def test_a_wrapped_object_whose_meta_leads_back_to_it_loads(fresh_registry, tmp_path, protocol):
    # The pickle calls rebuild twice for it (the outer reduction runs, then is dropped):
    # the second call took its buffer again and failed "buffer 0 is missing or used
    # twice", a dump that succeeded leaving a file that did not load.
    ap.register_wrapper(NodeWrapper())
    node = Node(np.arange(4.0))
    node.attrs["self"] = node
    node.attrs["peer"] = Node(np.ones(2))
    node.attrs["peer"].attrs["back"] = node
    path = tmp_path / "n.ap"
    ap.dump([node, node], path, protocol=protocol)
    for mode in (None, "r"):
        out = ap.load(path, mmap_mode=mode)
        assert out[0] is out[1] and out[0].attrs["self"] is out[0]
        assert out[0].attrs["peer"].attrs["back"] is out[0]
        assert out[0].data.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_buffers_order_is_the_layout_written_whatever_the_arrays(fresh_registry):
    # As Buffer's docstring says: a C-contiguous array exposed with order 'F' is written
    # in Fortran order, and an F-contiguous one with 'C' in C order.
    c = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for data, order, written in [
        (c, "F", [0, 3, 1, 4, 2, 5]),
        (np.asfortranarray(c), "C", [0, 1, 2, 3, 4, 5]),
        (np.asfortranarray(c), "F", [0, 3, 1, 4, 2, 5]),
    ]:
        ap.register_wrapper(
            AnswerWrapper(lambda o, d=data, k=order: ap.Exposed(None, [ap.Buffer(d, k)])),
            force=True,
        )
        assert ap.loads(ap.dumps(Things(None))).items.tolist() == written


def test_a_wrapper_may_answer_with_plain_tuples(fresh_registry):
    ap.register_wrapper(AnswerWrapper(lambda o: (None, [(np.arange(4.0), "C")])))
    out = ap.loads(ap.dumps(Things(None)))
    np.testing.assert_array_equal(out.items.view(np.float64), np.arange(4.0))


def test_a_wrapper_may_give_its_buffers_as_a_generator(fresh_registry):
    ap.register_wrapper(AnswerWrapper(lambda o: ap.Exposed(None, (b for b in [ap.Buffer(b"abc")]))))
    assert bytes(ap.loads(ap.dumps(Things(None))).items) == b"abc"


def test_a_buffer_may_be_any_memoryview_of_plain_items(fresh_registry):
    # Strided, or of a structured dtype whose field name holds an "O": written in the
    # buffer's order, as an array of its own dtype would be.
    st = np.array([(1, 2.0), (3, 4.0), (5, 6.0)], [("Offset", "<i8"), ("x", "<f8")])
    for view, expected in [
        (memoryview(np.arange(8.0))[::2], np.arange(8.0)[::2].tobytes()),
        (memoryview(st)[::2], st[::2].tobytes()),
    ]:
        ap.register_wrapper(
            AnswerWrapper(lambda o, v=view: ap.Exposed(None, [ap.Buffer(v)])), force=True
        )
        assert bytes(ap.loads(ap.dumps(Things(None))).items) == expected


def test_a_masked_form_numpy_refuses_is_a_corrupt_file():
    # A fill value that does not fit the data: numpy's own TypeError reached the caller.
    masked = np.ma.masked_array(np.arange(5), mask=[0, 1, 0, 0, 0])
    masked._fill_value = np.array("zzz")
    data = ap.dumps(masked)
    for safe in (False, True):
        with pytest.raises(ap.CorruptFileError, match="masked form whose parts numpy refuses"):
            ap.loads(data, safe=safe)


def test_a_known_form_with_the_wrong_buffers_says_so():
    from arraypickle._numpy import NumpyWrapper

    with pytest.raises(ap.CorruptFileError, match="form 'a' with 4 fields and 0 buffers"):
        NumpyWrapper().rebuild(("a", np.dtype("f8"), (3,), "C"), [])


class RebuiltFrom:
    """Pickles as a call of the numpy wrapper with ``meta`` and no buffers."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return _format.rebuild, ("numpy", self.meta, 0, 0)


@pytest.mark.parametrize("meta", [["v", np.matrix, np.eye(2), None], "vabc", (), 7], ids=repr)
def test_a_meta_that_is_not_a_tuple_is_a_corrupt_file(meta):
    # The writer stores a tuple, and format.md says so: a list with the right items was
    # accepted, a string of four characters taken for the form's fields.
    data = ap.dumps(RebuiltFrom(meta))
    with pytest.raises(ap.CorruptFileError, match=r"a meta of type \w+, not a tuple"):
        ap.loads(data)
    with pytest.raises(ap.CorruptFileError, match="a numpy meta the scan cannot see"):
        ap.loads(data, safe=True)


class _PickyWrapper(AnswerWrapper):
    """Rebuilds as a plugin might: indexing its meta, reshaping its buffer."""

    def rebuild(self, meta, buffers):
        return Things(buffers[0].view(np.float64).reshape(meta["shape"]))


@pytest.mark.parametrize(
    ("meta", "error"),
    [({"shape": (99,)}, "ValueError"), ({}, "KeyError"), ({"shape": "x"}, "TypeError")],
)
def test_a_wrappers_own_error_on_what_the_file_holds_is_a_corrupt_file(fresh_registry, meta, error):
    # A meta that does not fit the buffers (a damaged or crafted file) made the plugin's
    # rebuild raise a bare ValueError or KeyError from load; CorruptFileError is what
    # load promises for a file that is wrong, naming the wrapper and the buffers.
    ap.register_wrapper(_PickyWrapper(lambda o: ap.Exposed(meta, [ap.Buffer(np.arange(4.0))])))
    data = ap.dumps(Things(None))
    with pytest.raises(ap.CorruptFileError, match=f"'tests.things' object from buffer 0: {error}"):
        ap.loads(data)
