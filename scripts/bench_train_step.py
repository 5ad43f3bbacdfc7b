"""Milliseconds per training step of the learned image models (per precision and memory layout) and of the
neural audio codec candidates (``--audio``).

For each architecture: a full step (forward, rate-distortion loss, backward, Adam step, the
auxiliary step) at a fixed batch and crop, in fp32 and under bf16 autocast, each with
contiguous and channels-last tensors (the layout oneDNN's kernels want). Median of
``--steps`` timed steps after ``--warmup``; ratios against fp32 printed in the same run. The
first line says what the CPU offers: bf16 pays only where oneDNN has bf16 kernels (AVX-512
BF16 or AMX); elsewhere torch falls back to a slow reference convolution.

    python scripts/bench_train_step.py --batch 8 --crop 128 --json

``--arch restoration`` times the `learned-wavelet` codec's restoration network (the shipped size, as
``scripts/train_restoration.py`` trains it: MSE on crop pairs, no rate term).

``--audio`` times the audio codec candidates instead: a full generator step of
`ncodec.train.audio.Trainer` (multi-scale mel, multi-resolution STFT and commitment losses,
quantizer dropout, Adam) on ``--batch`` one-second 24 kHz segments, in fp32 and under bf16
autocast (``--modes fp32,bf16``), for SEANet encoders with their SEANet decoders (EnCodec's
design) or with a Vocos-style decoder, and for the frame-rate pair of
`ncodec.models.audio.vocos` (STFT encoder, ConvNeXt blocks, inverse STFT) at three widths, on
the mel loss alone as ``--preset frame`` trains it. A name ending in ``+adv`` adds the
multi-scale STFT discriminator (its step and the generator's adversarial and feature losses),
e.g. ``--arch stft+vocos-384,stft+vocos-384+adv``.

    python scripts/bench_train_step.py --audio --batch 8 --modes fp32,bf16 --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ncodec.models.image.hyperprior import MeanScaleHyperprior
from ncodec.models.image.restoration import RestorationNet
from ncodec.models.image.variable_rate import GainedMeanScaleHyperprior, lambda_for
from ncodec.train.image import rd_loss

ARCHS = {"mbt2018-mean": MeanScaleHyperprior, "mbt2018-mean-gained": GainedMeanScaleHyperprior,
         "restoration": RestorationNet}
MODES = ("fp32", "fp32-channels-last", "bf16", "bf16-channels-last")


def restoration_step_times(mode: str, batch: int, crop: int, warmup: int, steps: int) -> list[float]:
    """Seconds of each timed step of the `learned-wavelet` restoration network as scripts/train_restoration.py
    trains it (the shipped size; MSE on decoded / original crop pairs, Adam)."""
    torch.manual_seed(0)
    layout = torch.channels_last if mode.endswith("channels-last") else torch.contiguous_format
    net = RestorationNet(3, 48, 96, 3).train().to(memory_format=layout)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, crop, crop).to(memory_format=layout)
    target, feat = x + 0.01 * torch.randn_like(x), torch.rand(batch)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not mode.startswith("fp32")):
            out = net(x, feat)
        loss = torch.mean((out.float() - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def step_times(arch: str, mode: str, batch: int, crop: int, n: int, m: int, warmup: int, steps: int) -> list[float]:
    """Seconds of each timed training step."""
    if arch == "restoration":
        return restoration_step_times(mode, batch, crop, warmup, steps)
    torch.manual_seed(0)
    model = ARCHS[arch](n, m).train()
    layout = torch.channels_last if mode.endswith("channels-last") else torch.contiguous_format
    model = model.to(memory_format=layout)
    aux_params = [p for k, p in model.named_parameters() if k.endswith("quantiles")]
    opt = torch.optim.Adam([p for k, p in model.named_parameters() if not k.endswith("quantiles")], lr=1e-4)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    x = torch.rand(batch, 3, crop, crop).to(memory_format=layout)
    quality = torch.rand(batch) * 7 + 1
    lmbda = lambda_for(quality).float() if arch.endswith("gained") else 0.0130
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            if arch.endswith("gained"):
                loss, _, _ = rd_loss(model, x, lmbda, quality)
            else:
                loss, _, _ = rd_loss(model, x, lmbda)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


#: audio candidates: `SEANetCodecModel.build` arguments (SEANet sizes, and the frame-rate encoder / decoder specs)
AUDIO_CANDIDATES: dict[str, dict] = {
    "seanet-small": dict(n_filters=16, dimension=64, lstm=1),
    "seanet-small+vocos": dict(n_filters=16, dimension=64, lstm=1, decoder=dict(type="vocos", width=256, blocks=6)),
    "seanet-base": dict(n_filters=32, dimension=128, lstm=2),
    "seanet-base+vocos": dict(n_filters=32, dimension=128, lstm=2, decoder=dict(type="vocos", width=384, blocks=8)),
    "stft+vocos-256": dict(dimension=128, encoder=dict(type="stft", width=256, blocks=4),
                           decoder=dict(type="vocos", width=256, blocks=6)),
    "stft+vocos-384": dict(dimension=128, encoder=dict(type="stft", width=384, blocks=6),
                           decoder=dict(type="vocos", width=384, blocks=8)),
    "stft+vocos-512": dict(dimension=128, encoder=dict(type="stft", width=512, blocks=6),
                           decoder=dict(type="vocos", width=512, blocks=8)),
    # the bundled ncodec_24khz (scripts/train_audio.py --preset frame)
    "ncodec_24khz": dict(dimension=128, encoder=dict(type="stft", width=384, blocks=4),
                         decoder=dict(type="vocos", width=384, blocks=6)),
}


def audio_step_times(name: str, batch: int, warmup: int, steps: int, amp: bool
                     ) -> tuple[list[float], float, float]:
    """Seconds of each timed generator step of an audio candidate, and its encoder's and decoder's millions of
    parameters."""
    import argparse as _argparse

    from ncodec.models.audio.encodec import SEANetCodecModel
    from ncodec.train.audio import Trainer

    torch.manual_seed(0)
    adversarial = name.endswith("+adv")  # with the MS-STFT discriminator (its own step included)
    base = name.removesuffix("+adv")
    model = SEANetCodecModel.build([1.5, 3.0, 6.0, 12.0], 24_000, 1, causal=True, ratios=[8, 5, 4, 2],
                                   n_residual_layers=1, **AUDIO_CANDIDATES[base])
    frame_rate = "encoder" in AUDIO_CANDIDATES[base]  # trained on the mel loss alone (scripts/train_audio.py --preset frame)
    args = _argparse.Namespace(lr=3e-4, lr_final=0.1, steps=100_000, warmup=1000, clip=10.0, mel_weight=15.0,
                               stft_weight=0.0 if frame_rate else 1.0, l1_weight=0.0, commit_weight=1.0,
                               quantizer_dropout=1.0, adversarial=adversarial, adv_start=0, adv_warmup=1,
                               adv_weight=3.0, feat_weight=3.0, disc_lr=None, disc_filters=16, amp=amp)
    trainer = Trainer(model, args, torch.device("cpu"))
    x = 0.1 * torch.randn(batch, 1, 24_000)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        trainer.step(x, i)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    millions = [sum(p.numel() for p in part.parameters()) / 1e6 for part in (model.encoder, model.decoder)]
    return times, millions[0], millions[1]


def main_audio(args: argparse.Namespace) -> None:
    """The audio candidates' step times, fp32 and (``--modes`` with bf16) under bf16 autocast."""
    base = None
    names = args.arch.split(",") if args.arch != ",".join(ARCHS) else list(AUDIO_CANDIDATES)
    for name in names:
        for mode in [m for m in args.modes.split(",") if m in ("fp32", "bf16")]:
            times, enc, dec = audio_step_times(name, args.batch, args.warmup, args.steps, mode == "bf16")
            ms = 1000 * statistics.median(times)
            base = base or ms
            row = {"candidate": name, "mode": mode, "batch": args.batch, "segment_s": 1.0, "ms_per_step": round(ms, 1),
                   "steps_per_s": round(1000 / ms, 2), "vs_first": round(base / ms, 2), "encoder_M": round(enc, 2),
                   "decoder_M": round(dec, 2), "threads": torch.get_num_threads()}
            print(json.dumps(row) if args.json else
                  f"{name:<22} {mode:<5} {ms:8.1f} ms/step  {1000 / ms:6.2f} steps/s  {base / ms:5.2f}x the first  "
                  f"(encoder {enc:.2f} M, decoder {dec:.2f} M parameters)", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default=",".join(ARCHS), help="comma-separated: " + ", ".join(ARCHS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--M", type=int, default=192)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--audio", action="store_true", help="the audio codec candidates (--arch: comma-separated names of "
                   + ", ".join(AUDIO_CANDIDATES) + ")")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    facts = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "torch": torch.__version__}
    print(json.dumps(facts) if args.json else "  ".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
    if args.audio:
        return main_audio(args)
    for arch in args.arch.split(","):
        base = None
        for mode in args.modes.split(","):
            ms = 1000 * statistics.median(step_times(arch, mode, args.batch, args.crop, args.N, args.M,
                                                     args.warmup, args.steps))
            base = base or (ms if mode == "fp32" else None)
            row = {"arch": arch, "mode": mode, "batch": args.batch, "crop": args.crop, "ms_per_step": round(ms, 1),
                   "steps_per_s": round(1000 / ms, 2), "speedup_vs_fp32": round(base / ms, 2) if base else None,
                   "threads": torch.get_num_threads()}
            print(json.dumps(row) if args.json else
                  f"{arch:<22} {mode:<20} {ms:8.1f} ms/step  {1000 / ms:6.2f} steps/s"
                  + (f"  {base / ms:4.2f}x fp32" if base else ""), flush=True)


if __name__ == "__main__":
    main()
