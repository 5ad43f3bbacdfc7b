"""Print the sha256 of one stream per codec (and of the bundled model hashes), as JSON.

Run before and after a change that must not alter any stream (a refactor), and compare:

    python scripts/stream_hashes.py > before.json   # ... change ...
    python scripts/stream_hashes.py > after.json && diff before.json after.json

Every input is fixed: the bundled samples (a 128x96 crop of garden.png for the fitted
codecs), a seeded tiny SEANet model for ``encodec`` and a seeded synthetic clip for ``nerv``;
torch runs on one thread, so the fitted codecs' training is reproducible.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import ncodec

ROOT = Path(__file__).resolve().parent.parent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_seanet_file(folder: Path) -> tuple[Path, str]:
    """A seeded tiny causal SEANet codec saved as a zoo file (the layout of tests/tiny_audio_models.CAUSAL),
    and its identity (the model hash streams carry; the file's bytes are not reproducible, since
    safetensors writes its metadata keys in a per-process order)."""
    import importlib

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_audio_models import CAUSAL

    zoo = importlib.import_module("ncodec.zoo")
    # before ncodec.zoo became a package the audio model files were handled by the codec module
    home = zoo if hasattr(zoo, "build_audio_model") else importlib.import_module("ncodec.codecs.audio.neural")
    torch.manual_seed(0)
    config = dict(CAUSAL)
    model = home.build_audio_model("seanet", config)
    path = folder / "tiny24.safetensors"
    home.save_audio_model(model, path, "seanet", config)
    return path, home.model_identity(model)


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, str] = {}
    image = ROOT / "samples" / "garden.png"
    speech = ROOT / "samples" / "speech.flac"
    out["audio-lossless"] = sha(ncodec.encode(str(speech), codec="audio-lossless"))
    out["wavelet-lossless"] = sha(ncodec.encode(str(image), codec="wavelet-lossless"))
    out["wavelet bpp=0.5"] = sha(ncodec.encode(str(image), codec="wavelet", bpp=0.5))
    out["wavelet quality=60"] = sha(ncodec.encode(str(image), codec="wavelet", quality=60.0))
    for q in (2, 4, 6):
        out[f"learned mbt2018-mean-tiny q{q}"] = sha(ncodec.encode(str(image), codec="learned",
                                                                   model="mbt2018-mean-tiny", quality=q))
    from PIL import Image as PILImage

    crop = np.asarray(PILImage.open(image).convert("RGB"))[:96, :128].copy()
    out["inr fast 60 it"] = sha(ncodec.encode(crop, codec="inr", preset="fast", iterations=60, seed=1))
    with tempfile.TemporaryDirectory() as tmp:
        model, out["tiny24 model identity"] = tiny_seanet_file(Path(tmp))
        rng = np.random.default_rng(0)
        samples = (rng.standard_normal((24000, 1)) * 3000).astype(np.int16)
        out["encodec tiny24 3kbps"] = sha(ncodec.encode((samples, 24000), codec="encodec", model=str(model),
                                                        bandwidth=3.0))
    frames = (np.random.default_rng(1).random((4, 32, 48, 3)) * 255).astype(np.uint8)
    from ncodec.media import Video

    out["nerv fast 20 it"] = sha(ncodec.encode(Video(frames, 25.0), codec="nerv", preset="fast", iterations=20, seed=1))
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
