"""ncodec's image models against CompressAI 1.2.8, and the zoo loader (`ncodec.zoo`).

The comparison needs references written by CompressAI itself, in its own venv (it pins
numpy<2): ``bash .ci/compressai/setup.sh`` builds that venv, runs
``scripts/compressai_reference.py`` and prints the folder to pass as
``NCODEC_COMPRESSAI_REFS``. Without it those tests skip; the loader's own tests always run.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from peer_refs import PeerRefs

from ncodec.models.image.hyperprior import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior
from ncodec.errors import ModelFileError
from ncodec.zoo import CONFIGS, compressai_config, from_compressai, load_weights

REFS = PeerRefs("NCODEC_COMPRESSAI_REFS", ".ci/compressai/setup.sh", "CompressAI 1.2.8", "CompressAI")
FORWARD_TOLERANCE = 1e-5
DECODED_MIN_PSNR = 40.0
MANIFEST = REFS.manifest
REFERENCE_MODELS = REFS.names


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# ------------------------------------------------------------ against CompressAI
@REFS.needed
def test_references_come_from_compressai_1_2_8() -> None:
    assert MANIFEST is not None and MANIFEST["compressai"] == "1.2.8"
    assert {m["architecture"] for m in MANIFEST["models"]} == set(CONFIGS)
    assert len(MANIFEST["models"]) == sum(len(q) for q in CONFIGS.values())


@REFS.each_model
def test_matches_compressai(name: str) -> None:
    """Same forward outputs (<= 1e-5) and decoded images within 40 dB PSNR of CompressAI's."""
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and deterministic
    entry, weights, ref = REFS.files(name)
    model = from_compressai(weights, entry["architecture"], entry["quality"])
    assert (model.N, model.M) == (entry["N"], entry["M"]) == compressai_config(entry["architecture"], entry["quality"])
    for crop in MANIFEST["crops"]:
        x = torch.from_numpy(ref[f"{crop}.x"])
        with torch.no_grad():
            out = model(x)
        diffs = {"x_hat": (out["x_hat"].numpy(), ref[f"{crop}.x_hat"]),
                 "likelihoods_y": (out["likelihoods"]["y"].numpy(), ref[f"{crop}.likelihoods_y"])}
        if f"{crop}.likelihoods_z" in ref:
            diffs["likelihoods_z"] = (out["likelihoods"]["z"].numpy(), ref[f"{crop}.likelihoods_z"])
        for key, (ours, theirs) in diffs.items():
            assert ours.shape == theirs.shape, key
            err = float(np.max(np.abs(ours - theirs)))
            assert err <= FORWARD_TOLERANCE, f"{name} {crop} {key}: max abs diff {err:.3g}"
        enc = model.compress(x)
        decoded = model.decompress(enc["strings"], enc["shape"], size=enc["size"])["x_hat"].numpy()
        psnr = _psnr(decoded, ref[f"{crop}.decoded"])
        assert psnr > DECODED_MIN_PSNR, f"{name} {crop}: decoded images differ (PSNR {psnr:.1f} dB)"


@REFS.needed
def test_loads_compressai_torch_file(tmp_path: Path) -> None:
    """A CompressAI state dict saved with torch.save loads through weights_only, also as a checkpoint."""
    name = next(n for n in REFERENCE_MODELS if n.startswith("bmshj2018-hyperprior"))
    entry, weights, _ = REFS.files(name)
    state = load_weights(weights)
    assert "entropy_bottleneck.matrices.0" in state  # CompressAI 1.2.8's own names
    torch.save(state, tmp_path / "model.pth.tar")
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "checkpoint.pth.tar")
    a = from_compressai(tmp_path / "model.pth.tar", entry["architecture"], entry["quality"])
    b = from_compressai(str(tmp_path / "checkpoint.pth.tar"), entry["architecture"], entry["quality"])
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


@REFS.needed
def test_wrong_architecture_or_quality_is_explained() -> None:
    name = next(n for n in REFERENCE_MODELS if n == "bmshj2018-hyperprior-q6")
    _, weights, _ = REFS.files(name)
    with pytest.raises(ModelFileError, match="looks like bmshj2018-hyperprior with N=192, M=320"):
        from_compressai(weights, "mbt2018-mean", 6)
    with pytest.raises(ModelFileError, match="shape mismatches"):
        from_compressai(weights, "bmshj2018-hyperprior", 2)


# ------------------------------------------------------------- the loader alone
def _compressai_style(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """An ncodec state dict renamed the way CompressAI 1.2.8 writes it, with tables in its shapes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for single, plural in (("_matrix", "matrices"), ("_bias", "biases"), ("_factor", "factors")):
            prefix = f"entropy_bottleneck.{single}"
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                key = f"entropy_bottleneck.{plural}.{key[len(prefix):]}"
        out[key] = value.clone()
    for module in ("entropy_bottleneck", "gaussian_conditional"):
        if f"{module}._offset" in out:
            out[f"{module}.likelihood_lower_bound.bound"] = torch.tensor([1e-9])
            out[f"{module}._quantized_cdf"] = torch.zeros(3, 7, dtype=torch.int32)  # not our tables
    if "gaussian_conditional.scale_bound" in out:
        out["gaussian_conditional.lower_bound_scale.bound"] = torch.tensor([0.11])
    return out


@pytest.mark.parametrize("cls", [FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior])
def test_load_state_dict_takes_compressai_names(cls: type) -> None:
    torch.manual_seed(0)
    source = cls(16, 24)
    source.update(force=True)
    target = cls(16, 24)
    target.load_state_dict({f"module.{k}": v for k, v in _compressai_style(source).items()})
    for key, value in source.state_dict().items():  # tables rebuilt: equal to the source's own
        assert torch.equal(value, target.state_dict()[key]), key


def test_ncodec_state_dict_keeps_its_tables() -> None:
    source = ScaleHyperprior(16, 24)
    source.update(force=True)
    state = source.state_dict()
    state["entropy_bottleneck._quantized_cdf"] = state["entropy_bottleneck._quantized_cdf"].clone()
    state["entropy_bottleneck._quantized_cdf"][0, 1] += 1  # a marker update() would erase
    target = ScaleHyperprior(16, 24)
    target.load_state_dict(state)
    assert torch.equal(target.entropy_bottleneck._quantized_cdf, state["entropy_bottleneck._quantized_cdf"])


def test_configs_follow_compressai_zoo() -> None:
    assert compressai_config("bmshj2018-factorized", 5) == (128, 192)
    assert compressai_config("bmshj2018-factorized", 6) == (192, 320)
    assert compressai_config("bmshj2018-hyperprior", 5) == (128, 192)
    assert compressai_config("bmshj2018-hyperprior", 6) == (192, 320)
    assert compressai_config("mbt2018-mean", 4) == (128, 192)
    assert compressai_config("mbt2018-mean", 5) == (192, 320)
    with pytest.raises(ValueError, match="unknown architecture"):
        compressai_config("cheng2020-anchor", 1)
    with pytest.raises(ValueError, match="quality"):
        compressai_config("mbt2018-mean", 9)


def test_from_compressai_round_trip_through_files(tmp_path: Path) -> None:
    """safetensors and torch files load; the model comes back in eval mode with working tables."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    state = _compressai_style(FactorizedPrior(128, 192))
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pth")
    a = from_compressai(tmp_path / "w.safetensors", "bmshj2018-factorized", 3)
    b = from_compressai(tmp_path / "w.pth", "bmshj2018-factorized", 3)
    assert not a.training
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    x = torch.rand(1, 3, 20, 30)
    enc = a.compress(x)
    assert a.decompress(enc["strings"], enc["shape"], size=enc["size"])["x_hat"].shape == x.shape


def test_from_compressai_errors(tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = _compressai_style(FactorizedPrior(128, 192))
    with pytest.raises(ModelFileError, match="not found"):
        from_compressai(tmp_path / "missing.pth.tar", "bmshj2018-factorized", 1)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="cannot read"):
        from_compressai(tmp_path / "junk.pth", "bmshj2018-factorized", 1)
    with pytest.raises(ModelFileError, match="missing keys.*looks like bmshj2018-factorized with N=128, M=192"):
        from_compressai(state, "bmshj2018-hyperprior", 1)
    with pytest.raises(ModelFileError, match=r"shape mismatches.*quality 1-5"):
        from_compressai(state, "bmshj2018-factorized", 7)
    with pytest.raises(ModelFileError, match="unexpected keys"):
        from_compressai({**state, "extra.weight": torch.zeros(1)}, "bmshj2018-factorized", 1)


def test_torch_files_are_read_without_unrestricted_pickle(tmp_path: Path) -> None:
    """A torch file holding an arbitrary object is refused (weights_only), not executed."""
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Marker()}, tmp_path / "evil.pth")
    with pytest.raises(ModelFileError, match="weights_only"):
        load_weights(tmp_path / "evil.pth")


class _Marker:
    """A class torch.load(weights_only=True) must refuse to rebuild."""
