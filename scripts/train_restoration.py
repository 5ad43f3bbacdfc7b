"""Train the restoration network of the `learned-wavelet` codec (`ncodec.models.image.restoration`).

The training photos are quantized and reconstructed by the `wavelet` codec at every base step of
``--qsteps`` (once, cached in ``--out``); the network learns, on paired random crops with flips,
to turn each decoded crop back into its original (MSE), told the step. Validation codes the first
``--val-max`` dev photos at ``--val-steps`` and reports the PSNR gain over plain `wavelet`. bf16
autocast and channels-last are the fast path on CPUs with AMX (``--amp --channels-last``).
Checkpoints every ``--ckpt-minutes`` resume a stopped run; ``--export`` writes the fp16 zoo file,
with the step count, at each checkpoint; ``--init`` starts from such a file.

    python scripts/train_restoration.py --data ../shared/data/images/train --val ../shared/data/images/dev \\
        --steps 6000 --amp --channels-last --export ncodec/weights/wavelet-restore.safetensors --out runs/restore
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.models.image.restoration import RestorationNet, describe
from ncodec.progress import Progress
from ncodec.train.image import load_images, rescaled
from ncodec.train.restoration import DEFAULT_STEPS, CodedImage, code_images, paired_crops, validate
from ncodec.zoo import load_weights, read_metadata
from ncodec.zoo.restoration import load_restoration, save_restoration


def cosine(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))


def coded_set(folder: str, steps: tuple[float, ...], limit: int | None, cache: Path, workers: int,
              scales: tuple[float, ...] = (1.0,), min_side: int = 64) -> list[CodedImage]:
    """The folder's photos (also downscaled by each of ``scales``) coded at ``steps``, from ``cache`` (npz, no
    pickle) when made with the same arguments."""
    key = json.dumps({"folder": str(Path(folder).resolve()), "steps": steps, "limit": limit, "scales": scales})
    if cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                n = int(saved["count"])
                originals = [saved[f"original{i}"] for i in range(n)]
                return [CodedImage(originals[i], saved[f"decoded{i}_{j}"], s)
                        for i in range(n) for j, s in enumerate(steps)]
    images = rescaled(load_images(Path(folder), 64)[:limit], scales, min_side)
    started = time.monotonic()
    coded = code_images(images, steps, workers)
    print(f"coded {len(images)} images at {len(steps)} steps in {time.monotonic() - started:.0f} s", flush=True)
    arrays = {"key": np.array(key), "count": np.array(len(images))}
    arrays.update({f"original{i}": img for i, img in enumerate(images)})
    arrays.update({f"decoded{k // len(steps)}_{k % len(steps)}": c.decoded for k, c in enumerate(coded)})
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(cache)
    return coded


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of training photos")
    p.add_argument("--val", help="folder of validation photos")
    p.add_argument("--val-max", type=int, default=3)
    p.add_argument("--val-steps", default="4,11.3,32", help="base steps validated")
    p.add_argument("--qsteps", default=",".join(f"{s:g}" for s in DEFAULT_STEPS), help="base steps of the training pairs")
    p.add_argument("--scales", default="1", help="comma-separated scales the photos are also coded at (Lanczos "
                   "downscaling: the dev photos are downscaled ones)")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--deep-width", type=int, default=64)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--loss", choices=("relative", "mse"), default="relative",
                   help="relative: each crop's MSE over its decoded MSE (every quality alike); mse: plain MSE")
    p.add_argument("--loss-floor", type=float, default=2e-5,
                   help="decoded MSE below which relative weighting stops (2e-5: about 47 dB)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="processes coding the training photos")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--init", help="start from these weights (an exported fp16 file) and their step count")
    p.add_argument("--export", help="fp16 zoo file written at every checkpoint, with the step count")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, the coded-pairs cache")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    qsteps = tuple(float(s) for s in args.qsteps.split(","))
    scales = tuple(float(v) for v in args.scales.split(","))
    train = coded_set(args.data, qsteps, None, out / "train_pairs.npz", args.workers, scales, args.crop)
    val = (coded_set(args.val, tuple(float(s) for s in args.val_steps.split(",")), args.val_max,
                     out / "val_pairs.npz", args.workers) if args.val else [])
    net = RestorationNet(3, args.width, args.deep_width, args.blocks)
    print(describe(net), flush=True)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():   # resume: tensors and numbers only
        state = torch.load(ckpt, weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        print(f"resumed {ckpt} at step {step}", flush=True)
    elif args.init:
        net.load_state_dict({k: v.float() for k, v in load_weights(args.init).items()})
        step = int(read_metadata(Path(args.init)).get("steps", 0))
        print(f"starting from {args.init} at step {step}", flush=True)
    net = net.to(memory_format=layout).train()
    gen = np.random.default_rng(args.seed + step)
    log = (out / "log.jsonl").open("a")
    started = last_ckpt = time.monotonic()

    def checkpoint() -> None:
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
        tmp.replace(ckpt)
        if args.export:   # a context table already in the file (scripts/fit_contexts.py) is kept
            export = Path(args.export)
            table = load_restoration(export)[1]["contexts"] if export.exists() else None
            save_restoration(net, export, contexts=table, steps=step, data=Path(args.data).name, qsteps=args.qsteps)

    with Progress(args.steps - step, "train restoration") as bar:
        while step < args.steps:
            for group in opt.param_groups:
                group["lr"] = args.lr * cosine(step, args.steps, args.warmup)
            decoded, original, feat = paired_crops(train, args.batch, args.crop, gen)
            decoded = decoded.to(memory_format=layout)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
                restored = net(decoded, feat)
            error = torch.mean((restored.float() - original) ** 2, dim=(1, 2, 3))
            before = torch.mean((decoded.float() - original) ** 2, dim=(1, 2, 3))
            # relative: each crop's MSE over its decoded MSE (floored at --loss-floor), so fine and coarse steps
            # count alike in dB; plain MSE lets the coarse steps' large errors drown the fine ones
            loss = (torch.mean(error / (before + args.loss_floor)) * args.loss_floor if args.loss == "relative"
                    else torch.mean(error))
            base = float(torch.mean(before))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            bar.update()
            record = {"step": step, "loss": float(loss.detach()),
                      "gain_db": 10 * math.log10(base / max(float(torch.mean(error).detach()), 1e-12)),
                      "seconds": time.monotonic() - started}
            if val and (step % args.val_every == 0 or step == args.steps):
                record["val"] = validate(net, val)
                print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if step % args.val_every == 0 or step == args.steps or time.monotonic() - last_ckpt > 60 * args.ckpt_minutes:
                checkpoint()
                last_ckpt = time.monotonic()


if __name__ == "__main__":
    main()
