"""Tokens from codecs for generative models: `Tokenizer` (audio <-> codes, `ncodec.tokenizers.tokenizer`) and
codebook interleaving patterns (`ncodec.tokenizers.patterns`)."""
from .patterns import (PATTERNS, CoarseFirstPattern, DelayPattern, FlattenPattern, ParallelPattern, Pattern,
                       PatternError, StackAndDelayPattern, get_pattern)
from .tokenizer import Tokenizer

__all__ = ["CoarseFirstPattern", "DelayPattern", "FlattenPattern", "PATTERNS", "ParallelPattern", "Pattern",
           "PatternError", "StackAndDelayPattern", "Tokenizer", "get_pattern"]
