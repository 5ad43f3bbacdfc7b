"""The learning curve of a training run: its validation records (real bitstreams on dev photos or dev clips)
as a Markdown table, for model cards and notes. Image runs give bpp / PSNR per quality, audio runs
(scripts/train_audio.py) kbps / mel distance / SI-SDR per bandwidth.

    python scripts/learning_curve.py runs/mbt2018-mean-gained/log.jsonl
    python scripts/learning_curve.py runs/ncodec_24khz/log.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(log: Path) -> str:
    """One row per validation: step, minutes of training, then bpp / PSNR per validated quality."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if '"val"' in line]
    if not rows:
        return "(no validation yet)"
    first = rows[0]["val"]
    sample = next(iter(first.values()))
    if isinstance(sample, dict) and "mel" in sample:
        return audio_table(rows)
    nested = isinstance(next(iter(first.values())), dict)
    keys = list(first) if nested else ["val"]
    head = "| step | minutes | " + " | ".join(f"{k} bpp | {k} PSNR (dB)" for k in keys) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(keys))]
    for r in rows:
        vals = r["val"] if nested else {"val": r["val"]}
        cells = " | ".join(f"{vals[k]['bpp']:.3f} | {vals[k]['psnr']:.2f}" for k in keys)
        lines.append(f"| {r['step']} | {r['seconds'] / 60:.0f} | {cells} |")
    return "\n".join(lines)


def audio_table(rows: list[dict]) -> str:
    """One row per validation: step, minutes, then actual kbps / mel distance / SI-SDR per bandwidth."""
    bands = list(rows[0]["val"])
    head = "| step | minutes | " + " | ".join(f"{b} kbps: kbps / mel / SI-SDR" for b in bands) + " |"
    lines = [head, "|" + "---|" * (2 + len(bands))]
    for r in rows:
        cells = " | ".join(f"{r['val'][b]['kbps']:.2f} / {r['val'][b]['mel']:.3f} / {r['val'][b]['si_sdr']:.1f}"
                           for b in bands)
        lines.append(f"| {r['step']} | {r['seconds'] / 60:.0f} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log", type=Path, help="a run's log.jsonl")
    print(table(p.parse_args().log))


if __name__ == "__main__":
    main()
