"""Quantization proxies for training overfitted codecs: noise, soft-rounding, straight-through, hard.

``noise`` adds U(-1/2, 1/2) (Ballé's proxy); ``softround`` is C3's proxy: soft-round, add noise,
soft-round again, with a temperature annealed toward hard rounding; ``ste`` rounds in the
forward pass and passes the gradient unchanged; ``hard`` rounds (evaluation, coding).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

QuantMode = Literal["noise", "softround", "ste", "hard"]
QUANT_MODES: tuple[str, ...] = ("noise", "softround", "ste", "hard")


def soft_round(y: Tensor, temperature: float) -> Tensor:
    """Differentiable rounding (Agustsson & Theis 2020): identity-like when warm, rounding as T -> 0."""
    if temperature <= 0:
        return torch.round(y)
    alpha = 1.0 / temperature
    floor = torch.floor(y)
    r = y - floor - 0.5
    return floor + 0.5 + torch.tanh(alpha * r) / (2.0 * math.tanh(alpha / 2.0))


def quantize(y: Tensor, mode: QuantMode, temperature: float = 0.3) -> Tensor:
    """The quantized (or proxy-quantized) values of ``y`` under ``mode``."""
    if mode == "noise":
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)
    if mode == "softround":
        noisy = soft_round(y, temperature) + torch.empty_like(y).uniform_(-0.5, 0.5)
        return soft_round(noisy, temperature)
    if mode == "ste":
        return y + (torch.round(y) - y).detach()
    if mode == "hard":
        return torch.round(y)
    raise ValueError(f"quantization mode must be one of {QUANT_MODES}, got {mode!r}")
