"""``ncodec bench lossless-audio``: ``audio-lossless`` against FLAC (libsndfile, level 8) on the same PCM.

Every file under ``--data`` (default ``../shared/data/audio``) is read as integer PCM
(lossy sources such as Opus are decoded and rounded to 16-bit PCM, the file a user would
archive), coded by both, decoded, and checked bit for bit. Prints one JSON object per file
and one summary per folder and overall, with sizes, the ncodec/FLAC size ratio and speeds
(x real time, one thread each).
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..codecs.audio.lossless import LosslessAudioCodec
from ..media.formats import media_files
from ..media.io import read_audio
from ..media.types import Audio
from .. import api

def as_pcm(audio: Audio) -> Audio:
    """Integer PCM as is; float audio rounded to 16-bit PCM."""
    if audio.is_integer:
        return audio
    x = np.clip(np.rint(audio.samples.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return Audio(x, audio.sample_rate, bit_depth=16)


def flac_roundtrip(audio: Audio) -> tuple[int, float, float]:
    """Size, encode and decode seconds of FLAC level 8 (libsndfile compression level 1.0)."""
    import soundfile as sf

    subtype = "PCM_16" if (audio.bit_depth or 16) <= 16 else "PCM_24"
    data = audio.samples if subtype == "PCM_16" else audio.samples.astype(np.int32) << 8
    buf = io.BytesIO()
    t0 = time.perf_counter()
    sf.write(buf, data, audio.sample_rate, format="FLAC", subtype=subtype, compression_level=1.0)
    t_enc = time.perf_counter() - t0
    raw = buf.getvalue()
    t0 = time.perf_counter()
    back, _ = sf.read(io.BytesIO(raw), dtype="int32", always_2d=True)
    t_dec = time.perf_counter() - t0
    ref = audio.samples.astype(np.int32) << (16 if subtype == "PCM_16" else 8)
    if not np.array_equal(back, ref):
        raise AssertionError("FLAC round trip is not exact")
    return len(raw), t_enc, t_dec


def bench_file(path: Path, codec: LosslessAudioCodec, max_seconds: float | None) -> dict[str, Any]:
    audio = as_pcm(read_audio(path))
    if max_seconds:
        audio = Audio(audio.samples[: int(max_seconds * audio.sample_rate)], audio.sample_rate, audio.bit_depth)
    t0 = time.perf_counter()
    data = codec.encode(audio)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = api.decode_media(data)
    t_dec = time.perf_counter() - t0
    if not np.array_equal(back.samples, audio.samples):
        raise AssertionError(f"ncodec round trip is not exact on {path}")
    flac, f_enc, f_dec = flac_roundtrip(audio)
    return {"file": str(path), "seconds": round(audio.duration, 3), "channels": audio.channels,
            "sample_rate": audio.sample_rate, "ncodec_bytes": len(data), "flac_bytes": flac,
            "ratio": len(data) / flac, "ncodec_enc_xrt": audio.duration / t_enc, "ncodec_dec_xrt": audio.duration / t_dec,
            "flac_enc_xrt": audio.duration / f_enc, "flac_dec_xrt": audio.duration / f_dec}


def summarise(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    n, f = sum(r["ncodec_bytes"] for r in rows), sum(r["flac_bytes"] for r in rows)
    return {"summary": name, "files": len(rows), "seconds": round(sum(r["seconds"] for r in rows), 1),
            "ncodec_bytes": n, "flac_bytes": f, "ratio": n / f}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="ncodec bench lossless-audio", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/audio", help="folder searched recursively for audio files")
    p.add_argument("--max-seconds", type=float, default=None, help="code only the first seconds of each file")
    p.add_argument("--json", action="store_true", help="JSON lines (default: a table)")
    args = p.parse_args(argv)
    root = Path(args.data)
    files = media_files(root, "audio", recursive=True)
    if not files:
        raise SystemExit(f"no audio files under {root}")
    codec = LosslessAudioCodec()
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        row = bench_file(f, codec, args.max_seconds)
        groups.setdefault(str(f.parent.relative_to(root)), []).append(row)
        if args.json:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        else:
            print(f"{f.name:<44} {row['seconds']:7.1f}s  ncodec {row['ncodec_bytes']:>9}  flac {row['flac_bytes']:>9}  "
                  f"ratio {row['ratio']:.4f}  enc {row['ncodec_enc_xrt']:6.1f}x (flac {row['flac_enc_xrt']:6.1f}x)  "
                  f"dec {row['ncodec_dec_xrt']:6.1f}x (flac {row['flac_dec_xrt']:6.1f}x)", flush=True)
    summaries = [summarise(k, v) for k, v in groups.items()]
    summaries.append(summarise("all", [r for v in groups.values() for r in v]))
    for s in summaries:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}) if args.json else
              f"{s['summary']:<20} {s['files']:>3} files {s['seconds']:8.1f}s  ncodec/flac size {s['ratio']:.4f}",
              flush=True)
