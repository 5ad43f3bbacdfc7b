"""Stand-in for audiotools.ml: DAC's model base class (a plain nn.Module) and the training accelerator."""
from __future__ import annotations

from typing import Any, NoReturn

from torch import nn

from .._unavailable import Unavailable, unavailable


class BaseModel(nn.Module):
    """``nn.Module`` with audiotools' package lists; its save / load helpers raise."""

    EXTERN: list[str] = ["audiotools.**", "tqdm", "__main__", "numpy.**", "julius.**", "torchaudio.**", "scipy.**",
                         "einops"]
    INTERN: list[str] = []

    def save(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Placeholder for torch.package saving."""
        unavailable("ml.BaseModel.save")

    def save_to_folder(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Placeholder for checkpoint folders."""
        unavailable("ml.BaseModel.save_to_folder")

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Placeholder for torch.package / weights loading."""
        unavailable("ml.BaseModel.load")

    @classmethod
    def load_from_folder(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Placeholder for checkpoint folders."""
        unavailable("ml.BaseModel.load_from_folder")


class Accelerator(Unavailable):
    """Placeholder for the training accelerator of dac.utils."""


__all__ = ["Accelerator", "BaseModel"]
