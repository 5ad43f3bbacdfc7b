"""CompressAI's zoo models (names and qualities) loaded into ncodec's implementations.

    model = from_compressai("bmshj2018-hyperprior-3-6d87be32.pth.tar", "bmshj2018-hyperprior", 3)

The transforms are the same networks with the same weights. The coding tables are not:
CompressAI's ``_quantized_cdf`` / ``_offset`` / ``_cdf_length`` buffers are replaced by
ncodec's own, rebuilt from the loaded densities (``update(force=True)``), so streams are
ncodec streams, decodable on any machine that rebuilds the same tables. Nothing is
downloaded: pass a state dict or a local path.
"""
from __future__ import annotations

import os
from typing import Mapping

from torch import Tensor

from ..errors import ModelFileError
from ..models.image.hyperprior import (FactorizedPrior, ImageCompressionModel, MeanScaleHyperprior,
                                       ScaleHyperprior)
from .files import StateDictOrPath, load_weights

__all__ = ["ARCHITECTURES", "CONFIGS", "compressai_config", "from_compressai"]

ARCHITECTURES: dict[str, type[ImageCompressionModel]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
}

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
