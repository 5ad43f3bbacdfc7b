"""Publishers' checkpoints into ncodec's networks, by architecture name: EnCodec and DAC here,
CompressAI in `ncodec.zoo.compressai` (its zoo also needs a quality).

Each takes a state dict or a local file (``.safetensors``, or the publisher's torch file read
with ``weights_only=True``) and gives the network in eval mode, or a `ModelFileError` that says
why the weights do not fit. The key names are translated by the network's own maps
(``encodec_to_ncodec_state_dict`` / ``dac_to_ncodec_state_dict``, beside the modules they name).
"""
from __future__ import annotations

import os
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from ..errors import ModelFileError
from ..models.audio.dac import DAC_CONFIGS, DACModel, load_dac_state_dict
from ..models.audio.encodec import SEANetCodecModel, load_encodec_state_dict
from .files import StateDictOrPath, load_weights

__all__ = ["DAC_ARCHITECTURES", "ENCODEC_ARCHITECTURES", "from_dac", "from_encodec"]

ENCODEC_ARCHITECTURES: dict[str, Callable[[], SEANetCodecModel]] = {
    "encodec_24khz": SEANetCodecModel.encodec_24khz, "encodec_48khz": SEANetCodecModel.encodec_48khz}
DAC_ARCHITECTURES: tuple[str, ...] = tuple(DAC_CONFIGS)


def _state_dict(state_dict_or_path: StateDictOrPath) -> dict[str, Tensor]:
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        return load_weights(state_dict_or_path)
    if isinstance(state_dict_or_path, Mapping):
        state = dict(state_dict_or_path)
        inner = state.get("state_dict")
        return dict(inner) if isinstance(inner, Mapping) else state
    raise TypeError(f"expected a state dict or a path, got {type(state_dict_or_path).__name__}")


def _loaded(model: nn.Module, load: Callable[[], object], what: str) -> nn.Module:
    try:
        load()
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"the weights do not fit {what}: {str(exc)[:500]}") from None
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise ModelFileError(f"the {what} weights hold NaN or infinite values")
    return model.eval()


def from_encodec(state_dict_or_path: StateDictOrPath, architecture: str) -> SEANetCodecModel:
    """An EnCodec 0.1.1 checkpoint (e.g. ``encodec_24khz-d7cc33bc.th``) as ncodec's `SEANetCodecModel`."""
    if architecture not in ENCODEC_ARCHITECTURES:
        raise ModelFileError(f"unknown EnCodec architecture {architecture!r}; known: {', '.join(ENCODEC_ARCHITECTURES)}")
    state = _state_dict(state_dict_or_path)
    model = ENCODEC_ARCHITECTURES[architecture]()
    return _loaded(model, lambda: load_encodec_state_dict(model, state), architecture)  # type: ignore[return-value]


def from_dac(state_dict_or_path: StateDictOrPath, architecture: str) -> DACModel:
    """A descript-audio-codec 1.0.0 checkpoint (``weights.pth``: ``{"state_dict": ..., "metadata": ...}``)
    as ncodec's `DACModel`."""
    if architecture not in DAC_CONFIGS:
        raise ModelFileError(f"unknown DAC architecture {architecture!r}; known: {', '.join(DAC_ARCHITECTURES)}")
    state = _state_dict(state_dict_or_path)
    model = DACModel.from_config(architecture)
    return _loaded(model, lambda: load_dac_state_dict(model, state), architecture)  # type: ignore[return-value]
