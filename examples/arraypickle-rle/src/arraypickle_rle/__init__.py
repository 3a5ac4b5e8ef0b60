"""arraypickle-rle: a run-length codec, the worked example of an arraypickle plugin."""

from .codec import RleCodec

__version__ = "0.1.0"
__all__ = ["RleCodec", "__version__"]
