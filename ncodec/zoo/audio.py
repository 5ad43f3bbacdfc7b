"""The audio zoo: neural audio model files, ``<name>.safetensors`` whose metadata names an audio
architecture (``encodec_24khz``, ``encodec_48khz``, ``seanet`` with its `SEANetCodecModel.build`
arguments as JSON under ``config`` (the frame-rate ``encoder`` / ``decoder`` specs included, sizes
bounded), or one of DAC's released models, ``dac_16khz`` ... ``dac_44khz_16kbps``), or EnCodec's own
``.th`` checkpoints (read with ``weights_only``). Weights may be stored in fp16 (``half``); they load as
float32.

DAC models tokenize (`ncodec.tokenizers.Tokenizer`); the ``encodec`` codec codes `SEANetCodecModel` models
(EnCodec's, and ncodec's own such as the bundled ``ncodec_24khz``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import Tensor

from ..errors import ModelFileError
from ..models.audio.dac import DAC_CONFIGS, DACModel
from ..models.audio.encodec import SEANetCodecModel, is_encodec_state_dict
from .files import load_weights, model_dirs, model_files, read_metadata, save_state_atomically, state_dict_hash

__all__ = ["AUDIO_ARCHITECTURES", "AudioZooModel", "BUILDERS", "audio_zoo_models", "build_audio_model",
           "find_audio_model", "load_audio_model", "model_identity", "save_audio_model"]

#: Architectures of neural audio model files (`build_audio_model` builds them).
AUDIO_ARCHITECTURES = ("encodec_24khz", "encodec_48khz", "seanet", *DAC_CONFIGS)
AudioModel = Union[SEANetCodecModel, DACModel]
BUILDERS = {"encodec_24khz": SEANetCodecModel.encodec_24khz, "encodec_48khz": SEANetCodecModel.encodec_48khz}
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
_SEANET_LIMITS = {"n_filters": 256, "dimension": 1024, "n_residual_layers": 8, "lstm": 4, "kernel_size": 31,
                  "last_kernel_size": 31, "residual_kernel_size": 31, "dilation_base": 4, "compress": 8}
_FRAME_NET_LIMITS = {"width": 2048, "blocks": 32, "n_fft": 16384, "kernel_size": 31}


def _plausible_frame_net(spec: Any) -> bool:
    """Whether a config's ``encoder`` / ``decoder`` entry (absent, or a type and bounded sizes) can be built."""
    if spec is None:
        return True
    if not isinstance(spec, Mapping) or spec.get("type") not in ("seanet", "stft", "vocos"):
        return False
    return all(k == "type" or (k in _FRAME_NET_LIMITS and 0 <= int(v) <= _FRAME_NET_LIMITS[k]) for k, v in spec.items())


@dataclass(frozen=True)
class AudioZooModel:
    """An audio model file of the zoo: ``<name>.safetensors`` whose metadata names an audio architecture."""

    name: str
    architecture: str
    path: Path
    steps: int | None = None     # training steps its metadata records (scripts/train_audio.py writes them)
    pretrained: bool = False     # trained weights: steps recorded, or converted from a publisher's checkpoint


def audio_zoo_models() -> list[AudioZooModel]:
    """Every audio model file found (a name found twice: the first folder wins); image files are not listed."""
    seen: dict[str, AudioZooModel] = {}
    for path, meta in model_files():
        arch = meta.get("architecture")
        if path.stem not in seen and arch in AUDIO_ARCHITECTURES:
            steps = int(meta["steps"]) if meta.get("steps", "").isdigit() else None
            seen[path.stem] = AudioZooModel(path.stem, arch, path, steps, bool(steps) or "source_url" in meta)
    return sorted(seen.values(), key=lambda z: z.name)


def find_audio_model(name: str) -> AudioZooModel:
    """The zoo file of audio model ``name``; ModelFileError if absent."""
    for z in audio_zoo_models():
        if z.name == name:
            return z
    names = ", ".join(z.name for z in audio_zoo_models()) or "none"
    raise ModelFileError(f"audio model {name!r} is not in the zoo (searched {', '.join(map(str, model_dirs()))}); "
                         f"available: {names}; or pass a .safetensors / EnCodec .th path")


def build_audio_model(architecture: str, config: Mapping[str, Any] | None = None) -> AudioModel:
    """An untrained model: one of EnCodec's two or DAC's four, or ``seanet`` from `SEANetCodecModel.build` arguments."""
    if architecture in BUILDERS:
        return BUILDERS[architecture]()
    if architecture in DAC_CONFIGS:
        return DACModel.from_config(architecture)
    if architecture != "seanet" or not isinstance(config, Mapping):
        known = ", ".join(AUDIO_ARCHITECTURES)
        raise ModelFileError(f"unknown audio architecture {architecture!r} (known: {known}; seanet needs a config)")
    cfg = dict(config)
    try:
        bands = [float(b) for b in cfg.get("target_bandwidths", ())]
        ok = (1 <= len(bands) <= 16 and all(0 < b <= 1000 for b in bands)
              and 1000 <= int(cfg.get("sample_rate", 24000)) <= 384_000 and int(cfg.get("channels", 1)) in (1, 2)
              and all(1 <= int(r) <= 16 for r in cfg.get("ratios", (8, 5, 4, 2))) and len(cfg.get("ratios", ())) <= 6
              and all(0 <= int(cfg[k]) <= v for k, v in _SEANET_LIMITS.items() if k in cfg)
              and all(_plausible_frame_net(cfg.get(k)) for k in ("encoder", "decoder")))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFileError(f"implausible seanet config {json.dumps(cfg, sort_keys=True)[:300]}")
    try:
        return SEANetCodecModel.build(**cfg)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot build a seanet model from {cfg}: {exc}") from None


def _guess_architecture(state: Mapping[str, Tensor]) -> str | None:
    """encodec_24khz / encodec_48khz from the first convolution's input channels (mono / stereo)."""
    for key in ("encoder.model.0.conv.conv.weight_v", "encoder.model.0.conv.conv.parametrizations.weight.original1",
                "encoder.model.0.conv.conv.weight"):
        if key in state and state[key].ndim == 3:
            return {1: "encodec_24khz", 2: "encodec_48khz"}.get(int(state[key].shape[1]))
    return None


def _metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata; none for a publisher's torch file."""
    return read_metadata(path) if path.suffix == ".safetensors" else {}


def load_audio_model(path: str | os.PathLike, architecture: str | None = None
                     ) -> tuple[AudioModel, dict[str, Any]]:
    """A model (eval mode, coding tables built from its prior counts) and its facts from a weights file.

    The architecture comes from the file's metadata, else ``architecture``, else the weights'
    shapes (EnCodec's checkpoints carry none). EnCodec's own key names load as they are.
    """
    path = Path(path)
    meta = _metadata(path)
    state = load_weights(path)
    arch = meta.get("architecture") or architecture or _guess_architecture(state)
    if arch is None:
        raise ModelFileError(f"{path}: cannot tell the audio architecture (no metadata); name it")
    config = None
    if arch == "seanet":
        try:
            config = json.loads(meta.get("config", ""))
        except json.JSONDecodeError:
            raise ModelFileError(f"{path}: seanet models need a JSON config in the metadata") from None
    model = build_audio_model(arch, config)
    try:
        if is_encodec_state_dict(state):
            model.load_state_dict(state)
        else:  # ncodec names; files without priors keep the model's (empty) ones
            full = model.state_dict()
            full.update(state)
            model.load_state_dict({k: v for k, v in full.items() if k in state or ".prior." in f".{k}"})
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"{path}: the weights do not fit {arch}: {str(exc)[:500]}") from None
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise ModelFileError(f"{path}: the weights hold NaN or infinite values")
    prior = getattr(model.quantizer, "prior", None)
    if prior is not None:
        if (prior.counts < 0).any():
            raise ModelFileError(f"{path}: negative prior counts")
        if int(prior.counts.sum()) > 0:
            prior.update(force=True)
    model.eval()
    facts = {"name": meta.get("name") or path.stem, "architecture": arch, "config": config,
             "hash": model_identity(model)}
    return model, facts


def save_audio_model(model: AudioModel, path: str | os.PathLike, architecture: str,
                     config: Mapping[str, Any] | None = None, half: bool = False, **metadata: str) -> None:
    """Write a model (ncodec key names, prior counts and tables included) as an audio zoo file, atomically.

    ``half`` stores the floating tensors in fp16 (half the size, for committed weights); they load
    back as float32, so encoder and decoder still see one set of weights."""
    if architecture not in AUDIO_ARCHITECTURES or (architecture == "seanet") != (config is not None):
        raise ValueError(f"architecture must be one of {', '.join(AUDIO_ARCHITECTURES)} (seanet with its config)")
    prior = getattr(model.quantizer, "prior", None)
    if prior is not None and int(prior.counts.sum()) > 0:
        prior.update(force=True)
    meta = {**{k: str(v) for k, v in metadata.items()}, "architecture": architecture}
    if config is not None:
        meta["config"] = json.dumps(dict(config), sort_keys=True)
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        meta["dtype"] = "float16"
    save_state_atomically(state, Path(path), meta)


def model_identity(model: AudioModel) -> str:
    """SHA-256 of the weights and prior counts (not the coding tables, which the counts determine)."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(_TABLE_BUFFERS)}
    return state_dict_hash(state)
