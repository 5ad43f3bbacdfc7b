"""ncodec's SEANet + residual-VQ audio model against EnCodec 0.1.1, and the model on its own.

The comparison needs references written by EnCodec itself, in its own venv:
``bash .ci/encodec/setup.sh`` builds that venv, runs ``scripts/encodec_reference.py`` and
prints the folder to pass as ``NCODEC_ENCODEC_REFS``. Without it those tests skip; the
shape, streaming, segmenting and key-translation tests always run.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from peer_refs import PeerRefs, assert_same_state, max_diff

from ncodec.models.audio.encodec import (EncodedAudio, SEANetCodecModel, encodec_to_ncodec_state_dict,
                                         is_encodec_state_dict, linear_overlap_add, load_encodec_state_dict,
                                         ncodec_to_encodec_state_dict, to_encodec_state_dict)
from ncodec.models.audio.seanet import (SEANetDecoder, SEANetEncoder, StreamableConv1d, encodec_weight_names,
                                        extra_padding, ncodec_weight_names, pad1d)
from ncodec.quantizers.residual import ResidualVQ

REFS = PeerRefs("NCODEC_ENCODEC_REFS", ".ci/encodec/setup.sh", "EnCodec 0.1.1", "EnCodec")
TOLERANCE = 1e-4  # max abs difference of waveforms and latents
BUILDERS = {"encodec_24khz": SEANetCodecModel.encodec_24khz, "encodec_48khz": SEANetCodecModel.encodec_48khz}


# ------------------------------------------------------------ against EnCodec
test_references_come_from_encodec_0_1_1 = REFS.provenance_test("encodec", "0.1.1", BUILDERS)


@REFS.each_model
def test_matches_encodec(name: str) -> None:
    """EnCodec's weights load with plain load_state_dict and give its codes exactly, its waveforms to 1e-4."""
    entry, model, ref = REFS.loaded(name, BUILDERS)  # EnCodec's own key names, plain load_state_dict
    assert (model.sample_rate, model.channels, model.frame_rate, model.quantizer.num_codebooks) == (
        entry["sample_rate"], entry["channels"], entry["frame_rate"], entry["n_q"])
    assert model.target_bandwidths == entry["target_bandwidths"]
    assert (model.normalize, model.segment) == (entry["normalize"], entry["segment"])

    x = torch.from_numpy(ref["x"])
    with torch.no_grad():
        latents = model.encoder(x if model.segment is None else x[..., :model.segment_length])
        errors = {"encoder_out": max_diff(latents, ref["encoder_out"], "encoder_out"),
                  "decoder_out": max_diff(model.decoder(torch.from_numpy(ref["encoder_out"])), ref["decoder_out"],
                                          "decoder_out")}
    for bw in entry["bandwidths"]:
        encoded = model.encode(x, bw)
        codes = ref[f"bw{bw}.codes"]
        assert encoded.codes.shape[1] == entry["codebooks"][str(bw)] == model.num_codebooks(bw)
        assert tuple(encoded.codes.shape) == codes.shape
        mismatched = int((encoded.codes.numpy() != codes).sum())
        assert mismatched == 0, f"{name} at {bw} kbps: {mismatched} of {codes.size} codes differ"
        if model.normalize:
            errors[f"bw{bw}.scales"] = max_diff(encoded.scales, ref[f"bw{bw}.scales"], "scales")
        else:
            assert encoded.scales is None
        with torch.no_grad():
            # decode EnCodec's codes, so a waveform mismatch is the decoder's, not the encoder's
            from_ref = EncodedAudio(torch.from_numpy(codes), encoded.scales, encoded.length)
            errors[f"bw{bw}.output"] = max_diff(model.decode(from_ref), ref[f"bw{bw}.output"], "output")
            errors[f"bw{bw}.forward"] = max_diff(model(x, bw), ref[f"bw{bw}.output"], "forward")
            if model.segment is None:  # untrimmed, whole frames, as EnCodec's decode
                errors[f"bw{bw}.decoded"] = max_diff(model.decode(from_ref.codes), ref[f"bw{bw}.decoded"],
                                                     "decoded")
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= TOLERANCE, f"{name}: {worst} max abs diff {errors[worst]:.3g} ({errors})"


@REFS.each_model
def test_writes_encodec_state_dict(name: str, tmp_path: Path) -> None:
    """ncodec writes back exactly EnCodec's keys, shapes and values; a torch file of them loads too."""
    _, state, _ = REFS.state(name)
    model = BUILDERS[name]()
    load_encodec_state_dict(model, state)
    back = to_encodec_state_dict(model)
    assert_same_state(back, state)
    torch.save(state, tmp_path / "encodec.th")
    again = BUILDERS[name]()
    again.load_state_dict(torch.load(tmp_path / "encodec.th", weights_only=True))
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


# ------------------------------------------------------------- always run
def _tiny_codec(causal: bool = True, norm: str = "weight_norm", segment: float | None = None,
                normalize: bool = False, channels: int = 1, seed: int = 0) -> SEANetCodecModel:
    """A small SEANet codec (hop 8, 16 channels, 4 levels of 32 codes at 800 Hz: 0.5 kbps a level) whose
    codebooks spread like the residuals of its latents (so codes are real decisions)."""
    torch.manual_seed(seed)
    seanet = dict(channels=channels, dimension=16, n_filters=4, ratios=(4, 2), causal=causal, norm=norm, lstm=1)
    quantizer = ResidualVQ(16, 4, 32, kmeans_init=False)
    model = SEANetCodecModel(SEANetEncoder(**seanet), SEANetDecoder(**seanet), quantizer, [1.0, 2.0], 800,
                             channels, normalize=normalize, segment=segment).eval()
    with torch.no_grad():
        latents = model.encoder(torch.randn(4, channels, 400))
        residual = latents.transpose(1, 2).reshape(-1, 16)
        for vq in quantizer.levels:
            vq.embed.copy_(residual.mean(0) + 0.5 * residual.std(0) * torch.randn(32, 16))
            residual = residual - vq.embed[vq.encode(residual[:, :, None])[:, 0, 0]]
    return model


def test_padding_rules() -> None:
    assert extra_padding(10, 4, 2, 2) == 0 and extra_padding(11, 4, 2, 2) == 1
    assert extra_padding(7, 7, 1, 6) == 0
    x = torch.arange(3.0).view(1, 1, 3)
    # reflect padding longer than the signal: zeros appended first, then removed
    assert pad1d(x, 4, 0, "reflect").tolist() == [[[0.0, 0.0, 2.0, 1.0, 0.0, 1.0, 2.0]]]
    assert pad1d(x, 1, 2, "constant").tolist() == [[[0.0, 0.0, 1.0, 2.0, 0.0, 0.0]]]
    conv = StreamableConv1d(1, 1, 4, stride=2, causal=False, pad_mode="constant")
    assert conv.padding_total == 2


@pytest.mark.parametrize("causal,norm", [(True, "weight_norm"), (False, "weight_norm"), (False, "time_group_norm"),
                                         (True, "none")])
def test_seanet_shapes(causal: bool, norm: str) -> None:
    torch.manual_seed(1)
    settings = dict(channels=2, dimension=12, n_filters=4, ratios=(5, 2), causal=causal, norm=norm, lstm=1,
                    n_residual_layers=2, true_skip=norm == "none")
    encoder, decoder = SEANetEncoder(**settings), SEANetDecoder(**settings)
    assert encoder.hop_length == decoder.hop_length == 10
    for length in (1, 9, 10, 37, 100):
        z = encoder(torch.randn(3, 2, length))
        assert z.shape == (3, 12, math.ceil(length / 10)) == (3, 12, encoder.frames(length))
        assert decoder(z).shape == (3, 2, z.shape[-1] * 10)


def test_time_group_norm_cannot_be_causal() -> None:
    with pytest.raises(ValueError, match="causal"):
        SEANetEncoder(causal=True, norm="time_group_norm")


def test_encodec_architectures_and_bandwidths() -> None:
    m24, m48 = SEANetCodecModel.encodec_24khz(), SEANetCodecModel.encodec_48khz()
    assert (m24.frame_rate, m24.quantizer.num_codebooks, m24.channels) == (75, 32, 1)
    assert (m48.frame_rate, m48.quantizer.num_codebooks, m48.channels) == (150, 16, 2)
    assert {bw: m24.num_codebooks(bw) for bw in m24.target_bandwidths} == {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16,
                                                                            24.0: 32}
    assert {bw: m48.num_codebooks(bw) for bw in m48.target_bandwidths} == {3.0: 2, 6.0: 4, 12.0: 8, 24.0: 16}
    assert m24.num_codebooks() == 32
    with pytest.raises(ValueError, match="not one of"):
        m24.num_codebooks(5.0)
    m24.set_target_bandwidth(6.0)
    assert m24.num_codebooks() == 8
    # EnCodec 0.1.1's key names, as its state dicts hold them
    keys = to_encodec_state_dict(m24)
    assert len(keys) == 252
    for key in ("encoder.model.0.conv.conv.weight_g", "encoder.model.1.block.1.conv.conv.weight_v",
                "encoder.model.1.shortcut.conv.conv.bias", "encoder.model.13.lstm.weight_hh_l1",
                "encoder.model.15.conv.conv.weight_v", "decoder.model.1.lstm.bias_ih_l0",
                "decoder.model.3.convtr.convtr.weight_g", "decoder.model.15.conv.conv.bias",
                "quantizer.vq.layers.31._codebook.embed_avg", "quantizer.vq.layers.0._codebook.inited"):
        assert key in keys, key
    keys48 = to_encodec_state_dict(m48)
    assert len(keys48) == 224
    assert "decoder.model.12.convtr.norm.weight" in keys48 and "encoder.model.15.conv.norm.bias" in keys48


def test_key_translation_round_trip() -> None:
    source = _tiny_codec(seed=3)
    with torch.no_grad():
        for vq in source.quantizer.levels:
            vq.cluster_size.uniform_(1, 9)
            vq.embed_sum.normal_()
        source.quantizer.prior.counts.random_(0, 5)
    state = source.state_dict()
    encodec_style = to_encodec_state_dict(source)
    assert is_encodec_state_dict(encodec_style) and not is_encodec_state_dict(state)
    assert not any("parametrizations" in k or "prior" in k or "levels" in k for k in encodec_style)
    assert encodec_style["quantizer.vq.layers.2._codebook.inited"].tolist() == [1.0]
    assert torch.equal(encodec_style["quantizer.vq.layers.1._codebook.embed_avg"],
                       source.quantizer.levels[1].embed_sum)
    # back again: every tensor equal; priors are ncodec's own and come from the target
    target = _tiny_codec(seed=4)
    target.load_state_dict(encodec_style)
    for key, value in state.items():
        if ".prior." in f".{key}":
            assert torch.equal(target.state_dict()[key], _tiny_codec(seed=4).state_dict()[key]), key
        else:
            assert torch.equal(target.state_dict()[key], value), key
    assert encodec_to_ncodec_state_dict(encodec_style).keys() <= state.keys()
    assert ncodec_to_encodec_state_dict(state).keys() == encodec_style.keys()
    # weight-norm names alone, both ways
    renamed = encodec_weight_names({"a.parametrizations.weight.original0": 1, "b.weight": 2})
    assert renamed == {"a.weight_g": 1, "b.weight": 2}
    assert ncodec_weight_names(renamed) == {"a.parametrizations.weight.original0": 1, "b.weight": 2}
    # an uninitialised EnCodec codebook stays uninitialised
    encodec_style["quantizer.vq.layers.0._codebook.inited"] = torch.tensor([0.0])
    load_encodec_state_dict(target, encodec_style)
    assert not bool(target.quantizer.levels[0].initted) and bool(target.quantizer.levels[1].initted)


def test_causal_model_streams() -> None:
    """Causal: the codes of a prefix of whole frames are the first codes of the whole signal, and its
    decoded waveform the start of the whole one (once every layer's input is longer than its
    reflect padding: 7 frames for the last kernel of 7; shorter ones reflect appended zeros)."""
    model = _tiny_codec(causal=True, seed=5)
    hop = model.encoder.hop_length
    x = 0.3 * torch.randn(2, 1, 25 * hop + 3)
    whole = model.encode(x)
    assert all(len(torch.unique(whole.codes[:, k])) > 8 for k in range(4))  # not a degenerate codebook
    with torch.no_grad():
        latents = model.encoder(x)
    for frames in (7, 11, 25):
        prefix = x[..., :frames * hop]
        with torch.no_grad():
            torch.testing.assert_close(model.encoder(prefix), latents[..., :frames], rtol=0, atol=1e-6)
        part = model.encode(prefix)
        assert torch.equal(part.codes, whole.codes[..., :frames])
        full = model.decode(whole.codes)
        torch.testing.assert_close(model.decode(part), full[..., :frames * hop], rtol=0, atol=1e-6)


def test_lower_bandwidth_codes_are_a_prefix() -> None:
    model = _tiny_codec(causal=False, seed=6)
    x = 0.3 * torch.randn(1, 1, 203)
    low, high = model.encode(x, 1.0), model.encode(x, 2.0)
    assert (low.codes.shape[1], high.codes.shape[1]) == (2, 4)
    assert torch.equal(low.codes, high.codes[:, :2])
    assert model.decode(low).shape == x.shape == model(x).shape


@pytest.mark.parametrize("length", [1, 37, 399, 400, 401, 417, 800, 1234])
def test_segmented_normalised_model(length: int) -> None:
    """Half-second segments (400 samples at 800 Hz) overlapping 1%, each normalised: any length round-trips."""
    model = _tiny_codec(causal=False, norm="time_group_norm", segment=0.5, normalize=True, channels=2, seed=7)
    assert (model.segment_length, model.segment_stride) == (400, 396)
    x = 0.1 * torch.randn(2, 2, length)
    encoded = model.encode(x)
    parts = model.segments(length)
    assert parts[0][0] == 0 and len(parts) == len(range(0, length, 396))
    assert encoded.codes.shape[-1] == sum(math.ceil(size / model.encoder.hop_length) for _, size in parts)
    assert encoded.scales is not None and encoded.scales.shape == (2, len(parts))
    volume = x[..., :400].mean(dim=1).pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(encoded.scales[:, 0], volume + 1e-8)
    y = model.decode(encoded)
    assert y.shape == x.shape and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="input length"):
        model.decode(encoded.codes, encoded.scales)
    with pytest.raises(ValueError, match="scales"):
        model.decode(encoded.codes, None, length)


def test_linear_overlap_add() -> None:
    frames = [torch.full((1, 10), 2.0), torch.full((1, 10), 2.0), torch.full((1, 4), 2.0)]
    out = linear_overlap_add(frames, 8)
    assert out.shape == (1, 20) and torch.allclose(out, torch.full((1, 20), 2.0))
    ramp = linear_overlap_add([torch.zeros(1, 10), torch.ones(1, 10)], 6)
    assert ramp[0, :6].eq(0).all() and ramp[0, 10:].eq(1).all()
    assert (ramp[0, 6:10].diff() > 0).all()  # a linear cross-fade in the overlap
