"""Encode + decode speed of the default neural audio codec (``encodec`` with ncodec_24khz) against Opus, in
one run: times real time on the dev clips (seconds of audio per second of encode + decode), both through the
eval harness's codec interface (what ``ncodec eval audio`` measures).

    python scripts/bench_audio_codec.py --data ../shared/data/audio/speech/dev ../shared/data/audio/music/dev \\
        --threads 2 --points encodec:6,encodec:12,opus:8

The issue's bar: >= 20x real time on 2 cores. Each clip's best of ``--repeats`` encodes and decodes is
counted (the model is loaded once per codec outside the timing, as a long-running user would).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ncodec.bench.timing import best_time
from ncodec.eval.harness import load_media, media_files, resolve_codec


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="folders of audio clips")
    p.add_argument("--points", default="encodec:6,encodec:12,opus:8", help="codec:kbps, comma-separated")
    p.add_argument("--max-seconds", type=float, default=None, help="cut each clip to this length")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = [load_media(f, "audio", args.max_seconds) for d in args.data for f in media_files(Path(d), "audio")]
    seconds = sum(c.frames / c.sample_rate for c in clips)
    rows = []
    for point in args.points.split(","):
        name, kbps = point.split(":")
        codec = resolve_codec(name, "audio")
        if name == "encodec":  # load the model once, outside the timing
            from ncodec.codecs.audio.neural import NeuralAudioCodec

            shared = NeuralAudioCodec(bandwidth=float(kbps))
            shared.net  # noqa: B018
            encode = shared.encode
        else:
            def encode(media, codec=codec, kbps=float(kbps)):  # type: ignore[no-untyped-def]
                return codec.encode(media, kbps)
        enc_total = dec_total = 0.0
        size = 0
        for clip in clips:
            t_enc, data = best_time(lambda clip=clip: encode(clip), args.repeats)
            t_dec, _ = best_time(lambda data=data, clip=clip: codec.decode(data, clip), args.repeats)
            enc_total, dec_total, size = enc_total + t_enc, dec_total + t_dec, size + len(data)
        rows.append({"codec": name, "kbps_target": float(kbps), "kbps": round(8 * size / seconds / 1000, 3),
                     "audio_s": round(seconds, 2), "encode_s": round(enc_total, 3), "decode_s": round(dec_total, 3),
                     "x_realtime": round(seconds / (enc_total + dec_total), 1), "threads": args.threads})
    base = next((r for r in rows if r["codec"] == "opus"), None)
    for r in rows:
        if base:
            r["vs_opus_time"] = round((r["encode_s"] + r["decode_s"]) / (base["encode_s"] + base["decode_s"]), 2)
        print(json.dumps(r) if args.json else
              f"{r['codec']:<8} {r['kbps_target']:5g} kbps target  {r['kbps']:7.3f} kbps  encode {r['encode_s']:7.3f} s"
              f"  decode {r['decode_s']:7.3f} s  {r['x_realtime']:6.1f}x real time"
              + (f"  ({r['vs_opus_time']}x Opus's time)" if base else ""), flush=True)


if __name__ == "__main__":
    main()
