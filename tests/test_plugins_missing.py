"""When a codec plugin is missing: install hints on dump, and on load of its files.

With the plugins installed, each is made missing by blocking it with
``ARRAYPICKLE_DISABLE_PLUGINS`` and rebuilding the registry; without them the tests run
as they are (files are then made from the codec's magic alone).
"""

from __future__ import annotations

import importlib.util
import io
import re

import pytest

import arraypickle
from arraypickle import CorruptFileError, UnknownCodecError, _plugins
from arraypickle.testing import Unseekable

PLUGINS = dict(_plugins.KNOWN_CODECS)


def installed(name: str) -> bool:
    return importlib.util.find_spec(f"arraypickle_{name}") is not None


@pytest.fixture
def without(monkeypatch):
    """Block plugins by name for one test; the registry is rebuilt before and after."""

    def block(*names: str) -> None:
        monkeypatch.setenv(_plugins.DISABLE_ENV, ",".join(names))
        _plugins.reset()

    yield block
    monkeypatch.delenv(_plugins.DISABLE_ENV, raising=False)
    _plugins.reset()


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_compress_names_the_distribution(name, without, tmp_path):
    without(name)
    assert name not in arraypickle.codecs()
    hint = f"pip install {PLUGINS[name].distribution}"
    for compress in (name, (name, 1), (name, 9)):
        with pytest.raises(UnknownCodecError, match=hint) as info:
            arraypickle.dumps([1], compress=compress)
        assert "Installed codecs: " in str(info.value) and "gzip" in str(info.value)
    for ext in PLUGINS[name].extensions:
        path = tmp_path / f"obj.pkl{ext}"
        with pytest.raises(UnknownCodecError, match=hint):
            arraypickle.dump([1], path)
        assert not path.exists()


def compressed_file(name: str) -> bytes:
    """A file written by the plugin when it is installed; else its magic and junk."""
    if installed(name):
        return arraypickle.dumps({"x": list(range(100))}, compress=name)
    return PLUGINS[name].magic + bytes(range(200))


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_load_names_the_plugin_to_install(name, without, tmp_path):
    data = compressed_file(name)
    without(name)
    hint = (
        f"compressed with {name}: its plugin is blocked (ARRAYPICKLE_DISABLE_PLUGINS names "
        f"'{name}'; `arraypickle plugins` shows it), or else not installed: pip install "
        + PLUGINS[name].distribution
    )
    path = tmp_path / "obj.pkl"
    path.write_bytes(data)
    with pytest.raises(UnknownCodecError, match=re.escape(hint)) as info:
        arraypickle.load(path)
    assert "obj.pkl" in str(info.value)
    for stream in (io.BytesIO(data), Unseekable(data)):
        with pytest.raises(UnknownCodecError, match="pip install"):
            arraypickle.load(stream)
    with pytest.raises(UnknownCodecError, match="pip install"):
        arraypickle.loads(data)


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_the_hint_for_a_plugin_neither_installed_nor_blocked(name, monkeypatch):
    monkeypatch.delenv(_plugins.DISABLE_ENV, raising=False)
    assert PLUGINS[name].hint(name) == (
        f"it is not installed; install it with: pip install {PLUGINS[name].distribution}"
    )


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_installed_plugin_loads_again_once_unblocked(name, without):
    if not installed(name):
        pytest.skip(f"{PLUGINS[name].distribution} is not installed")
    data = compressed_file(name)
    without(name)
    with pytest.raises(UnknownCodecError):
        arraypickle.loads(data)
    without()
    assert arraypickle.loads(data) == {"x": list(range(100))}


def test_blocking_one_plugin_keeps_the_others(without):
    without("gzip")
    codecs = arraypickle.codecs()
    assert "gzip" not in codecs and "zlib" in codecs
    with pytest.raises(UnknownCodecError, match="unknown codec 'gzip'"):
        arraypickle.dumps(1, compress="gzip")


@pytest.mark.parametrize("name", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_a_blocked_builtin_codec_is_named_not_mistaken_for_a_pickle(name, without, tmp_path):
    data = arraypickle.dumps([1, 2, 3], compress=name)
    without(name)
    with pytest.raises(UnknownCodecError, match=f"compressed with {name}: it is built into"):
        arraypickle.loads(data)
    with pytest.raises(UnknownCodecError, match="ARRAYPICKLE_DISABLE_PLUGINS"):
        arraypickle.dumps([1], compress=name)


def test_a_blocked_third_party_plugin_is_named_where_its_codec_is_missed(without):
    # Its codec's name and magic are unknown once it is blocked: a dump named it as an
    # unknown codec, and a load of its file said "not an arraypickle file", neither
    # saying that a plugin was blocked.
    without("nosuch", "other")
    with pytest.raises(UnknownCodecError, match="a plugin of that name is blocked by ARRAY"):
        arraypickle.dumps([1], compress="nosuch")
    with pytest.raises(
        CorruptFileError, match=r"whose plugin ARRAYPICKLE_DISABLE_PLUGINS blocks \(nosuch, other\)"
    ):
        arraypickle.loads(b"\x01NOSUCH" + bytes(16))


class _Stranger:
    """A codec whose magic is a prefix of lz4's."""

    name = "stranger"
    magic = b"\x04"
    extensions = (".stranger",)

    def open_writer(self, fileobj, level):
        return fileobj

    def open_reader(self, fileobj):
        return fileobj


def test_a_codec_cannot_take_a_known_plugins_magic(without):
    without("lz4")
    with pytest.raises(arraypickle.PluginConflictError, match=r"'lz4'.*arraypickle-lz4"):
        arraypickle.register_codec(_Stranger())
    arraypickle.register_codec(_Stranger(), force=True)
    assert "stranger" in arraypickle.codecs()


@pytest.mark.parametrize("name", ["lz4", "zstd"])
def test_a_leading_skippable_frame_still_names_the_plugin(name, without):
    data = compressed_file(name)
    without(name)
    frame = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"\0\0\2\0"
    with pytest.raises(UnknownCodecError, match=f"compressed with {name}"):
        arraypickle.loads(frame + data)
