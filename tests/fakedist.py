"""A fixture that installs fake distributions with ``arraypickle`` entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from arraypickle import _plugins


@pytest.fixture
def distribution(tmp_path, monkeypatch, fresh_registry):
    """Make a fake installed distribution: ``distribution(name, {ep: module_source})``.

    It lives on a temporary ``sys.path`` entry with a ``.dist-info`` directory whose
    entry points (group ``arraypickle``) name modules written beside it. Module names
    get a per-test suffix so that no test sees another's modules.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    suffix = f"_{abs(hash(str(tmp_path))) % 10**8}"
    made = []

    def make(dist: str, plugins: dict[str, str]) -> dict[str, str]:
        # As installers name it: a '-' would end the name (importlib.metadata reads
        # "apk-one-1.0.dist-info" as distribution "apk").
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        modules = {}
        lines = ["[arraypickle]"]
        for entry, source in plugins.items():
            module = f"{dist.replace('-', '_')}_{entry}{suffix}"
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            lines.append(f"{entry} = {module}")
            modules[entry] = module
            made.append(module)
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        _plugins.reset()
        return modules

    yield make
    for module in made:
        sys.modules.pop(module, None)
