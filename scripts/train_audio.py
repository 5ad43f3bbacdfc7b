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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncodec.models.audio.encodec import SEANetCodecModel
from ncodec.progress import Progress
from ncodec.train.audio import SegmentSampler, Trainer, count_prior, load_validation, scan_audio, validate
from ncodec.zoo.audio import build_audio_model, load_audio_model, model_identity, save_audio_model
from ncodec.zoo.files import read_metadata

#: Model size presets: SEANet arguments (`SEANetCodecModel.build`), bandwidths and training sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_filters=4, dimension=32, ratios=[8, 5, 4, 2], lstm=1, n_residual_layers=1,
                 bandwidths=[1.5, 3.0, 6.0, 12.0], batch=4, segment=1.0, disc_filters=4, prior_seconds=30.0,
                 threads=1),
    "small": dict(n_filters=16, dimension=64, ratios=[8, 5, 4, 2], lstm=1, n_residual_layers=1,
                  bandwidths=[1.5, 3.0, 6.0, 12.0], batch=8, segment=1.0, disc_filters=16, prior_seconds=300.0),
    "base": dict(n_filters=32, dimension=128, ratios=[8, 5, 4, 2], lstm=2, n_residual_layers=1,
                 bandwidths=[1.5, 3.0, 6.0, 12.0], batch=16, segment=1.0, disc_filters=32, prior_seconds=600.0),
    # frame-rate networks (STFT encoder, Vocos decoder: ConvNeXt blocks at 75 Hz), the fastest to train on a CPU
    "frame": dict(n_filters=32, dimension=128, ratios=[8, 5, 4, 2], lstm=0, n_residual_layers=1,
                  encoder=dict(type="stft", width=384, blocks=4), decoder=dict(type="vocos", width=384, blocks=6),
                  bandwidths=[1.5, 3.0, 6.0, 12.0], batch=8, segment=1.0, disc_filters=16, prior_seconds=600.0),
    # EnCodec's own 24 kHz model (32 codebooks, 1.5 ... 24 kbps); the size options do not apply
    "encodec_24khz": dict(bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], batch=16, segment=1.0, disc_filters=32,
                          prior_seconds=600.0),
}
SIZE_OPTIONS = ("n_filters", "dimension", "ratios", "lstm", "n_residual_layers")
LOSS_TERMS = ("mel", "stft", "l1", "commit", "adv", "feat")
CODEBOOK_BITS = 10  # SEANetCodecModel.build and the encodec container use 1024-code codebooks




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
    for part in ("encoder", "decoder"):  # frame-rate networks: --encoder / --decoder, else the preset's
        spec = getattr(args, part) or preset.get(part)
        if spec:
            seanet[part] = dict(spec)
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




def frame_net(text: str) -> dict[str, Any]:
    """``stft:width=384,blocks=4`` -> ``{"type": "stft", "width": 384, "blocks": 4}`` (an --encoder / --decoder)."""
    kind, _, rest = text.partition(":")
    spec: dict[str, Any] = {"type": kind}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        spec[key] = int(value)
    return spec


# ------------------------------------------------------------------ checkpoints and exports
def export(model: SEANetCodecModel, path: Path, architecture: str, config: dict[str, Any] | None,
           train: SegmentSampler, args: argparse.Namespace, step: int, last_val: dict[str, Any] | None,
           half: bool = False) -> int:
    """Count the code prior on ``--prior-seconds`` of training audio and save the model as a zoo file
    (``half``: fp16 weights, for committing); returns the frames counted."""
    device = model_device(model)
    frames = count_prior(model, train.batches(args.prior_seconds, args.batch, args.seed + 2), device)
    meta = {"name": args.name, "steps": step, "data": ",".join(Path(d).name for d in args.data),
            "trained_by": "scripts/train_audio.py", "prior_frames": frames,
            "losses": json.dumps({k: getattr(args, f"{k}_weight") for k in LOSS_TERMS
                                  if k not in ("adv", "feat") or args.adversarial})}
    if last_val is not None:
        meta["validation"] = json.dumps(last_val, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_audio_model(model.cpu(), path, architecture, config, half=half, **meta)
    model.to(device)
    return frames


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# ------------------------------------------------------------------ prior and validation


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
    g.add_argument("--gain-db", type=float, default=6.0, help="augmentation: random gain of each segment, "
                   "uniform in +- this many dB")
    g.add_argument("--band-limit", type=float, default=0.0, help="augmentation: probability that a segment is "
                   "low-passed as if upsampled from 8, 11.025, 16, 22.05 or 32 kHz")
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
    m.add_argument("--encoder", type=frame_net, help="frame-rate encoder instead of SEANet's, e.g. "
                   "stft:width=384,blocks=4 (n_fft and kernel_size too)")
    m.add_argument("--decoder", type=frame_net, help="frame-rate decoder instead of SEANet's, e.g. "
                   "vocos:width=384,blocks=6")
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
    t.add_argument("--ckpt-minutes", type=float, default=10.0, help="also checkpoint (and --export) this often")
    t.add_argument("--export", help="fp16 zoo file written at every checkpoint (for committing), with the steps")
    t.add_argument("--init", help="start from this zoo file's weights and step count (e.g. committed ones) "
                   "when --out holds no checkpoint")
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
    elif args.init:
        loaded, facts = load_audio_model(args.init)
        def sized(cfg: Any) -> Any:  # the config without the model's name
            return {k: v for k, v in cfg.items() if k != "name"} if isinstance(cfg, dict) else cfg

        if facts["architecture"] != architecture or sized(json.loads(read_metadata(Path(args.init)).get(
                "config", "null"))) != sized(json.loads(json.dumps(config))):
            raise SystemExit(f"{args.init} is another architecture or size than the options give")
        model.load_state_dict(loaded.state_dict())
        step = int(read_metadata(Path(args.init)).get("steps", 0))
        torch.manual_seed(args.seed + step)
        gen = np.random.default_rng(args.seed + step)
        print(f"starting from {args.init} at step {step}", flush=True)
    train = SegmentSampler(scan_audio(args.data), model.sample_rate, args.segment, gain_db=args.gain_db,
                           band_limit=args.band_limit)
    clips = load_validation(args.val, args.val_max, args.val_seconds) if args.val else []
    size = sum(p.numel() for p in model.parameters())
    print(f"{args.name}: {architecture}, {size / 1e6:.2f} M parameters, {model.quantizer.num_codebooks} codebooks "
          f"of 1024 at {model.frame_rate} Hz, bandwidths {model.target_bandwidths} kbps; {len(train.files)} training "
          f"files, {len(clips)} validation clips; batch {args.batch} x {args.segment:g} s on {device}"
          + (", adversarial" if args.adversarial else "") + (f", amp {trainer.amp_dtype}" if args.amp else ""),
          flush=True)
    log = (out / "log.jsonl").open("a")
    started = last_ckpt = time.monotonic()
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
            if due or time.monotonic() - last_ckpt > 60 * args.ckpt_minutes:
                tmp = ckpt.with_name(ckpt.name + ".tmp")
                torch.save({**trainer.state_dict(), "step": step, "identity": identity}, tmp)
                tmp.replace(ckpt)
                if args.export:
                    export(model, Path(args.export), architecture, config, train, args, step, last_val, half=True)
                    model.train()
                last_ckpt = time.monotonic()
    log.close()
    path = out / f"{args.name}.safetensors"
    frames = export(model, path, architecture, config, train, args, step, last_val)
    model.cpu()
    _, facts = load_audio_model(path)
    assert facts["hash"] == model_identity(model), "the saved model does not load back identically"
    print(f"saved {path} ({facts['architecture']}, prior counted on {frames} frames, hash {facts['hash'][:16]})",
          flush=True)
    return path


if __name__ == "__main__":
    main()
