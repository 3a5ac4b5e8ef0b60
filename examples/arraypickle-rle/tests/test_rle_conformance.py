"""The arraypickle codec conformance kit, run against the example run-length codec."""

from __future__ import annotations

import pytest

pytest.importorskip("arraypickle_rle", reason="arraypickle-rle is not installed")

from arraypickle.testing import CodecConformance


class TestRleConformance(CodecConformance):
    codec = "rle"
