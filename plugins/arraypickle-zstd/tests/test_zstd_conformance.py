"""The arraypickle codec conformance kit, run against the zstd codec."""

from __future__ import annotations

import pytest

pytest.importorskip("arraypickle_zstd", reason="arraypickle-zstd is not installed")

from arraypickle.testing import CodecConformance, Tool


class TestZstdConformance(CodecConformance):
    codec = "zstd"
    tool = Tool(compress=["zstd", "-c", "-q"], decompress=["zstd", "-d", "-c", "-q"])
