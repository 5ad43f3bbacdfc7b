"""Rate cost and speed of exact entropy parameters (integer h_s) against plain float h_s.

For every image of a folder, a hyperprior model compresses it twice: once with
``model.exact = True`` (what ncodec's streams use: bit-identical on every device) and once
with the float ``h_s`` (what CompressAI does: decodable only on the same machine set-up).
Prints per-image and total bytes, the relative rate cost of the exact path, the largest
difference between the two parameter sets, and the time h_s takes either way.

    python scripts/bench_exact_image.py --data ../shared/data/images/dev --model mbt2018-mean-tiny
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image as PILImage

from ncodec.codecs.image.learned import LearnedImageCodec
from ncodec.models.image.hyperprior import HyperpriorModel
from ncodec.media.formats import media_files



def _timed_params(net: HyperpriorModel, z_hat: torch.Tensor, exact: bool, repeats: int = 3) -> tuple[torch.Tensor, float]:
    net.exact = exact
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        params = net.entropy_parameters(z_hat)
        best = min(best, time.perf_counter() - start)
    return params, best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images")
    p.add_argument("--model", default=None, help="zoo name or .safetensors path (default: the default model)")
    p.add_argument("--quality", type=int, action="append", help="qualities (repeatable; default: every installed)")
    p.add_argument("--max-files", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    files = media_files(args.data, "image")[: args.max_files]
    qualities = args.quality or (LearnedImageCodec.eval_fixed_points() if args.model is None else [None])
    totals = []
    for quality in qualities:
        codec = LearnedImageCodec(model=args.model, quality=quality)
        net = codec.net
        assert isinstance(net, HyperpriorModel), "the exact path concerns hyperprior models"
        exact_bytes = float_bytes = pixels = 0
        t_exact = t_float = 0.0
        max_diff = 0.0
        for f in files:
            img = np.asarray(PILImage.open(f).convert("RGB"))
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                z = net.h_a(net._hyper_input(net.g_a(net.pad(x))))
                z_hat = net.entropy_bottleneck.decompress(net.entropy_bottleneck.compress(z), z.shape[-2:])
                pe, te = _timed_params(net, z_hat, True)
                pf, tf = _timed_params(net, z_hat, False)
            max_diff = max(max_diff, float((pe - pf.double()).abs().max()))
            sizes = {}
            for exact in (True, False):
                net.exact = exact
                enc = net.compress(x)
                sizes[exact] = sum(len(s) for strings in enc["strings"] for s in strings)
            exact_bytes += sizes[True]
            float_bytes += sizes[False]
            pixels += img.shape[0] * img.shape[1]
            t_exact += te
            t_float += tf
            print(json.dumps({"file": f.name, "quality": codec.facts["quality"], "exact_bytes": sizes[True],
                              "float_bytes": sizes[False], "cost_pct": round(100 * (sizes[True] / sizes[False] - 1), 4)}),
                  flush=True)
        row = {"summary": codec.facts["name"], "quality": codec.facts["quality"], "files": len(files),
               "bpp_exact": round(8 * exact_bytes / pixels, 5), "bpp_float": round(8 * float_bytes / pixels, 5),
               "cost_pct": round(100 * (exact_bytes / float_bytes - 1), 4), "max_param_diff": max_diff,
               "h_s_seconds_exact": round(t_exact, 3), "h_s_seconds_float": round(t_float, 3),
               "time_ratio": round(t_exact / max(t_float, 1e-9), 2)}
        totals.append(row)
        print(json.dumps(row), flush=True)
    all_exact = sum(r["bpp_exact"] for r in totals)
    all_float = sum(r["bpp_float"] for r in totals)
    print(json.dumps({"summary": "all qualities", "cost_pct": round(100 * (all_exact / all_float - 1), 4)}))


if __name__ == "__main__":
    main()
