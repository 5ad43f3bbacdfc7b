"""Stand-in for torch_geometric.transforms: base classes CompressAI's point transforms subclass."""
from .._unavailable import Unavailable


class BaseTransform(Unavailable):
    """Placeholder base class of CompressAI's point-cloud transforms."""


class Center(Unavailable):
    """Placeholder for the centring transform (referenced, never used, by CompressAI's images)."""
