"""The documentation site builds with ``mkdocs build --strict``: no warning of any kind
(broken links, missing pages, docstrings the API reference cannot render).

Pages that other work adds later (:data:`COMING`) may already be linked to; while one
is missing, the build runs from a copy of ``docs/`` in which it is a placeholder page
added to the navigation. Once it exists, it must be in ``mkdocs.yml``'s navigation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMING = {
    "plugins.md": "Writing plugins",
    "integrity.md": "Integrity",
    "benchmarks.md": "Benchmarks",
}


def _nav_files(nav) -> set[str]:
    found = set()
    for item in nav:
        for value in item.values() if isinstance(item, dict) else [item]:
            if isinstance(value, list):
                found |= _nav_files(value)
            else:
                found.add(value)
    return found


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    docs = ROOT / config.get("docs_dir", "docs")
    nav = _nav_files(config["nav"])
    present = {name for name in COMING if (docs / name).exists()}
    assert present <= nav, f"pages to add to mkdocs.yml's nav: {sorted(present - nav)}"
    missing = [name for name in COMING if name not in present]
    config_file = ROOT / "mkdocs.yml"
    if missing:
        copy = tmp_path / "docs"
        shutil.copytree(docs, copy)
        for name in missing:
            (copy / name).write_text(f"# {COMING[name]}\n\nThis page is being written.\n")
        config["docs_dir"] = str(copy)
        config["nav"].append({"Coming": [{COMING[n]: n} for n in missing]})
        handler = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
        handler["paths"] = [str(ROOT / p) for p in handler.get("paths", ["src"])]
        options = handler.get("options", {})
        options["extensions"] = [
            str(ROOT / e) if isinstance(e, str) and ".py:" in e else e
            for e in options.get("extensions", [])
        ]
        config_file = tmp_path / "mkdocs.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config_file),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "WARNING" not in log, log
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("arraypickle.dump", "arraypickle.load", "arraypickle.get_untrusted_types"):
        assert f'id="{name}"' in api, name
    assert ":class:`" not in api and ":mod:`" not in api  # Sphinx roles became code
