"""Stand-in for torchaudio (see ../README.md): ``import encodec`` imports it, the model code never calls it."""
from __future__ import annotations

from typing import Any, NoReturn

from . import transforms  # noqa: F401  (encodec.utils reaches torchaudio.transforms.Resample)

__version__ = "0+ncodec.stand.in"


def _unavailable(name: str) -> NoReturn:
    raise RuntimeError(f"torchaudio.{name}: torchaudio is only a stand-in in this environment (no audio I/O)")


def load(*args: Any, **kwargs: Any) -> NoReturn:
    """Placeholder for audio file reading."""
    _unavailable("load")


def save(*args: Any, **kwargs: Any) -> NoReturn:
    """Placeholder for audio file writing."""
    _unavailable("save")


def info(*args: Any, **kwargs: Any) -> NoReturn:
    """Placeholder for audio file metadata."""
    _unavailable("info")
