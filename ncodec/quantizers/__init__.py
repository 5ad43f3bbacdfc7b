"""Quantizers (scalar, VQ, residual / grouped VQ, multi-codebook, FSQ, LFQ) live in this package."""
