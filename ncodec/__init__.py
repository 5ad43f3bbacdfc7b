"""ncodec: neural and classical codecs for images, audio and video."""
from .errors import (BitstreamError, ChecksumError, EntropyCodingError, Error, MediaError, ModelFileError,
                     ModelMismatchError, TruncatedError, UnknownCodecError, UnsupportedVersionError)

__version__ = "0.1.0"
