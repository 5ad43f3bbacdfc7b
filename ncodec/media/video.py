"""Video I/O through PyAV (FFmpeg): read RGB frames, write with a libav encoder, in memory or to a file.

PyAV is an optional dependency, imported on first use. Frames are converted RGB <-> YUV by
FFmpeg's swscale with its defaults (BT.601 matrix, limited range) both ways, and the stream is
tagged BT.601 so other players convert it back alike. 4:2:0 needs even sizes: odd ones are
padded by repeating the last row/column, and `decode_video` crops back to the reference
(RGB and 4:4:4 formats, such as the lossless FFV1 output of `ncodec.media.io`, keep odd sizes).
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import MediaError
from .formats import VIDEO_CONTAINERS
from .types import Video



def require_av() -> Any:
    """The ``av`` module (PyAV), or a `MediaError` saying how to install it."""
    try:
        import av
    except ImportError:
        raise MediaError("video needs PyAV: pip install 'ncodec[video]' (or: pip install av)") from None
    return av


def read_video(source: str | Path | bytes | BinaryIO, max_frames: int | None = None) -> Video:
    """The first video stream of a file (or its bytes) as RGB frames, at most ``max_frames`` of them."""
    av = require_av()
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    frames: list[np.ndarray] = []
    try:
        with av.open(str(fp) if isinstance(fp, Path) else fp, "r") as container:
            if not container.streams.video:
                raise MediaError("no video stream in the file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate or 25
            for frame in container.decode(stream):
                if max_frames is not None and len(frames) >= max_frames:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(f"cannot read video: {e}") from None
    if not frames:
        raise MediaError("the video has no frames")
    return Video(np.stack(frames), float(rate))


def write_video(out: str | Path | BinaryIO, video: Video, codec: str = "libx264", crf: float | None = 23,
                *, preset: str | int | None = "medium", options: Mapping[str, str] | None = None,
                bsf: str | None = None, container_format: str | None = None, threads: int = 2,
                pix_fmt: str = "yuv420p") -> None:
    """Encode ``video`` with the FFmpeg encoder ``codec`` at ``crf`` into a file or binary file object.

    The container comes from ``container_format``, else the path's extension, else MP4.
    ``options`` are extra encoder options (e.g. ``{"x265-params": "..."}``), ``bsf`` an
    FFmpeg bitstream filter run on the packets before muxing, ``threads`` bounds the
    encoder's threads. With a chroma-subsampled ``pix_fmt`` odd sizes are padded to even (see
    the module docstring); other formats (RGB, 4:4:4) keep the frames' size.
    """
    av = require_av()
    fmt = container_format or (VIDEO_CONTAINERS.get(Path(out).suffix.lower()) if isinstance(out, (str, Path)) else None)
    frames = _pad_even(video.frames) if _subsampled(pix_fmt) else video.frames
    opts = {k: str(v) for k, v in (options or {}).items()}
    if crf is not None:
        opts["crf"] = str(crf)
    if preset is not None:
        opts["preset"] = str(preset)
    try:
        with av.open(str(out) if isinstance(out, Path) else out, "w", format=fmt or "mp4",
                     options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream(codec, rate=Fraction(video.fps).limit_denominator(1001 * 1000), options=opts)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            ctx = stream.codec_context
            ctx.thread_count = threads
            # tag BT.601 (SMPTE 170M), limited range: what swscale converts with by default
            ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 6, 6, 6, 1
            filt: Any = None

            def mux(packets: list[Any]) -> None:
                for packet in packets:
                    for out_packet in filt.filter(packet) if filt is not None else [packet]:
                        out_packet.stream = stream
                        container.mux(out_packet)

            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                packets = stream.encode(frame)
                if bsf and filt is None:  # the encoder is open (its extradata set) after the first frame
                    filt = av.bitstream.BitStreamFilterContext(bsf, stream)
                mux(packets)
            mux(stream.encode(None))
            if filt is not None:
                mux([None])
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(f"cannot write {codec} video: {e}") from None


def encode_video(video: Video, codec: str, crf: float | None, **kwargs: Any) -> bytes:
    """`write_video` into memory: the whole container file's bytes."""
    buf = io.BytesIO()
    write_video(buf, video, codec, crf, **kwargs)
    return buf.getvalue()


def decode_video(data: bytes, reference: Video) -> Video:
    """Decode a stream made by `encode_video`, cropped back to the reference's size and frame count."""
    video = read_video(data)
    t, h, w = reference.frames.shape[:3]
    if video.num_frames != t or video.height < h or video.width < w:
        raise MediaError(f"decoded video {video.frames.shape[:3]} does not match the reference {(t, h, w)}")
    return Video(video.frames[:, :h, :w], reference.fps)


def _subsampled(pix_fmt: str) -> bool:
    """Whether a pixel format halves chroma in some direction (4:2:0, 4:2:2, 4:1:1, NV12/NV21): even sizes only."""
    return any(tag in pix_fmt for tag in ("420", "422", "411", "410", "nv12", "nv21", "nv16"))


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Frames padded to even height and width by repeating the last row / column."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
