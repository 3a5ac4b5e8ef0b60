"""The plugin registry: conflicts, force, entry-point plugins that fail, blocking, docs."""

from __future__ import annotations

import inspect
import io
import json
import pathlib
import pickle
import sys
import warnings
import zlib

import numpy as np
import pytest

import arraypickle as ap
from arraypickle import _numpy, _plugins, hookspecs
from arraypickle._stdcodecs._stream import CompressWriter, DecompressReader, Inflater

ROOT = pathlib.Path(__file__).resolve().parent.parent


class PlainCodec:
    """The five members and nothing else: no base class, no default level."""

    def __init__(self, name="plain", magic=b"PLN\x01", extensions=(".pln",)):
        self.name, self.magic, self.extensions = name, magic, extensions
        self.levels = []

    def open_writer(self, fileobj, level):
        self.levels.append(level)
        fileobj.write(self.magic)
        return CompressWriter(fileobj, zlib.compressobj(level, zlib.DEFLATED, -15))

    def open_reader(self, fileobj):
        assert fileobj.read(len(self.magic)) == self.magic
        return DecompressReader(fileobj, lambda: Inflater(-15), codec=self.name, multistream=False)

    def __repr__(self):
        return f"PlainCodec({self.name!r})"


OBJ = {"a": np.arange(1000.0), "v": np.arange(100)[::-3], "s": "text"}


def same(out):
    np.testing.assert_array_equal(out["a"], OBJ["a"])
    np.testing.assert_array_equal(out["v"], OBJ["v"])
    assert out["s"] == "text"


# -- registering from code ----------------------------------------------------------


def test_a_plain_object_with_five_members_is_a_codec(tmp_path, fresh_registry):
    codec = PlainCodec()
    ap.register_codec(codec)
    assert ap.codecs()["plain"] is codec
    data = ap.dumps(OBJ, compress="plain")
    assert data.startswith(b"PLN\x01") and codec.levels == [3]
    same(ap.loads(data))
    ap.dump(OBJ, tmp_path / "x.PLN", compress=7)  # by extension, at the given level
    assert codec.levels[-1] == 7
    same(ap.load(tmp_path / "x.PLN"))
    ap.dump(OBJ, tmp_path / "x.pkl", compress=("plain", 1))
    same(ap.load(tmp_path / "x.pkl"))


CONFLICTS = {
    "name": PlainCodec(name="gzip"),
    "extension": PlainCodec(extensions=(".pln", ".GZ")),
    "magic_is_a_prefix": PlainCodec(magic=b"\x1f"),
    "magic_has_a_prefix": PlainCodec(magic=b"\x1f\x8b\x08"),
}


@pytest.mark.parametrize("kind", list(CONFLICTS))
def test_conflicts_name_both_sides(fresh_registry, kind):
    codec = CONFLICTS[kind]
    with pytest.raises(ap.PluginConflictError) as info:
        ap.register_codec(codec)
    message = str(info.value)
    assert f"codec {codec.name!r} from register_codec()" in message
    assert "codec 'gzip' from plugin 'gzip' (arraypickle)" in message
    assert "force=True" in message
    assert not isinstance(info.value, ValueError)
    assert ap.codecs()["gzip"] is not codec  # nothing changed


@pytest.mark.parametrize("kind", list(CONFLICTS))
def test_force_replaces_what_conflicts(tmp_path, fresh_registry, kind):
    codec = CONFLICTS[kind]
    old = ap.codecs()["gzip"]
    ap.register_codec(codec, force=True)
    codecs = ap.codecs()
    assert codecs[codec.name] is codec
    assert old not in codecs.values()
    data = ap.dumps(OBJ, compress=(codec.name, 2))
    assert data.startswith(codec.magic)
    same(ap.loads(data))


def test_conflicts_between_registered_codecs(fresh_registry):
    ap.register_codec(PlainCodec("one", b"ONE", (".one",)))
    with pytest.raises(ap.PluginConflictError, match=r"'two' from register_codec\(\).*'one'"):
        ap.register_codec(PlainCodec("two", b"ON", (".two",)))


@pytest.mark.parametrize(
    ("magic", "owner"),
    [(b"\x89APK", "container"), (b"\x89APK\r\n\x1a\n\x01", "container"), (b"\x80\x05", "pickle")],
)
def test_reserved_magics_are_refused_even_with_force(fresh_registry, magic, owner):
    with pytest.raises(ap.PluginConflictError, match=owner):
        ap.register_codec(PlainCodec(magic=magic), force=True)


@pytest.mark.parametrize(
    "broken",
    [
        PlainCodec(name=""),
        PlainCodec(magic=b""),
        PlainCodec(magic="PLN"),
        PlainCodec(extensions=[".pln"]),
        PlainCodec(extensions=("pln",)),
        object(),
        # what compress= or the CLI could not reach, or would reach by surprise
        PlainCodec(name="Plain"),
        PlainCodec(name="a:b"),
        PlainCodec(name="none"),
        PlainCodec(name="7"),
        PlainCodec(name="-x"),
        PlainCodec(extensions=(".",)),
        PlainCodec(extensions=(".pln", "..x")),
        PlainCodec(extensions=(".a b",)),
        PlainCodec(extensions=(".pkl",)),
        PlainCodec(extensions=(".PICKLE",)),
    ],
    ids=[
        "empty-name",
        "empty-magic",
        "str-magic",
        "list-ext",
        "ext-without-dot",
        "object",
        "uppercase-name",
        "colon-name",
        "none-name",
        "level-name",
        "dash-first-name",
        "dot-ext",
        "empty-part-ext",
        "space-ext",
        "pkl-ext",
        "pickle-ext",
    ],
)
def test_malformed_codecs_are_refused(fresh_registry, broken):
    with pytest.raises(ap.PluginConflictError, match="register_codec"):
        ap.register_codec(broken)


@pytest.mark.parametrize("level", [0, 10, True, 3.0, "3"])
def test_a_default_level_outside_1_to_9_is_refused(fresh_registry, level):
    # Accepted before, and compress=name then used level 3, not the one declared.
    codec = PlainCodec()
    codec.default_level = level
    with pytest.raises(ap.PluginConflictError, match=r"default_level .* must be an int from 1"):
        ap.register_codec(codec)
    codec.default_level = 9
    ap.register_codec(codec)
    ap.dumps([1], compress="plain")
    assert codec.levels == [9]


def test_names_and_extensions_as_codecs_have_them(fresh_registry):
    ap.register_codec(PlainCodec("x-1.2+b_c", b"XNAME", (".x", ".tar.x2", ".X3")))
    assert "x-1.2+b_c" in ap.codecs()


# -- entry-point plugins ------------------------------------------------------------

GOOD_PLUGIN = """
import zlib
import arraypickle
from arraypickle._stdcodecs._stream import CompressWriter, DecompressReader, Inflater

LOADS = []
LOADS.append(1)

class Codec(arraypickle.Codec):
    name = "{name}"
    magic = {magic!r}
    extensions = ({ext!r},)

    def open_writer(self, fileobj, level):
        fileobj.write(self.magic)
        return CompressWriter(fileobj, zlib.compressobj(level, zlib.DEFLATED, -15))

    def open_reader(self, fileobj):
        fileobj.read(len(self.magic))
        return DecompressReader(fileobj, lambda: Inflater(-15), codec=self.name,
                                multistream=False)

@arraypickle.hookimpl
def arraypickle_register_codecs():
    return [Codec()]
"""


def good(name, magic, ext):
    return GOOD_PLUGIN.format(name=name, magic=magic, ext=ext)


def test_an_entry_point_plugin_is_found_and_used(tmp_path, distribution):
    modules = distribution("apk-good", {"goodcodec": good("good", b"GOOD", ".good")})
    assert "good" in ap.codecs()
    path = tmp_path / "x.good"
    ap.dump(OBJ, path)
    assert path.read_bytes().startswith(b"GOOD")
    same(ap.load(path))
    assert sys.modules[modules["goodcodec"]].LOADS == [1]  # imported once
    ap.codecs()
    ap.dumps(OBJ, compress="good")
    assert sys.modules[modules["goodcodec"]].LOADS == [1]
    info = {p.name: p for p in _plugins.get_registry().plugins}["goodcodec"]
    assert (info.status, info.distribution, info.codecs) == ("loaded", "apk-good", ["good"])


def test_a_plugin_that_fails_to_import_warns_and_the_rest_works(distribution):
    distribution(
        "apk-mixed",
        {
            "broken": "raise ImportError('needs libfoo, which is missing')\n",
            "fine": good("fine", b"FINE", ".fine"),
        },
    )
    with pytest.warns(UserWarning) as record:
        codecs = ap.codecs()
    messages = [str(w.message) for w in record]
    assert any("'broken'" in m and "apk-mixed" in m and "needs libfoo" in m for m in messages), (
        messages
    )
    assert "fine" in codecs and "gzip" in codecs and "broken" not in codecs
    same(ap.loads(ap.dumps(OBJ, compress="fine")))
    same(ap.loads(ap.dumps(OBJ, compress="gzip")))
    info = {p.name: p for p in _plugins.get_registry().plugins}["broken"]
    assert info.status == "failed" and "ImportError" in info.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ap.codecs()  # warned once, when the registry was built


def test_a_plugin_whose_hook_raises_warns_and_the_rest_works(distribution):
    distribution(
        "apk-hook",
        {
            "raiser": """
                import arraypickle

                @arraypickle.hookimpl
                def arraypickle_register_codecs():
                    raise RuntimeError("cannot find my library")
            """,
            "fine": good("fine", b"FINE", ".fine"),
        },
    )
    with pytest.warns(UserWarning, match="raiser.*cannot find my library"):
        codecs = ap.codecs()
    assert "fine" in codecs


def test_two_plugins_claiming_one_codec_conflict(distribution):
    distribution("apk-first", {"first": good("twin", b"TWN1", ".twin1")})
    distribution("apk-second", {"second": good("other", b"TWN", ".twin2")})
    with pytest.raises(ap.PluginConflictError) as info:
        ap.codecs()
    message = str(info.value)
    assert "apk-first" in message and "apk-second" in message
    assert "'twin'" in message and "'other'" in message


def test_disable_plugins_blocks_entry_points_and_builtins(distribution, monkeypatch):
    distribution(
        "apk-blocked",
        {
            "broken": "raise ImportError('must not be imported')\n",
            "fine": good("fine", b"FINE", ".fine"),
        },
    )
    monkeypatch.setenv("ARRAYPICKLE_DISABLE_PLUGINS", " broken , bz2,xz ")
    _plugins.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a blocked plugin is not even imported
        codecs = ap.codecs()
    assert "fine" in codecs and "gzip" in codecs
    assert "bz2" not in codecs and "xz" not in codecs
    status = {p.name: p.status for p in _plugins.get_registry().plugins}
    assert status["broken"] == status["bz2"] == status["xz"] == "blocked"
    with pytest.raises(ap.UnknownCodecError, match="unknown codec 'bz2'"):
        ap.dumps(OBJ, compress="bz2")


def test_a_file_of_a_blocked_codec_is_not_loaded_as_something_else(monkeypatch, fresh_registry):
    data = ap.dumps(OBJ, compress="bz2")
    monkeypatch.setenv("ARRAYPICKLE_DISABLE_PLUGINS", "bz2")
    _plugins.reset()
    with pytest.raises(ValueError):
        ap.loads(data)


def test_disabling_the_numpy_wrapper_leaves_arrays_to_numpy(monkeypatch, fresh_registry):
    from layout import buffers

    monkeypatch.setenv("ARRAYPICKLE_DISABLE_PLUGINS", "numpy")
    _plugins.reset()
    data = ap.dumps(OBJ)
    # numpy's own reduction: a PickleBuffer for the contiguous array (read back by
    # NEXT_BUFFER, flag 1), the strided view copied in band.
    assert [(r.flags, r.length) for r in buffers(data)] == [(1, OBJ["a"].nbytes)]
    same(ap.loads(data))


# -- every hook is documented ---------------------------------------------------------


def hookspec_functions():
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return [
        (name, fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    ]


def test_every_hookspec_has_a_docstring():
    specs = hookspec_functions()
    assert {name for name, _ in specs} >= {
        "arraypickle_register_codecs",
        "arraypickle_register_wrappers",
    }
    for name, fn in specs:
        doc = inspect.getdoc(fn) or ""
        assert len(doc.split()) >= 10, f"hookspec {name} has no real docstring"


def test_every_hookspec_is_documented_in_docs():
    # Fails until docs/ has a page (e.g. docs/plugins.md) describing every hook.
    pages = sorted((ROOT / "docs").glob("*.md"))
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    missing = [name for name, _ in hookspec_functions() if name not in text]
    assert pages, "docs/ holds no markdown page to document the hooks in"
    assert not missing, f"hooks missing from docs/*.md: {missing}"


def test_skip_magic_takes_short_reads_and_names_what_it_found():
    from arraypickle.codec import skip_magic
    from arraypickle.testing import Trickle

    src = Trickle(b"RLE1rest", most=1)
    skip_magic(src, b"RLE1", "rle")
    assert src.read(4) == b"r"  # one byte a read, and the magic is gone
    with pytest.raises(
        ap.CorruptFileError, match=r"rle stream .* magic 52 4c 45 31 \(found 52 4c 58"
    ):
        skip_magic(io.BytesIO(b"RLX1"), b"RLE1", "rle")
    with pytest.raises(ap.CorruptFileError, match="found 52 4c\\)"):
        skip_magic(io.BytesIO(b"RL"), b"RLE1", "rle")
    with pytest.raises(ap.CorruptFileError, match="found the end of the file"):
        skip_magic(io.BytesIO(b""), b"RLE1", "rle")


# -- plugins that misbehave (an audit as a plugin author) -----------------------------


@pytest.mark.parametrize(
    "returned",
    ['["not a codec"]', "[Codec(magic='str')]", "[Codec(extensions=['.x'])]", "None"],
    ids=["str", "str-magic", "list-extensions", "none"],
)
def test_a_malformed_codec_spoils_only_its_plugin(distribution, returned):
    source = (
        good("fine", b"FINE", ".fine")
        .replace("return [Codec()]", f"return {returned}")
        .replace(
            "class Codec(arraypickle.Codec):",
            "class Codec(arraypickle.Codec):\n"
            "    def __init__(self, **kw):\n        self.__dict__.update(kw)\n",
        )
    )
    distribution("apk-bad", {"bad": source, "fine": good("ok", b"OKOK", ".ok")})
    with pytest.warns(UserWarning, match=r"'bad' \(apk-bad\) is skipped: .*returned"):
        codecs = ap.codecs()
    assert "ok" in codecs and "gzip" in codecs and "fine" not in codecs
    same(ap.loads(ap.dumps(OBJ, compress="gzip")))
    info = {p.name: p for p in _plugins.get_registry().plugins}["bad"]
    # None (a forgotten return) says so, rather than registering nothing silently.
    expected = "returned None (return [] to provide none)" if returned == "None" else "must"
    assert info.status == "failed" and expected in info.reason


def test_a_plugin_is_registered_whole_or_not_at_all(distribution):
    source = good("half", b"HALF", ".half") + (
        "\n@arraypickle.hookimpl\ndef arraypickle_register_wrappers():\n"
        "    raise RuntimeError('no wrappers today')\n"
    )
    distribution("apk-half", {"half": source})
    with pytest.warns(UserWarning, match="no wrappers today"):
        codecs = ap.codecs()
    assert "half" not in codecs  # its codec hook worked, but the plugin failed
    info = {p.name: p for p in _plugins.get_registry().plugins}["half"]
    assert info.status == "failed" and info.codecs == []


def test_a_misspelt_hook_fails_the_plugin(distribution):
    source = good("typo", b"TYPO", ".typo").replace(
        "def arraypickle_register_codecs", "def arraypickle_register_codec"
    )
    distribution("apk-typo", {"typo": source})
    with pytest.warns(UserWarning, match=r"unknown hook\(s\) arraypickle_register_codec \("):
        ap.codecs()
    info = {p.name: p for p in _plugins.get_registry().plugins}["typo"]
    assert info.status == "failed"
    assert "(known: arraypickle_register_codecs, arraypickle_register_wrappers)" in info.reason


def test_a_conflict_between_plugins_is_shown_by_the_plugins_command(distribution, capsys, tmp_path):
    from arraypickle._cli import main

    distribution("apk-first", {"first": good("twin", b"TWN1", ".twin1")})
    distribution("apk-second", {"second": good("other", b"TWN", ".twin2")})
    with pytest.raises(ap.PluginConflictError, match="uninstall one, or block one") as info:
        ap.codecs()
    assert "force=True" not in str(info.value)  # an installed plugin cannot pass it
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "first" in out and "Conflicts:" in out
    assert "failed: conflict: codec 'other' from plugin 'second'" in out
    assert main(["plugins", "--json"]) == 1
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["first"]["status"] == "loaded" and rows["second"]["status"] == "failed"
    (tmp_path / "p.pkl").write_bytes(pickle.dumps([1]))
    assert main(["info", str(tmp_path / "p.pkl")]) == 1  # the installation, not usage
    assert "PluginConflictError" not in capsys.readouterr().err


def test_the_longest_claimed_ending_picks_the_codec(tmp_path, fresh_registry):
    ap.register_codec(PlainCodec("pklz", b"PKLZ", (".pkl.z",)))
    ap.dump(OBJ, tmp_path / "a.pkl.z")
    ap.dump(OBJ, tmp_path / "a.z")
    assert (tmp_path / "a.pkl.z").read_bytes().startswith(b"PKLZ")
    assert (tmp_path / "a.z").read_bytes()[:1] == b"\x78"  # zlib


def test_the_plugins_come_in_order_builtins_first(distribution):
    distribution("apk-z", {"zzz": good("zq", b"ZZQ1", ".q")})
    distribution("apk-a", {"aaa": good("aq", b"AAQ1", ".tar.q")})
    names = [p.name for p in _plugins.get_registry().plugins]
    assert names[:6] == ["numpy", "zlib", "gzip", "bz2", "lzma", "xz"]
    assert names.index("aaa") < names.index("zzz")
    assert list(_plugins.get_registry().codecs)[:5] == ["zlib", "gzip", "bz2", "lzma", "xz"]
    assert _plugins.get_registry().codec_for_path("f.tar.q").name == "aq"


def test_registering_the_same_object_again_does_nothing(fresh_registry):
    codec = PlainCodec()
    ap.register_codec(codec)
    ap.register_codec(codec)
    twin = PlainCodec()  # another instance of the same codec (a cell run again)
    ap.register_codec(twin)
    assert ap.codecs()["plain"] is twin
    with pytest.raises(ap.PluginConflictError, match="pass force=True to replace"):
        ap.register_codec(PlainCodec(magic=b"PLN\x02"))  # another codec of that name


def test_a_codec_class_defined_again_replaces_its_twin(fresh_registry, monkeypatch):
    # A module reloaded (or a notebook cell run again) makes a new class of the same
    # module and name, to which the name now leads: its instance replaces the first
    # instead of conflicting with it.
    def defined_again():
        cls = type("PlainCodec", (PlainCodec,), {"__module__": __name__})
        monkeypatch.setattr(sys.modules[__name__], "PlainCodec", cls)
        return cls()

    first, again = defined_again(), defined_again()
    ap.register_codec(first)
    ap.register_codec(again)
    assert ap.codecs()["plain"] is again
    # A class of that module and name its name does not lead to (a factory's): another.
    made = type("PlainCodec", (PlainCodec,), {"__module__": __name__})()
    with pytest.raises(ap.PluginConflictError, match="pass force=True to replace"):
        ap.register_codec(made)


def test_classes_made_as_a_program_runs_are_not_kept_alive(fresh_registry, monkeypatch):
    # Each dumped object's class went into the wrapper index for good: a program making
    # a class per call kept every one alive (20,000 classes: 48 MiB).
    import gc
    import weakref

    monkeypatch.setattr(_plugins, "INDEX_LIMIT", 50)
    monkeypatch.setattr(_numpy, "_KINDS_LIMIT", 50)
    made = []
    for _ in range(500):
        cls = type("Point", (), {"__module__": __name__})
        globals()["Point"] = cls  # where pickle looks the class up
        sub = type("Sub", (np.ndarray,), {"__module__": __name__})
        globals()["Sub"] = sub
        ap.dumps([cls(), np.arange(3.0).view(sub)])
        made += [weakref.ref(cls), weakref.ref(sub)]
        del cls, sub
    globals().pop("Point")
    globals().pop("Sub")
    gc.collect()
    index = _plugins.get_registry().wrapper_index
    # Kept by the index, or by the numpy wrapper's note of each subclass's stored form.
    assert len(index) <= 50 and sum(r() is not None for r in made) <= 100
    # Started again, the index still finds each type's wrapper.
    assert index[np.recarray] is ap.wrappers()["numpy"] and index[weakref.ref] is None


def test_registering_while_other_threads_dump_and_load(fresh_registry):
    import threading

    errors, stop = [], threading.Event()

    def work():
        while not stop.is_set():
            try:
                same(ap.loads(ap.dumps(OBJ, compress="gzip")))
                ap.load(io.BytesIO(ap.dumps(OBJ, compress=("zlib", 1))))
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for t in workers:
        t.start()
    try:
        for n in range(400):
            ap.register_codec(PlainCodec(f"c{n}", b"C%04d" % n, (f".c{n}",)))
    finally:
        stop.set()
        for t in workers:
            t.join()
    assert errors == []


def test_a_file_of_a_replaced_builtin_codec_says_so(fresh_registry):
    data = ap.dumps(OBJ, compress="gzip")
    ap.register_codec(PlainCodec("gzip", b"NEWG", (".newg",)), force=True)
    with pytest.raises(ap.UnknownCodecError, match=r"replaced .* force=True"):
        ap.loads(data)


class GreedyReader(io.RawIOBase):
    """A codec reader that hands out more than it is asked for (a codec bug)."""

    def __init__(self, fileobj):
        self._inner = DecompressReader(
            fileobj, lambda: Inflater(-15), codec="greedy", multistream=False
        )

    def readable(self):
        return True

    def read(self, n=-1):
        return self._inner.read(-1 if n is None or n < 0 else 2 * n + 1)


class FaultyCloseReader(GreedyReader):
    def read(self, n=-1):
        return self._inner.read(n)

    def close(self):
        # Once: the finalizer closes again, and Python 3.13 reports what that raises.
        if not getattr(self, "_failed", False):
            self._failed = True
            raise OSError("cannot close")
        super().close()


@pytest.mark.parametrize("reader", [GreedyReader, FaultyCloseReader])
def test_a_codec_bug_is_not_called_damage_to_the_file(fresh_registry, reader):
    codec = PlainCodec("buggy", b"BUGGY", (".buggy",))
    codec.open_reader = lambda f: (f.read(5), reader(f))[1]
    ap.register_codec(codec)
    with pytest.raises(ap.ArrayPickleError, match="buggy stream") as info:
        ap.loads(ap.dumps(OBJ, compress="buggy"))
    assert not isinstance(info.value, ap.CorruptFileError)


class ReadOnlyReader(io.RawIOBase):
    """A codec reader implementing ``read`` only: its ``readinto`` is io.RawIOBase's,
    which raises NotImplementedError."""

    def __init__(self, inner):
        self._inner = inner

    def readable(self):
        return True

    def read(self, n=-1):
        return self._inner.read(n)


def test_a_reader_without_its_own_readinto_is_read(fresh_registry):
    codec = PlainCodec("readonly", b"RDONLY", (".rdonly",))
    plain_reader = codec.open_reader
    codec.open_reader = lambda f: ReadOnlyReader(plain_reader(f))
    ap.register_codec(codec)
    value = {**OBJ, "big": np.arange(300_000.0)}  # a buffer read whole, and small ones
    out = ap.loads(ap.dumps(value, compress="readonly"))
    same(out)
    np.testing.assert_array_equal(out["big"], value["big"])


def test_force_replacing_never_shows_a_registry_without_the_codec(fresh_registry):
    import threading

    errors, stop = [], threading.Event()

    def dump_zlib():
        while not stop.is_set():
            try:
                ap.dumps([1], compress="zlib")
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

    worker = threading.Thread(target=dump_zlib)
    worker.start()
    try:
        for n in range(1500):
            codec = PlainCodec("zlib", b"ZZ%02d" % (n % 2), (".zz",))
            ap.register_codec(codec, force=True)
    finally:
        stop.set()
        worker.join()
    assert errors == []


@pytest.mark.parametrize("hook_returns", ["[]", "[Codec()]"], ids=["none", "a-twin"])
def test_a_plugin_registering_while_it_is_imported_keeps_its_codec(distribution, hook_returns):
    # The registry is being built when the plugin's module runs: the codec goes into
    # that registry (a second, nested build's result used to be thrown away), and the
    # twin its hook may return as well replaces it instead of conflicting with it.
    source = (
        good("early", b"ERLY", ".early")
        .replace(
            "@arraypickle.hookimpl",
            "arraypickle.register_codec(Codec())\n\n\n@arraypickle.hookimpl",
        )
        .replace("return [Codec()]", f"return {hook_returns}")
    )
    distribution("apk-early", {"early": source})
    assert "early" in ap.codecs()
    same(ap.loads(ap.dumps(OBJ, compress="early")))


@pytest.mark.parametrize("how", ["same-name", "extension"])
def test_a_file_of_a_codec_pushed_out_by_force_says_so(fresh_registry, how):
    data = ap.dumps(OBJ, compress="gzip")
    if how == "same-name":
        ap.register_codec(PlainCodec("gzip", b"NEWG", (".newg",)), force=True)
    else:
        ap.register_codec(PlainCodec("mygz", b"MYGZ", (".gz",)), force=True)
    with pytest.raises(ap.UnknownCodecError, match=r"register_codec\(\.\.\., force=True\)"):
        ap.loads(data)
    if how == "extension":  # the dump side says so too, not "disabled"
        with pytest.raises(ap.UnknownCodecError, match=r"replaced in this process"):
            ap.dumps(OBJ, compress="gzip")


def test_an_extension_conflict_names_the_extension(fresh_registry):
    with pytest.raises(ap.PluginConflictError, match=r"claim the same extension \.gz;"):
        ap.register_codec(PlainCodec("mygz", b"MYGZ", (".mine", ".GZ")))


def test_a_codec_of_a_missing_plugins_name_does_not_hide_the_install_hint(monkeypatch):
    monkeypatch.setenv("ARRAYPICKLE_DISABLE_PLUGINS", "lz4")
    _plugins.reset()
    try:
        ap.register_codec(PlainCodec("lz4", b"MYL4", (".myl4",)))
        with pytest.raises(ap.UnknownCodecError, match=r"ARRAYPICKLE_DISABLE|pip install") as info:
            ap.loads(b"\x04\x22\x4d\x18" + bytes(20))
        assert "force=True" not in str(info.value)
    finally:
        _plugins.reset()


def test_a_plugin_taking_a_known_codecs_magic_is_told_to_choose_another(distribution, monkeypatch):
    monkeypatch.setenv("ARRAYPICKLE_DISABLE_PLUGINS", "zstd")
    try:
        distribution("apk-zst", {"fakezstd": good("notzstd", b"\x28\xb5\x2f\xfd", ".nz")})
        with pytest.raises(ap.PluginConflictError, match="choose another magic"):
            ap.codecs()
    finally:
        _plugins.reset()


def test_registering_a_wrapper_gives_a_fresh_type_index(fresh_registry):
    class Thing:
        pass

    class ThingWrapper(ap.ArrayWrapper):
        name, types = "tests.thing", (Thing,)

        def expose(self, obj):
            return ap.Exposed(None, [ap.Buffer(np.arange(3))])

        def rebuild(self, meta, buffers):
            return Thing()

    registry = _plugins.get_registry()
    old = registry.wrapper_index
    assert old[Thing] is None
    assert list(ap.wrappers()) == ["numpy"]
    wrapper = ThingWrapper()
    ap.register_wrapper(wrapper)
    listed = ap.wrappers()
    assert listed == {"numpy": registry.wrappers["numpy"], "tests.thing": wrapper}
    listed.clear()  # a copy: the registry keeps its own
    assert "tests.thing" in ap.wrappers()
    # A thread still filling the old index from the old claims cannot leave its stale
    # answer where later dumps look.
    assert registry.wrapper_index is not old and registry.wrapper_index[Thing] is wrapper


# A second codec class for a plugin module built by good(): another name, magic, extension.
_SECOND_CODEC = """

class Early2(Codec):
    name = "early2"
    magic = b"ERL2"
    extensions = (".early2",)
"""


def _registers_on_import(name, magic, ext, before=""):
    # A plugin module that calls register_codec while it is imported, after ``before``.
    return good(name, magic, ext).replace(
        "@arraypickle.hookimpl",
        f"{before}arraypickle.register_codec(Codec())\n\n\n@arraypickle.hookimpl",
    )


def test_importing_a_plugin_that_registers_while_another_thread_builds_does_not_hang(
    distribution, monkeypatch
):
    # Thread A builds the registry; thread B imports a plugin module that registers at
    # import. B holds that module's import lock and needs the registry; A needs the
    # module. Building under the registry lock while importing used to hang both.
    import threading
    import types

    gate = types.ModuleType("apk_gate_events")
    gate.a_importing, gate.b_importing = threading.Event(), threading.Event()
    monkeypatch.setitem(sys.modules, gate.__name__, gate)
    modules = distribution(
        "apk-race",
        {
            # entry points load by name: A meets "agate" first and waits there for B
            "agate": "import apk_gate_events as g\ng.a_importing.set()\n"
            "assert g.b_importing.wait(60)\n" + good("agate", b"AGAT", ".agate"),
            # registers "early" at import; its hook, defined after that, adds "early2"
            "early": _registers_on_import(
                "early", b"ERLY", ".early", "import apk_gate_events as g\ng.b_importing.set()\n"
            ).replace("return [Codec()]", "return [Early2()]")
            + _SECOND_CODEC,
        },
    )
    errors = []

    def run(work):
        try:
            work()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def import_early():
        assert gate.a_importing.wait(60)
        __import__(modules["early"])

    threads = [
        threading.Thread(target=run, args=(w,), daemon=True) for w in (ap.codecs, import_early)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)  # a hang detector, not a wait for timing: both end at once when fixed
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert errors == []
    assert {"agate", "early", "early2"} <= set(ap.codecs())
    same(ap.loads(ap.dumps(OBJ, compress="early")))
    same(ap.loads(ap.dumps(OBJ, compress="early2")))


def test_a_registration_made_while_importing_survives_another_threads_build(
    distribution, monkeypatch
):
    # This thread imports the plugin (so its register_codec goes into this thread's
    # build), but another thread finishes a build first: the registration is replayed
    # into that one instead of being lost with this thread's.
    import threading

    source = _registers_on_import("late", b"LATE", ".late").replace("return [Codec()]", "return []")
    distribution("apk-late", {"late": source})
    load_plugins = _plugins._load_plugins
    calls = []

    def load_then_let_another_thread_build():
        loaded = load_plugins()
        calls.append(threading.current_thread())
        if len(calls) == 1:
            other = threading.Thread(target=_plugins.get_registry)
            other.start()
            other.join()
            assert _plugins._registry is not None
        return loaded

    monkeypatch.setattr(_plugins, "_load_plugins", load_then_let_another_thread_build)
    assert "late" in ap.codecs()
    assert len(calls) == 2
    same(ap.loads(ap.dumps(OBJ, compress="late")))


def test_a_plugin_imported_by_hand_before_first_use_keeps_its_hooks_and_its_registration(
    distribution,
):
    # The module registers a codec at import, before its hook (adding another) exists:
    # the registry built then is not kept, and the next use builds it whole.
    source = (
        _registers_on_import("early", b"ERLY", ".early").replace(
            "return [Codec()]", "return [Early2()]"
        )
        + _SECOND_CODEC
    )
    modules = distribution("apk-early", {"early": source})
    __import__(modules["early"])
    assert {"early", "early2"} <= set(ap.codecs())
    info = {p.name: p for p in _plugins.get_registry().plugins}["early"]
    assert (info.status, info.codecs) == ("loaded", ["early2"])


def test_of_two_plugins_of_one_name_the_first_that_works_is_kept(distribution):
    # Whichever the entry points list first: a plugin refused for a misspelt hook does
    # not keep its name from the other.
    misspelt = good("dupa", b"DUPA", ".dupa").replace(
        "def arraypickle_register_codecs", "def arraypickle_register_codec"
    )
    distribution("apk-dup-a", {"dup": misspelt})
    distribution("apk-dup-b", {"dup": good("dupb", b"DUPB", ".dupb")})
    with pytest.warns(UserWarning, match="'dup'"):
        codecs = ap.codecs()
    assert "dupb" in codecs and "dupa" not in codecs
