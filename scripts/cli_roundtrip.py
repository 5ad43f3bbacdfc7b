"""Round-trip a folder of images through the `ncodec` command and print bpp and PSNR per image.

Runs ``ncodec compress IMAGE STREAM [args]`` then ``ncodec decompress STREAM OUT.png`` as a
user would (subprocesses, the installed command), and measures the stream size and the PSNR
of the decoded PNG against the original.

    python scripts/cli_roundtrip.py ../shared/data/images/dev -- --quality 4
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ncodec.media.formats import media_files


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--max-files", type=int)
    args = p.parse_args(argv)
    files = media_files(args.folder, "image")[: args.max_files]
    ncodec = [sys.executable, "-m", "ncodec"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            stream, out = Path(tmp) / (f.stem + ".ncd"), Path(tmp) / (f.stem + ".png")
            t0 = time.perf_counter()
            subprocess.run(ncodec + ["compress", str(f), str(stream), *extra], check=True, capture_output=True)
            t1 = time.perf_counter()
            subprocess.run(ncodec + ["decompress", str(stream), str(out)], check=True, capture_output=True)
            t2 = time.perf_counter()
            ref = np.asarray(PILImage.open(f).convert("RGB"))
            dec = np.asarray(PILImage.open(out).convert("RGB"))
            info = json.loads(subprocess.run(ncodec + ["info", "--json", str(stream)], check=True,
                                             capture_output=True, text=True).stdout)
            row = {"file": f.name, "codec": info["codec"], "bytes": stream.stat().st_size,
                   "bpp": round(8 * stream.stat().st_size / (ref.shape[0] * ref.shape[1]), 4),
                   "psnr": round(psnr(ref, dec), 3), "compress_s": round(t1 - t0, 2), "decompress_s": round(t2 - t1, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finite = [r["psnr"] for r in rows if math.isfinite(r["psnr"])]
    print(json.dumps({"summary": args.folder, "files": len(rows), "mean_bpp": round(float(np.mean([r["bpp"] for r in rows])), 4),
                      "mean_psnr": round(float(np.mean(finite)), 3) if finite else None, "args": extra}))


if __name__ == "__main__":
    main()
