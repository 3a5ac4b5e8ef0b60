"""docs/plugins.md and the plugins' READMEs stay true to the code."""

from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest

import arraypickle
from arraypickle import _plugins, hookspecs

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "arraypickle-rle" / "src" / "arraypickle_rle"


def guide() -> str:
    return GUIDE.read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def code_lines(source: str) -> int:
    """Lines that are not blank, comments or docstrings."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    )


def test_every_hook_is_documented():
    names = [n for n in dir(hookspecs) if n.startswith("arraypickle_")]
    assert names, "no hookspecs found"
    for name in names:
        assert f"`{name}" in guide(), f"{name} is missing from docs/plugins.md"


def test_the_listings_are_the_example_files():
    blocks = python_blocks(guide())
    assert (EXAMPLE / "codec.py").read_text() in blocks
    assert (EXAMPLE / "hooks.py").read_text() in blocks


def test_the_example_codec_is_under_40_lines():
    source = (EXAMPLE / "codec.py").read_text()
    lines = code_lines(source)
    assert lines < 40
    assert f"{lines} lines of code" in guide()


def test_the_wrapper_sketch_works(fresh_registry):
    sketch = next(b for b in python_blocks(guide()) if "class BlobWrapper" in b)
    namespace: dict = {}
    exec(compile(sketch, "docs/plugins.md", "exec"), namespace)
    (wrapper,) = namespace["arraypickle_register_wrappers"]()
    arraypickle.register_wrapper(wrapper)
    blob = namespace["Blob"](bytearray(b"x" * 1000))
    out = arraypickle.loads(arraypickle.dumps({"b": blob}))
    assert isinstance(out["b"], namespace["Blob"])
    assert bytes(out["b"].data) == b"x" * 1000
    assert isinstance(out["b"].data, np.ndarray)


def table_defaults() -> dict[str, int]:
    """codec name -> default level, from the guide's table of codecs."""
    rows = re.findall(r"^\| (\w+) \| (arraypickle[\w-]*) \|.*\| (\d) \|$", guide(), flags=re.M)
    return {name: int(level) for name, _, level in rows}


def test_codec_table_matches_installed_codecs():
    defaults = table_defaults()
    expected = {"zlib", "gzip", "bz2", "lzma", "xz", *_plugins.KNOWN_CODECS}
    assert defaults.keys() == expected
    for name, codec in arraypickle.codecs().items():
        if name in defaults:
            assert getattr(codec, "default_level", 3) == defaults[name], name


@pytest.mark.parametrize("name", sorted(_plugins.KNOWN_CODECS))
def test_plugin_readme_states_magic_extension_and_default_level(name):
    known = _plugins.KNOWN_CODECS[name]
    readme = (ROOT / "plugins" / known.distribution / "README.md").read_text()
    assert known.magic.hex(" ").upper() in readme
    for ext in known.extensions:
        assert f"`{ext}`" in readme
    match = re.search(r"^\| default level \| (\d)", readme, flags=re.M)
    assert match, "the README has no default level row"
    assert int(match.group(1)) == table_defaults()[name]
    codec = arraypickle.codecs().get(name)
    if codec is not None:
        assert codec.default_level == int(match.group(1))
        assert (codec.magic, codec.extensions) == (known.magic, known.extensions)
