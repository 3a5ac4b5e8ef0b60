"""The conformance kit (arraypickle.testing) run against the five built-in codecs."""

from __future__ import annotations

from arraypickle.testing import STDLIB_TOOLS, CodecConformance


class TestZlibConformance(CodecConformance):
    codec = "zlib"
    tool = STDLIB_TOOLS["zlib"]


class TestGzipConformance(CodecConformance):
    codec = "gzip"
    tool = STDLIB_TOOLS["gzip"]


class TestBz2Conformance(CodecConformance):
    codec = "bz2"
    tool = STDLIB_TOOLS["bz2"]


class TestLzmaConformance(CodecConformance):
    codec = "lzma"
    tool = STDLIB_TOOLS["lzma"]


class TestXzConformance(CodecConformance):
    codec = "xz"
    tool = STDLIB_TOOLS["xz"]
