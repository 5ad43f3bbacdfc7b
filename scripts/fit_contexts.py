"""Fit the subband coder's context weights to training photos and store them in a `learned-wavelet` model file.

    python scripts/fit_contexts.py --data ../shared/data/images/train --model ncodec/weights/wavelet-restore.safetensors

Photos (every ``--every``-th, cropped to ``--crop`` pixels) are quantized at ``--steps``; each band
class's weights are fitted by coordinate descent on the coder's size estimate (`ncodec.train.contexts`).
The table is written into the model file (tensor ``contexts``, int32) atomically, beside the
restoration network; its other tensors and metadata are kept. Prints the estimated saving per class
and in all, and the same on ``--val`` photos when given (not fitted on).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.train.contexts import band_cases, class_bits, fit_table, hand_set_row
from ncodec.train.image import load_images
from ncodec.zoo import load_weights, read_metadata
from ncodec.zoo.files import save_state_atomically
from ncodec.zoo.restoration import CONTEXTS


def photos(folder: str, every: int, crop: int) -> list[np.ndarray]:
    return [img[:crop, :crop] for img in load_images(Path(folder), 64)[::every]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--val", help="photos to report the saving on (not fitted)")
    p.add_argument("--model", required=True, help="learned-wavelet model file to write the table into")
    p.add_argument("--steps", default="5,11.3,25,56", help="base steps the photos are quantized at")
    p.add_argument("--every", type=int, default=3, help="use every N-th photo")
    p.add_argument("--crop", type=int, default=640)
    p.add_argument("--sweeps", type=int, default=2)
    args = p.parse_args(argv)
    steps = [float(s) for s in args.steps.split(",")]
    started = time.monotonic()
    cases = band_cases(photos(args.data, args.every, args.crop), steps)
    print(f"{sum(map(len, cases.values()))} bands in {len(cases)} classes ({time.monotonic() - started:.0f} s)")
    table, scores = fit_table(cases, args.sweeps, log=True)
    before, after = (sum(s[i] for s in scores.values()) for i in (0, 1))
    print(f"training photos: {before:.0f} -> {after:.0f} estimated bits ({100 * (after / before - 1):+.2f}%), "
          f"{time.monotonic() - started:.0f} s")
    if args.val:
        val = band_cases(photos(args.val, 1, args.crop), steps)
        hand = sum(class_bits(c, hand_set_row()) for c in val.values())
        fitted = sum(class_bits(c, [int(v) for v in table[cls]]) for cls, c in val.items())
        print(f"validation photos: {hand:.0f} -> {fitted:.0f} estimated bits ({100 * (fitted / hand - 1):+.2f}%)")
    path = Path(args.model)
    state = load_weights(path)
    state[CONTEXTS] = torch.from_numpy(table.astype(np.int32))
    meta = {**read_metadata(path), "contexts_fitted": f"{Path(args.data).name}, steps {args.steps}"}
    save_state_atomically(state, path, meta)
    print(f"wrote the context table into {path}")


if __name__ == "__main__":
    main()
