"""Classical audio codecs as harness peers: Opus (libopus through PyAV) and lossless FLAC (libsndfile).

Decoded audio comes back in the reference's sample format (integer PCM of the same bit depth,
or float32), length and rate.
"""
from __future__ import annotations

import io

import numpy as np

from ...errors import MediaError
from ...media.types import Audio
from ...media.video import require_av
from ..codec import EvalCodec

OPUS_RATE = 48_000  # Opus codes at 48 kHz whatever the input rate
_OPUS_FRAME = 960  # 20 ms at 48 kHz


def to_float(audio: Audio) -> np.ndarray:
    """The samples as float32 ``[channels, frames]`` in [-1, 1] (integer PCM scaled by its bit depth)."""
    x = audio.samples.astype(np.float32)
    if audio.is_integer:
        x /= float(2 ** ((audio.bit_depth or 16) - 1))
    return np.ascontiguousarray(x.T)


def from_float(x: np.ndarray, reference: Audio) -> Audio:
    """``x [channels, frames]`` back in the reference's format: rounded, clipped integer PCM, or float32."""
    x = np.asarray(x, dtype=np.float64).T
    if not reference.is_integer:
        return Audio(x.astype(np.float32), reference.sample_rate)
    depth = reference.bit_depth or 16
    scale = 2.0 ** (depth - 1)
    pcm = np.clip(np.rint(x * scale), -scale, scale - 1).astype(reference.samples.dtype)
    return Audio(pcm, reference.sample_rate, bit_depth=depth)


def _to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] rounded to 16-bit PCM."""
    return np.clip(np.rint(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``x [channels, frames]`` at ``new_rate`` (ncodec's zero-phase windowed-sinc resampler: no delay)."""
    if rate == new_rate:
        return x
    import torch

    from ...media.resample import resample

    return resample(torch.from_numpy(np.ascontiguousarray(x)), rate, new_rate).numpy()


def _planar(x: np.ndarray, planar: bool, channels: int) -> np.ndarray:
    """A decoded PyAV frame's samples as ``[channels, n]`` (packed frames come as ``[1, n * channels]``)."""
    return x.reshape(channels, -1) if planar else x.reshape(-1, channels).T


class OpusPeer(EvalCodec):
    """Opus at a target bitrate: libopus VBR, 20 ms frames, in an in-memory Ogg file.

    Input at other rates is resampled to 48 kHz (and the decoded output back) by
    `ncodec.media.resample.resample`, which adds no delay. FFmpeg writes libopus's encoder delay
    as the Ogg pre-skip and drops it on decoding, so the output lines up with the input
    sample for sample; the tail is cut to the input's length. The rate counted is the whole
    Ogg file (headers and page overhead included).
    """

    name = "opus"
    media = "audio"
    rate_controlled = True
    description = ("Opus, libopus via PyAV/FFmpeg, target kbps (VBR, application=audio, complexity 10, "
                   "20 ms frames), resampled to/from 48 kHz, Ogg container counted whole; mono or stereo")

    def encode(self, media: Audio, quality: float | None) -> bytes:
        if quality is None:
            raise MediaError("opus needs a target bitrate in kbps")
        if media.channels > 2:
            raise MediaError(f"opus here codes mono or stereo, got {media.channels} channels")
        av = require_av()
        x = _resample(to_float(media), media.sample_rate, OPUS_RATE)
        layout = "mono" if media.channels == 1 else "stereo"
        buf = io.BytesIO()
        with av.open(buf, "w", format="ogg", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream("libopus", rate=OPUS_RATE, layout=layout, options={
                "application": "audio", "vbr": "on", "compression_level": "10", "frame_duration": "20"})
            stream.bit_rate = round(quality * 1000)
            for start in range(0, x.shape[1], _OPUS_FRAME):
                chunk = np.zeros((x.shape[0], _OPUS_FRAME), np.float32)
                part = x[:, start:start + _OPUS_FRAME]
                chunk[:, :part.shape[1]] = part
                frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1), format="flt", layout=layout)
                frame.sample_rate, frame.pts = OPUS_RATE, start
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return buf.getvalue()

    def decode(self, data: bytes, reference: Audio) -> Audio:
        av = require_av()
        with av.open(io.BytesIO(data), "r") as container:
            parts = [_planar(f.to_ndarray(), f.format.is_planar, reference.channels)
                     for f in container.decode(container.streams.audio[0])]
        y = np.concatenate(parts, axis=1) if parts else np.zeros((reference.channels, 0), np.float32)
        n48 = -(-reference.frames * OPUS_RATE // reference.sample_rate)  # the resampled input's length
        y = np.pad(y[:, :n48], ((0, 0), (0, max(0, n48 - y.shape[1]))))
        y = _resample(y.astype(np.float32), OPUS_RATE, reference.sample_rate)[:, :reference.frames]
        return from_float(y, reference)

    def version(self) -> str:
        av = require_av()
        return f"PyAV {av.__version__} FFmpeg {av.ffmpeg_version_info}; {self.description}"


class FlacPeer(EvalCodec):
    """FLAC at the strongest level (libsndfile's compression_level 1.0 = FLAC -8).

    Integer PCM up to 24 bits is coded as it is (bit-exact); float input is rounded to
    16-bit PCM first, so it is exact only to that rounding.
    """

    name = "flac"
    media = "audio"
    lossless = True
    description = "FLAC level 8, libsndfile via soundfile; 16/24-bit PCM kept exact, float rounded to 16-bit"

    def encode(self, media: Audio, quality: float | None) -> bytes:
        import soundfile as sf

        depth = media.bit_depth if media.is_integer else 16
        if depth is None or depth > 24:
            raise MediaError(f"FLAC (libsndfile) codes at most 24-bit PCM, got {depth}-bit")
        pcm = media.samples if media.is_integer else _to_int16(media.samples)
        # sample values are kept; libsndfile takes 24-bit PCM left-aligned in int32
        subtype, data = ("PCM_16", pcm.astype(np.int16)) if depth <= 16 else ("PCM_24", pcm.astype(np.int32) << 8)
        buf = io.BytesIO()
        sf.write(buf, data, media.sample_rate, format="FLAC", subtype=subtype, compression_level=1.0)
        return buf.getvalue()

    def decode(self, data: bytes, reference: Audio) -> Audio:
        from ...media.io import read_audio

        pcm = read_audio(data).samples
        if not reference.is_integer:
            return Audio(pcm.astype(np.float32) / 32768.0, reference.sample_rate)
        return Audio(pcm.astype(reference.samples.dtype), reference.sample_rate, bit_depth=reference.bit_depth)

    def version(self) -> str:
        import soundfile as sf

        return f"soundfile {sf.__version__} {sf.__libsndfile_version__}; {self.description}"


AUDIO_PEERS: tuple[type[EvalCodec], ...] = (OpusPeer, FlacPeer)
