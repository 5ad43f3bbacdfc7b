"""The README's main job: compress and decompress the bundled samples with the `ncodec` command.

For each sample it runs ``ncodec compress`` and ``ncodec decompress`` in a temporary
folder, then prints the sizes, the bitrate, and the quality of the decoded file against
the original (bit-exact for the lossless codecs, else PSNR).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ncodec.media.io import read_media
from ncodec.media.types import Audio

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def ncodec(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ncodec", "--quiet", *args], check=True)


def quality(original, decoded) -> str:
    a = original.samples if isinstance(original, Audio) else original.pixels
    b = decoded.samples if isinstance(decoded, Audio) else decoded.pixels
    if a.shape == b.shape and np.array_equal(a, b):
        return "bit-exact (lossless)"
    peak = float((1 << (original.bit_depth or 16)) - 1)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return f"PSNR {10 * np.log10(peak * peak / max(mse, 1e-12)):.2f} dB"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("speech.flac", "garden.png"):
            src = Path(tmp) / name
            shutil.copy(SAMPLES / name, src)
            stream = src.with_suffix(".ncd")
            ncodec("compress", str(src), str(stream))
            out = Path(tmp) / ("decoded.wav" if name.endswith(".flac") else "decoded.png")
            ncodec("decompress", str(stream), str(out))
            original, decoded = read_media(src), read_media(out)
            size = stream.stat().st_size
            if isinstance(original, Audio):
                raw = original.frames * original.channels * (original.bit_depth or 16) // 8
                rate = f"{8 * size / original.duration / 1000:.1f} kbps ({original.duration:.2f} s)"
            else:
                raw = original.pixels.size * original.pixels.itemsize
                rate = f"{8 * size / original.num_pixels:.3f} bpp ({original.width}x{original.height})"
            print(f"{name:<12} {src.stat().st_size:>8} B file, {raw:>8} B raw -> {size:>7} B ncodec  {rate:<28} "
                  f"{quality(original, decoded)}")


if __name__ == "__main__":
    main()
