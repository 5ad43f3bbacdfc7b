"""What the peer reference scripts (``scripts/{compressai,encodec,dac}_reference.py``) share.

Those scripts run in the peers' own venvs (``.ci/<peer>/setup.sh``), which hold numpy, torch and
safetensors (and soundfile for the audio peers) but not ncodec, so this module imports no ncodec;
it is found beside them (``python scripts/<peer>_reference.py`` puts this folder on ``sys.path``).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def reference_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc``, with the ``--out`` folder every script takes."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the references")
    return p


def start(out: Path) -> None:
    """Run torch on one thread (deterministic, and the 2-core CI machines are shared) and make ``out``."""
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)


def audio_args(doc: str, seed: int, argv: list[str] | None = None) -> argparse.Namespace:
    """The audio scripts' options (``--out``, ``--audio`` defaulting to ``samples/speech.flac``, ``--seed``),
    parsed; then `start` on the output folder."""
    p = reference_parser(doc)
    p.add_argument("--audio", type=Path, default=ROOT / "samples" / "speech.flac")
    p.add_argument("--seed", type=int, default=seed)
    args = p.parse_args(argv)
    start(args.out)
    return args


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """The clip at ``path`` as float32 mono (its channels averaged) and its sample rate."""
    import soundfile  # only the audio peers' venvs have it

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of ``x`` ``[..., T]`` by truncating or zero-padding its spectrum (float32)."""
    if rate_in == rate_out:
        return x.astype(np.float32)
    n_in = x.shape[-1]
    n_out = round(n_in * rate_out / rate_in)
    spectrum = np.fft.rfft(x.astype(np.float64), axis=-1)
    bins = n_out // 2 + 1
    if bins <= spectrum.shape[-1]:
        spectrum = spectrum[..., :bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros((*spectrum.shape[:-1], bins - spectrum.shape[-1]))], axis=-1)
    return (np.fft.irfft(spectrum, n_out, axis=-1) * (n_out / n_in)).astype(np.float32)


def seeded_models(builders: Mapping[str, Callable[[], Any]],
                  seed: int) -> Iterator[tuple[str, Any, torch.Generator, float]]:
    """The models of ``builders`` in turn, the ``i``-th built after seeding torch with ``seed + i``: its
    name, the model, the generator for its perturbations (seeded ``seed + 100 + i``) and the time its
    turn started (``time.monotonic``)."""
    for i, (name, build) in enumerate(builders.items()):
        started = time.monotonic()
        torch.manual_seed(seed + i)
        generator = torch.Generator().manual_seed(seed + 100 + i)
        yield name, build(), generator, started


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write ``model``'s state dict, under the peer's own key names, to a safetensors file (no pickle)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def write_publisher_file(checkpoint: Any, folder: Path, stem: str, suffix: str, hashed: bool) -> dict[str, Any]:
    """Write ``checkpoint`` with ``torch.save`` as its publisher ships it, under the publisher's file name:
    ``<stem>-<first 8 hex of its SHA-256><suffix>`` where the publisher puts the hash in the name
    (CompressAI, EnCodec: ``torch.hub``'s convention), else ``<stem><suffix>`` (DAC). Returns the file's
    name, SHA-256 and size, for the manifest (the tests serve these files to ``ncodec fetch``)."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}{suffix}.tmp"
    torch.save(checkpoint, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    name = f"{stem}-{digest[:8]}{suffix}" if hashed else f"{stem}{suffix}"
    tmp.replace(folder / name)
    return {"file": f"{folder.name}/{name}", "sha256": digest, "size": (folder / name).stat().st_size}


def distinct_codes_per_level(codes: np.ndarray) -> list[int]:
    """How many different codes each level ``k`` of ``codes`` ``[B, K, T]`` uses."""
    return [len(np.unique(codes[:, k])) for k in range(codes.shape[1])]
