"""ncodec: neural and classical codecs for images, audio and video.

``ncodec.encode(x, codec=None)`` -> bytes, ``ncodec.decode(data)`` -> the same kind of
object, ``ncodec.info(data)`` -> header facts; codecs are listed by ``ncodec list``.
"""
from . import kernels as _kernels  # noqa: F401  (registers the GPU rANS coder with ncodec.entropy.rans)
from .api import decode, encode, info
from .errors import (BitstreamError, ChecksumError, DownloadError, EntropyCodingError, Error, MediaError, ModelFileError,
                     ModelMismatchError, TruncatedError, UnknownCodecError, UnsupportedVersionError)
from .media.types import Audio, Image
from .codecs.registry import list_codecs

__version__ = "0.1.0"

__all__ = ["Audio", "BitstreamError", "ChecksumError", "DownloadError", "EntropyCodingError", "Error", "Image", "MediaError",
           "ModelFileError", "ModelMismatchError", "TruncatedError", "UnknownCodecError", "UnsupportedVersionError",
           "decode", "encode", "info", "list_codecs"]
