"""Weight files on disk: where the zoo looks, reading a state dict safely, metadata and hashes.

Files are read without unrestricted pickle: ``.safetensors``, or a publisher's torch ``.pth`` /
``.pth.tar`` / ``.th`` through ``torch.load(weights_only=True)`` (tensors and plain containers
only). Zoo files are looked up, in order, in the folders of ``$NCODEC_MODELS``
(``os.pathsep``-separated), ``~/.cache/ncodec/models`` and the weights bundled with the package
(``ncodec/weights``). Nothing is downloaded here: `ncodec.zoo.fetch` does that, when asked.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import Tensor

from ..errors import ModelFileError

__all__ = ["BUNDLED_DIR", "MODELS_ENV", "StateDictOrPath", "load_weights", "model_dirs", "read_metadata",
           "save_state_atomically", "state_dict_hash"]

StateDictOrPath = Union[Mapping[str, Any], str, os.PathLike]
MODELS_ENV = "NCODEC_MODELS"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"

def model_dirs() -> list[Path]:
    """The folders searched for zoo files, in priority order ($NCODEC_MODELS, the user cache, bundled)."""
    env = [Path(p).expanduser() for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    return env + [Path("~/.cache/ncodec/models").expanduser(), BUNDLED_DIR]


def model_files() -> Iterator[tuple[Path, dict[str, str]]]:
    """Every readable ``.safetensors`` file of the model folders, in search order (`model_dirs`, then by name),
    with its metadata; unreadable files are skipped. Each zoo keeps, per name, the first file that is its kind."""
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            try:
                yield path, read_metadata(path)
            except ModelFileError:
                continue


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


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file; ModelFileError when its header is unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types on a bad header
        raise ModelFileError(f"cannot read {path} as safetensors: {exc}") from exc


def state_dict_hash(state_dict: Mapping[str, Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict (sorted): the model's identity in streams."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{value.dtype}|{tuple(value.shape)}\n".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()


def save_state_atomically(state_dict: Mapping[str, Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    """Write a state dict as safetensors through a hidden temporary file beside ``path`` and a rename:
    ``path`` is either the whole new file or untouched, and a failed write (a full disk) leaves nothing."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = path.with_name(f".{os.getpid()}.{path.name}.tmp")
    try:
        save_file(state, str(tmp), metadata=dict(metadata))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
