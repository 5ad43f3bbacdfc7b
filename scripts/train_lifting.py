"""Train a learned integer lifting transform (`ncodec.models.learned_lifting`) for lossless image coding.

Random crops of the colour-transformed planes (Y, Cb, Cr) of a folder of images; the loss is
`rate_proxy` (bits of a per-band Laplacian coder) over the detail bands, with rounding passed
straight through. Validation codes whole images for real with the wavelet-lossless context
coder, learned transform against 5/3, and prints bits per pixel. Weights go to a safetensors
file whose metadata holds the configuration.

    python scripts/train_lifting.py --data ../shared/data/images/train --val ../shared/data/images/dev \\
        --steps 600 --out ncodec/weights/lifting-8bit.safetensors
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.models.learned_lifting import LearnedLifting, rate_proxy
from ncodec.progress import Progress
from ncodec.transforms import wavelet
from ncodec.train.lifting import crops, load_planes, validate


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--val", help="folder of validation images (coded for real)")
    p.add_argument("--val-max", type=int, default=3)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--taps", type=int, default=2)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="weights file (.safetensors)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    train = load_planes(Path(args.data))
    val = load_planes(Path(args.val), args.val_max) if args.val else []
    model = LearnedLifting(levels=args.levels, taps=args.taps, hidden=args.hidden)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    started = time.monotonic()
    with Progress(args.steps, "train lifting") as bar:
        for step in range(1, args.steps + 1):
            for group in opt.param_groups:
                group["lr"] = args.lr * (0.1 if step > 0.8 * args.steps else 1.0)
            x = crops(train, args.batch, args.crop, gen)
            loss = rate_proxy(wavelet.forward_2d(x, args.levels, model).details)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
            if val and (step % args.val_every == 0 or step == args.steps):
                record = {"step": step, "loss": float(loss.detach()), "seconds": round(time.monotonic() - started, 1),
                          **validate(model, val, args.levels)}
                print(json.dumps(record), flush=True)
    from safetensors.torch import save_file

    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp),
              metadata={k: str(v) for k, v in model.config().items()})
    tmp.replace(out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
