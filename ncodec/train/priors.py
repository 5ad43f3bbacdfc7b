"""Fitting the counted priors of a trained model's quantizers (the tables its codes are coded with)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..models.audio.encodec import SEANetCodecModel

__all__ = ["fit_prior"]


@torch.no_grad()
def fit_prior(model: SEANetCodecModel, waveforms: Iterable[Tensor]) -> None:
    """Count the codes of every codebook over ``waveforms`` (``[B, channels, T]`` at the model's rate) into
    the model's prior and build its tables."""
    for wav in waveforms:
        model.quantizer.observe_prior(model.encode(wav, 0).codes)
    model.quantizer.update_prior(force=True)
