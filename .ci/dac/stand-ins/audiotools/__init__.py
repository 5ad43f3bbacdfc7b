"""Stand-in for audiotools (see ../README.md): ``import dac`` imports it, DAC's tensor paths never call it."""
from __future__ import annotations

from . import ml  # dac/__init__.py reaches audiotools.ml.BaseModel
from .core import AudioSignal, STFTParams

__version__ = "0+ncodec.stand.in"
__all__ = ["AudioSignal", "STFTParams", "ml"]
