"""arraypickle-snappy: Snappy compression for arraypickle (``compress='snappy'``)."""

from .codec import SnappyCodec

__version__ = "0.1.0"
__all__ = ["SnappyCodec", "__version__"]
