"""Encode and decode seconds per photo of ncodec's lossy image codecs at a fixed quality, beside AVIF and
JPEG at the same size, in one run (the harness's codec interface, as ``ncodec eval image`` measures).

    python scripts/bench_image_codec.py --data ../shared/data/images/dev --threads 2 \\
        --codecs learned-wavelet,wavelet --quality 75

The issue's bar: encode and decode of a 768x512 photo each under 1 s on 2 cores. Each photo's best of
``--repeats`` is counted; codecs with weights load them once, outside the timing. The peers (``--peers``,
needs ``[eval]``) code each photo at the largest setting that fits the size the first codec's stream took
(found by bisection, not timed; the encode at that setting is).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ncodec.bench.timing import best_time
from ncodec.codecs.registry import codec_class
from ncodec.eval.harness import load_media, media_files, resolve_codec
from ncodec.eval.metrics import psnr


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of photos")
    p.add_argument("--codecs", default="learned-wavelet,wavelet", help="ncodec codecs, comma-separated")
    p.add_argument("--quality", type=float, default=75.0)
    p.add_argument("--peers", default="avif,jpeg", help="classical peers at the first codec's sizes ('' for none)")
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    photos = [load_media(f, "image") for f in media_files(Path(args.data), "image")[: args.max_files]]
    sizes: list[int] = []
    rows = []
    for name in args.codecs.split(","):
        codec = codec_class(name)(quality=args.quality)   # weights loaded once, here
        enc, dec, quality, nbytes = [], [], [], []
        for photo in photos:
            t_enc, data = best_time(lambda photo=photo: codec.encode(photo), args.repeats)
            t_dec, back = best_time(lambda data=data: _decode(data), args.repeats)
            enc.append(t_enc)
            dec.append(t_dec)
            quality.append(psnr(photo, back))
            nbytes.append(len(data))
        sizes = sizes or nbytes
        rows.append(_row(name, photos, enc, dec, quality, nbytes, args))
    for name in filter(None, args.peers.split(",")):
        peer = resolve_codec(name, "image")
        enc, dec, quality, nbytes = [], [], [], []
        for photo, budget in zip(photos, sizes):
            setting = _peer_setting(peer, photo, budget)
            t_enc, data = best_time(lambda photo=photo, setting=setting: peer.encode(photo, setting), args.repeats)
            t_dec, back = best_time(lambda data=data, photo=photo: peer.decode(data, photo), args.repeats)
            enc.append(t_enc)
            dec.append(t_dec)
            quality.append(psnr(photo, back))
            nbytes.append(len(data))
        rows.append(_row(name, photos, enc, dec, quality, nbytes, args, searched=True))
    for r in rows:
        print(json.dumps(r) if args.json else
              f"{r['codec']:<16} {r['bpp']:6.3f} bpp  PSNR {r['psnr']:6.2f} dB  encode {r['encode_s_median']:6.3f} s "
              f"(max {r['encode_s_max']:.3f})  decode {r['decode_s_median']:6.3f} s (max {r['decode_s_max']:.3f})"
              + ("  (at the first codec's sizes; one encode timed)" if r.get("searched") else ""), flush=True)


def _decode(data: bytes):  # type: ignore[no-untyped-def]
    import ncodec

    return ncodec.decode(data)


def _peer_setting(peer, photo, budget: int) -> float:  # type: ignore[no-untyped-def]
    """The peer's largest knob setting whose stream fits ``budget`` bytes (bisection; not timed)."""
    knob = peer.knob
    lo, hi = knob.lo, knob.hi
    best = lo
    for _ in range(40):
        if hi - lo <= (1 if knob.integer else (knob.hi - knob.lo) / 512):
            break
        mid = (lo + hi) // 2 if knob.integer else (lo + hi) / 2
        if len(peer.encode(photo, mid)) <= budget:
            best, lo = mid, mid
        else:
            hi = mid
    if len(peer.encode(photo, hi)) <= budget:
        best = hi
    return float(best)


def _row(name: str, photos: list, enc: list[float], dec: list[float], quality: list[float], nbytes: list[int],
         args: argparse.Namespace, searched: bool = False) -> dict:
    pixels = sum(p.num_pixels for p in photos)
    return {"codec": name, "quality": args.quality, "photos": len(photos), "bpp": round(8 * sum(nbytes) / pixels, 4),
            "psnr": round(statistics.mean(quality), 3), "encode_s_median": round(statistics.median(enc), 3),
            "encode_s_max": round(max(enc), 3), "decode_s_median": round(statistics.median(dec), 3),
            "decode_s_max": round(max(dec), 3), "threads": args.threads, **({"searched": True} if searched else {})}


if __name__ == "__main__":
    main()
