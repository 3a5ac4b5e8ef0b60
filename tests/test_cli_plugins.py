"""``arraypickle plugins``: the table, --json, failed and blocked plugins, install hints."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

import arraypickle
from arraypickle import _plugins
from arraypickle._cli import main
from plugin_fixtures import BROKEN, WORKING, make_distribution


def run_cli(*args: str, env: dict[str, str] | None = None, script: bool = False):
    """Run the command line in a fresh process (the registry is built per process)."""
    full_env = dict(os.environ)
    full_env.pop("ARRAYPICKLE_DISABLE_PLUGINS", None)
    full_env.update(env or {})
    if script:
        exe = shutil.which("arraypickle", path=os.path.dirname(sys.executable))
        if exe is None:
            pytest.skip("the arraypickle console script is not installed next to python")
        command = [exe, *args]
    else:
        command = [sys.executable, "-m", "arraypickle", *args]
    return subprocess.run(command, capture_output=True, text=True, env=full_env, check=False)


def with_path(extra: os.PathLike[str], **env: str) -> dict[str, str]:
    path = os.pathsep.join([os.fspath(extra), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": path, **env}


@pytest.mark.parametrize("script", [False, True], ids=["python -m", "console script"])
def test_lists_builtin_plugins_and_codecs(script):
    done = run_cli("plugins", script=script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS"]
    version = arraypickle.__version__
    for name in ("zlib", "gzip", "bz2", "lzma", "xz", "numpy"):
        assert any(line.split()[:4] == [name, "arraypickle", version, "loaded"] for line in lines)
    assert any(line.split()[:5] == ["codec", "gzip", "magic", "1f", "8b"] for line in lines)
    assert any(line.split()[:3] == ["codec", "xz", "magic"] and ".xz" in line for line in lines)
    assert "array wrapper numpy" in done.stdout


def test_json():
    done = run_cli("plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    zlib = rows["zlib"]
    assert zlib["distribution"] == "arraypickle"
    assert zlib["status"] == "loaded" and zlib["reason"] == ""
    assert zlib["codecs"] == [
        {"name": "zlib", "magic": "78", "extensions": [".z"], "default_level": 3, "parallel": True}
    ]
    assert rows["numpy"]["wrappers"] == ["numpy"]


def test_blocked_plugin():
    done = run_cli("plugins", "--json", env={"ARRAYPICKLE_DISABLE_PLUGINS": "gzip,bz2"})
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    for name in ("gzip", "bz2"):
        assert rows[name]["status"] == "blocked"
        assert "ARRAYPICKLE_DISABLE_PLUGINS" in rows[name]["reason"]
        assert rows[name]["codecs"] == []
    assert rows["xz"]["status"] == "loaded"
    text = run_cli("plugins", env={"ARRAYPICKLE_DISABLE_PLUGINS": "gzip"}).stdout
    row = next(line for line in text.splitlines() if line.startswith("gzip "))
    assert row.split() == [
        "gzip", "arraypickle", arraypickle.__version__, "blocked", "(listed", "in",
        "ARRAYPICKLE_DISABLE_PLUGINS)",
    ]  # fmt: skip


def test_plugin_that_fails_to_import(tmp_path):
    make_distribution(tmp_path, "arraypickle-broken", "broken", BROKEN)
    done = run_cli("plugins", env=with_path(tmp_path))
    # Exit 1: a script checking an environment learns that a plugin failed.
    assert done.returncode == 1, done.stderr
    # The warning names the plugin and its distribution; the rest still works.
    assert "'broken' (arraypickle-broken) failed to load" in done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("broken "))
    assert row.split()[:4] == ["broken", "arraypickle-broken", "1.0", "failed:"]
    assert "ImportError: the fake library this plugin needs is missing" in row
    assert any(line.split()[:2] == ["codec", "gzip"] for line in done.stdout.splitlines())
    as_json = run_cli("plugins", "--json", env=with_path(tmp_path))
    assert as_json.returncode == 1
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["reason"].startswith("ImportError")
    # Warnings as errors: the command that explains the failure still runs.
    strict = run_cli("plugins", env={**with_path(tmp_path), "PYTHONWARNINGS": "error"})
    assert strict.returncode == 1, strict.stderr
    assert "failed to load" in strict.stderr and "broken " in strict.stdout


def test_plugin_found_through_its_entry_point(tmp_path):
    make_distribution(tmp_path, "arraypickle-fake", "fake", WORKING)
    rows = json.loads(run_cli("plugins", "--json", env=with_path(tmp_path)).stdout)
    fake = next(r for r in rows if r["name"] == "fake")
    assert (fake["distribution"], fake["version"], fake["status"]) == (
        "arraypickle-fake",
        "1.0",
        "loaded",
    )
    assert fake["module"] == "arraypickle_fake_hooks"
    assert fake["codecs"][0]["magic"] == b"FAKE".hex()
    blocked = json.loads(
        run_cli(
            "plugins", "--json", env=with_path(tmp_path, ARRAYPICKLE_DISABLE_PLUGINS="fake")
        ).stdout
    )
    assert next(r for r in blocked if r["name"] == "fake")["status"] == "blocked"


def test_failed_plugin_in_process(tmp_path, monkeypatch, fresh_registry):
    make_distribution(tmp_path, "arraypickle-broken", "broken", BROKEN)
    monkeypatch.syspath_prepend(os.fspath(tmp_path))
    with pytest.warns(UserWarning, match=r"'broken' \(arraypickle-broken\) failed to load"):
        installed = arraypickle.codecs()
    assert "gzip" in installed
    info = next(p for p in _plugins.get_registry().plugins if p.name == "broken")
    assert info.status == "failed"
    assert arraypickle.loads(arraypickle.dumps([1, 2], compress="gzip")) == [1, 2]


def test_not_installed_codecs_are_listed_with_their_distribution(
    capsys, monkeypatch, fresh_registry
):
    absent = _plugins.KnownCodec("arraypickle-nosuch", b"NOSUCH", (".nosuch",))
    monkeypatch.setitem(_plugins.KNOWN_CODECS, "nosuch", absent)
    assert main(["plugins"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("Not installed: ")
    assert "nosuch (pip install arraypickle-nosuch)" in last


def test_blocked_plugins_are_not_called_missing():
    blocked = "lz4,zstd,snappy,blosc"
    done = run_cli("plugins", env={"ARRAYPICKLE_DISABLE_PLUGINS": blocked})
    for name in blocked.split(","):
        if importlib.util.find_spec(f"arraypickle_{name}") is None:
            assert f"{name} (pip install arraypickle-{name})" in done.stdout
        else:
            assert "Not installed" not in done.stdout or f"{name} (pip" not in done.stdout
            assert any(
                line.split()[:1] == [name] and "blocked" in line
                for line in done.stdout.splitlines()
            )


def test_in_process_main(capsys, fresh_registry):
    assert main(["plugins"]) == 0
    assert "codec zlib" in capsys.readouterr().out


def test_the_table_widens_for_long_codec_names_and_magics():
    from arraypickle._cli.plugins import _table

    def row(name, codecs):
        return {"name": name, "distribution": "d", "version": "1", "status": "loaded",
                "reason": None, "wrappers": [], "codecs": codecs}  # fmt: skip

    def codec(name, magic, exts):
        return {"name": name, "magic": magic.hex(), "extensions": exts,
                "default_level": 3, "parallel": False}  # fmt: skip

    lines = _table([
        row("a", [codec("xdeflate_long", b"XDF1", [".xdf"])]),
        row("b", [codec("z", bytes(12), [".tar.zz", ".zz"])]),
    ])  # fmt: skip
    codec_lines = [line for line in lines if "codec " in line]
    # Every column starts at the same place on every line.
    for word in ("magic", "default"):
        assert len({line.index(word) for line in codec_lines}) == 1, codec_lines
    assert len({line.index(".") for line in codec_lines}) == 1, codec_lines
