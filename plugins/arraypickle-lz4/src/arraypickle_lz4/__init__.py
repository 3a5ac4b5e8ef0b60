"""arraypickle-lz4: LZ4 frame compression for arraypickle (``compress=('lz4', level)``)."""

from .codec import Lz4Codec

__version__ = "0.1.0"
__all__ = ["Lz4Codec", "__version__"]
