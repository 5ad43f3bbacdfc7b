"""The one list of media file suffixes, and the file formats each output suffix is written as.

Folder walks (the eval harness, the tokenizer, the benchmarks, the training data) and output
paths (`ncodec decompress`) all read these, so a format is added in one place.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["suffixes_of", "AUDIO_SUFFIXES", "AUDIO_WRITE_FORMATS", "IMAGE_SUFFIXES", "IMAGE_WRITE_FORMATS", "LOSSLESS_AUDIO_SUFFIXES",
           "VIDEO_CONTAINERS", "VIDEO_SUFFIXES", "VIDEO_WRITE_FORMATS", "lossless_output_format", "media_files"]

#: Suffixes read as images (Pillow), audio (libsndfile through soundfile) and video (PyAV).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".aiff", ".aif", ".mp3")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".ivf", ".y4m")
#: Audio outputs that hold decoded PCM exactly (`ncodec decompress` keeps an input's suffix only if listed).
LOSSLESS_AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif")
#: soundfile container per audio output suffix (lossless, or Ogg for Opus / Vorbis input).
AUDIO_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".opus": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}
#: FFmpeg muxer per video suffix, for lossy encodes (the video peers).
VIDEO_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".ivf": "ivf", ".avi": "avi"}
#: FFmpeg muxer per lossless video output suffix (FFV1 inside; FFmpeg's MOV muxer refuses FFV1).
VIDEO_WRITE_FORMATS = {".mkv": "matroska", ".avi": "avi", ".mp4": "mp4"}

#: Pillow format per image output suffix that holds decoded pixels exactly (8-bit; PNG holds 16-bit too).
IMAGE_WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM", ".pgm": "PPM"}
_LOSSLESS_WRITES = {"image": IMAGE_WRITE_FORMATS,
                    "audio": {s: f for s, f in AUDIO_WRITE_FORMATS.items() if s in LOSSLESS_AUDIO_SUFFIXES},
                    "video": VIDEO_WRITE_FORMATS}

_SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES, "video": VIDEO_SUFFIXES}


def lossless_output_format(kind: str, path: str | Path) -> str:
    """The format an output path's suffix names for decoded ``kind`` media, if it holds them exactly.

    ValueError naming the suffixes that work otherwise: a lossy format (JPEG, MP3, Ogg), another
    media's format (WAV for an image) or an unknown suffix would lose or mislabel the result.
    """
    writes = _LOSSLESS_WRITES[kind]
    suffix = Path(path).suffix.lower()
    if suffix not in writes:
        said = f"'{suffix}'" if suffix else "no suffix"
        raise ValueError(f"cannot write decoded {kind} as {said} without loss; use "
                         + ", ".join(sorted(writes)))
    return writes[suffix]


def suffixes_of(kind: str) -> tuple[str, ...]:
    """The file suffixes ncodec reads as ``kind`` (image, audio or video)."""
    return _SUFFIXES[kind]


def media_files(folder: str | Path, kind: str, recursive: bool = False) -> list[Path]:
    """The ``kind`` ("image", "audio", "video") files in ``folder`` by suffix, sorted; hidden files skipped.

    FileNotFoundError when ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no data folder {root}")
    suffixes = _SUFFIXES[kind]
    walk = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in walk if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
