"""Media: the types (`Image`, `Audio`, `Video`), reading and writing files, PCM conversion,
resampling, and the one list of file suffixes.

- `types`: the media types;
- `io`: content sniffing, reading and writing images and audio, atomic output;
- `video`: reading and writing video with PyAV (``pip install 'ncodec[video]'``);
- `pcm`: integer PCM to float and back, channel layouts;
- `resample`: the library's one audio resampler;
- `formats`: file suffixes and output formats.
"""
from __future__ import annotations

from .types import Audio, Image, Video

__all__ = ["Audio", "Image", "Video"]
