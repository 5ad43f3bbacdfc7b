"""`Tokenizer`: waveforms at any rate and channel count <-> codec tokens ``LongTensor [B, K, T]``.

``Tokenizer(model, bandwidth=6.0).encode(wav, sample_rate)`` resamples to the model's rate
(`ncodec.media.resample`), maps the channels (mono models average, stereo models duplicate mono),
and returns the codes of the first K codebooks the bandwidth allows; ``decode(codes)`` gives
the waveform ``[B, channels, samples]`` at the model's rate. Causal models code long inputs a
chunk at a time (`streaming`, the same codes as one call); normalising (segmented)
models need the per-segment volumes to decode at the right loudness: `encode_with_scales`
returns them, and `decode` without them uses unit volumes. `encode_batch` codes a list of
signals of different lengths, each exactly as alone, as ``ncodec tokenize`` does.
``pattern(name)`` gives the interleaving patterns of `ncodec.tokenizers.patterns` for the
tokenizer's number of codebooks.

DAC models (`DACModel`, e.g. ``Tokenizer("dac_44khz")`` once ``ncodec fetch dac_44khz`` has run)
tokenize too: mono, non-causal, coded whole; their bandwidth picks the first codebooks whose
nominal rate fits (default: all of them).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..models.audio.dac import DAC_CONFIGS, DACModel
from ..models.audio.encodec import EncodedAudio, SEANetCodecModel
from ..codecs.audio.neural import NeuralAudioCodec
from ..media.pcm import downmix
from ..models.audio.streaming import is_streamable, streaming
from ..media.resample import Resampler
from ..errors import ModelFileError
from ..zoo import find_audio_model, load_audio_model, read_metadata
from .patterns import Pattern, get_pattern

__all__ = ["ENCODE_THREADS", "Tokenizer", "open_tokenizer", "prepare_waveform"]

CHUNK_SECONDS = 30.0  # causal models code longer inputs in chunks of this length


def _as_batch(wav: Any) -> Tensor:
    """``[T]`` / ``[C, T]`` / ``[B, C, T]`` (tensor or array, float or integer PCM) as float ``[B, C, T]``."""
    x = wav if isinstance(wav, Tensor) else torch.from_numpy(np.asarray(wav))
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        x = x.float() / float(-info.min if info.min < 0 else info.max)
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] < 1:
        raise ValueError(f"expected a waveform [T], [C, T] or [B, C, T] with T >= 1, got {tuple(x.shape)}")
    return x.float()


def prepare_waveform(wav: Any, sample_rate: int, channels: int, model_rate: int,
                     device: str | torch.device = "cpu") -> Tensor:
    """``wav`` as a model of ``channels`` at ``model_rate`` takes it: float ``[B, channels, T']`` (channels
    mapped as `downmix` does, resampled by `Resampler`). A pipeline that decodes apart from the model
    (``ncodec.corpus``) prepares with this, so its tokens equal the tokenizer's own."""
    x = _as_batch(wav).to(device)
    x = downmix(x, channels)
    if int(sample_rate) != int(model_rate):
        x = Resampler(int(sample_rate), int(model_rate)).process(x, final=True)
    return x


#: the encoder's CPU threads by default: one, so that tokens never depend on the thread count
ENCODE_THREADS = 1


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside (None: unchanged), restored after."""
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class Tokenizer:
    """Audio <-> tokens with a `SEANetCodecModel` or `DACModel` (or an ``encodec`` codec, a zoo name or a
    weights path)."""

    def __init__(self, codec_or_model: SEANetCodecModel | DACModel | NeuralAudioCodec | str | os.PathLike | None = None,
                 bandwidth: float | None = None, device: str | torch.device | None = None,
                 threads: int | None = ENCODE_THREADS):
        model: SEANetCodecModel | DACModel
        #: CPU threads the encoder runs on (None: torch's setting). Float convolutions sum in another order on
        #: another thread count, and a code near a decision boundary flips: a fixed count makes a file's
        #: tokens the same whatever the machine's setting (``ncodec tokenize``, the Ray engine's actors).
        self.threads = threads
        dac = None if isinstance(codec_or_model, (SEANetCodecModel, DACModel, NeuralAudioCodec)) \
            else _dac_file(codec_or_model)
        if isinstance(codec_or_model, (SEANetCodecModel, DACModel)):
            model = codec_or_model
        elif dac is not None:
            model = load_audio_model(dac)[0]
        else:
            codec = codec_or_model if isinstance(codec_or_model, NeuralAudioCodec) else \
                NeuralAudioCodec(model=codec_or_model, bandwidth=bandwidth)
            model = codec.net
            if bandwidth is None and codec.requested is not None:
                bandwidth = codec.requested
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        if bandwidth is None:
            bandwidth = (max(model.target_bandwidths) if isinstance(model, DACModel) else
                         6.0 if 6.0 in model.target_bandwidths else min(model.target_bandwidths))
        self.num_codebooks = model.num_codebooks(bandwidth)  # validates
        self.bandwidth = model.bandwidth(self.num_codebooks) if isinstance(model, DACModel) else float(bandwidth)

    # ------------------------------------------------------------ facts
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def channels(self) -> int:
        return self.model.channels

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    @property
    def codebook_size(self) -> int:
        model = self.model
        return model.codebook_size if isinstance(model, DACModel) else 1 << model.bits_per_codebook

    def pattern(self, name: str, **options: Any) -> Pattern:
        """The interleaving pattern ``name`` (parallel, delay, flatten, coarse_first, stack_and_delay) for
        this tokenizer's codebooks."""
        return get_pattern(name, self.num_codebooks, **options)

    # ------------------------------------------------------------ coding
    def prepare(self, wav: Any, sample_rate: int) -> Tensor:
        """``wav`` as the model takes it: float ``[B, channels, T']`` at its rate, on its device."""
        return prepare_waveform(wav, sample_rate, self.channels, self.sample_rate, self.device)

    @torch.no_grad()
    def encode_with_scales(self, wav: Any, sample_rate: int) -> EncodedAudio:
        """Codes, segment volumes (normalising models, else None) and length at the model's rate."""
        with _threads(self.threads if self.device.type == "cpu" else None):
            return self._encode_with_scales(wav, sample_rate)

    def _encode_with_scales(self, wav: Any, sample_rate: int) -> EncodedAudio:
        x = self.prepare(wav, sample_rate)
        if isinstance(self.model, DACModel):
            return EncodedAudio(self.model.encode(x, self.num_codebooks), None, int(x.shape[-1]))
        chunk = int(CHUNK_SECONDS * self.sample_rate)
        if not is_streamable(self.model) or x.shape[-1] <= chunk:
            return self.model.encode(x, self.bandwidth)
        stream = streaming(self.model.encoder)
        codes = [self.model.quantizer.encode(stream(x[..., s:s + chunk], final=s + chunk >= x.shape[-1]),
                                             self.num_codebooks) for s in range(0, x.shape[-1], chunk)]
        return EncodedAudio(torch.cat(codes, dim=-1), None, int(x.shape[-1]))

    def encode(self, wav: Any, sample_rate: int) -> Tensor:
        """Tokens ``LongTensor [B, K, T]`` of ``wav`` (``[T]``, ``[C, T]`` or ``[B, C, T]`` at ``sample_rate``)."""
        return self.encode_with_scales(wav, sample_rate).codes

    @torch.no_grad()
    def decode(self, codes: Tensor, scales: Tensor | None = None, length: int | None = None) -> Tensor:
        """Waveform ``[B, channels, samples]`` at the model's rate from tokens ``[B, k <= K, T]`` (``scales``
        and ``length`` as `encode_with_scales` gave them; without, unit volumes and whole frames)."""
        model = self.model
        codes = codes.to(self.device).long()
        if codes.ndim == 2:
            codes = codes[None]
        if isinstance(model, DACModel):
            return model.decode_codes(codes, length)
        if model.segment is not None:
            if length is None:
                length = self.length_for_frames(codes.shape[-1])
            if scales is None and model.normalize:
                scales = torch.ones(codes.shape[0], len(model.segments(length)), device=self.device)
            return model.decode(codes, scales, length)
        chunk = int(CHUNK_SECONDS * self.frame_rate)
        if is_streamable(model) and codes.shape[-1] > chunk:
            stream = streaming(model.decoder)
            wav = torch.cat([stream(model.quantizer.decode(codes[..., s:s + chunk]), final=s + chunk >= codes.shape[-1])
                             for s in range(0, codes.shape[-1], chunk)], dim=-1)
            return wav if length is None else wav[..., :length]
        return model.decode(codes, scales, length)

    def length_for_frames(self, frames: int) -> int:
        """The longest signal (samples at the model's rate) whose codes have ``frames`` frames."""
        model = self.model
        if isinstance(model, DACModel):
            return frames * model.hop_length

        def count(n: int) -> int:
            return sum(model.encoder.frames(size) for _, size in model.segments(n))

        lo, hi = 1, frames * model.encoder.hop_length
        if count(hi) < frames:
            raise ValueError(f"no signal makes {frames} frames")
        while lo < hi:  # the largest n with count(n) <= frames
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if count(mid) <= frames else (lo, mid - 1)
        if count(lo) != frames:
            raise ValueError(f"no signal makes exactly {frames} frames")
        return lo

    # ------------------------------------------------------------ batches
    @torch.no_grad()
    def encode_batch(self, waves: Sequence[Any], sample_rates: Sequence[int] | int
                     ) -> list[tuple[Tensor, Tensor | None]]:
        """Codes ``[K, T_i]`` (and volumes, normalising models) of signals ``[C_i, T_i]`` of any lengths.

        Each signal is coded on its own, exactly as `encode_with_scales` codes it: a file's tokens
        never depend on what else is in its batch. (Padding signals to a common length and coding
        them together changed codes: float convolutions give slightly different numbers for other
        shapes, and a code near a decision boundary flips.)
        """
        rates = [sample_rates] * len(waves) if isinstance(sample_rates, int) else list(sample_rates)
        if len(rates) != len(waves):
            raise ValueError("one sample rate per signal")
        out = []
        for wav, rate in zip(waves, rates):
            encoded = self.encode_with_scales(wav, rate)
            if encoded.codes.shape[0] != 1:
                raise ValueError("encode_batch takes single signals [T] or [C, T]")
            out.append((encoded.codes[0], None if encoded.scales is None else encoded.scales[0]))
        return out


def _dac_file(model: str | os.PathLike) -> Path | None:
    """The zoo file or path of a DAC model, None when ``model`` names something else."""
    name = str(model)
    if name.endswith(".safetensors") or os.sep in name or Path(name).is_file():
        path = Path(name)
        try:
            return path if read_metadata(path).get("architecture") in DAC_CONFIGS else None
        except ModelFileError:
            return None
    try:
        entry = find_audio_model(name)
    except ModelFileError:
        return None
    return entry.path if entry.architecture in DAC_CONFIGS else None


def open_tokenizer(model: str | os.PathLike | None = None, bandwidth: float | None = None,
                   device: str | None = None) -> tuple[Tokenizer, str, str]:
    """The tokenizer of an audio model (a zoo name, a weights path, or the default model), with the model's
    name and hash: what a token folder records (`ncodec.tokenizers.folder.tokenize_folder`)."""
    dac = _dac_file(model) if model is not None else None
    if dac is not None:
        net, facts = load_audio_model(dac)
        tokenizer = Tokenizer(net, bandwidth=bandwidth, device=device)
        return tokenizer, str(facts["name"]), str(facts["hash"])
    codec = NeuralAudioCodec(model=model, bandwidth=bandwidth, device=device or "cpu")
    return Tokenizer(codec, bandwidth=codec.bandwidth), str(codec.facts["name"]), str(codec.model_hash())
