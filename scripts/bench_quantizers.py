"""ncodec quantizers against vector-quantize-pytorch on real features, at equal bits per vector.

Data (``--data``, default ``../shared/data``), normalised per dimension with the fitting
set's mean and std:
    mel      log-mel frames, D = 64 (24 kHz, n_fft 1024, hop 256) of the first 20 s of each
             file of speech/train + music/train; patches: 8x8 RGB patches in [0, 1], D = 192,
             2048 random patches per image of images/train.
    ``holdout``: rows of the same files that training never sees (seconds 20-40 of each
    audio file; 512 other patches of each image): the validation split, giving ``mse`` /
    ``utilization`` / ``entropy_bits_per_vector``. The dev sets (other languages, other
    music, other photos: a shift of domain) give the same metrics with a ``_dev`` suffix.

Quantizers (``--kinds``; nominal bits per vector in brackets) and their peers:
    vq       VectorQuantizer, 1024 codes [10]            VectorQuantize(codebook_size=1024)
    rvq      ResidualVQ, 4 levels x 256 [32]             ResidualVQ(num_quantizers=4, codebook_size=256)
    grvq     GroupedResidualVQ, 2 x 4 x 256 [64]         GroupedResidualVQ(groups=2, num_quantizers=4, ...)
    mcvq     ProductVQ, 4 codebooks x 256 [32]           VectorQuantize(heads=4, separate_codebook_per_head=True)
    fsq      FSQ, levels 8,5,5,5 [9.97]                  FSQ(levels=[8, 5, 5, 5])
    rfsq     ResidualFSQ, 4 x (8,5,5,5) [39.9]           ResidualFSQ(levels=[8, 5, 5, 5], num_quantizers=4)
    lfq      LFQ, 10 bits [10]                           LFQ(codebook_size=1024)
    scalar   ScalarQuantizer, step 1, 15 levels/channel  none (reported alone)
Both sides get the same settings: EMA codebooks (decay 0.99), k-means init (10 iterations,
first batch), dead-code restart when a code's EMA count falls under a quarter of its expected
count per batch (0.25 for 1024 codes, 1.0 for 256), commitment weight 0.25, straight-through
gradients (no rotation trick); LFQ with entropy weight 0.1, commitment 0.25, diversity gamma 1.

Training: ``--steps`` (300) steps on random batches of ``--batch`` (1024) training vectors,
identical for both sides; loss = MSE(quantized, x) + the quantizer's own loss, Adam (lr 1e-3)
on the learnable parts (projections of FSQ / LFQ); EMA codebooks update themselves. The
input requires grad, as an encoder output would, so the backward pass runs through the
quantizer in every case. The two sides of a pair train in lockstep, alternating which goes
first, so machine noise hits both alike; ``step_ms`` is the median step (zero_grad + forward
+ backward + optimizer step). Each pair runs with ``--seeds`` (3) seeds; metrics are their
mean (``mse_per_seed`` lists the spread), since single training runs differ by a few %. The default run takes ~4 min on 2 idle CPU cores. Another
busy process on the machine makes torch's thread barriers stall (up to 100x slower steps
for small ops); both sides suffer alike, but ``--threads 1`` then gives saner times.

Output (``--json``): one object per (impl, quantizer, dataset) with ``bits_per_vector``
(nominal), ``entropy_bits_per_vector`` (coded bits per vector of the held-out indices under a
categorical prior counted on the fitting set: ncodec's ``observe_prior`` / ``update_prior``
/ ``bits``; the same prior model for the peer's indices), held-out ``mse``, ``utilization``
(fraction of codes used at least once, averaged over codebooks), the same three on dev
(``*_dev``), and ``step_ms``; then one ``{"ratio": "ncodec/vector-quantize-pytorch", ...}``
line per pair.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec import quantizers
from ncodec.entropy.categorical import CategoricalModel
from ncodec.train.data import image_patch_set, mel_frames

ROOT = Path(__file__).resolve().parent.parent

PEER = "vector-quantize-pytorch"
EVAL_CHUNK = 8192

# Matched codebook settings, spelled for each side.
NCODEC_VQ = {"ema": True, "decay": 0.99, "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 0.25,
             "rotation_trick": False}
PEER_VQ = {"decay": 0.99, "kmeans_init": True, "kmeans_iters": 10, "commitment_weight": 0.25, "rotation_trick": False}


def dead_threshold(codebook_size: int, batch: int = 1024) -> float:
    """Dead-code threshold for both sides: a quarter of a code's expected EMA count per batch."""
    return 0.25 * batch / codebook_size


def ncodec_vq(codebook_size: int) -> dict[str, Any]:
    return {**NCODEC_VQ, "codebook_size": codebook_size, "threshold_dead": dead_threshold(codebook_size)}


def peer_vq(dim: int, codebook_size: int) -> dict[str, Any]:
    return {**PEER_VQ, "dim": dim, "codebook_size": codebook_size,
            "threshold_ema_dead_code": dead_threshold(codebook_size)}
FSQ_LEVELS = [8, 5, 5, 5]
LFQ_SETTINGS = {"entropy_loss_weight": 0.1, "diversity_gamma": 1.0}


@dataclass(frozen=True)
class Kind:
    """One quantizer configuration: the ncodec class and options, the peer class and options."""

    config: str
    ncodec_class: str
    ncodec_options: Callable[[int], dict[str, Any]]
    peer_class: str | None = None
    peer_options: Callable[[int], dict[str, Any]] = field(default=lambda dim: {})
    peer_sizes: tuple[int, ...] = ()


KINDS: dict[str, Kind] = {
    "vq": Kind("1024 codes", "VectorQuantizer", lambda d: ncodec_vq(1024),
               "VectorQuantize", lambda d: peer_vq(d, 1024), (1024,)),
    "rvq": Kind("4 levels x 256", "ResidualVQ", lambda d: dict(num_quantizers=4, **ncodec_vq(256)),
                "ResidualVQ", lambda d: dict(num_quantizers=4, **peer_vq(d, 256)), (256,) * 4),
    "grvq": Kind("2 groups x 4 levels x 256", "GroupedResidualVQ",
                 lambda d: dict(groups=2, num_quantizers=4, **ncodec_vq(256)),
                 "GroupedResidualVQ", lambda d: dict(groups=2, num_quantizers=4, **peer_vq(d, 256)), (256,) * 8),
    "mcvq": Kind("4 codebooks x 256", "ProductVQ", lambda d: dict(num_codebooks=4, **ncodec_vq(256)),
                 "VectorQuantize", lambda d: dict(heads=4, separate_codebook_per_head=True, codebook_dim=d // 4,
                                                  **peer_vq(d, 256)), (256,) * 4),
    "fsq": Kind("levels 8,5,5,5", "FSQ", lambda d: {"levels": FSQ_LEVELS},
                "FSQ", lambda d: {"dim": d, "levels": FSQ_LEVELS}, (1000,)),
    "rfsq": Kind("4 x levels 8,5,5,5", "ResidualFSQ", lambda d: {"levels": FSQ_LEVELS, "num_quantizers": 4},
                 "ResidualFSQ", lambda d: {"dim": d, "levels": FSQ_LEVELS, "num_quantizers": 4}, (1000,) * 4),
    "lfq": Kind("10 bits", "LFQ", lambda d: dict(codebook_bits=10, commitment_weight=0.25, **LFQ_SETTINGS),
                "LFQ", lambda d: dict(dim=d, codebook_size=1024, commitment_loss_weight=0.25, **LFQ_SETTINGS),
                (1024,)),
    "scalar": Kind("step 1, 15 levels per channel", "ScalarQuantizer",
                   lambda d: {"mode": "ste", "step": 1.0, "num_levels": 15}),
}


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ building the quantizers
class Adapter:
    """One quantizer behind a common face, fed in its own native layout (converted outside the timing)."""

    impl: str
    sizes: list[int]
    nominal_bits: float

    def __init__(self, module: nn.Module):
        self.module = module
        params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=1e-3) if params else None

    def native(self, rows: Tensor) -> Tensor:
        """Rows ``[N, D]`` in the layout this implementation takes."""
        raise NotImplementedError

    def rows(self, native: Tensor) -> Tensor:
        """Inverse of `native`."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(quantized in the native layout, indices ``[N, K]``, loss)."""
        raise NotImplementedError


class NcodecAdapter(Adapter):
    """ncodec's layout: channels-first ``[1, D, N]`` in, indices ``[1, K, N]``."""

    impl = "ncodec"

    def __init__(self, module: quantizers.Quantizer):
        super().__init__(module)
        self.sizes = list(module.codebook_sizes)
        self.nominal_bits = float(module.nominal_bits)

    def native(self, rows: Tensor) -> Tensor:
        return rows.t().contiguous()[None]

    def rows(self, native: Tensor) -> Tensor:
        return native[0].t()

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.module(x)
        return out.quantized, out.indices[0].t(), out.loss


class PeerAdapter(Adapter):
    """vector-quantize-pytorch's layout: ``[1, N, D]`` in; tuples of (quantized, indices[, loss])."""

    impl = PEER

    def __init__(self, module: nn.Module, sizes: tuple[int, ...]):
        super().__init__(module)
        self.sizes = list(sizes)
        self.nominal_bits = sum(math.log2(s) for s in sizes)

    def native(self, rows: Tensor) -> Tensor:
        return rows[None]

    def rows(self, native: Tensor) -> Tensor:
        return native[0]

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.module(x)
        quantized, indices = out[0], out[1]
        loss = out[2].sum() if len(out) > 2 and out[2] is not None else x.new_zeros(())
        if indices.ndim == 4:  # grouped: [groups, 1, N, levels] -> [N, groups * levels]
            indices = indices.permute(1, 2, 0, 3)
        return quantized, indices.reshape(x.shape[1], -1), loss


def build_pair(kind: Kind, dim: int, device: torch.device, seed: int) -> list[Adapter]:
    """The ncodec quantizer and (where one exists) its peer for ``kind``, seeded alike."""
    torch.manual_seed(seed)
    pair: list[Adapter] = [NcodecAdapter(getattr(quantizers, kind.ncodec_class)(dim, **kind.ncodec_options(dim)))]
    if kind.peer_class is not None:
        import vector_quantize_pytorch as vqp

        torch.manual_seed(seed)
        pair.append(PeerAdapter(getattr(vqp, kind.peer_class)(**kind.peer_options(dim)), kind.peer_sizes))
    for q in pair:
        q.module.to(device)
    return pair


# ------------------------------------------------------------------ training and evaluation
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(q: Adapter, batch: Tensor) -> float:
    """One timed step on a native-layout batch: zero_grad, forward, loss, backward, optimizer step (ms)."""
    x = batch.clone().requires_grad_(True)  # stands for an encoder's output
    sync(batch.device)
    start = time.perf_counter()
    if q.optimizer is not None:
        q.optimizer.zero_grad(set_to_none=True)
    quantized, _, loss = q(x)
    (F.mse_loss(quantized, batch) + loss).backward()
    if q.optimizer is not None:
        q.optimizer.step()
    sync(batch.device)
    return (time.perf_counter() - start) * 1e3


def train_pair(pair: list[Adapter], train: Tensor, steps: int, batch: int, seed: int) -> list[float]:
    """Train the quantizers in lockstep on the same batches; median step time of each (ms)."""
    gen = torch.Generator().manual_seed(seed)
    times: list[list[float]] = [[] for _ in pair]
    for q in pair:
        q.module.train()
    for step in range(steps):
        rows = train[torch.randint(train.shape[0], (batch,), generator=gen).to(train.device)]
        order = range(len(pair)) if step % 2 == 0 else reversed(range(len(pair)))
        for i in order:
            times[i].append(train_step(pair[i], pair[i].native(rows)))
    return [statistics.median(t) for t in times]


def chunks(x: Tensor) -> Iterator[Tensor]:
    yield from x.split(EVAL_CHUNK)


@torch.no_grad()
def quantize_all(q: Adapter, data: Tensor) -> tuple[Tensor, Tensor]:
    """Eval-mode reconstructions ``[N, D]`` and indices ``[N, K]`` of every row of ``data``."""
    q.module.eval()
    outs = [q(q.native(x)) for x in chunks(data)]
    return torch.cat([q.rows(o[0]).float() for o in outs]), torch.cat([o[1] for o in outs])


@torch.no_grad()
def evaluate(q: Adapter, fit: Tensor, evals: dict[str, Tensor]) -> dict[str, float]:
    """MSE, utilization and coded bits per vector (prior counted on ``fit``) on each evaluation set."""
    prior: Any = q.module if isinstance(q, NcodecAdapter) else PeerPrior(q.sizes)
    for part in chunks(quantize_all(q, fit)[1]):
        prior.observe_prior(part.t()[None].cpu())
    prior.update_prior()
    out = {}
    for name, data in evals.items():
        recon, indices = quantize_all(q, data)
        suffix = "" if name == "holdout" else f"_{name}"
        used = [indices[:, k].unique().numel() / size for k, size in enumerate(q.sizes)]
        bits = sum(float(prior.bits(part.t()[None].cpu())) for part in chunks(indices))
        out.update({f"mse{suffix}": float((recon - data).square().mean()),
                    f"utilization{suffix}": sum(used) / len(used),
                    f"entropy_bits_per_vector{suffix}": bits / data.shape[0]})
    return out


class PeerPrior:
    """The same counted categorical prior ncodec quantizers use, for the peer's indices ``[1, K, N]``."""

    def __init__(self, sizes: list[int]):
        self.model = CategoricalModel(len(sizes), max(sizes))

    def observe_prior(self, indices: Tensor) -> None:
        self.model.observe(indices)

    def update_prior(self) -> None:
        self.model.update(force=True)

    def bits(self, indices: Tensor) -> Tensor:
        return self.model.bits(indices).sum()


# ------------------------------------------------------------------ data
def load_datasets(root: Path, names: list[str]) -> dict[str, dict[str, Tensor]]:
    """Per data set: ``fit``, ``holdout`` (unseen rows of the same files) and ``dev`` (other files),
    normalised with ``fit``'s mean / std."""
    train_sets, dev_sets = ("speech/train", "music/train"), ("speech/dev", "music/dev")
    loaders: dict[str, dict[str, Callable[[], Tensor]]] = {
        "mel": {"fit": lambda: mel_frames(root, train_sets, seconds_per_file=20.0),
                "holdout": lambda: mel_frames(root, train_sets, seconds_per_file=20.0, offset_seconds=20.0),
                "dev": lambda: mel_frames(root, dev_sets, seconds_per_file=20.0)},
        "patches": {"fit": lambda: image_patch_set(root, "train", patches_per_image=2048),
                    "holdout": lambda: image_patch_set(root, "train", patches_per_image=512, offset=2048),
                    "dev": lambda: image_patch_set(root, "dev", patches_per_image=2048)},
    }
    out = {}
    for name in names:
        start = time.perf_counter()
        sets = {part: load() for part, load in loaders[name].items()}
        mean, std = sets["fit"].mean(dim=0), sets["fit"].std(dim=0).clamp_min(1e-6)
        out[name] = {part: (x - mean) / std for part, x in sets.items()}
        note(f"{name}: " + ", ".join(f"{part} {x.shape[0]}" for part, x in sets.items()) +
             f" vectors of {sets['fit'].shape[1]} ({time.perf_counter() - start:.1f} s)")
    return out


# ------------------------------------------------------------------ main
def run_pair(kind: Kind, fit: Tensor, evals: dict[str, Tensor], args: argparse.Namespace) -> dict[str, dict]:
    """Train and evaluate both sides of ``kind`` once per seed; metrics averaged over seeds."""
    per_seed: dict[str, list[dict[str, float]]] = {}
    impl_bits: dict[str, float] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        pair = build_pair(kind, fit.shape[1], fit.device, seed)
        step_ms = train_pair(pair, fit, args.steps, args.batch, seed)
        for q, ms in zip(pair, step_ms):
            per_seed.setdefault(q.impl, []).append({**evaluate(q, fit, evals), "step_ms": ms})
            impl_bits[q.impl] = q.nominal_bits
    out = {}
    for impl, runs in per_seed.items():
        mean = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
        mean["step_ms"] = statistics.median(r["step_ms"] for r in runs)
        out[impl] = {"impl": impl, "bits_per_vector": round(impl_bits[impl], 3), "seeds": len(runs),
                     **{k: round(v, 5) for k, v in mean.items()},
                     "mse_per_seed": [round(r["mse"], 5) for r in runs]}
    return out


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    data = load_datasets(Path(args.data), args.datasets)
    emit = (lambda row: print(json.dumps(row), flush=True)) if args.json else print_row
    for dataset, sets in data.items():
        fit = sets["fit"].to(device)
        evals = {k: v.to(device) for k, v in sets.items() if k != "fit"}
        for name in args.kinds:
            kind = KINDS[name]
            start = time.perf_counter()
            rows = run_pair(kind, fit, evals, args)
            for row in rows.values():
                emit({"impl": row["impl"], "quantizer": name, "dataset": dataset, "config": kind.config,
                      **{k: v for k, v in row.items() if k != "impl"}})
            note(f"{dataset}/{name}: {time.perf_counter() - start:.1f} s")
            if len(rows) == 2:
                nc, peer = rows["ncodec"], rows[PEER]
                emit({"ratio": f"ncodec/{PEER}", "quantizer": name, "dataset": dataset,
                      "mse_ratio": round(nc["mse"] / max(peer["mse"], 1e-12), 4),
                      "mse_ratio_dev": round(nc["mse_dev"] / max(peer["mse_dev"], 1e-12), 4),
                      "step_ratio": round(nc["step_ms"] / max(peer["step_ms"], 1e-9), 4)})


def print_row(row: dict[str, Any]) -> None:
    """Human-readable form of one output object."""
    if "ratio" in row:
        print(f"  {'ratio':<24} {row['quantizer']:<7} {row['dataset']:<8} mse x{row['mse_ratio']:<8} "
              f"step x{row['step_ratio']}")
    else:
        print(f"{row['impl']:<24} {row['quantizer']:<7} {row['dataset']:<8} bits {row['bits_per_vector']:>7.2f} "
              f"(coded {row['entropy_bits_per_vector']:>7.2f})  mse {row['mse']:.4f}  "
              f"used {row['utilization']:.3f}  dev: mse {row['mse_dev']:.4f} used {row['utilization_dev']:.3f}  "
              f"step {row['step_ms']:.2f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--steps", type=int, default=300, help="training steps per quantizer (300)")
    parser.add_argument("--batch", type=int, default=1024, help="vectors per training batch (1024)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data set")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS), metavar="KIND",
                        help=f"quantizers to run: {' '.join(KINDS)} (all)")
    parser.add_argument("--datasets", nargs="+", choices=["mel", "patches"], default=["mel", "patches"])
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per pair; metrics are averaged over them (3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads (all cores); use fewer if other jobs share the machine")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
