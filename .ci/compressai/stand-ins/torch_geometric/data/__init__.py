"""Stand-in for torch_geometric.data: only the `Data` name used in type hints."""
from .._unavailable import Unavailable


class Data(Unavailable):
    """Placeholder point-cloud record."""
