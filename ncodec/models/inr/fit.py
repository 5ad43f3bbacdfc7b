"""The one training loop of the INR codecs: fit a model to one signal by rate-distortion.

Any model with ``rd_forward(mode, temperature) -> RDOutput(recon, rate_bits)`` can be fitted
(``mode`` is a `ncodec.models.inr.quantize.QuantMode` the model applies to what it codes). The loss
is ``MSE(recon, target) + lmbda * rate_bits / pixels`` (target in [0, 1], rate in bits per
pixel; ``pixels`` is the product of the target's spatial/temporal dims). Training has two
phases: quantization by noise (or, with ``softround``, C3's soft-round + noise + soft-round with
a temperature annealed geometrically), then straight-through rounding at a lower learning
rate; each phase has its own cosine (or step) schedule. Optionally a warm-up first trains
several initialisations briefly and keeps the best (models opt in with ``reset_parameters()``).
Models may give per-group learning rates with ``param_groups(lr)`` (Adam groups; the
schedule scales each). Every ``eval_every`` steps and at the end, the loss with hard rounding
is measured, and the best state is kept and restored.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ...progress import Progress, null_progress
from .quantize import QuantMode


@dataclass
class RDOutput:
    """What a model's rate-distortion forward pass gives: the reconstruction and the rate in bits."""

    recon: Tensor
    rate_bits: Tensor


class RDModel(Protocol):
    """What `fit` needs from a model."""

    def rd_forward(self, mode: QuantMode, temperature: float = ...) -> RDOutput: ...

    def parameters(self, recurse: bool = ...) -> Iterator[nn.Parameter]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = ...) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class FitConfig:
    """Training settings; the presets differ in ``iterations`` and the warm-up."""

    iterations: int = 4000
    lr: float = 2e-2
    noise_fraction: float = 0.9        # share of the iterations quantized by noise; the rest straight-through
    softround: bool = True             # noise phase: C3's soft-round + noise, temperature annealed
    temperature: tuple[float, float] = (0.3, 0.1)   # C3's annealing; (0.8, 0.03): RD loss +10% on a mate_Garden crop, -0.7% on plasma_Path (1000 steps)
    candidates: int = 1                # warm-up: initialisations tried (the best is trained on)
    warmup: int = 0                    # steps per warm-up candidate (not counted in iterations)
    ste_lr_scale: float = 0.02         # straight-through phase starts at lr * this
    min_lr_scale: float = 0.01         # each phase's schedule ends at its start lr * this
    schedule: str = "cosine"           # "cosine" or "step" (halved every quarter of a phase)
    eval_every: int = 200
    clip_grad: float | None = 1.0
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or not 0.0 <= self.noise_fraction <= 1.0 or self.lr <= 0:
            raise ValueError("fit needs iterations >= 1, 0 <= noise_fraction <= 1 and lr > 0")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")


ADAM_EPS = 1e-15   # far below any gradient a per-pixel loss gives (see `_optimizer`)

PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(iterations=1000),
    "medium": FitConfig(iterations=4000, candidates=3, warmup=150),
    "slow": FitConfig(iterations=16000, candidates=5, warmup=300),
}


def preset(name: str | FitConfig, **overrides: Any) -> FitConfig:
    """A preset by name (``fast`` / ``medium`` / ``slow``) or a given config, with fields overridden."""
    if isinstance(name, FitConfig):
        config = name
    elif name in PRESETS:
        config = PRESETS[name]
    else:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class FitResult:
    """Hard-quantization measurements along the fit, and the best one (whose state was restored)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def rd_terms(out: RDOutput, target: Tensor, lmbda: float) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, mse, bits per pixel) of a forward pass."""
    pixels = target[0, 0].numel()
    mse = torch.mean((out.recon - target) ** 2)
    bpp = out.rate_bits / pixels
    return mse + lmbda * bpp, mse, bpp


def evaluate(model: RDModel, target: Tensor, lmbda: float) -> dict[str, float]:
    """Loss, MSE, PSNR (of the clamped output) and bits per pixel with hard rounding."""
    with torch.no_grad():
        out = model.rd_forward("hard")
        loss, mse, bpp = rd_terms(out, target, lmbda)
        clamped = torch.mean((out.recon.clamp(0, 1) - target) ** 2).item()
    return {"loss": loss.item(), "mse": mse.item(), "bpp": bpp.item(),
            "psnr": 10 * math.log10(1.0 / max(clamped, 1e-12))}


def _lr_factor(config: FitConfig, step: int) -> float:
    """Learning-rate multiplier at ``step`` (phase start scale times the phase's schedule)."""
    noise_steps = round(config.iterations * config.noise_fraction)
    in_noise = step < noise_steps
    start, length = (0, noise_steps) if in_noise else (noise_steps, config.iterations - noise_steps)
    frac = (step - start) / max(length, 1)
    scale = 1.0 if in_noise else config.ste_lr_scale
    if config.schedule == "cosine":
        return scale * (config.min_lr_scale + (1 - config.min_lr_scale) * 0.5 * (1 + math.cos(math.pi * frac)))
    return scale * max(config.min_lr_scale, 0.5 ** math.floor(4 * frac))


def _mode(config: FitConfig, step: int) -> tuple[QuantMode, float]:
    """Quantization proxy and soft-round temperature at ``step``."""
    noise_steps = round(config.iterations * config.noise_fraction)
    if step >= noise_steps:
        return "ste", 0.0
    if not config.softround:
        return "noise", 0.0
    t0, t1 = config.temperature
    return "softround", t0 * (t1 / t0) ** (step / max(noise_steps - 1, 1))


def _optimizer(model: RDModel, lr: float) -> torch.optim.Optimizer:
    """Adam over the model's ``param_groups(lr)`` when it defines them (e.g. a faster rate for latents), else all."""
    groups_fn = getattr(model, "param_groups", None)
    groups = groups_fn(lr) if callable(groups_fn) else [{"params": list(model.parameters()), "lr": lr}]
    for group in groups:
        group["base_lr"] = group.get("lr", lr)
    # The loss is per pixel, so a fine latent's gradient is ~1e-9 on a 768x512 image: Adam's default
    # eps (1e-8) would throttle its steps ~5x (measured: +2.1 dB at the same rate after 1000 steps).
    return torch.optim.Adam(groups, lr=lr, eps=ADAM_EPS)


def _step(model: RDModel, optimizer: torch.optim.Optimizer, target: Tensor, lmbda: float, mode: QuantMode,
          temperature: float, clip: float | None) -> None:
    """One optimizer step on the rate-distortion loss."""
    loss, _, _ = rd_terms(model.rd_forward(mode, temperature), target, lmbda)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    optimizer.step()


def _warm_up(model: RDModel, target: Tensor, lmbda: float, config: FitConfig, bar: Progress) -> None:
    """Train ``candidates`` fresh initialisations for ``warmup`` steps each and keep the best in ``model``.

    Candidate 0 is ``model`` as given; the others are re-initialised with ``reset_parameters``
    (models without it are not warmed up). Overfitted codecs vary a lot with the initialisation.
    """
    reset = getattr(model, "reset_parameters", None)
    if config.candidates < 2 or config.warmup < 1 or not callable(reset):
        return
    initial = copy.deepcopy(model.state_dict())
    best: tuple[float, dict[str, Any]] | None = None
    for i in range(config.candidates):
        if i == 0:
            model.load_state_dict(initial)
        else:
            torch.manual_seed((config.seed or 0) * 1000 + i)
            reset()
        optimizer = _optimizer(model, config.lr)
        mode: QuantMode = "softround" if config.softround else "noise"
        for _ in range(config.warmup):
            _step(model, optimizer, target, lmbda, mode, config.temperature[0], config.clip_grad)
            bar.update(1)
        loss = evaluate(model, target, lmbda)["loss"]
        if best is None or loss < best[0]:
            best = (loss, copy.deepcopy(model.state_dict()))
    assert best is not None
    model.load_state_dict(best[1])


def fit(model: RDModel, target: Tensor, lmbda: float, config: FitConfig | str = "medium",
        device: torch.device | str | None = None, progress: Progress | None = None) -> FitResult:
    """Train ``model`` (in place, on ``device``) to code ``target`` [1, C, ...] at trade-off ``lmbda``."""
    config = preset(config)
    device = torch.device(device) if device is not None else target.device
    model.to(device)
    target = target.to(device, torch.float32)
    bar = progress or null_progress(total_steps(config))
    result = FitResult()
    best_state: dict[str, Any] | None = None
    start = time.monotonic()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=config.seed is not None):
        if config.seed is not None:
            torch.manual_seed(config.seed)
        _warm_up(model, target, lmbda, config, bar)
        optimizer = _optimizer(model, config.lr)
        for step in range(config.iterations):
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * _lr_factor(config, step)
            mode, temperature = _mode(config, step)
            _step(model, optimizer, target, lmbda, mode, temperature, config.clip_grad)
            bar.update(1)
            if (step + 1) % config.eval_every == 0 or step + 1 == config.iterations:
                point = {"step": step + 1, **evaluate(model, target, lmbda)}
                result.history.append(point)
                if not result.best or point["loss"] < result.best["loss"]:
                    result.best = point
                    best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.monotonic() - start
    return result


def total_steps(config: FitConfig) -> int:
    """Optimizer steps of a fit: warm-up candidates plus the main iterations (for progress bars)."""
    return config.iterations + (config.candidates * config.warmup if config.candidates > 1 else 0)
