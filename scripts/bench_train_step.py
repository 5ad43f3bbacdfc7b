"""Milliseconds per training step of the learned image models, per precision and memory layout.

For each architecture: a full step (forward, rate-distortion loss, backward, Adam step, the
auxiliary step) at a fixed batch and crop, in fp32 and under bf16 autocast, each with
contiguous and channels-last tensors (the layout oneDNN's kernels want). Median of
``--steps`` timed steps after ``--warmup``; ratios against fp32 printed in the same run. The
first line says what the CPU offers: bf16 pays only where oneDNN has bf16 kernels (AVX-512
BF16 or AMX); elsewhere torch falls back to a slow reference convolution.

    python scripts/bench_train_step.py --batch 8 --crop 128 --json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ncodec.models.image.hyperprior import MeanScaleHyperprior
from ncodec.models.image.variable_rate import GainedMeanScaleHyperprior, lambda_for
from ncodec.train.image import rd_loss

ARCHS = {"mbt2018-mean": MeanScaleHyperprior, "mbt2018-mean-gained": GainedMeanScaleHyperprior}
MODES = ("fp32", "fp32-channels-last", "bf16", "bf16-channels-last")


def step_times(arch: str, mode: str, batch: int, crop: int, n: int, m: int, warmup: int, steps: int) -> list[float]:
    """Seconds of each timed training step."""
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
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    facts = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "torch": torch.__version__}
    print(json.dumps(facts) if args.json else "  ".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
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
