"""Pack training data into an ignored folder small enough to travel to the GPU machine.

The GPU machine reaches neither ``../shared`` nor any registry: what it trains on travels as
a ``carry`` path with the work tree, 64 MiB in all. This script makes that folder.

    python scripts/pack_training_data.py image --out .data/image     # ~12 MB: train JPEGs + a few dev PNGs
    python scripts/pack_training_data.py audio --out .data/audio     # ~30 MB: 24 kHz mono Opus + dev FLAC excerpts

``image`` copies the training photos as they are (already JPEG q95) and the first ``--val``
dev images (PNG) for validation. ``audio`` decodes every training file, mixes it to mono,
resamples it to ``--rate`` with `ncodec.media.resample` and writes Ogg Opus (libsndfile; the
music set is already a lossy Opus generation, the models see 24 kHz mono anyway), and takes
the first ``--val-seconds`` of each dev file as FLAC. The folder then feeds
``scripts/train_image.py --data OUT/train --val OUT/val`` or ``scripts/train_audio.py
--data OUT/train --val OUT/val``. It stops with an error when the result exceeds ``--budget``
MiB (the tree itself travels too: keep room for it).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from ncodec.media.formats import media_files

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def folder_bytes(folder: Path) -> int:
    """Total size of the files below ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack_images(data: Path, out: Path, val: int) -> None:
    """Training photos as they are, and the first ``val`` dev images."""
    for sub, source, limit in (("train", data / "images" / "train", None), ("val", data / "images" / "dev", val)):
        files = media_files(source, "image")[:limit]
        (out / sub).mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy2(path, out / sub / path.name)
        print(f"{sub}: {len(files)} images from {source}", file=sys.stderr)


def mono_at(path: Path, rate: int, seconds: float | None = None) -> np.ndarray:
    """A file's audio as float32 mono at ``rate`` (the first ``seconds`` when given)."""
    import soundfile as sf
    import torch

    from ncodec.media.resample import resample

    info = sf.info(str(path))
    frames = -1 if seconds is None else int(seconds * info.samplerate)
    x, sr = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    mono = torch.from_numpy(x.mean(axis=1))
    if sr != rate:
        mono = resample(mono[None], sr, rate)[0]
    return np.clip(mono.numpy(), -1.0, 1.0)


def pack_audio(data: Path, out: Path, rate: int, quality: float, val_seconds: float) -> None:
    """Training audio as mono Opus at ``rate``; dev excerpts as mono FLAC."""
    import soundfile as sf

    for kind in ("speech", "music"):
        for sub, source in (("train", data / "audio" / kind / "train"), ("val", data / "audio" / kind / "dev")):
            target = out / sub
            target.mkdir(parents=True, exist_ok=True)
            files = media_files(source, "audio")
            for path in files:
                name = f"{kind}_{path.stem}"
                if sub == "train":
                    sf.write(str(target / f"{name}.opus"), mono_at(path, rate), rate, format="OGG", subtype="OPUS",
                             compression_level=quality)
                else:
                    sf.write(str(target / f"{name}.flac"), mono_at(path, rate, val_seconds), rate, subtype="PCM_16")
            print(f"{kind}/{sub}: {len(files)} files from {source}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("media", choices=["image", "audio"])
    p.add_argument("--out", type=Path, required=True, help="folder to create (under an ignored path, e.g. .data/)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    p.add_argument("--val", type=int, default=4, help="image: dev images for validation")
    p.add_argument("--rate", type=int, default=24000, help="audio: sample rate (an Opus rate)")
    p.add_argument("--opus-compression", type=float, default=0.83,
                   help="audio: libsndfile's Opus compression level, 0 (256 kb/s) .. 1 (6 kb/s) per channel, "
                        "linear; 0.83 ~ 48 kb/s")
    p.add_argument("--val-seconds", type=float, default=10.0, help="audio: seconds of each dev file")
    p.add_argument("--budget", type=float, default=45.0, help="MiB the folder may take")
    args = p.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} exists and is not empty")
    if args.media == "image":
        pack_images(args.data, args.out, args.val)
    else:
        pack_audio(args.data, args.out, args.rate, args.opus_compression, args.val_seconds)
    size = folder_bytes(args.out) / 2 ** 20
    print(f"{args.out}: {size:.1f} MiB", file=sys.stderr)
    if size > args.budget:
        raise SystemExit(f"{args.out} takes {size:.1f} MiB, more than --budget {args.budget} MiB")


if __name__ == "__main__":
    main()
