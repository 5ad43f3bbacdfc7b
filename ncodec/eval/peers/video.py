"""Classical video codecs as harness peers: x264, x265 and SVT-AV1 through PyAV, at fixed CRF points.

Frames go RGB -> yuv420p (BT.601, limited range, by swscale) -> encoder -> in-memory MP4 ->
decoder -> RGB, cropped back to the reference's size (odd sizes are padded to even). Encoders
run with 2 threads in a setting whose output does not depend on the machine's core count.
The encoders' informational SEI (x264's version/options string, x265's info SEI: 0.7 and
2.3 KB, a large share of a short clip) is left out of the stream: it is not video.
"""
from __future__ import annotations

import os
from typing import ClassVar

from ...errors import MediaError
from ...media.types import Video
from ..codec import EvalCodec


class VideoPeer(EvalCodec):
    """An FFmpeg encoder at its fixed CRF points; subclasses set the encoder and its options."""

    media = "video"
    encoder: ClassVar[str]
    preset: ClassVar[str | int]
    options: ClassVar[dict[str, str]] = {}
    bsf: ClassVar[str | None] = None

    def encode(self, media: Video, quality: float | None) -> bytes:
        from ...media.video import encode_video

        if quality is None:
            raise MediaError(f"{self.name} needs a CRF value")
        crf = int(quality) if float(quality).is_integer() else quality
        return encode_video(media, self.encoder, crf, preset=self.preset, options=self.options, bsf=self.bsf,
                            container_format="mp4", threads=2)

    def decode(self, data: bytes, reference: Video) -> Video:
        from ...media.video import decode_video

        return decode_video(data, reference)

    def version(self) -> str:
        from ...media.video import require_av

        av = require_av()
        return f"PyAV {av.__version__} FFmpeg {av.ffmpeg_version_info}; {self.description}"


class X264Peer(VideoPeer):
    """H.264 by x264."""

    name = "x264"
    encoder = "libx264"
    preset = "medium"
    fixed_points = (22.0, 27.0, 32.0, 37.0)
    bsf = "filter_units=remove_types=6"  # SEI: only x264's version/options string here
    description = "H.264, libx264 via PyAV, CRF 22/27/32/37, preset medium, 2 threads, yuv420p, MP4, no SEI"


class X265Peer(VideoPeer):
    """HEVC by x265."""

    name = "x265"
    encoder = "libx265"
    preset = "medium"
    fixed_points = (22.0, 27.0, 32.0, 37.0)
    options: ClassVar[dict[str, str]] = {"x265-params": "pools=2:frame-threads=1:info=0:log-level=error"}
    description = ("HEVC, libx265 via PyAV, CRF 22/27/32/37, preset medium, 2-thread pool (WPP), 1 frame thread, "
                   "yuv420p, MP4, no info SEI")


class SvtAv1Peer(VideoPeer):
    """AV1 by SVT-AV1."""

    name = "svtav1"
    encoder = "libsvtav1"
    preset = 8
    fixed_points = (30.0, 38.0, 46.0, 54.0)
    options: ClassVar[dict[str, str]] = {"svtav1-params": "lp=2"}
    description = "AV1, libsvtav1 via PyAV, CRF 30/38/46/54, preset 8, lp=2, yuv420p, MP4"

    def encode(self, media: Video, quality: float | None) -> bytes:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise; 1 = errors
        return super().encode(media, quality)


VIDEO_PEERS: tuple[type[VideoPeer], ...] = (X264Peer, X265Peer, SvtAv1Peer)
