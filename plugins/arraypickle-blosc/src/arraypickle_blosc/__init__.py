"""arraypickle-blosc: Blosc compression for arraypickle (``compress='blosc'``)."""

from .codec import BloscCodec

__version__ = "0.1.0"
__all__ = ["BloscCodec", "__version__"]
