"""Classical codecs the harness compares ncodec with, by name: images (imagecodecs, Pillow),
audio (libopus through PyAV, FLAC through soundfile) and video (x264, x265, SVT-AV1 through PyAV).

The libraries are optional (``pip install imagecodecs av``) and imported only when a peer
codes something; a missing one raises `ncodec.errors.MediaError` saying what to install.
"""
from __future__ import annotations

from ..codec import EvalCodec
from .audio import AUDIO_PEERS
from .image import IMAGE_PEERS
from .video import VIDEO_PEERS

PEERS: dict[str, type[EvalCodec]] = {cls.name: cls for cls in (*IMAGE_PEERS, *AUDIO_PEERS, *VIDEO_PEERS)}

__all__ = ["PEERS"]
