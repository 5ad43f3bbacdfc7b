"""Restoration networks' weights (`ncodec.models.image.restoration`): ``<name>.safetensors`` files.

A file is a `learned-wavelet` model: the network's tensors, and optionally ``contexts``, the learned
context weights of the subband coder. Its metadata says ``architecture`` (``restoration``), the
network's sizes and the training steps; sizes are bounded before anything is allocated, so a hostile file is refused with a
`ModelFileError`. The folders searched are `ncodec.zoo.files.model_dirs`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError
from ..models.image.restoration import RestorationNet
from .files import load_weights, model_dirs, model_files, read_metadata, save_state_atomically, state_dict_hash

__all__ = ["ARCHITECTURE", "RestorationModel", "find_restoration", "load_restoration", "restoration_models",
           "save_restoration"]

ARCHITECTURE = "restoration"
#: The optional tensor of learned context weights (`learned-wavelet`'s subband coder) in a model file.
CONTEXTS = "contexts"
_SIZES = {"channels": (1, 4), "width": (1, 256), "deep_width": (1, 512), "blocks": (0, 16)}


@dataclass(frozen=True)
class RestorationModel:
    """A restoration weights file: its name (the file's stem), training steps and path."""

    name: str
    steps: int | None
    path: Path


def _sizes(meta: dict[str, str], where: str) -> dict[str, int]:
    if meta.get("architecture") != ARCHITECTURE:
        raise ModelFileError(f"{where}: metadata names architecture {meta.get('architecture')!r}, "
                             f"not {ARCHITECTURE!r}")
    sizes = {}
    for key, (low, high) in _SIZES.items():
        try:
            sizes[key] = int(meta[key])
        except (KeyError, ValueError):
            raise ModelFileError(f"{where}: metadata lacks an integer {key}") from None
        if not low <= sizes[key] <= high:
            raise ModelFileError(f"{where}: implausible {key}={sizes[key]} (allowed {low}-{high})")
    return sizes


def _steps(meta: dict[str, str]) -> int | None:
    try:
        return int(meta["steps"])
    except (KeyError, ValueError):
        return None


def restoration_models() -> list[RestorationModel]:
    """Every restoration file found in the model folders (a name found twice: the first folder wins)."""
    seen: dict[str, RestorationModel] = {}
    for path, meta in model_files():
        if path.stem in seen:
            continue
        try:
            _sizes(meta, str(path))
        except ModelFileError:
            continue
        seen[path.stem] = RestorationModel(path.stem, _steps(meta), path)
    return sorted(seen.values(), key=lambda m: m.name)


def find_restoration(name: str) -> RestorationModel:
    """The restoration file called ``name``; ModelFileError (naming what exists) if absent."""
    for model in restoration_models():
        if model.name == name:
            return model
    names = ", ".join(m.name for m in restoration_models()) or "none"
    raise ModelFileError(f"restoration model {name!r} is not in the zoo (searched "
                         f"{', '.join(map(str, model_dirs()))}); available: {names}; or pass a .safetensors path")


def load_restoration(path: str | os.PathLike) -> tuple[RestorationNet, dict[str, Any]]:
    """A network (eval mode, float32) from a weights file, and its facts: sizes, steps, hash."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise ModelFileError(f"restoration model file not found (a .safetensors file): {path}")
    meta = read_metadata(path)
    sizes = _sizes(meta, str(path))
    state = load_weights(path)
    digest = state_dict_hash(state)
    contexts = state.pop(CONTEXTS, None)
    if contexts is not None and (contexts.dtype not in (torch.int32, torch.int64) or contexts.dim() != 2
                                 or contexts.numel() > 4096):
        raise ModelFileError(f"{path}: the context table is not a small 2-D integer tensor")
    net = RestorationNet(**sizes)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: the weights do not fit a restoration network {sizes}: {exc}") from exc
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ModelFileError(f"{path}: the weights hold NaN or infinite values")
    net.eval()
    return net, {**sizes, "steps": _steps(meta), "hash": digest, "name": path.stem,
                 "contexts": None if contexts is None else contexts.numpy().astype(np.int64)}


def save_restoration(net: RestorationNet, path: str | os.PathLike, half: bool = True,
                     contexts: np.ndarray | None = None, **metadata: object) -> None:
    """Write a network's weights (fp16 with ``half``: what is committed), atomically, with its sizes, and
    a learned context table for the subband coder when given (`scripts/fit_contexts.py`)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in net.state_dict().items()}
    if contexts is not None:
        state[CONTEXTS] = torch.from_numpy(np.asarray(contexts, dtype=np.int32))
    meta = {**{k: str(v) for k, v in metadata.items()}, "architecture": ARCHITECTURE,
            **{k: str(v) for k, v in net.config().items()}, "dtype": "float16" if half else "float32"}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_state_atomically(state, Path(path), meta)
