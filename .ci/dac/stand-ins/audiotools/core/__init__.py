"""Stand-in for audiotools.core: the audio-signal classes DAC names; constructing one raises."""
from __future__ import annotations

from .._unavailable import Unavailable


class AudioSignal(Unavailable):
    """Placeholder for the audio-file wrapper of DAC.compress / decompress, the losses and the discriminator."""


class STFTParams(Unavailable):
    """Placeholder for the STFT settings of DAC's losses and discriminator."""
