"""The arraypickle codec conformance kit, run against the blosc codec."""

from __future__ import annotations

import pytest

pytest.importorskip("arraypickle_blosc", reason="arraypickle-blosc is not installed")

from arraypickle.testing import CodecConformance


class TestBloscConformance(CodecConformance):
    codec = "blosc"
    tool = None  # the stream is arraypickle's own: no standard tool reads it
