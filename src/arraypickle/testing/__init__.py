"""Conformance kits for plugin authors, and the helpers their tests use.

Every codec's test suite runs :class:`CodecConformance`, the built-in codecs and the
bundled plugins included; every array wrapper's runs :class:`WrapperConformance`,
the built-in ``numpy`` wrapper included. Subclass one as ``Test...`` in a test module
and name the codec or wrapper; pytest collects the inherited ``test_*`` methods (each
class's docstring lists what they check). The kits need pytest and hypothesis
(arraypickle's ``test`` extra).

Example::

    # tests/test_mycodec_conformance.py
    from arraypickle.testing import CodecConformance

    class TestMyCodecConformance(CodecConformance):
        codec = "mycodec"

The helpers (file objects that behave like pipes and slow sockets, sample data, a
comparison of what was dumped with what loaded) serve any test of a plugin.
"""

from ._codecs import STDLIB_TOOLS, CodecConformance, Tool
from ._files import Trickle, Unseekable, load_from_kept_open_socket
from ._samples import assert_same, big_array, sample_bytes, sample_object
from ._wrappers import WrapperConformance

__all__ = [
    "STDLIB_TOOLS",
    "CodecConformance",
    "Tool",
    "Trickle",
    "Unseekable",
    "WrapperConformance",
    "assert_same",
    "big_array",
    "load_from_kept_open_socket",
    "sample_bytes",
    "sample_object",
]
