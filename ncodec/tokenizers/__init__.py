"""Tokens from codecs for generative models: codebook interleaving patterns (`ncodec.tokenizers.patterns`)."""
from .patterns import (PATTERNS, CoarseFirstPattern, DelayPattern, FlattenPattern, ParallelPattern, Pattern,
                       PatternError, StackAndDelayPattern, get_pattern)

__all__ = ["CoarseFirstPattern", "DelayPattern", "FlattenPattern", "PATTERNS", "ParallelPattern", "Pattern",
           "PatternError", "StackAndDelayPattern", "get_pattern"]
