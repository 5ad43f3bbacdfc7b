"""The README's main job: compress and decompress the bundled samples with the `ncodec` command, and put
each result beside a classical codec at the same size.

For each sample it runs ``ncodec compress`` and ``ncodec decompress`` in a temporary folder and
prints sizes, bitrate and the decoded quality (bit-exact for lossless codecs, else PSNR or mel
distance), then the classical peers on the same input: FLAC level 8 (libsndfile) beside the
lossless audio coder, Opus (PyAV, when installed) beside the bundled neural audio codec; for the photo,
the default `learned-wavelet` beside plain `wavelet` (the same quantizer without the learned context
weights and restoration network), JPEG (4:2:0) and WebP (Pillow) at the largest quality that fits
the ncodec stream's size, and PNG beside the lossless wavelet codec. The numbers are what they are on these two small
samples: the README's evaluation section has the dev-set results.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from PIL import Image as PILImage

from ncodec.eval.metrics import mel_distance
from ncodec.media.io import read_media
from ncodec.media.types import Audio, Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def ncodec(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ncodec", "--quiet", *args], check=True)


def psnr(a: np.ndarray, b: np.ndarray, bits: int = 8) -> float:
    peak = float((1 << bits) - 1)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(peak * peak / max(mse, 1e-12))


def quality(original: Image | Audio, decoded: Image | Audio) -> str:
    a = original.samples if isinstance(original, Audio) else original.pixels
    b = decoded.samples if isinstance(decoded, Audio) else decoded.pixels
    if a.shape == b.shape and np.array_equal(a, b):
        return "bit-exact (lossless)"
    return f"PSNR {psnr(a, b, original.bit_depth or 16):.2f} dB"


def roundtrip(tmp: Path, name: str, *options: str) -> tuple[Image | Audio, Image | Audio, int]:
    """(original, decoded, stream bytes) of one sample through the command line."""
    src = tmp / name
    shutil.copy(SAMPLES / name, src)
    stream = tmp / (name + "".join(o.strip("-=") for o in options) + ".ncd")
    ncodec("compress", str(src), str(stream), *options)
    out = tmp / (stream.stem + (".wav" if name.endswith(".flac") else ".png"))
    ncodec("decompress", str(stream), str(out))
    return read_media(src), read_media(out), stream.stat().st_size


def at_size(encode: Callable[[int], bytes], budget: int, qualities: range) -> tuple[int, bytes] | None:
    """The highest quality whose bytes fit ``budget`` (sizes grow with quality), by bisection."""
    best = None
    lo, hi = qualities.start, qualities.stop - 1
    while lo <= hi:
        q = (lo + hi) // 2
        data = encode(q)
        if len(data) <= budget:
            best, lo = (q, data), q + 1
        else:
            hi = q - 1
    return best


def opus_at_size(original: Audio, budget: int) -> str:
    """Opus (libopus through PyAV) at the highest whole kbps whose Ogg file fits ``budget`` bytes, and its mel
    distance; a note when PyAV is missing (it comes with ``pip install 'ncodec[eval]'``)."""
    from ncodec.errors import MediaError
    from ncodec.eval.peers.audio import OpusPeer

    peer = OpusPeer()
    try:
        found = at_size(lambda kbps: peer.encode(original, float(kbps)), budget, range(6, 65))
    except MediaError:  # PyAV is not installed
        return "Opus: not compared (PyAV missing: pip install 'ncodec[eval]')"
    if found is None:
        return f"Opus cannot fit {budget} B"
    kbps, data = found
    back = peer.decode(data, original)
    return (f"Opus at the same size: {kbps} kbps target, {len(data)} B, mel distance {mel_distance(original, back):.3f} "
            "(on the dev sets ncodec at 6 kbps is below Opus at 8: README)")


def pil_bytes(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt, **options)
    return buf.getvalue()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # audio: the lossless coder against FLAC level 8 on the same PCM
        original, decoded, size = roundtrip(tmp, "speech.flac")
        assert isinstance(original, Audio)
        flac = io.BytesIO()
        sf.write(flac, original.samples, original.sample_rate, format="FLAC", subtype="PCM_16",
                 compression_level=1.0)
        kbps = 8 * size / original.duration / 1000
        print(f"speech.flac  {original.duration:.2f} s, {original.sample_rate} Hz: ncodec audio-lossless {size} B "
              f"({kbps:.1f} kbps, {quality(original, decoded)}); FLAC level 8 {len(flac.getvalue())} B: ncodec is "
              f"{100 * (size / len(flac.getvalue()) - 1):+.1f}% (a 1.35 s clip; on the 71 min audio set "
              "`ncodec bench lossless-audio` measures the long-run ratio)")
        # neural audio: the bundled ncodec_24khz at 6 kbps against Opus at the same size (Opus needs PyAV)
        original, decoded, size = roundtrip(tmp, "speech.flac", "--codec", "encodec", "--kbps", "6")
        assert isinstance(original, Audio) and isinstance(decoded, Audio)
        print(f"  lossy: ncodec encodec (ncodec_24khz, 6 kbps) {size} B ({8 * size / original.duration / 1000:.1f} kbps "
              f"with the header), mel distance {mel_distance(original, decoded):.3f} (lower is better)")
        print("  " + opus_at_size(original, size))
        # photo: the default (best) lossy codec against JPEG and WebP at the same size
        original, decoded, size = roundtrip(tmp, "garden.png")
        assert isinstance(original, Image)
        px = original.pixels
        bpp = 8 * size / original.num_pixels
        print(f"garden.png   {original.width}x{original.height}: ncodec learned-wavelet (default) {size} B "
              f"({bpp:.3f} bpp, {quality(original, decoded)})")
        _, plain, plain_size = roundtrip(tmp, "garden.png", "--codec", "wavelet")
        print(f"  the same coefficients without the learned parts (ncodec wavelet): {plain_size} B, "
              f"{quality(original, plain)}")
        low = [roundtrip(tmp, "garden.png", "--codec", name, "--bpp", "0.25") for name in ("learned-wavelet", "wavelet")]
        print(f"  at 0.25 bpp, where the restoration network earns most: learned-wavelet {low[0][2]} B, "
              f"{quality(original, low[0][1])}; wavelet {low[1][2]} B, {quality(original, low[1][1])}")
        for label, fmt, options, span in (("JPEG 4:2:0", "JPEG", {"subsampling": 2}, range(1, 96)),
                                          ("WebP", "WEBP", {"method": 6}, range(0, 101))):
            found = at_size(lambda q: pil_bytes(px, fmt, quality=q, **options), size, span)
            if found is None:
                print(f"  {label:<11} cannot fit {size} B")
                continue
            q, data = found
            back = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
            print(f"  {label:<11} at the same size: quality {q}, {len(data)} B, PSNR {psnr(px, back):.2f} dB")
        _, decoded_ll, size_ll = roundtrip(tmp, "garden.png", "--codec", "wavelet-lossless")
        png = pil_bytes(px, "PNG", optimize=True)
        print(f"  lossless: ncodec wavelet-lossless {size_ll} B ({quality(original, decoded_ll)}), "
              f"PNG (optimised) {len(png)} B: ncodec is {100 * (size_ll / len(png) - 1):+.1f}%")


if __name__ == "__main__":
    main()
