"""Pure tones and their measured level: test signals shared by the mel and resampler tests."""
from __future__ import annotations

import math

import torch


def tone(freq: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return amplitude * torch.sin(2 * math.pi * freq * t)


def tone_level_db(y: torch.Tensor, freq: float, sample_rate: int) -> float:
    """Amplitude in dB of the ``freq`` component of the middle half of ``y`` (least-squares sine fit)."""
    n = y.shape[-1]
    mid = slice(n // 4, 3 * n // 4)
    t = torch.arange(n, dtype=torch.float64)[mid] / sample_rate
    basis = torch.stack([torch.sin(2 * math.pi * freq * t), torch.cos(2 * math.pi * freq * t)], dim=1)
    coef = torch.linalg.lstsq(basis, y[mid].double()[:, None]).solution
    return 20 * math.log10(float(coef.norm()) + 1e-300)
