"""Quantizers with one interface (see `ncodec.quantizers.base` for it and the index layouts).

Scalar (noise / STE / mixed), vector quantization (EMA or learned, k-means init, L2 or
cosine, dead-code restart, rotation trick), residual / grouped residual / product VQ,
FSQ and residual FSQ, LFQ and binary spherical quantization.
"""
from .base import Quantizer, QuantizerOutput
from .fsq import FSQ, ResidualFSQ
from .lfq import LFQ
from .residual import GroupedResidualVQ, ProductVQ, ResidualVQ
from .scalar import ScalarQuantizer
from .vq import VectorQuantizer

__all__ = ["FSQ", "GroupedResidualVQ", "LFQ", "ProductVQ", "Quantizer", "QuantizerOutput", "ResidualFSQ",
           "ResidualVQ", "ScalarQuantizer", "VectorQuantizer"]
