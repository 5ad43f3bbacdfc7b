"""Print each codebook interleaving pattern's step count and layout for K codebooks and T frames.

Usage: ``python scripts/show_patterns.py [--k 4] [--t 8] [--pattern delay ...]``. Each grid
has one row per codebook k and one column per sequence step s; a cell shows the frame t of
the code (k, t) emitted there, ``.`` where the row holds the special token.
"""
from __future__ import annotations

import argparse

import torch

from ncodec.tokenizers import PATTERNS, Pattern, get_pattern


def layout_grid(pattern: Pattern, timesteps: int) -> str:
    """ASCII grid of the sequence that ``pattern.build`` makes from codes equal to their own frame index."""
    codes = torch.arange(timesteps).expand(1, pattern.n_q, timesteps)
    sequence, mask = pattern.build(codes, special_token=-1)
    width = len(str(max(timesteps - 1, sequence.shape[2] - 1))) + 1
    head = "   s" + "".join(f"{s:>{width}}" for s in range(sequence.shape[2]))
    rows = [f"k={k:<2}" + "".join(f"{int(v):>{width}}" if m else f"{'.':>{width}}"
                                  for v, m in zip(sequence[0, k], mask[k]))
            for k in range(pattern.n_q)]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> None:
    """Print the step count and grid of each requested pattern."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4, help="number of codebooks K (default 4)")
    parser.add_argument("--t", type=int, default=8, help="number of frames T (default 8)")
    parser.add_argument("--pattern", nargs="*", default=list(PATTERNS), help="patterns to show (default all)")
    args = parser.parse_args(argv)
    for name in args.pattern:
        pattern = get_pattern(name, args.k)
        steps = pattern.num_steps(args.t)
        print(f"{name}: {pattern!r}, K={args.k}, T={args.t} -> {steps} steps")
        print(layout_grid(pattern, args.t))
        print()


if __name__ == "__main__":
    main()
