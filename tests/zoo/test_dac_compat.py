"""ncodec's DAC model against descript-audio-codec 1.0.0, and the model on its own.

The comparison needs references written by DAC itself, in its own venv:
``bash .ci/dac/setup.sh`` builds that venv, runs ``scripts/dac_reference.py`` and prints the
folder to pass as ``NCODEC_DAC_REFS``. Without it those tests skip; the architecture,
shape, key-translation and quantizer-option tests always run.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from peer_refs import PeerRefs, assert_same_state, max_diff

from ncodec.models.audio.dac import (DAC_CONFIGS, DACModel, Snake1d, dac_to_ncodec_state_dict, is_dac_state_dict,
                                     load_dac_state_dict, ncodec_to_dac_state_dict, to_dac_state_dict)
from ncodec.quantizers.vq import VectorQuantizer

REFS = PeerRefs("NCODEC_DAC_REFS", ".ci/dac/setup.sh", "descript-audio-codec 1.0.0", "DAC")
TOLERANCE = 1e-4  # max abs difference of waveforms and latents
BUILDERS: dict[str, Callable[[], DACModel]] = {"dac_16khz": DACModel.dac_16khz, "dac_24khz": DACModel.dac_24khz,
                                               "dac_44khz": DACModel.dac_44khz}


# ---------------------------------------------------------------- against DAC
test_references_come_from_dac_1_0_0 = REFS.provenance_test("descript-audio-codec", "1.0.0", BUILDERS)


@REFS.each_model
def test_matches_dac(name: str) -> None:
    """DAC's weights load with plain load_state_dict and give its codes exactly, its waveforms to 1e-4."""
    entry, model, ref = REFS.loaded(name, BUILDERS)  # DAC's own key names, plain load_state_dict
    kwargs = entry["kwargs"]
    assert (model.sample_rate, model.hop_length, model.latent_dim, model.n_codebooks) == (
        entry["sample_rate"], entry["hop_length"], entry["latent_dim"], entry["n_codebooks"])
    for key in ("encoder_dim", "encoder_rates", "decoder_dim", "decoder_rates", "codebook_size", "codebook_dim"):
        assert getattr(model, key) == kwargs[key], key

    x = torch.from_numpy(ref["x"])
    assert torch.equal(model.preprocess(x), torch.from_numpy(ref["x_padded"]))
    with torch.no_grad():
        errors = {"encoder_out": max_diff(model.encoder(model.preprocess(x)), ref["encoder_out"], "encoder_out"),
                  "decoder_out": max_diff(model.decode_latents(torch.from_numpy(ref["encoder_out"])),
                                          ref["decoder_out"], "decoder_out")}
    for n in entry["n_quantizers"]:
        codes = model.encode(x, n)
        theirs = ref[f"n{n}.codes"]
        assert tuple(codes.shape) == theirs.shape == (x.shape[0], n, entry["frames"])
        wrong = np.argwhere(codes.numpy() != theirs)
        if len(wrong):
            b, k, t = wrong[0]
            raise AssertionError(f"{name} with {n} codebooks: {len(wrong)} of {theirs.size} codes differ, first at "
                                 f"batch {b} level {k} frame {t} (DAC's decision gap there "
                                 f"{ref['gaps'][b, k, t]:.3g})")
        with torch.no_grad():
            # decode DAC's codes, so a waveform mismatch is the decoder's, not the encoder's
            given = torch.from_numpy(theirs)
            z = model.quantized_latents(given)
            errors[f"n{n}.from_codes_z"] = max_diff(z, ref[f"n{n}.from_codes_z"], "from_codes_z")
            errors[f"n{n}.z"] = max_diff(z, ref[f"n{n}.z"], "z")
            wav = model.decode_codes(given)
            errors[f"n{n}.from_codes"] = max_diff(wav, ref[f"n{n}.from_codes"], "from_codes")
            errors[f"n{n}.decoded"] = max_diff(wav, ref[f"n{n}.decoded"], "decoded")
            trimmed = model.decode_codes(given, x.shape[-1])
            assert torch.equal(trimmed, wav[..., :x.shape[-1]])
            errors[f"n{n}.output"] = max_diff(trimmed, ref[f"n{n}.output"], "output")
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= TOLERANCE, f"{name}: {worst} max abs diff {errors[worst]:.3g} ({errors})"


@REFS.each_model
def test_writes_dac_state_dict(name: str, tmp_path: Path) -> None:
    """ncodec writes back exactly DAC's keys, shapes and values; a DAC weights file (state dict and the
    constructor kwargs DAC's save records) builds and loads the model."""
    entry, state, _ = REFS.state(name)
    model = BUILDERS[name]()
    load_dac_state_dict(model, state)
    back = to_dac_state_dict(model)
    assert_same_state(back, state)
    torch.save({"state_dict": state, "metadata": {"kwargs": entry["kwargs"]}}, tmp_path / "weights.pth")
    again = DACModel.from_dac_checkpoint(torch.load(tmp_path / "weights.pth", weights_only=True))
    assert (again.sample_rate, again.hop_length, again.n_codebooks) == (model.sample_rate, model.hop_length,
                                                                        model.n_codebooks)
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


# ------------------------------------------------------------- always run
def _tiny_dac(seed: int = 0, rates: tuple[int, ...] = (2, 3)) -> DACModel:
    """A small DAC (hop 6, 4 levels of 16 codes in 2 dims over 16-channel latents) with random Snake
    frequencies, gains and codebooks spread like the projected latents (so codes are real decisions)."""
    torch.manual_seed(seed)
    model = DACModel(encoder_dim=4, encoder_rates=rates, latent_dim=16, decoder_dim=16,
                     decoder_rates=tuple(reversed(rates)), n_codebooks=4, codebook_size=16, codebook_dim=2,
                     sample_rate=600)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("alpha"):
                param.copy_(torch.exp(0.3 * torch.randn_like(param)))
            elif name.endswith("original0"):
                param.mul_(torch.exp(0.2 * torch.randn_like(param)))
            elif name.endswith("bias"):
                param.copy_(0.05 * torch.randn_like(param))
        residual = model.encoder(0.3 * torch.randn(4, 1, 600))
        for vq in model.quantizer.levels:
            rows = F.conv1d(residual, vq.project_in.weight, vq.project_in.bias).transpose(1, 2).reshape(-1, 2)
            vq.embed.copy_(rows.mean(0) + rows.std(0) * torch.randn(16, 2))
            residual = residual - vq.decode(vq.encode(residual))
    return model


@pytest.mark.parametrize("name,hop,rate,levels,latent,kbps,keys", [
    ("dac_16khz", 320, 50.0, 12, 1024, 6.0, 322),
    ("dac_24khz", 320, 75.0, 32, 1024, 24.0, 462),
    ("dac_44khz", 512, 44100 / 512, 9, 1024, 9 * 10 * 44100 / 512 / 1000, 301),
    ("dac_44khz_16kbps", 512, 44100 / 512, 18, 128, 18 * 10 * 44100 / 512 / 1000, 364),
])
def test_dac_architectures(name: str, hop: int, rate: float, levels: int, latent: int, kbps: float,
                           keys: int) -> None:
    model = DACModel.from_config(name)
    assert (model.hop_length, model.frame_rate, model.n_codebooks, model.latent_dim) == (hop, rate, levels, latent)
    assert model.bandwidth() == pytest.approx(kbps) and model.bandwidth(1) == pytest.approx(kbps / levels)
    assert not model.training
    # descript-audio-codec 1.0.0's key names and shapes, as its state dicts hold them
    state = to_dac_state_dict(model)
    assert len(state) == keys and is_dac_state_dict(state)
    enc_blocks = len(model.encoder_rates)
    shapes = {"encoder.block.0.weight_v": (64, 1, 7), "encoder.block.0.weight_g": (64, 1, 1),
              "encoder.block.1.block.0.block.0.alpha": (1, 64, 1),
              "encoder.block.1.block.2.block.1.weight_v": (64, 64, 7),
              f"encoder.block.{enc_blocks}.block.4.weight_v": (1024, 512, 2 * model.encoder_rates[-1]),
              f"encoder.block.{enc_blocks + 2}.weight_v": (latent, 1024, 3),
              "quantizer.quantizers.0.in_proj.weight_v": (8, latent, 1),
              "quantizer.quantizers.0.in_proj.weight_g": (8, 1, 1),
              f"quantizer.quantizers.{levels - 1}.out_proj.weight_v": (latent, 8, 1),
              f"quantizer.quantizers.{levels - 1}.codebook.weight": (1024, 8),
              "decoder.model.0.weight_v": (1536, latent, 7),
              "decoder.model.1.block.1.weight_v": (1536, 768, 2 * model.decoder_rates[0]),
              "decoder.model.1.block.1.weight_g": (1536, 1, 1),  # transposed: norm per input channel
              "decoder.model.4.block.4.block.3.weight_v": (96, 96, 1),
              "decoder.model.5.alpha": (1, 96, 1), "decoder.model.6.weight_v": (1, 96, 7)}
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    with pytest.raises(ValueError, match="unknown DAC configuration"):
        DACModel.from_config("dac_8khz")


@pytest.mark.parametrize("rates", [(2, 3), (2, 4)])
def test_dac_shapes_and_lengths(rates: tuple[int, int]) -> None:
    model = _tiny_dac(1, rates)
    hop = math.prod(rates)
    # DAC's padding: kernel 2r, stride r, padding ceil(r / 2); an odd rate loses a sample per layer it feeds
    short = 2 if rates[-1] == 3 else 0
    for length in (1, 5, hop, hop + 1, 37, 60):
        x = 0.3 * torch.randn(2, 1, length)
        codes = model.encode(x)
        frames = math.ceil(length / hop)
        assert codes.shape == (2, 4, frames) == (2, model.n_codebooks, model.frames(length))
        assert codes.dtype == torch.int64
        assert model.decode_codes(codes).shape == (2, 1, frames * hop - short)
        y = model(x)
        assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() < 1
        with torch.no_grad():
            full = model.decode_codes(codes)
            assert torch.equal(y, model.decode_codes(codes, length))
        kept = min(length, full.shape[-1])  # DAC's trim; the few samples an odd rate does not produce are zeros
        assert torch.equal(y[..., :kept], full[..., :kept]) and y[..., kept:].eq(0).all()
    with pytest.raises(ValueError, match="cannot hold"):
        model.decode_codes(codes, math.ceil(60 / hop) * hop + 1)
    with pytest.raises(ValueError, match="mono"):
        model.encode(torch.zeros(1, 2, 12))


def test_dac_lower_bitrates_are_prefixes() -> None:
    model = _tiny_dac(2)
    x = 0.3 * torch.randn(2, 1, 90)
    full = model.encode(x)
    assert all(len(torch.unique(full[:, k])) > 4 for k in range(4))  # not a degenerate codebook
    for n in (1, 2, 3):
        assert torch.equal(model.encode(x, n), full[:, :n])
        assert model.decode_codes(full[:, :n], 90).shape == x.shape
    with pytest.raises(ValueError, match="n_quantizers"):
        model.encode(x, 5)


def test_dac_key_translation_round_trip() -> None:
    source = _tiny_dac(3)
    with torch.no_grad():
        for vq in source.quantizer.levels:
            vq.cluster_size.uniform_(1, 9)
        source.quantizer.prior.counts.random_(0, 5)
    state = source.state_dict()
    dac_style = to_dac_state_dict(source)
    assert is_dac_state_dict(dac_style) and not is_dac_state_dict(state)
    assert not any(s in k for k in dac_style for s in ("parametrizations", "levels", "prior", "cluster_size",
                                                          "initted", "embed"))
    assert torch.equal(dac_style["quantizer.quantizers.2.codebook.weight"], source.quantizer.levels[2].embed)
    assert dac_style["quantizer.quantizers.1.in_proj.weight_v"].shape == (2, 16, 1)
    # back again: every tensor equal; usage counts and priors are ncodec's own and come from the target
    target = _tiny_dac(4)
    target.load_state_dict(dac_style)
    fresh = _tiny_dac(4).state_dict()
    for key, value in state.items():
        if ".prior." in f".{key}" or key.endswith(".cluster_size"):
            assert torch.equal(target.state_dict()[key], fresh[key]), key
        else:
            assert torch.equal(target.state_dict()[key], value), key
    assert dac_to_ncodec_state_dict(dac_style).keys() <= state.keys()
    assert ncodec_to_dac_state_dict(state).keys() == dac_style.keys()
    x = 0.3 * torch.randn(1, 1, 48)
    assert torch.equal(target.encode(x), source.encode(x))
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_state_dict({k: v for k, v in dac_style.items() if "codebook" not in k})


def test_snake() -> None:
    snake = Snake1d(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.randn(2, 3, 5)
    alpha = snake.alpha
    torch.testing.assert_close(snake(x), x + torch.sin(alpha * x) ** 2 / alpha)


def test_vq_raw_codes_and_conv_projection() -> None:
    """The VectorQuantizer options DAC needs: cosine lookup with raw codes out, 1x1-convolution projections."""
    torch.manual_seed(5)
    dac_vq = VectorQuantizer(8, 32, codebook_dim=4, ema=False, kmeans_init=False, distance="cosine",
                             normalize_codes=False, projection="conv", threshold_dead=0.0)
    assert isinstance(dac_vq.project_in, torch.nn.Conv1d) and dac_vq.project_in.weight.shape == (4, 8, 1)
    assert not dac_vq.unit_codes and VectorQuantizer(8, 32, distance="cosine").unit_codes
    with torch.no_grad():
        dac_vq.embed.mul_(torch.rand(32, 1) * 3 + 0.1)  # codes of different lengths
    x = torch.randn(3, 8, 7)
    idx = dac_vq.encode(x)
    rows = x.movedim(1, -1).reshape(-1, 8)
    z = F.normalize(rows @ dac_vq.project_in.weight[..., 0].t() + dac_vq.project_in.bias)
    expected = (z @ F.normalize(dac_vq.embed).t()).argmax(-1)
    assert torch.equal(idx.movedim(1, -1).reshape(-1), expected)
    # the raw codebook row, not a unit vector, goes through the output projection
    raw = dac_vq.embed[expected] @ dac_vq.project_out.weight[..., 0].t() + dac_vq.project_out.bias
    torch.testing.assert_close(dac_vq.decode(idx).movedim(1, -1).reshape(-1, 8), raw)
    # training: losses on unnormalised vectors, gradients reach the codebook and the projections
    dac_vq.train()
    out = dac_vq(x)
    torch.testing.assert_close(out.quantized, dac_vq.decode(out.indices))
    out.loss.backward()
    assert dac_vq.embed.grad is not None and dac_vq.embed.grad.abs().sum() > 0
    assert dac_vq.project_in.weight.grad is not None
    # a linear twin with the same weights agrees (up to rounding)
    twin = VectorQuantizer(8, 32, codebook_dim=4, ema=False, kmeans_init=False, distance="cosine",
                           normalize_codes=False)
    with torch.no_grad():
        for name in ("project_in", "project_out"):
            getattr(twin, name).weight.copy_(getattr(dac_vq, name).weight[..., 0])
            getattr(twin, name).bias.copy_(getattr(dac_vq, name).bias)
        twin.embed.copy_(dac_vq.embed)
    dac_vq.eval()
    assert torch.equal(twin.encode(x), dac_vq.encode(x))
    torch.testing.assert_close(twin.decode(idx), dac_vq.decode(idx))
    with pytest.raises(ValueError, match="projection"):
        VectorQuantizer(8, 32, codebook_dim=4, projection="mlp")  # type: ignore[arg-type]


def test_dac_configs_match_their_builders() -> None:
    assert set(DAC_CONFIGS) == {"dac_16khz", "dac_24khz", "dac_44khz", "dac_44khz_16kbps"}
    assert all(cfg["encoder_rates"] == tuple(reversed(cfg["decoder_rates"])) for cfg in DAC_CONFIGS.values())
