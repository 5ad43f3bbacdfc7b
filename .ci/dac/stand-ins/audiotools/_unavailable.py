"""The shared base of the stand-in classes: defining, subclassing and isinstance work, using them raises."""
from __future__ import annotations

from typing import Any, NoReturn


def unavailable(name: str) -> NoReturn:
    """Raise: ``name`` belongs to audiotools, which is only a stand-in here."""
    raise RuntimeError(f"audiotools.{name}: audiotools is only a stand-in in this environment (no audio I/O, "
                       "no training utilities)")


class Unavailable:
    """Placeholder class: creating an instance raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        unavailable(type(self).__name__)
