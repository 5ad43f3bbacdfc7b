"""Stand-in for torch_geometric.data.datapipes: `functional_transform` as a no-op decorator."""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def functional_transform(name: str) -> Callable[[T], T]:
    """Return the class unchanged (the real one registers a datapipe method)."""
    return lambda cls: cls
