"""The shared base of the stand-in classes: defining them works, using them raises."""
from __future__ import annotations

from typing import Any


class Unavailable:
    """Subclassable placeholder whose instances cannot be used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{type(self).__name__}: torch_geometric is only a stand-in in this environment")
