"""Reference outputs that peer codecs wrote in their own venvs, for the compatibility tests.

Each peer's ``.ci/<peer>/setup.sh`` builds the peer's venv, runs ``scripts/<peer>_reference.py``
and prints the folder it wrote (a ``manifest.json``, and per model ``<name>.npz`` and
``<name>.safetensors``); the tests find that folder through an environment variable
(``NCODEC_COMPRESSAI_REFS``, ``NCODEC_ENCODEC_REFS``, ``NCODEC_DAC_REFS``) and skip the
comparisons when it is unset. Imported by the tests as ``peer_refs``, like ``conftest``
(pytest puts this folder on ``sys.path``: it holds no ``__init__.py``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

Entry = dict[str, Any]  # a model's entry in the manifest
Arrays = dict[str, np.ndarray]  # a model's reference arrays (its .npz)


def refs_folder(env: str) -> Path | None:
    """The folder ``$env`` names, None when the variable is unset or empty."""
    folder = os.environ.get(env)
    return Path(folder) if folder else None


def load_manifest(env: str, setup: str) -> dict[str, Any] | None:
    """The references' manifest, None when the variable is unset (a set but bad path fails)."""
    folder = os.environ.get(env)
    if not folder:
        return None
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise RuntimeError(f"{env}={folder} has no manifest.json: run {setup}")
    return json.loads(path.read_text())


def assert_same_state(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    """``ours`` holds exactly the peer's state dict ``theirs``: the same keys, dtypes and values."""
    assert set(ours) == set(theirs), (f"keys: missing {sorted(set(theirs) - set(ours))}, "
                                      f"unexpected {sorted(set(ours) - set(theirs))}")
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


def max_diff(ours: torch.Tensor, theirs: np.ndarray, what: str) -> float:
    """Largest absolute difference of our tensor and the peer's array (in float64); shapes must agree."""
    assert tuple(ours.shape) == theirs.shape, f"{what}: shape {tuple(ours.shape)} != {theirs.shape}"
    return float(np.max(np.abs(ours.detach().numpy().astype(np.float64) - theirs.astype(np.float64))))


class PeerRefs:
    """One peer's references: the folder ``$env`` names, its manifest, the models it holds and a
    skip marker for the tests that compare against them.

    ``setup`` is the script that writes them (``.ci/encodec/setup.sh``), ``peer`` the peer and its
    version as the skip reason names them (``EnCodec 0.1.1``), ``short`` its short name (``EnCodec``).
    """

    def __init__(self, env: str, setup: str, peer: str, short: str) -> None:
        self.env = env
        self.manifest = load_manifest(env, setup)
        self.skip_reason = (f"{env} is unset: run `bash {setup}` ({peer} in its own venv) "
                            f"and set {env} to the folder it prints to compare against {short}")
        self.names: list[str] = [m["name"] for m in self.manifest["models"]] if self.manifest else []
        self.needed = pytest.mark.skipif(self.manifest is None, reason=self.skip_reason)

    def each_model(self, test: Callable[..., None]) -> Callable[..., None]:
        """Decorate ``test`` to run once for each model the references hold (its ``name`` argument), and
        to skip without them."""
        return self.needed(pytest.mark.parametrize("name", self.names or ["none"])(test))

    def provenance_test(self, key: str, version: str, models: Iterable[str]) -> Callable[[], None]:
        """A test, skipped without the references, that they were written by the peer at ``version``
        (the manifest's ``key``) and hold exactly ``models``; a test module assigns it to a ``test_*`` name."""
        expected = set(models)

        @self.needed
        def test() -> None:
            assert self.manifest is not None
            assert self.manifest[key] == version, f"written by {key} {self.manifest[key]}, not {version}"
            assert set(self.names) == expected, f"models {sorted(self.names)}, expected {sorted(expected)}"

        return test

    def files(self, name: str) -> tuple[Entry, Path, Arrays]:
        """Model ``name``'s manifest entry, the path of its weights and its reference arrays."""
        assert self.manifest is not None
        folder = Path(os.environ[self.env])
        entry = next(m for m in self.manifest["models"] if m["name"] == name)
        with np.load(folder / f"{name}.npz") as data:
            arrays = dict(data)
        return entry, folder / f"{name}.safetensors", arrays

    def state(self, name: str) -> tuple[Entry, dict[str, torch.Tensor], Arrays]:
        """As `files`, with the weights loaded: the state dict in the peer's own key names."""
        from safetensors.torch import load_file

        entry, weights, arrays = self.files(name)
        return entry, load_file(str(weights)), arrays

    def loaded(self, name: str, builders: Mapping[str, Callable[[], Any]]) -> tuple[Entry, Any, Arrays]:
        """As `state`, but with the model ``builders[name]()`` in place of the state dict, which it has
        loaded with plain ``load_state_dict`` (the peer's own key names). Sets torch to one thread first:
        the compared tensors are small, and one thread is fastest and deterministic."""
        torch.set_num_threads(1)
        entry, state, arrays = self.state(name)
        model = builders[name]()
        model.load_state_dict(state)
        return entry, model, arrays
