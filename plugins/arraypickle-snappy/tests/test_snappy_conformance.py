"""The arraypickle codec conformance kit, run against the snappy codec."""

from __future__ import annotations

import pytest

pytest.importorskip("arraypickle_snappy", reason="arraypickle-snappy is not installed")

from arraypickle.testing import CodecConformance, Tool


class TestSnappyConformance(CodecConformance):
    codec = "snappy"
    # snzip's default format is the framing format; it is not packaged by Debian.
    tool = Tool(compress=["snzip", "-c"], decompress=["snzip", "-dc"])
