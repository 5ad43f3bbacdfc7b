"""The exceptions ncodec raises: every failure a user can meet is a subclass of `Error`."""
from __future__ import annotations


class Error(Exception):
    """Base class of every ncodec failure; its message says what went wrong and what to do."""


class BitstreamError(Error, ValueError):
    """A stream or file is not a valid ncodec stream: truncated, corrupted, or not ours."""


class TruncatedError(BitstreamError):
    """The stream ends before a structure it announces."""


class ChecksumError(BitstreamError):
    """A chunk's CRC32 does not match its bytes."""


class UnsupportedVersionError(BitstreamError):
    """The stream was written by a newer, incompatible format version."""


class ModelMismatchError(Error):
    """A stream was made with other model weights than the ones offered to decode it."""


class UnknownCodecError(Error, KeyError):
    """No registered codec has the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MediaError(Error):
    """An input file or array is not media that the chosen codec can take."""


class UsageError(Error):
    """A request that cannot be carried out as given: options a codec does not take, a codec for
    another kind of media, a stream given where media is expected (the command line exits 2)."""


class CodecMediaError(MediaError, UsageError):
    """The codec named codes another kind of media than the input is."""


class EntropyCodingError(Error, ValueError):
    """Invalid input to the entropy coder (symbols, table indexes, or CDF tables)."""


class ModelFileError(Error):
    """A model weights file is missing, unreadable, or fails its hash check."""


class DownloadError(Error):
    """A model could not be fetched: offline, unreachable, refused, stalled, or its bytes fail their pin."""
