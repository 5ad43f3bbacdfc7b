"""Time one training step of the image INR (`inr` codec) and its parts, on the CPU or a GPU.

A fit is thousands of such steps, so this is what an `inr` encode's time is made of. Parts:
the ARM's rate of the latents, the upsampler, the synthesis (each forward + backward), and the
whole step (soft-rounding proxy, loss, backward, Adam). Run it at two commits to compare.

    python scripts/bench_inr_fit.py --size 512x768 --threads 1 [--device cuda] [--json]
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from ncodec.models.inr.fit import FitConfig, _optimizer, _step
from ncodec.models.inr.image import ImageInrConfig, LatentImageModel
from ncodec.models.inr.quantize import quantize


def best_time(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Best wall time of ``fn`` over ``repeats`` runs after one warm-up run (synchronised on CUDA)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x768", help="HxW of the (random) image")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    model = LatentImageModel(ImageInrConfig(), h, w).to(device)
    with torch.no_grad():   # latents as a fit has them a while in (zero latents would make the ARM trivial)
        for grid in model.latents.grids:
            grid.normal_(0.0, 2.0)
    target = torch.rand(1, 3, h, w, device=device)
    optimizer = _optimizer(model, FitConfig().lr)

    def arm() -> None:
        model.arm.rate_bits([quantize(g, "softround", 0.3) for g in model.latents.grids]).backward()

    def upsampler() -> None:
        model.upsampler([g * 1.0 for g in model.latents.grids]).sum().backward()

    def synthesis() -> None:
        with torch.no_grad():
            x = model.upsampler([g.detach() for g in model.latents.grids])
        model.synthesis(x.requires_grad_()).square().mean().backward()

    def step() -> None:
        _step(model, optimizer, target, 1e-3, "softround", 0.3, 1.0)

    parts = {"arm_rate": arm, "upsampler": upsampler, "synthesis": synthesis, "train_step": step}
    result = {"size": f"{h}x{w}", "threads": args.threads, "device": str(device)}
    result.update({name: round(best_time(fn, args.repeats, device), 4) for name, fn in parts.items()})
    if args.json:
        print(json.dumps(result))
        return
    print(f"image INR, {h}x{w}, {args.threads} thread(s), {device}: seconds (forward + backward), best of {args.repeats}")
    for name in parts:
        print(f"  {name:<12} {result[name]:.4f}")


if __name__ == "__main__":
    main()
