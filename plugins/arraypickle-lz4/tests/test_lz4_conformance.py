"""The arraypickle codec conformance kit, run against the lz4 codec."""

from __future__ import annotations

import pytest

pytest.importorskip("arraypickle_lz4", reason="arraypickle-lz4 is not installed")

from arraypickle.testing import CodecConformance, Tool


class TestLz4Conformance(CodecConformance):
    codec = "lz4"
    tool = Tool(compress=["lz4", "-c", "-q"], decompress=["lz4", "-d", "-c", "-q"])
