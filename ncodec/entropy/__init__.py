"""Entropy coding: integer CDF tables, the lane-interleaved rANS coder, and entropy models."""
from .cdf import DEFAULT_PRECISION, CdfTables, quantize_pmf
from .rans import Decoder, decode, default_lanes, encode

__all__ = ["CdfTables", "DEFAULT_PRECISION", "Decoder", "decode", "default_lanes", "encode", "quantize_pmf"]
