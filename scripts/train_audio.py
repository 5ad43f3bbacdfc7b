"""Train ncodec's SEANet + residual-VQ audio codec (EnCodec-style) for the ``encodec`` codec.

Random mono segments (default 1 s) from folders of audio, read with soundfile at random
offsets and resampled to the model's rate with `ncodec.media.resample`; the model is
`SEANetCodecModel.build` with size options (``--tiny`` for a CPU smoke run) or EnCodec's
24 kHz configuration. Loss = ``--mel-weight`` x multi-scale mel L1 + ``--stft-weight`` x
multi-resolution STFT (spectral convergence + log magnitude) + ``--commit-weight`` x the
residual VQ's commitment loss (+ ``--l1-weight`` x waveform L1), and with ``--adversarial``
the hinge loss and relative feature matching of a multi-scale STFT discriminator trained on
its own optimizer from ``--adv-start``, the generator's adversarial weights ramping up over
``--adv-warmup`` steps. Quantizer dropout: every batch element codes with the codebooks of
one of the model's bandwidths drawn at random (with probability ``--quantizer-dropout``,
else all of them), so one model serves every bandwidth (1.5 / 3 / 6 / 12 kbps by default).
The codebooks are EMA k-means codebooks (k-means initialised on the first batch, dead codes
restarted). AMP (``--amp``: bf16 on CPU, fp16 with loss scaling on CUDA), gradient
clipping, linear warm-up then cosine learning-rate decay, checkpoints to resume from
(``checkpoint.pt`` in ``--out``, loaded with ``weights_only``), a progress bar, and
periodic validation that writes real ``encodec`` bitstreams of the ``--val`` files at every
bandwidth (the code prior counted on a fixed set of training segments first) and reports
their mel distance, SI-SDR and actual kbps. At the end the per-codebook code prior is
counted on ``--prior-seconds`` of training audio and the model is saved as an ncodec audio
zoo file (``<out>/<name>.safetensors``) for ``ncodec compress --codec encodec --model FILE``.

    python scripts/train_audio.py --data ../shared/data/audio/speech/train ../shared/data/audio/music/train \\
        --val ../shared/data/audio/speech/dev ../shared/data/audio/music/dev --steps 200000 --batch 16 \\
        --amp --adversarial --adv-start 20000 --out runs/seanet24
    python scripts/train_audio.py --data ../shared/data/audio/speech/train --val ../shared/data/audio/speech/dev \\
        --val-max 1 --steps 20 --tiny --out /tmp/audio-smoke      # CPU smoke run, about a minute
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncodec import bitstream
from ncodec.train.discriminators import (MultiScaleSTFTDiscriminator, discriminator_hinge_loss, feature_matching_loss,
                                         generator_hinge_loss)
from ncodec.models.audio.encodec import SEANetCodecModel
from ncodec.train.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from ncodec.codecs.audio.neural import NeuralAudioCodec, model_identity
from ncodec.zoo.audio import build_audio_model, load_audio_model, save_audio_model
from ncodec.train.priors import fit_prior
from ncodec.media.formats import media_files
from ncodec.media.types import Audio
from ncodec.eval.metrics import mel_distance, si_sdr
from ncodec.progress import Progress
from ncodec.quantizers.base import QuantizerOutput
from ncodec.media.resample import Resampler

#: Model size presets: SEANet arguments (`SEANetCodecModel.build`), bandwidths and training sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_filters=4, dimension=32, ratios=[8, 5, 4, 2], lstm=1, n_residual_layers=1,
                 bandwidths=[1.5, 3.0, 6.0, 12.0], batch=4, segment=1.0, disc_filters=4, prior_seconds=30.0,
                 threads=1),
    "small": dict(n_filters=16, dimension=64, ratios=[8, 5, 4, 2], lstm=1, n_residual_layers=1,
                  bandwidths=[1.5, 3.0, 6.0, 12.0], batch=8, segment=1.0, disc_filters=16, prior_seconds=300.0),
    "base": dict(n_filters=32, dimension=128, ratios=[8, 5, 4, 2], lstm=2, n_residual_layers=1,
                 bandwidths=[1.5, 3.0, 6.0, 12.0], batch=16, segment=1.0, disc_filters=32, prior_seconds=600.0),
    # EnCodec's own 24 kHz model (32 codebooks, 1.5 ... 24 kbps); the size options do not apply
    "encodec_24khz": dict(bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], batch=16, segment=1.0, disc_filters=32,
                          prior_seconds=600.0),
}
SIZE_OPTIONS = ("n_filters", "dimension", "ratios", "lstm", "n_residual_layers")
LOSS_TERMS = ("mel", "stft", "l1", "commit", "adv", "feat")
CODEBOOK_BITS = 10  # SEANetCodecModel.build and the encodec container use 1024-code codebooks


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class AudioFile:
    """An audio file's path and facts (soundfile's)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int


def scan_audio(folders: Sequence[str | Path]) -> list[AudioFile]:
    """Every readable audio file of the folders (sorted per folder), skipping empty ones."""
    import soundfile as sf

    out = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise SystemExit(f"no audio folder {folder}")
        for path in media_files(folder, "audio"):
            try:
                info = sf.info(str(path))
            except RuntimeError as exc:
                print(f"skipping {path}: {exc}", file=sys.stderr)
                continue
            if info.frames > 0:
                out.append(AudioFile(path, int(info.samplerate), int(info.channels), int(info.frames)))
    return out


class SegmentSampler:
    """Random mono segments of a set of files at the model's rate, read (and resampled) on demand.

    Files are drawn in proportion to their duration and the segment start uniformly; a
    margin of real signal around the segment feeds the resampler's filter, so segments
    have no edge transients; files shorter than a segment are zero-padded.
    """

    def __init__(self, files: Sequence[AudioFile], sample_rate: int, seconds: float, margin: float = 0.005):
        if not files:
            raise SystemExit("no training audio")
        self.files, self.rate = list(files), int(sample_rate)
        self.length = max(1, round(seconds * self.rate))
        self.margin = float(margin)
        weights = np.array([f.frames / f.sample_rate for f in self.files], dtype=np.float64)
        self.weights = weights / weights.sum()
        self._resamplers: dict[int, Resampler] = {}

    def _resampler(self, rate: int) -> Resampler:
        if rate not in self._resamplers:
            self._resamplers[rate] = Resampler(rate, self.rate)
        return self._resamplers[rate]

    def read(self, file: AudioFile, gen: np.random.Generator) -> Tensor:
        """One segment ``[1, length]`` (float32, channel mean) from a random place of ``file``."""
        import soundfile as sf

        rate = file.sample_rate
        step = rate // math.gcd(rate, self.rate)  # source starts on this grid map to whole output samples
        need = math.ceil(self.length * rate / self.rate)
        start = step * int(gen.integers(0, max(0, file.frames - need) // step + 1))
        margin = 0 if rate == self.rate else step * math.ceil(self.margin * rate / step)
        lo = start - margin if start >= margin else 0
        hi = min(file.frames, start + need + margin)
        with sf.SoundFile(str(file.path)) as f:
            f.seek(lo)
            data = f.read(hi - lo, dtype="float32", always_2d=True)
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
        return torch.stack([self.read(self.files[i], gen) for i in picks])

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
    import soundfile as sf

    per_folder = [scan_audio([f]) for f in folders]
    picked: list[AudioFile] = []
    for i in range(max((len(p) for p in per_folder), default=0)):
        picked += [p[i] for p in per_folder if i < len(p)]
    clips = []
    for file in picked[:limit]:
        data, rate = sf.read(str(file.path), frames=round(seconds * file.sample_rate), dtype="float32",
                             always_2d=True)
        clips.append((file.path.name, Audio(np.ascontiguousarray(data.mean(axis=1)), int(rate))))
    return clips


# ------------------------------------------------------------------ model
def bandwidths_for(codebooks: int, frame_rate: int) -> list[float]:
    """Bandwidths (kbps) of 2, 4, 8, ... codebooks and of ``codebooks`` itself."""
    per = CODEBOOK_BITS * frame_rate / 1000
    counts = sorted({k for k in (2 ** i for i in range(1, 12)) if k < codebooks} | {codebooks})
    return [round(per * k, 6) for k in counts]


def model_config(args: argparse.Namespace) -> tuple[str, dict[str, Any] | None]:
    """(architecture, `SEANetCodecModel.build` arguments or None) from the options."""
    if args.preset == "encodec_24khz":
        return "encodec_24khz", None
    preset = PRESETS[args.preset]
    seanet = {k: getattr(args, k) if getattr(args, k) is not None else preset[k] for k in SIZE_OPTIONS}
    seanet["ratios"] = [int(r) for r in seanet["ratios"]]
    bands = args.bandwidths or preset["bandwidths"]
    if args.codebooks:
        frame_rate = math.ceil(args.sample_rate / math.prod(seanet["ratios"]))
        bands = bandwidths_for(args.codebooks, frame_rate)
    return "seanet", dict(target_bandwidths=[float(b) for b in bands], sample_rate=args.sample_rate, channels=1,
                          causal=args.causal, norm="weight_norm", name=args.name, **seanet)


def build(architecture: str, config: dict[str, Any] | None) -> SEANetCodecModel:
    """The model through the loader's own builder, so the saved file is sure to load."""
    model = build_audio_model(architecture, config)
    for b in model.target_bandwidths:  # every bandwidth must be a distinct whole number of codebooks
        if abs(model.num_codebooks(b) * model.bandwidth_per_codebook - b) > 1e-6:
            raise SystemExit(f"bandwidth {b} kbps is not a whole number of {model.bandwidth_per_codebook} kbps "
                             f"codebooks at {model.frame_rate} frames/s")
    return model


# ------------------------------------------------------------------ training
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
            sc, logmag = self.stft.terms(y32, x)
            loss = a.mel_weight * mel + a.stft_weight * (sc + logmag) + a.commit_weight * q.loss.float()
            record.update(mel=float(mel.detach()), stft_sc=float(sc.detach()), stft_mag=float(logmag.detach()),
                          commit=float(q.loss.detach()))
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


# ------------------------------------------------------------------ prior and validation
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


# ------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", required=True, help="folders of training audio")
    g.add_argument("--val", nargs="*", default=[], help="folders of validation audio (real bitstreams are written)")
    g.add_argument("--val-max", type=int, default=4, help="validation files (the first N, folders in turn)")
    g.add_argument("--val-seconds", type=float, default=10.0, help="seconds of each validation file")
    g.add_argument("--val-every", type=int, default=5000)
    g.add_argument("--val-prior-seconds", type=float, default=16.0,
                   help="training audio the validation prior is counted on (a fixed draw)")
    g.add_argument("--segment", type=float, help="seconds per training segment (preset's by default)")
    g.add_argument("--batch", type=int, help="segments per step (preset's by default)")
    m = p.add_argument_group("model")
    m.add_argument("--preset", choices=list(PRESETS), default="base",
                   help="model size; encodec_24khz is EnCodec's 24 kHz architecture (size options ignored)")
    m.add_argument("--tiny", dest="preset", action="store_const", const="tiny", help="= --preset tiny (smoke runs)")
    m.add_argument("--filters", dest="n_filters", type=int, help="SEANet channels of the first layer (doubling)")
    m.add_argument("--dimension", type=int, help="latent (codebook) dimension")
    m.add_argument("--ratios", type=lambda s: [int(r) for r in s.split(",")], help="decoder strides, e.g. 8,5,4,2")
    m.add_argument("--lstm", type=int, help="LSTM layers at the bottleneck")
    m.add_argument("--residual-layers", dest="n_residual_layers", type=int, help="residual units per stage")
    m.add_argument("--bandwidths", type=lambda s: [float(b) for b in s.split(",")],
                   help="kbps the model serves, e.g. 1.5,3,6,12 (the highest sets the number of codebooks)")
    m.add_argument("--codebooks", type=int,
                   help="number of codebooks (of 1024 codes); bandwidths become those of 2, 4, 8, ... and this many")
    m.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)
    m.add_argument("--sample-rate", type=int, default=24000)
    m.add_argument("--name", help="model name (file <out>/<name>.safetensors; default: the --out folder's name)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=100000)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--lr-final", type=float, default=0.1, help="final learning rate, as a fraction of --lr")
    t.add_argument("--warmup", type=int, default=1000, help="warm-up steps (at most a tenth of --steps)")
    t.add_argument("--clip", type=float, default=10.0, help="gradient norm clipping")
    t.add_argument("--mel-weight", type=float, default=15.0)
    t.add_argument("--stft-weight", type=float, default=1.0)
    t.add_argument("--l1-weight", type=float, default=0.0, help="waveform L1 (EnCodec uses 0.1)")
    t.add_argument("--commit-weight", type=float, default=1.0)
    t.add_argument("--quantizer-dropout", type=float, default=1.0,
                   help="probability that a batch element codes at a random bandwidth rather than the highest")
    t.add_argument("--adversarial", action="store_true", help="add the multi-scale STFT discriminator")
    t.add_argument("--adv-start", type=int, default=0, help="step the discriminator starts training at")
    t.add_argument("--adv-warmup", type=int, default=1000, help="steps the generator's adversarial weights ramp over")
    t.add_argument("--adv-weight", type=float, default=3.0)
    t.add_argument("--feat-weight", type=float, default=3.0)
    t.add_argument("--disc-lr", type=float, help="discriminator learning rate (default --lr)")
    t.add_argument("--disc-filters", type=int, help="discriminator channels (preset's by default)")
    t.add_argument("--prior-seconds", type=float, help="training audio the saved prior is counted on")
    t.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 + loss scaling on CUDA)")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--threads", type=int, help="torch CPU threads (tiny preset: 1, as its small convolutions gain "
                   "nothing from more and busy-wait on a shared CPU)")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, <name>.safetensors")
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    for key in ("batch", "segment", "disc_filters", "prior_seconds", "threads"):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key))
    args.name = args.name or Path(args.out).resolve().name
    if args.preset == "encodec_24khz" and any(getattr(args, k) is not None for k in (*SIZE_OPTIONS, "codebooks")):
        p.error("the encodec_24khz preset has a fixed size: drop the size options")
    if args.preset == "encodec_24khz" and (args.sample_rate != 24000 or not args.causal):
        p.error("the encodec_24khz preset is causal and 24 kHz")
    if not 0 <= args.quantizer_dropout <= 1:
        p.error("--quantizer-dropout is a probability")
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    """Train, save the model file and return its path."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    architecture, config = model_config(args)
    model = build(architecture, config)
    trainer = Trainer(model, args, device)
    identity = json.dumps({"architecture": architecture, "config": config, "adversarial": args.adversarial},
                          sort_keys=True)
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():  # resume: tensors, numbers and strings only, loaded without unrestricted pickle
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("identity") != identity:
            raise SystemExit(f"{ckpt} is another model's ({state.get('identity')}); use another --out")
        trainer.load_state_dict(state)
        step = int(state["step"])
        torch.manual_seed(args.seed + step)
        gen = np.random.default_rng(args.seed + step)
        print(f"resumed {ckpt} at step {step}", flush=True)
    train = SegmentSampler(scan_audio(args.data), model.sample_rate, args.segment)
    clips = load_validation(args.val, args.val_max, args.val_seconds) if args.val else []
    size = sum(p.numel() for p in model.parameters())
    print(f"{args.name}: {architecture}, {size / 1e6:.2f} M parameters, {model.quantizer.num_codebooks} codebooks "
          f"of 1024 at {model.frame_rate} Hz, bandwidths {model.target_bandwidths} kbps; {len(train.files)} training "
          f"files, {len(clips)} validation clips; batch {args.batch} x {args.segment:g} s on {device}"
          + (", adversarial" if args.adversarial else "") + (f", amp {trainer.amp_dtype}" if args.amp else ""),
          flush=True)
    log = (out / "log.jsonl").open("a")
    started = time.monotonic()
    last_val: dict[str, Any] | None = None
    with Progress(args.steps - step, f"train {args.name}") as bar:
        while step < args.steps:
            x = train.batch(args.batch, gen).to(device)
            record: dict[str, Any] = {"step": step + 1, **trainer.step(x, step)}
            step += 1
            bar.update()
            record["seconds"] = round(time.monotonic() - started, 3)
            due = step % args.val_every == 0 or step == args.steps
            if clips and due:
                count_prior(model, train.batches(args.val_prior_seconds, args.batch, args.seed + 1), device)
                last_val = record["val"] = validate(model, clips, device)
                print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if due:
                torch.save({**trainer.state_dict(), "step": step, "identity": identity}, ckpt)
    log.close()
    frames = count_prior(model, train.batches(args.prior_seconds, args.batch, args.seed + 2), device)
    path = out / f"{args.name}.safetensors"
    meta = {"name": args.name, "steps": step, "data": ",".join(Path(d).name for d in args.data),
            "trained_by": "scripts/train_audio.py", "prior_frames": frames,
            "losses": json.dumps({k: getattr(args, f"{k}_weight") for k in LOSS_TERMS
                                  if k not in ("adv", "feat") or args.adversarial})}
    if last_val is not None:
        meta["validation"] = json.dumps(last_val, sort_keys=True)
    save_audio_model(model.cpu(), path, architecture, config, **meta)
    _, facts = load_audio_model(path)
    assert facts["hash"] == model_identity(model), "the saved model does not load back identically"
    print(f"saved {path} ({facts['architecture']}, prior counted on {frames} frames, hash {facts['hash'][:16]})",
          flush=True)
    return path


if __name__ == "__main__":
    main()
