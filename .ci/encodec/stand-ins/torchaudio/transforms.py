"""Stand-in for torchaudio.transforms: the classes encodec names exist, constructing one raises."""
from __future__ import annotations

from typing import Any


class _Unavailable:
    """Base of the placeholders: creating an instance raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"torchaudio.transforms.{type(self).__name__}: torchaudio is only a stand-in "
                           "in this environment")


class Resample(_Unavailable):
    """Placeholder for the resampler of encodec.utils.convert_audio."""


class Spectrogram(_Unavailable):
    """Placeholder for the spectrogram of encodec.msstftd (the discriminator, not imported by encodec)."""
