"""The worked example plugin (examples/arraypickle-rle), found as users' plugins are.

requirements-test.txt installs it; arraypickle must find it through its entry point,
in a fresh process where nothing registers anything by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

pytest.importorskip(
    "arraypickle_rle",
    reason="the example plugin is not installed (pip install -e examples/arraypickle-rle)",
)


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_its_distribution_announces_the_hooks_module():
    dist = metadata.distribution("arraypickle-rle")
    (ep,) = [ep for ep in dist.entry_points if ep.group == "arraypickle"]
    assert (ep.name, ep.value) == ("rle", "arraypickle_rle.hooks")


def test_codecs_finds_it_through_the_entry_point():
    out = fresh(
        "import arraypickle, sys\n"
        "assert 'arraypickle_rle' not in sys.modules\n"
        "codec = arraypickle.codecs()['rle']\n"
        "print(type(codec).__module__, codec.distribution)\n"
    )
    assert out.split() == ["arraypickle_rle.codec", "arraypickle-rle"]


def test_round_trip_by_name_and_by_extension(tmp_path):
    out = fresh(
        "import numpy as np, arraypickle\n"
        f"path = {str(tmp_path / 'a.pkl.rle')!r}\n"
        "arraypickle.dump({'a': np.zeros(1000)}, path)\n"
        "assert open(path, 'rb').read(4) == b'RLE1'\n"
        "print(arraypickle.load(path)['a'].sum(), len(arraypickle.dumps(1, compress='rle')))\n"
    )
    assert out.split()[0] == "0.0"


def test_listed_by_arraypickle_plugins():
    version = metadata.version("arraypickle-rle")
    done = subprocess.run(
        [sys.executable, "-m", "arraypickle", "plugins"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    row = lines.index(next(line for line in lines if line.startswith("rle ")))
    assert lines[row].split() == ["rle", "arraypickle-rle", version, "loaded"]
    assert lines[row + 1].split()[:7] == ["codec", "rle", "magic", "52", "4c", "45", "31"]
    assert ".rle" in lines[row + 1]
    rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "arraypickle", "plugins", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    rle = next(r for r in rows if r["name"] == "rle")
    assert (rle["distribution"], rle["module"]) == ("arraypickle-rle", "arraypickle_rle.hooks")
