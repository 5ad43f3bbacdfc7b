"""The training loop of the neural audio codecs (`SEANetCodecModel`): random segments from audio
folders, the `Trainer` (spectral losses, commitment, optional MS-STFT discriminator, AMP, clipping,
warm-up then cosine learning rate), prior counting and validation through real ``encodec`` streams.

``scripts/train_audio.py`` is the command line over this module (model presets, options, the run).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import bitstream
from ..codecs.audio.neural import NeuralAudioCodec
from ..eval.metrics import mel_distance, si_sdr
from ..errors import MediaError
from ..media.formats import media_files
from ..media.io import audio_info, read_audio_frames
from ..media.resample import Resampler
from ..media.types import Audio
from ..models.audio.encodec import SEANetCodecModel
from ..quantizers.base import QuantizerOutput
from .discriminators import (MultiScaleSTFTDiscriminator, discriminator_hinge_loss, feature_matching_loss,
                             generator_hinge_loss)
from .losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from .priors import fit_prior

__all__ = ["AudioFile", "SegmentSampler", "Trainer", "cosine_lr", "count_prior", "load_validation", "scan_audio",
           "validate"]

@dataclass(frozen=True)
class AudioFile:
    """An audio file's path and facts (from its header)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int


def scan_audio(folders: Sequence[str | Path]) -> list[AudioFile]:
    """Every readable audio file of the folders (sorted per folder), skipping empty ones."""
    out = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise SystemExit(f"no audio folder {folder}")
        for path in media_files(folder, "audio"):
            try:
                rate, channels, frames = audio_info(path)
            except MediaError as exc:
                print(f"skipping {path}: {exc}", file=sys.stderr)
                continue
            if frames > 0:
                out.append(AudioFile(path, rate, channels, frames))
    return out


#: sample rates of the band-limited sources `SegmentSampler` imitates (``band_limit``): speech at 8 / 16 kHz,
#: 11.025 / 22.05 kHz game and web audio, upsampled to the model's rate
SOURCE_RATES = (8000, 11025, 16000, 22050, 32000)


def low_pass(x: Tensor, sample_rate: int, cutoff: float, taper: float = 200.0) -> Tensor:
    """``x`` ``[..., T]`` with nothing above ``cutoff`` Hz (an FFT mask with a ``taper``-Hz cosine edge), as
    a source sampled at ``2 * cutoff`` and resampled up sounds."""
    spec = torch.fft.rfft(x.float(), dim=-1)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / sample_rate)
    edge = ((cutoff - freqs) / taper).clamp(0, 1)
    mask = 0.5 - 0.5 * torch.cos(torch.pi * edge)
    return torch.fft.irfft(spec * mask, n=x.shape[-1], dim=-1).to(x.dtype)


class SegmentSampler:
    """Random mono segments of a set of files at the model's rate, read (and resampled) on demand.

    Files are drawn in proportion to their duration and the segment start uniformly. Two
    augmentations: each segment's level is jittered by up to ``gain_db`` decibels either way,
    and with probability ``band_limit`` a segment is low-passed at half one of `SOURCE_RATES`
    (so the model learns to leave empty the bands an upsampled source has empty); a
    margin of real signal around the segment feeds the resampler's filter, so segments
    have no edge transients; files shorter than a segment are zero-padded.
    """

    def __init__(self, files: Sequence[AudioFile], sample_rate: int, seconds: float, margin: float = 0.005,
                 gain_db: float = 0.0, band_limit: float = 0.0):
        if not files:
            raise SystemExit("no training audio")
        self.files, self.rate = list(files), int(sample_rate)
        self.length = max(1, round(seconds * self.rate))
        self.margin = float(margin)
        self.gain_db = float(gain_db)  # each segment is scaled by a gain drawn uniformly in +-gain_db
        self.band_limit = float(band_limit)  # probability that a segment is low-passed like an upsampled source
        weights = np.array([f.frames / f.sample_rate for f in self.files], dtype=np.float64)
        self.weights = weights / weights.sum()
        self._resamplers: dict[int, Resampler] = {}

    def _resampler(self, rate: int) -> Resampler:
        if rate not in self._resamplers:
            self._resamplers[rate] = Resampler(rate, self.rate)
        return self._resamplers[rate]

    def read(self, file: AudioFile, gen: np.random.Generator) -> Tensor:
        """One segment ``[1, length]`` (float32, channel mean) from a random place of ``file``."""
        rate = file.sample_rate
        step = rate // math.gcd(rate, self.rate)  # source starts on this grid map to whole output samples
        need = math.ceil(self.length * rate / self.rate)
        start = step * int(gen.integers(0, max(0, file.frames - need) // step + 1))
        margin = 0 if rate == self.rate else step * math.ceil(self.margin * rate / step)
        lo = start - margin if start >= margin else 0
        hi = min(file.frames, start + need + margin)
        data, _ = read_audio_frames(file.path, lo, hi - lo)
        x = torch.from_numpy(data.mean(axis=1))
        if rate != self.rate:
            x = self._resampler(rate).process(x, final=True)
        skip = (start - lo) * self.rate // rate
        x = x[skip:skip + self.length]
        if x.shape[-1] < self.length:
            x = torch.nn.functional.pad(x, (0, self.length - x.shape[-1]))
        return x[None]

    def batch(self, size: int, gen: np.random.Generator) -> Tensor:
        """``size`` segments ``[size, 1, length]``."""
        picks = gen.choice(len(self.files), size=size, p=self.weights)
        batch = torch.stack([self.read(self.files[i], gen) for i in picks])
        if self.gain_db:
            db = gen.uniform(-self.gain_db, self.gain_db, size)
            batch = batch * torch.from_numpy(10.0 ** (db / 20)).float().view(-1, 1, 1)
        if self.band_limit:
            for i in np.flatnonzero(gen.random(size) < self.band_limit):
                cutoff = float(gen.choice([r / 2 for r in SOURCE_RATES if r < self.rate]))
                batch[i] = low_pass(batch[i], self.rate, cutoff)
        return batch

    def batches(self, seconds: float, size: int, seed: int) -> Iterator[Tensor]:
        """Batches of random segments totalling about ``seconds`` (a fixed draw for a given seed)."""
        gen = np.random.default_rng(seed)
        left = max(1, math.ceil(seconds * self.rate / self.length))
        while left > 0:
            n = min(size, left)
            left -= n
            yield self.batch(n, gen)


def load_validation(folders: Sequence[str], limit: int, seconds: float) -> list[tuple[str, Audio]]:
    """The first ``limit`` files (taken from the folders in turn), their first ``seconds``, mixed to mono."""
    per_folder = [scan_audio([f]) for f in folders]
    picked: list[AudioFile] = []
    for i in range(max((len(p) for p in per_folder), default=0)):
        picked += [p[i] for p in per_folder if i < len(p)]
    clips = []
    for file in picked[:limit]:
        data, rate = read_audio_frames(file.path, 0, round(seconds * file.sample_rate))
        clips.append((file.path.name, Audio(np.ascontiguousarray(data.mean(axis=1)), int(rate))))
    return clips


def cosine_lr(step: int, steps: int, warmup: int, final: float) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine from 1 down to ``final``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    """The model, losses, optional discriminator, optimizers and loss scaler, and one training `step`."""

    def __init__(self, model: SEANetCodecModel, args: argparse.Namespace, device: torch.device):
        self.model, self.args, self.device = model.to(device).train(), args, device
        self.mel = MultiScaleMelLoss(model.sample_rate).to(device)
        self.stft = MultiResolutionSTFTLoss().to(device)
        self.opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.5, 0.9))
        self.disc: MultiScaleSTFTDiscriminator | None = None
        self.disc_opt: torch.optim.Optimizer | None = None
        if args.adversarial:
            self.disc = MultiScaleSTFTDiscriminator(args.disc_filters, in_channels=model.channels).to(device).train()
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=args.disc_lr or args.lr, betas=(0.5, 0.9))
        self.amp = bool(args.amp)
        self.amp_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp and device.type == "cuda")
        self.levels = torch.tensor([model.num_codebooks(b) for b in model.target_bandwidths], device=device)

    def active_codebooks(self, batch: int) -> Tensor:
        """Codebooks per batch element: a random bandwidth's (probability ``quantizer_dropout``), else all."""
        top = torch.full((batch,), int(self.levels.max()), device=self.device)
        drawn = self.levels[torch.randint(len(self.levels), (batch,), device=self.device)]
        keep = torch.rand(batch, device=self.device) < self.args.quantizer_dropout
        return torch.where(keep, drawn, top)

    def reconstruct(self, x: Tensor, n_active: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Decoded waveform (same length as ``x``) and the quantizer's output, with gradients."""
        m = self.model
        q = m.quantizer(m.encoder(x), n_active=n_active)
        return m.decoder(q.quantized)[..., :x.shape[-1]], q

    def adversarial_weight(self, step: int) -> float:
        """0 before ``adv_start``, then a linear ramp to 1 over ``adv_warmup`` steps."""
        if self.disc is None or step < self.args.adv_start:
            return 0.0
        return min(1.0, (step - self.args.adv_start + 1) / max(1, self.args.adv_warmup))

    def _clip_step(self, opt: torch.optim.Optimizer, params: Any) -> float:
        self.scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, self.args.clip)
        self.scaler.step(opt)
        return float(norm)

    def step(self, x: Tensor, step: int) -> dict[str, float]:
        """One optimisation step on waveforms ``x`` ``[B, 1, T]`` (and one of the discriminator's)."""
        a = self.args
        factor = cosine_lr(step, a.steps, min(a.warmup, max(1, a.steps // 10)), a.lr_final)
        for group in self.opt.param_groups:
            group["lr"] = a.lr * factor
        n_active = self.active_codebooks(x.shape[0])
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)
        with autocast:
            y, q = self.reconstruct(x, n_active)
        record: dict[str, float] = {"lr": a.lr * factor, "codebooks": float(n_active.float().mean())}
        adv_w = self.adversarial_weight(step)
        if self.disc is not None and self.disc_opt is not None and step >= a.adv_start:
            for group in self.disc_opt.param_groups:
                group["lr"] = (a.disc_lr or a.lr) * factor
            with autocast:
                real, _ = self.disc(x)
                fake, _ = self.disc(y.detach())
                d_loss = discriminator_hinge_loss(real, fake)
            self.disc_opt.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            record["disc_grad"] = self._clip_step(self.disc_opt, self.disc.parameters())
            record["disc"] = float(d_loss.detach())
        with autocast:
            y32 = y.float()
            mel = self.mel(y32, x)
            loss = a.mel_weight * mel + a.commit_weight * q.loss.float()
            record.update(mel=float(mel.detach()), commit=float(q.loss.detach()))
            if a.stft_weight:  # the multi-resolution STFT costs as much as the mel loss: skipped at weight 0
                sc, logmag = self.stft.terms(y32, x)
                loss = loss + a.stft_weight * (sc + logmag)
                record.update(stft_sc=float(sc.detach()), stft_mag=float(logmag.detach()))
            if a.l1_weight:
                l1 = (y32 - x).abs().mean()
                loss = loss + a.l1_weight * l1
                record["l1"] = float(l1.detach())
            if adv_w > 0 and self.disc is not None:
                self.disc.requires_grad_(False)  # the generator's losses leave the discriminator alone
                try:
                    fake, fake_maps = self.disc(y)
                    with torch.no_grad():
                        _, real_maps = self.disc(x)
                finally:
                    self.disc.requires_grad_(True)
                adv, feat = generator_hinge_loss(fake), feature_matching_loss(real_maps, fake_maps)
                loss = loss + adv_w * (a.adv_weight * adv + a.feat_weight * feat)
                record.update(adv=float(adv.detach()), feat=float(feat.detach()), adv_weight=adv_w)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        record["grad"] = self._clip_step(self.opt, self.model.parameters())
        self.scaler.update()
        record["loss"] = float(loss.detach())
        record["perplexity"] = float(q.metrics["perplexity"])
        record["utilization"] = float(q.metrics["utilization"])
        return record

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                               "scaler": self.scaler.state_dict()}
        if self.disc is not None and self.disc_opt is not None:
            out["disc"], out["disc_opt"] = self.disc.state_dict(), self.disc_opt.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.disc is not None and self.disc_opt is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])


@torch.no_grad()
def count_prior(model: SEANetCodecModel, batches: Iterator[Tensor], device: torch.device) -> int:
    """Recount the per-codebook code prior (all codebooks) on ``batches`` and build its tables; returns the frames."""
    was_training = model.training
    model.eval()
    model.quantizer.prior.counts.zero_()
    frames = 0

    def moved() -> Iterator[Tensor]:
        nonlocal frames
        for x in batches:
            frames += x.shape[0] * model.encoder.frames(x.shape[-1])
            yield x.to(device)

    fit_prior(model, moved())
    model.train(was_training)
    return frames


@torch.no_grad()
def validate(model: SEANetCodecModel, clips: Sequence[tuple[str, Audio]], device: torch.device,
             chunk_seconds: float = 10.0) -> dict[str, dict[str, float]]:
    """Per bandwidth: real ``encodec`` streams of every clip, their mean mel distance, SI-SDR and kbps.

    ``kbps`` counts the whole stream (header included), ``coded_kbps`` the code chunks only;
    ``nominal_kbps`` is the fixed-width rate the entropy coding improves on.
    """
    was_training = model.training
    out: dict[str, dict[str, float]] = {}
    try:
        for bandwidth in model.target_bandwidths:
            codec = NeuralAudioCodec(model=model, bandwidth=bandwidth, device=str(device), chunk_seconds=chunk_seconds)
            rows = []
            for _, clip in clips:
                data = codec.encode(clip)
                reader = bitstream.Reader(data)
                rates = codec.rates(reader.header, reader.chunk_table())
                decoded = codec.decode(reader)
                rows.append({"kbps": 8 * len(data) / clip.duration / 1000, "coded_kbps": rates["coded_kbps"],
                             "nominal_kbps": rates["nominal_kbps"], "mel": mel_distance(clip, decoded),
                             "si_sdr": si_sdr(clip, decoded)})
            out[f"{bandwidth:g}"] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}
    finally:
        model.train(was_training)
    return out
