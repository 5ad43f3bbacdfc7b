"""Train a learned image codec (ncodec.models.image.hyperprior) for rate-distortion.

Random crops from a folder of images, loss = lambda * 255**2 * MSE + bits per pixel (the
CompressAI recipe, lambda per quality as in its zoo), the entropy bottleneck's auxiliary
loss on its own optimizer, AMP (bf16 on CPU, fp16 with loss scaling on CUDA), checkpoints
to resume from, a progress bar, and periodic validation that writes real bitstreams:
``update()`` then ``compress`` / ``decompress`` of every validation image, reporting bpp
from the actual bytes and PSNR. Weights are saved as safetensors with their metadata.

    python scripts/train_image.py --data ../shared/data/images/train --val ../shared/data/images/dev \\
        --arch mbt2018-mean --quality 3 --steps 2000 --out runs/mbt-q3

``--arch mbt2018-mean-gained`` trains one variable-rate model (`ncodec.models.image.variable_rate`):
every image of a batch draws its own quality in [1, 8] and is trained at that quality's lambda;
validation runs at ``--val-qualities``. ``--amp --channels-last`` is the fast path on CPUs with
bf16 units (`scripts/bench_train_step.py`); ``--scales`` / ``--jitter`` augment the photos.
``--export`` writes fp16 weights (what gets committed) at every checkpoint, with the step count.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.models.image import hyperprior as models
from ncodec.models.image.variable_rate import GainedMeanScaleHyperprior, LEVELS, lambda_for
from ncodec.progress import Progress
from ncodec.train.image import load_images, random_crops, rd_loss, rescaled, validate
from ncodec.zoo import load_weights, save_model

LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
ARCHS = {"bmshj2018-factorized": models.FactorizedPrior, "bmshj2018-hyperprior": models.ScaleHyperprior,
         "mbt2018-mean": models.MeanScaleHyperprior, "gmm-hyperprior": models.GaussianMixtureHyperprior,
         "mbt2018-mean-gained": GainedMeanScaleHyperprior}


def export_fp16(model: torch.nn.Module, path: Path, **metadata: object) -> None:
    """The model's weights with floating tensors in fp16 (integer tables kept), atomically, for committing."""
    from safetensors.torch import save_file

    from ncodec.zoo import architecture_name

    model.update(force=True)
    state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    meta = {**{k: str(v) for k, v in metadata.items()}, "architecture": architecture_name(model),
            "N": str(model.N), "M": str(model.M), "dtype": "float16"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of training images")
    p.add_argument("--val", help="folder of validation images (real bitstreams are written for them)")
    p.add_argument("--arch", choices=list(ARCHS), default="mbt2018-mean")
    p.add_argument("--quality", type=int, choices=list(LAMBDAS), default=3)
    p.add_argument("--lmbda", type=float, help="override the quality's lambda")
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--M", type=int, default=192)
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-drop", type=float, default=0.8,
                   help="divide the learning rate by 10 after this fraction of the steps")
    p.add_argument("--init", help="start from these weights (safetensors, fp16 ones too), e.g. committed ones")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--val-max", type=int, default=4, help="validation images (the first N)")
    p.add_argument("--val-qualities", default="1,4,8", help="with the gained model: qualities validated")
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 on CUDA)")
    p.add_argument("--channels-last", action="store_true", help="channels-last tensors (fastest with --amp on CPU)")
    p.add_argument("--scales", default="1", help="comma-separated image scales to crop from (augmentation)")
    p.add_argument("--jitter", type=float, default=0.0, help="per-channel gain jitter of the crops (augmentation)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0, help="also checkpoint this often")
    p.add_argument("--export", help="fp16 safetensors written at every checkpoint (for committing)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, weights.safetensors, log.jsonl")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    if args.amp and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print(f"warning: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no oneDNN bf16 kernels: --amp "
              f"runs convolutions on a slow fallback (scripts/bench_train_step.py measures it)", flush=True)
    variable = args.arch == "mbt2018-mean-gained"
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = ARCHS[args.arch](args.N, args.M).to(device)
    if args.init:
        model.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                               for k, v in load_weights(args.init).items()})
    model = model.to(memory_format=layout)
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():  # resume: tensors and numbers only, loaded without unrestricted pickle
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        step = int(state["step"])
        gen = np.random.default_rng(args.seed + step)
        print(f"resumed {ckpt} at step {step}", flush=True)
    elif args.init:
        meta_steps = _steps_of(args.init)
        step = meta_steps
        gen = np.random.default_rng(args.seed + step)
        print(f"starting from {args.init} at step {step}", flush=True)
    lmbda = args.lmbda or LAMBDAS[args.quality]
    scales = tuple(float(s) for s in args.scales.split(","))
    train_images = rescaled(load_images(Path(args.data), args.crop), scales, args.crop)
    val_images = load_images(Path(args.val), 64)[: args.val_max] if args.val else []
    val_qualities = [float(q) for q in args.val_qualities.split(",")] if variable else [None]
    amp_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    log = (out / "log.jsonl").open("a")
    model.train()
    started = time.monotonic()
    last_ckpt = started
    label = f"train {args.arch}" + ("" if variable else f" q{args.quality}")

    def checkpoint() -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                    "step": step}, ckpt)
        if args.export:
            export_fp16(model, Path(args.export), steps=step, data=Path(args.data).name,
                        **({} if variable else {"quality": args.quality, "lambda": lmbda}))
            model.train()

    with Progress(args.steps - step, label) as bar:
        while step < args.steps:
            for group in opt.param_groups:
                group["lr"] = args.lr * (0.1 if step >= args.lr_drop * args.steps else 1.0)
            x = random_crops(train_images, args.batch, args.crop, gen, args.jitter).to(device)
            x = x.to(memory_format=layout)
            quality = torch.from_numpy(1 + (LEVELS - 1) * gen.random(args.batch)).float() if variable else None
            with torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
                if variable:
                    loss, bpp, mse = rd_loss(model, x, lambda_for(quality).float().to(device), quality.to(device))
                else:
                    loss, bpp, mse = rd_loss(model, x, lmbda)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            scaler.step(opt)
            scaler.update()
            aux = model.aux_loss()
            aux_opt.zero_grad(set_to_none=True)
            aux.backward()
            aux_opt.step()
            step += 1
            bar.update()
            record = {"step": step, "loss": float(loss.detach()), "bpp": bpp, "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
                      "aux": float(aux.detach()), "seconds": time.monotonic() - started}
            if val_images and (step % args.val_every == 0 or step == args.steps):
                record["val"] = {("q%g" % q if q is not None else "val"): validate(model, val_images, device, q)
                                 for q in val_qualities}
                if not variable:
                    record["val"] = record["val"]["val"]
                print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if step % args.val_every == 0 or step == args.steps or \
                    time.monotonic() - last_ckpt > 60 * args.ckpt_minutes:
                checkpoint()
                last_ckpt = time.monotonic()
    model.update(force=True)
    extra = {"steps": step, "data": Path(args.data).name}
    if not variable:
        extra.update(quality=args.quality, **{"lambda": lmbda})
    save_model(model, out / "weights.safetensors", **extra)
    print(f"saved {out / 'weights.safetensors'}", flush=True)


def _steps_of(path: str) -> int:
    """The step count recorded in a weights file's metadata (0 when it has none)."""
    from ncodec.zoo import read_metadata

    try:
        return int(read_metadata(Path(path)).get("steps", 0))
    except ValueError:
        return 0


if __name__ == "__main__":
    main()
