"""The model zoo: ncodec's learned image models from local safetensors files, and CompressAI's
zoo models (names and qualities) loaded into ncodec's implementations.

Zoo files are ``<name>-q<quality>.safetensors`` whose safetensors metadata says
``architecture``, ``N``, ``M`` (and ``K`` for the mixture model), as `scripts/train_image.py`
writes them. They are looked up, in order, in the folders of ``$NCODEC_MODELS``
(``os.pathsep``-separated), ``~/.cache/ncodec/models`` and the weights bundled with the
package (``ncodec/weights``). Nothing is ever downloaded. Audio model files live in the same
folders as ``<name>.safetensors`` with ``architecture`` ``encodec_24khz``, ``encodec_48khz`` or
``seanet`` in their metadata (`audio_zoo_models`; `ncodec.codecs.audio.neural` loads them).

CompressAI:

    model = from_compressai("bmshj2018-hyperprior-3-6d87be32.pth.tar", "bmshj2018-hyperprior", 3)

The transforms are the same networks with the same weights. The coding tables are not:
CompressAI's ``_quantized_cdf`` / ``_offset`` / ``_cdf_length`` buffers are replaced by
ncodec's own, rebuilt from the loaded densities (``update(force=True)``), so streams are
ncodec streams, decodable on any machine that rebuilds the same tables.

Files are read without unrestricted pickle: ``.safetensors``, or a torch ``.pth`` /
``.pth.tar`` through ``torch.load(weights_only=True)`` (tensors and plain containers only).
Nothing is downloaded: pass a state dict or a local path.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import Tensor

from .codecs.image.models import (FactorizedPrior, GaussianMixtureHyperprior, ImageCompressionModel,
                                  MeanScaleHyperprior, ScaleHyperprior)
from .errors import ModelFileError

__all__ = ["ARCHITECTURES", "AUDIO_ARCHITECTURES", "AudioZooModel", "CONFIGS", "MODELS_ENV", "ZooModel",
           "audio_zoo_models", "build_model", "find_audio_model", "compressai_config", "architecture_name",
           "find_model", "from_compressai", "load_model", "load_weights", "model_dirs", "save_model",
           "state_dict_hash", "zoo_models"]

StateDictOrPath = Union[Mapping[str, Any], str, os.PathLike]

ARCHITECTURES: dict[str, type[ImageCompressionModel]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
}

#: Every architecture ncodec builds (the CompressAI ones plus the mixture model).
ALL_ARCHITECTURES: dict[str, type[ImageCompressionModel]] = {**ARCHITECTURES,
                                                              "gmm-hyperprior": GaussianMixtureHyperprior}
MODELS_ENV = "NCODEC_MODELS"
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
MAX_CHANNELS = 1024          # N, M beyond this in a file's metadata are refused (no huge allocations)
MAX_MIXTURE = 16
_ZOO_FILE = re.compile(r"(?P<name>[A-Za-z0-9_.-]+?)-q(?P<quality>\d{1,2})\.safetensors")

_SMALL, _LARGE = (128, 192), (192, 320)
#: (N, M) per quality, as in CompressAI's ``compressai.zoo.image.cfgs``.
CONFIGS: dict[str, dict[int, tuple[int, int]]] = {
    "bmshj2018-factorized": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "bmshj2018-hyperprior": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "mbt2018-mean": {q: _SMALL if q <= 4 else _LARGE for q in range(1, 9)},
}


def compressai_config(architecture: str, quality: int) -> tuple[int, int]:
    """(N, M) of a CompressAI zoo model; ValueError for an unknown architecture or quality."""
    if architecture not in CONFIGS:
        raise ValueError(f"unknown architecture {architecture!r}; supported: {', '.join(CONFIGS)}")
    if quality not in CONFIGS[architecture]:
        raise ValueError(f"quality must be one of {sorted(CONFIGS[architecture])} for {architecture}, got {quality!r}")
    return CONFIGS[architecture][quality]


def load_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a torch file (``weights_only=True``, never full pickle).

    A training checkpoint ``{"state_dict": ..., ...}`` (CompressAI's examples/train.py) is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds on a bad file
        raise ModelFileError(f"cannot read {path} as a safetensors or torch weights file "
                             f"(torch files are read with weights_only=True): {exc}") from exc
    if isinstance(data, Mapping) and "state_dict" in data and isinstance(data["state_dict"], Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ModelFileError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(data)


def _guess(state_dict: Mapping[str, Tensor]) -> str:
    """A best guess at which zoo model a state dict comes from, for error messages."""
    try:
        n, m = int(state_dict["g_a.0.weight"].shape[0]), int(state_dict["g_a.6.weight"].shape[0])
    except (KeyError, AttributeError, IndexError):
        return "it is not a CompressAI image model of these architectures (no g_a.0.weight / g_a.6.weight)"
    if "h_s.0.weight" not in state_dict:
        arch = "bmshj2018-factorized"
    elif "h_s.4.weight" in state_dict and int(state_dict["h_s.4.weight"].shape[0]) == 2 * m:
        arch = "mbt2018-mean"
    else:
        arch = "bmshj2018-hyperprior"
    qualities = [q for q, nm in CONFIGS[arch].items() if nm == (n, m)]
    at = f"quality {qualities[0]}-{qualities[-1]}" if qualities else "no zoo quality"
    return f"it looks like {arch} with N={n}, M={m} ({at})"


def _check_fit(model: ImageCompressionModel, state_dict: Mapping[str, Tensor], architecture: str,
               quality: int) -> None:
    """Raise ModelFileError naming missing, unexpected and mis-shaped keys before loading."""
    translated, _, _ = model.translate_state_dict(state_dict)
    ours = model.state_dict()
    resizable = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
    missing = sorted(k for k in ours if k not in translated)
    unexpected = sorted(k for k in translated if k not in ours)
    shapes = sorted(f"{k}: {tuple(translated[k].shape)} (expected {tuple(v.shape)})" for k, v in ours.items()
                    if k in translated and not k.endswith(resizable)
                    and tuple(translated[k].shape) != tuple(v.shape))
    if not (missing or unexpected or shapes):
        return

    def listing(label: str, items: list[str]) -> str:
        return f"{len(items)} {label} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})" if items else ""

    problems = "; ".join(p for p in (listing("missing keys", missing), listing("unexpected keys", unexpected),
                                     listing("shape mismatches", shapes)) if p)
    n, m = compressai_config(architecture, quality)
    raise ModelFileError(f"the weights do not fit {architecture} quality {quality} (N={n}, M={m}): {problems}; "
                         f"{_guess(state_dict)}")


def from_compressai(state_dict_or_path: StateDictOrPath, architecture: str, quality: int) -> ImageCompressionModel:
    """An ncodec model, in eval mode with fresh coding tables, from a CompressAI zoo model's weights.

    ``state_dict_or_path`` is a state dict (any CompressAI version's key names, also with a
    ``module.`` prefix) or a local ``.pth`` / ``.pth.tar`` / ``.safetensors`` file.
    ``architecture`` is a zoo name (``"bmshj2018-factorized"``, ``"bmshj2018-hyperprior"``,
    ``"mbt2018-mean"``) and ``quality`` 1-8 picks (N, M) as CompressAI's zoo does.
    Raises `ModelFileError` when the file cannot be read or the weights do not fit.
    """
    n, m = compressai_config(architecture, quality)
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state_dict = load_weights(state_dict_or_path)
    elif isinstance(state_dict_or_path, Mapping):
        state_dict = dict(state_dict_or_path)
    else:
        raise TypeError(f"expected a state dict or a path, got {type(state_dict_or_path).__name__}")
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = dict(state_dict["state_dict"])
    model = ARCHITECTURES[architecture](n, m)
    _check_fit(model, state_dict, architecture, quality)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ModelFileError(f"cannot load the weights into {architecture} quality {quality}: {exc}") from exc
    model.update(force=True)  # ncodec tables from the loaded densities, whatever the dict carried
    return model.eval()


# ------------------------------------------------------------------ the local zoo
@dataclass(frozen=True)
class ZooModel:
    """A model file of the zoo: its name and quality (from the file name) and architecture (from its metadata)."""

    name: str
    quality: int
    architecture: str
    N: int
    M: int
    K: int | None
    path: Path


def model_dirs() -> list[Path]:
    """The folders searched for zoo files, in priority order ($NCODEC_MODELS, the user cache, bundled)."""
    env = [Path(p).expanduser() for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    return env + [Path("~/.cache/ncodec/models").expanduser(), BUNDLED_DIR]


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


def _read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types on a bad header
        raise ModelFileError(f"cannot read {path} as safetensors: {exc}") from exc


def zoo_models() -> list[ZooModel]:
    """Every zoo file found (a name and quality found twice: the first folder wins); unreadable files are skipped."""
    seen: dict[tuple[str, int], ZooModel] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            match = _ZOO_FILE.fullmatch(path.name)
            if not match:
                continue
            key = (match["name"], int(match["quality"]))
            if key in seen:
                continue
            try:
                arch, n, m, k = _architecture_of(_read_metadata(path), str(path))
            except ModelFileError:
                continue
            seen[key] = ZooModel(key[0], key[1], arch, n, m, k, path)
    return sorted(seen.values(), key=lambda z: (z.name, z.quality))


def find_model(name: str, quality: int | None = None) -> ZooModel:
    """The zoo file of model ``name`` at ``quality`` (None: its middle quality); ModelFileError if absent."""
    found = [z for z in zoo_models() if z.name == name]
    if not found:
        names = sorted({z.name for z in zoo_models()})
        raise ModelFileError(f"model {name!r} is not in the zoo (searched {', '.join(map(str, model_dirs()))}); "
                             f"available: {', '.join(names) or 'none'}; or pass a .safetensors path")
    if quality is None:
        return found[(len(found) - 1) // 2]
    for z in found:
        if z.quality == int(quality):
            return z
    raise ModelFileError(f"model {name!r} has no quality {quality}; available: {[z.quality for z in found]}")


# ------------------------------------------------------------ audio models
#: Architectures of neural audio model files (`ncodec.codecs.audio.neural` builds them).
AUDIO_ARCHITECTURES = ("encodec_24khz", "encodec_48khz", "seanet")


@dataclass(frozen=True)
class AudioZooModel:
    """An audio model file of the zoo: ``<name>.safetensors`` whose metadata names an audio architecture."""

    name: str
    architecture: str
    path: Path


def audio_zoo_models() -> list[AudioZooModel]:
    """Every audio model file found (a name found twice: the first folder wins); image files are not listed."""
    seen: dict[str, AudioZooModel] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            if path.stem in seen:
                continue
            try:
                arch = _read_metadata(path).get("architecture")
            except ModelFileError:
                continue
            if arch in AUDIO_ARCHITECTURES:
                seen[path.stem] = AudioZooModel(path.stem, arch, path)
    return sorted(seen.values(), key=lambda z: z.name)


def find_audio_model(name: str) -> AudioZooModel:
    """The zoo file of audio model ``name``; ModelFileError if absent."""
    for z in audio_zoo_models():
        if z.name == name:
            return z
    names = ", ".join(z.name for z in audio_zoo_models()) or "none"
    raise ModelFileError(f"audio model {name!r} is not in the zoo (searched {', '.join(map(str, model_dirs()))}); "
                         f"available: {names}; or pass a .safetensors / EnCodec .th path")


def build_model(architecture: str, N: int, M: int, K: int | None = None) -> ImageCompressionModel:
    """An untrained model of a named architecture."""
    if architecture not in ALL_ARCHITECTURES:
        raise ModelFileError(f"unknown architecture {architecture!r}; known: {', '.join(ALL_ARCHITECTURES)}")
    cls = ALL_ARCHITECTURES[architecture]
    return cls(N, M, K) if cls is GaussianMixtureHyperprior and K is not None else cls(N, M)


def state_dict_hash(state_dict: Mapping[str, Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict (sorted): the model's identity in streams."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{value.dtype}|{tuple(value.shape)}\n".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()


def architecture_name(model: ImageCompressionModel) -> str:
    """The zoo architecture name of a model instance."""
    for name, cls in ALL_ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ModelFileError(f"{type(model).__name__} is not a zoo architecture")


def save_model(model: ImageCompressionModel, path: str | os.PathLike, **metadata: str) -> None:
    """Write a model's state dict (coding tables built first) as a zoo file, atomically, with the
    metadata `load_model` reads (architecture, N, M, K) plus ``metadata``."""
    from safetensors.torch import save_file

    model.update()
    meta = {**{k: str(v) for k, v in metadata.items()}, "architecture": architecture_name(model),
            "N": str(model.N), "M": str(model.M)}
    if isinstance(model, GaussianMixtureHyperprior):
        meta["K"] = str(model.K)
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


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
    arch, n, m, k = _architecture_of(_read_metadata(path), str(path))
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
