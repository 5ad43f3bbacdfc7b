"""The image zoo: ncodec's learned image models as ``<name>-q<quality>.safetensors`` files.

A zoo file's safetensors metadata says ``architecture``, ``N``, ``M`` (and ``K`` for the
mixture model), as `save_model` (and `scripts/train_image.py`) writes them; the folders
searched are `ncodec.zoo.files.model_dirs`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ModelFileError
from ..models.image.hyperprior import GaussianMixtureHyperprior, ImageCompressionModel
from ..models.image.variable_rate import GainedMeanScaleHyperprior
from .compressai import ARCHITECTURES
from .files import load_weights, model_dirs, model_files, read_metadata, save_state_atomically, state_dict_hash

__all__ = ["ALL_ARCHITECTURES", "VARIABLE_RATE", "ZooModel", "architecture_name", "build_model", "find_model", "load_model",
           "save_model", "zoo_models"]

#: Every architecture ncodec builds (the CompressAI ones, the mixture model, the variable-rate model).
ALL_ARCHITECTURES: dict[str, type[ImageCompressionModel]] = {**ARCHITECTURES,
                                                              "gmm-hyperprior": GaussianMixtureHyperprior,
                                                              "mbt2018-mean-gained": GainedMeanScaleHyperprior}
#: Architectures whose one file codes a continuous range of qualities.
VARIABLE_RATE = frozenset({"mbt2018-mean-gained"})
MAX_CHANNELS = 1024          # N, M beyond this in a file's metadata are refused (no huge allocations)
MAX_MIXTURE = 16
_ZOO_FILE = re.compile(r"(?P<name>[A-Za-z0-9_.-]+?)-q(?P<quality>\d{1,2})\.safetensors")


@dataclass(frozen=True)
class ZooModel:
    """A model file of the zoo: its name and quality (from the file name; None for a variable-rate model)
    and architecture (from its metadata)."""

    name: str
    quality: int | None
    architecture: str
    N: int
    M: int
    K: int | None
    path: Path


def _architecture_of(meta: Mapping[str, str], where: str) -> tuple[str, int, int, int | None]:
    """(architecture, N, M, K) from a weights file's metadata, validated (bounded sizes)."""
    arch = meta.get("architecture")
    if arch not in ALL_ARCHITECTURES:
        raise ModelFileError(f"{where}: metadata names no known architecture ({arch!r}); "
                             f"expected one of {', '.join(ALL_ARCHITECTURES)}")
    try:
        n, m = int(meta["N"]), int(meta["M"])
        k = int(meta["K"]) if arch == "gmm-hyperprior" else None
    except (KeyError, ValueError):
        raise ModelFileError(f"{where}: metadata lacks integer N and M (and K for gmm-hyperprior)") from None
    if not (1 <= n <= MAX_CHANNELS and 1 <= m <= MAX_CHANNELS) or (k is not None and not 1 <= k <= MAX_MIXTURE):
        raise ModelFileError(f"{where}: implausible sizes N={n}, M={m}, K={k}")
    return arch, n, m, k


def zoo_models() -> list[ZooModel]:
    """Every zoo file found (a name and quality found twice: the first folder wins); unreadable files are skipped.

    Fixed-rate models are ``<name>-q<quality>.safetensors``; a variable-rate model is one file,
    ``<name>.safetensors``, listed with quality None (it codes every quality).
    """
    seen: dict[tuple[str, int | None], ZooModel] = {}
    for path, meta in model_files():
        match = _ZOO_FILE.fullmatch(path.name)
        key = (match["name"], int(match["quality"])) if match else (path.stem, None)
        if key in seen:
            continue
        try:
            arch, n, m, k = _architecture_of(meta, str(path))
        except ModelFileError:
            continue
        if (key[1] is None) != (arch in VARIABLE_RATE):
            continue  # a fixed-rate model needs its quality in the name; a variable-rate one has none
        seen[key] = ZooModel(key[0], key[1], arch, n, m, k, path)
    return sorted(seen.values(), key=lambda z: (z.name, z.quality or 0))


def find_model(name: str, quality: int | None = None) -> ZooModel:
    """The zoo file of model ``name`` at ``quality`` (None: its middle quality); ModelFileError if absent."""
    found = [z for z in zoo_models() if z.name == name]
    if not found:
        names = sorted({z.name for z in zoo_models()})
        raise ModelFileError(f"model {name!r} is not in the zoo (searched {', '.join(map(str, model_dirs()))}); "
                             f"available: {', '.join(names) or 'none'}; or pass a .safetensors path")
    if quality is None or found[0].quality is None:  # a variable-rate model codes every quality itself
        return found[(len(found) - 1) // 2]
    for z in found:
        if z.quality == int(quality):
            return z
    raise ModelFileError(f"model {name!r} has no quality {quality}; available: {[z.quality for z in found]}")


def build_model(architecture: str, N: int, M: int, K: int | None = None) -> ImageCompressionModel:
    """An untrained model of a named architecture."""
    if architecture not in ALL_ARCHITECTURES:
        raise ModelFileError(f"unknown architecture {architecture!r}; known: {', '.join(ALL_ARCHITECTURES)}")
    cls = ALL_ARCHITECTURES[architecture]
    return cls(N, M, K) if cls is GaussianMixtureHyperprior and K is not None else cls(N, M)


def architecture_name(model: ImageCompressionModel) -> str:
    """The zoo architecture name of a model instance."""
    for name, cls in ALL_ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ModelFileError(f"{type(model).__name__} is not a zoo architecture")


def save_model(model: ImageCompressionModel, path: str | os.PathLike, **metadata: str) -> None:
    """Write a model's state dict (coding tables built first) as a zoo file, atomically, with the
    metadata `load_model` reads (architecture, N, M, K) plus ``metadata``."""
    model.update()
    meta = {**{k: str(v) for k, v in metadata.items()}, "architecture": architecture_name(model),
            "N": str(model.N), "M": str(model.M)}
    if isinstance(model, GaussianMixtureHyperprior):
        meta["K"] = str(model.K)
    save_state_atomically(model.state_dict(), Path(path), meta)


def load_model(path: str | os.PathLike) -> tuple[ImageCompressionModel, dict[str, Any]]:
    """A model (eval mode) from an ncodec weights file, and its facts: architecture, N, M, K, hash.

    The architecture comes from the file's metadata; the coding tables stored in the file are
    kept (they are part of the model's identity); a file without them gets them built.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelFileError(f"{path}: ncodec model files are .safetensors (convert CompressAI files with "
                             f"ncodec.zoo.from_compressai and save_file)")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    arch, n, m, k = _architecture_of(read_metadata(path), str(path))
    state = load_weights(path)
    model = build_model(arch, n, m, k)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: the weights do not fit {arch} N={n} M={m}: {exc}") from exc
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ModelFileError(f"{path}: the weights hold NaN or infinite values")
    model.update()  # builds tables only where the file had none
    model.eval()
    return model, {"architecture": arch, "N": n, "M": m, "K": k, "hash": state_dict_hash(model.state_dict())}
