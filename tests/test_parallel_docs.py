"""The parallel codec sketch of docs/plugins.md works: the conformance kit passes on it."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from arraypickle.testing import CodecConformance

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def sketch() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    source = next(b for b in blocks if "class ZFramesCodec" in b)
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/plugins.md", "exec"), namespace)
    return namespace


def test_the_sketch_is_as_long_as_the_guide_says():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    source = next(b for b in blocks if "class ZFramesCodec" in b)
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) <= 40
    assert f"A parallel codec in {len(lines)} lines" in GUIDE.read_text()


class TestParallelSketchConformance(CodecConformance):
    codec = sketch()["ZFramesCodec"]()
