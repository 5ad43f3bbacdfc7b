"""Reading and writing media files: content sniffing, Pillow / soundfile / PyAV I/O, atomic output."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

import numpy as np

from ..errors import Error, MediaError
if TYPE_CHECKING:
    import torch

from .formats import AUDIO_WRITE_FORMATS, VIDEO_WRITE_FORMATS
from .types import Audio, Image, Video

_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"NCDC", "ncodec"),
    (0, b"\x89PNG\r\n\x1a\n", "image"),
    (0, b"\xff\xd8\xff", "image"),
    (0, b"GIF87a", "image"),
    (0, b"GIF89a", "image"),
    (0, b"BM", "image"),
    (0, b"II*\x00", "image"),
    (0, b"MM\x00*", "image"),
    (0, b"P5", "image"),
    (0, b"P6", "image"),
    (0, b"\x00\x00\x00\x0cjP  ", "image"),
    (0, b"\xff\x0a", "image"),
    (0, b"fLaC", "audio"),
    (0, b"OggS", "audio"),
    (0, b"ID3", "audio"),
    (0, b"\x1aE\xdf\xa3", "video"),
    (0, b"YUV4MPEG2", "video"),
]


def detect_media(prefix: bytes) -> str | None:
    """The media kind of a file from its first bytes: image, audio, video, ncodec, or None."""
    for offset, magic, kind in _SIGNATURES:
        if prefix[offset:offset + len(magic)] == magic:
            return kind
    if prefix[:4] == b"RIFF" and len(prefix) >= 12:
        return {b"WAVE": "audio", b"WEBP": "image", b"AVI ": "video"}.get(prefix[8:12])
    if prefix[:4] == b"FORM" and prefix[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if prefix[4:8] == b"ftyp":
        return "image" if prefix[8:12] in (b"avif", b"avis", b"heic", b"mif1") else "video"
    if len(prefix) >= 2 and prefix[0] == 0xFF and prefix[1] & 0xE0 == 0xE0:
        return "audio"  # MPEG audio frame sync
    return None


def _wide_samples(im: object) -> bool:
    """Whether Pillow is about to narrow 16-bit samples to 8 (its raw mode says 16 bits, its mode 8)."""
    tiles = getattr(im, "tile", None) or []
    return any(";16" in str(t[3]) for t in tiles) and getattr(im, "mode", "") not in ("I;16", "I;16B", "I;16L", "I")


def read_image(source: str | Path | bytes | BinaryIO) -> Image:
    """Decode an image file into uint8 pixels, or uint16 where the file has 16 bits per sample.

    Pillow reads most formats; 16-bit colour PNG (which Pillow would narrow to 8 bits) goes
    through `ncodec.media.png`, and any other file with 16-bit colour samples is refused
    rather than read with its low byte lost.
    """
    from PIL import Image as PILImage, UnidentifiedImageError

    from . import png

    if isinstance(source, (str, Path)):
        try:
            source = Path(source).read_bytes()
        except OSError as e:
            raise MediaError(f"cannot open {source}: {e.strerror}") from None
    if isinstance(source, (bytes, bytearray)) and png.is_wide_png(bytes(source[:33])):
        return Image(png.read_png16(bytes(source)), bit_depth=16)
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with PILImage.open(fp) as im:
            if _wide_samples(im):
                raise MediaError(f"{im.format} image with 16-bit {im.mode} samples: ncodec reads 16-bit colour "
                                 "from PNG files only (Pillow would drop the low byte); save it as 16-bit PNG")
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.int64)
                return Image(np.clip(arr, 0, 65535).astype(np.uint16), bit_depth=16)
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            return Image(np.asarray(im).copy(), bit_depth=8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"cannot read image: {e}") from None


def read_audio(source: str | Path | bytes | BinaryIO) -> Audio:
    """Decode an audio file with soundfile, keeping integer PCM exact (24-bit in int32)."""
    import soundfile as sf

    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with sf.SoundFile(fp) as f:
            subtype, rate = f.subtype, f.samplerate
            if subtype in ("PCM_16", "PCM_S8", "PCM_U8"):
                data = f.read(dtype="int16", always_2d=True)
                if subtype != "PCM_16":
                    return Audio((data >> 8).astype(np.int16), rate, bit_depth=8)
                return Audio(data, rate, bit_depth=16)
            if subtype in ("PCM_24", "PCM_32"):
                data = f.read(dtype="int32", always_2d=True)
                return Audio(data >> 8, rate, bit_depth=24) if subtype == "PCM_24" else Audio(data, rate, bit_depth=32)
            return Audio(f.read(dtype="float32", always_2d=True), rate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise MediaError(f"cannot read audio: {e}") from None


def read_media(source: str | Path | bytes) -> Image | Audio | Video:
    """Read an image, audio or video file (or its bytes), sniffing the kind from its content.

    Video goes through PyAV (`ncodec.media.video.read_video`, RGB frames), which is optional: without it
    a `MediaError` says how to install it.
    """
    data = source if isinstance(source, (bytes, bytearray)) else _read_prefix(Path(source))
    kind = detect_media(bytes(data[:64]))
    if kind == "image":
        return read_image(source)
    if kind == "audio":
        return read_audio(source)
    if kind == "video":
        from .video import read_video

        return read_video(source)
    if kind == "ncodec":
        raise MediaError("this is already an ncodec stream; use decompress")
    raise MediaError("unrecognised media: not an image, audio or video format ncodec can read")


def _read_prefix(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise MediaError(f"cannot open {path}: {e.strerror}") from None


def write_image(out: str | Path | BinaryIO, image: Image, fmt: str = "PNG") -> None:
    """Write an image (PNG by default; 16-bit images as 16-bit PNG: gray through Pillow, colour through
    `ncodec.media.png`; other formats hold 8-bit images only)."""
    from PIL import Image as PILImage

    px = image.pixels
    if px.dtype == np.uint16:
        if fmt != "PNG":
            raise MediaError(f"16-bit images are written as PNG, not {fmt}")
        if px.shape[2] != 1:
            from .png import write_png16

            data = write_png16(px)
            if isinstance(out, (str, Path)):
                Path(out).write_bytes(data)
            else:
                out.write(data)
            return
        im = PILImage.fromarray(px[:, :, 0].astype(np.int32), mode="I").convert("I;16")
    else:
        im = PILImage.fromarray(px[:, :, 0] if px.shape[2] == 1 else px)
    im.save(out, format=fmt)


def write_audio(out: str | Path | BinaryIO, audio: Audio, fmt: str = "WAV") -> None:
    """Write audio with soundfile, with a PCM subtype matching its bit depth (float stays float)."""
    import soundfile as sf

    data = audio.samples
    if audio.is_integer:
        depth = audio.bit_depth or 16
        if depth <= 8:
            subtype, data = "PCM_U8" if fmt == "WAV" else "PCM_S8", (data.astype(np.int16) << 8)
        elif depth <= 16:
            subtype, data = "PCM_16", data.astype(np.int16)
        elif depth <= 24:
            subtype, data = "PCM_24", data.astype(np.int32) << 8
        else:
            subtype, data = "PCM_32", data.astype(np.int32)
    else:
        subtype = "FLOAT"
    try:
        sf.write(out, data, audio.sample_rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise MediaError(f"cannot write {fmt} audio: {e}") from None


def audio_format_for(path: str | Path) -> str:
    """The soundfile container format for an output path's extension (WAV by default)."""
    return AUDIO_WRITE_FORMATS.get(Path(path).suffix.lower(), "WAV")


def write_video_lossless(out: str | Path | BinaryIO, video: Video, fmt: str = "matroska") -> None:
    """Write video losslessly: FFV1 in RGB (``bgr0``) in a Matroska / AVI / MP4 container (PyAV).

    Reading the file back (`ncodec.media.video.read_video`) gives exactly ``video.frames``, odd sizes too.
    """
    from .video import write_video

    write_video(out, video, "ffv1", None, preset=None, container_format=fmt, pix_fmt="bgr0")


def video_format_for(path: str | Path) -> str:
    """The container for a decoded video's path: Matroska unless the extension names another (FFV1 inside)."""
    suffix = Path(path).suffix.lower()
    if suffix and suffix not in VIDEO_WRITE_FORMATS:
        raise MediaError(f"decoded video is written as FFV1 in {', '.join(VIDEO_WRITE_FORMATS)} files, not {suffix}")
    return VIDEO_WRITE_FORMATS.get(suffix, "matroska")


@contextlib.contextmanager
def atomic_output(path: str | Path, force: bool = False) -> Iterator[BinaryIO]:
    """Open ``path`` for writing so it appears whole or not at all ('-' is stdout).

    Writes go to a temporary file beside the target, renamed over it only on success; on
    any failure the temporary file is removed and the target is left untouched.
    """
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if target.exists() and not force:
        raise Error(f"{target} exists; use --force to overwrite it")
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_audio_float(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """A whole audio file (a path, or its bytes) as float32 ``[channels, frames]`` and its rate; ValueError when
    it has no samples."""
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source),
                         dtype="float32", always_2d=True)
    if data.shape[0] < 1:
        raise ValueError("no samples")
    return np.ascontiguousarray(data.T), int(rate)


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample rate, channels, frames) of an audio file, from its header; MediaError when unreadable."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several kinds on unreadable files
        raise MediaError(f"cannot read audio {path}: {str(exc).splitlines()[0][:200]}") from None
    return int(info.samplerate), int(info.channels), int(info.frames)


def read_audio_frames(path: str | Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """``frames`` frames (-1: to the end) of an audio file from frame ``start`` on, float32 ``[n, channels]``,
    and the file's rate."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        f.seek(min(max(0, int(start)), f.frames))
        return f.read(frames=int(frames), dtype="float32", always_2d=True), int(f.samplerate)


def read_mono(path: str | Path, seconds: float | None = None, sample_rate: int | None = None,
              offset: float = 0.0) -> tuple["torch.Tensor", int]:
    """``seconds`` of an audio file from ``offset`` on, as mono float32 ``[T]``, resampled to ``sample_rate``."""
    import torch

    from .resample import resample

    rate, _, total = audio_info(path)
    count = -1 if seconds is None else round(seconds * rate)
    data, rate = read_audio_frames(path, min(round(offset * rate), total), count)
    mono = torch.from_numpy(data @ np.full(data.shape[1], 1 / data.shape[1], np.float32))  # channel mean, fast
    if sample_rate is None or sample_rate == rate:
        return mono, rate
    return (resample(mono, int(rate), int(sample_rate)) if mono.numel() else mono), sample_rate
