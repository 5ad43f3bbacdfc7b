"""Entropy coding: integer CDF tables, the lane-interleaved rANS coder, and entropy models.

The torch entropy models load on first use, so tools that only code with tables
(the CLI's lossless codecs) start without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

from .cdf import DEFAULT_PRECISION, CdfTables, quantize_pmf
from .rans import Decoder, decode, default_lanes, encode

_MODELS = {
    "CategoricalModel": "categorical",
    "EntropyBottleneck": "factorized",
    "GaussianConditional": "conditional",
    "LaplaceConditional": "conditional",
    "LogisticConditional": "conditional",
    "GaussianMixtureConditional": "mixture",
}

__all__ = ["CdfTables", "DEFAULT_PRECISION", "Decoder", "decode", "default_lanes", "encode", "quantize_pmf",
           *_MODELS]


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        return getattr(importlib.import_module(f".{_MODELS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
