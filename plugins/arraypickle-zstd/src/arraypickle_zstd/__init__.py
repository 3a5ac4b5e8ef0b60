"""arraypickle-zstd: Zstandard compression for arraypickle (``compress=('zstd', level)``)."""

from .codec import ZstdCodec

__version__ = "0.1.0"
__all__ = ["ZstdCodec", "__version__"]
