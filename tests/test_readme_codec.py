"""The README's "Your own codec" example keeps the codec contract: the conformance kit
passes on it (it once read its magic with one read() and ignored trailing garbage)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from arraypickle.testing import CodecConformance

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def readme_codec() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    source = next(b for b in blocks if "class FramedBz2" in b)
    # The class alone: the rest of the example registers it and writes files.
    source = source[: source.index("arraypickle.register_codec")]
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    return namespace["FramedBz2"]()


class TestReadmeCodecConformance(CodecConformance):
    codec = readme_codec()
