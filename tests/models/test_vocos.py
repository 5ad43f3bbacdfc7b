"""The frame-rate networks: the Vocos-style decoder (lengths, causality of its frame-rate stack, gradients, a
training step in place of SEANet's decoder) and the STFT encoder (frames, causality, features, a codec of the pair)."""
from __future__ import annotations

import argparse

import pytest
import torch

from ncodec.models.audio.encodec import SEANetCodecModel
from ncodec.models.audio.streaming import StreamingSTFTEncoder, StreamingVocosDecoder, streaming
from ncodec.models.audio.vocos import COMPRESSION, STFTEncoder, VocosDecoder
from ncodec.train.audio import Trainer


def test_output_length_and_gradients() -> None:
    torch.manual_seed(0)
    decoder = VocosDecoder(16, 40, width=32, blocks=2)
    z = torch.randn(2, 16, 25, requires_grad=True)
    y = decoder(z)
    assert y.shape == (2, 1, 25 * 40) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is not None for p in decoder.parameters())
    with pytest.raises(ValueError):
        VocosDecoder(16, 40, n_fft=20)


def test_causal_stack_ignores_later_frames() -> None:
    """With ``causal``, the frame-rate layers (everything before the inverse STFT) see no later frame."""
    torch.manual_seed(0)
    decoder = VocosDecoder(8, 10, width=16, blocks=3, causal=True).eval()

    def stack(z: torch.Tensor) -> torch.Tensor:
        x = decoder.embed(torch.nn.functional.pad(z, decoder.pad))
        for block in decoder.blocks:
            x = block(x)
        return x

    z = torch.randn(1, 8, 30)
    changed = z.clone()
    changed[..., 20:] = torch.randn(1, 8, 10)
    assert torch.equal(stack(z)[..., :20], stack(changed)[..., :20])
    assert not torch.equal(stack(z)[..., 20:], stack(changed)[..., 20:])


def test_trains_in_place_of_the_seanet_decoder() -> None:
    torch.manual_seed(0)
    model = SEANetCodecModel.build([2.0, 4.0], 8000, 1, causal=True, n_filters=4, dimension=16, ratios=[8, 5],
                                   lstm=0, n_residual_layers=1)
    model.decoder = VocosDecoder(16, model.encoder.hop_length, width=16, blocks=1, causal=True)
    args = argparse.Namespace(lr=1e-3, lr_final=0.1, steps=10, warmup=1, clip=10.0, mel_weight=15.0, stft_weight=1.0,
                              l1_weight=0.0, commit_weight=1.0, quantizer_dropout=1.0, adversarial=False, adv_start=0,
                              adv_warmup=1, adv_weight=3.0, feat_weight=3.0, disc_lr=None, disc_filters=4, amp=False)
    trainer = Trainer(model, args, torch.device("cpu"))
    x = 0.1 * torch.randn(2, 1, 4000)
    before = [p.detach().clone() for p in model.decoder.parameters()]
    record = trainer.step(x, 0)
    assert torch.isfinite(torch.tensor(record["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))


# ------------------------------------------------------------------ the STFT encoder
def test_stft_encoder_frames_and_causality() -> None:
    """Frame t of the causal encoder depends on the samples before (t + 1) * hop only; lengths round up."""
    torch.manual_seed(0)
    encoder = STFTEncoder(8, 40, width=16, blocks=2, causal=True).eval()
    for length in (1, 39, 40, 41, 400):
        assert encoder(torch.randn(1, 1, length)).shape == (1, 8, encoder.frames(length)) == (1, 8, -(-length // 40))
    x = torch.randn(2, 1, 2000)
    changed = x.clone()
    changed[..., 1000:] = torch.randn(2, 1, 1000)  # samples from frame 25's hop on
    with torch.no_grad():
        a, b = encoder(x), encoder(changed)
    assert torch.equal(a[..., :25], b[..., :25])
    assert not torch.allclose(a[..., 25:], b[..., 25:])
    centred = STFTEncoder(8, 40, width=16, blocks=2, causal=False).eval()
    with torch.no_grad():
        a, b = centred(x), centred(changed)
    assert not torch.allclose(a[..., 20:25], b[..., 20:25])  # a centred window looks ahead


def test_stft_encoder_features_are_compressed_spectra() -> None:
    """The features are the STFT bins scaled by |S|^-0.7: a louder input gives features 10^0.3 per 10x."""
    encoder = STFTEncoder(8, 40, width=16, blocks=0, causal=True)
    x = torch.sin(torch.arange(4000) * 0.3).view(1, 1, -1)
    quiet, loud = encoder.spectrum(x), encoder.spectrum(10 * x)
    assert quiet.shape == (1, 100, 2 * encoder.bins)
    big = quiet.abs() > 0.3  # |S| > 0.02, where the 1e-5 floor is negligible
    assert torch.allclose(loud[big] / quiet[big], torch.full_like(loud[big], 10 ** COMPRESSION), rtol=1e-3)


def test_frame_rate_codec_builds_codes_and_trains() -> None:
    """`SEANetCodecModel.build` with an STFT encoder and a Vocos decoder: codes, decoding, a training step."""
    torch.manual_seed(0)
    model = SEANetCodecModel.build([2.0, 4.0], 8000, 1, causal=True, dimension=16, ratios=[8, 5],
                                   encoder={"type": "stft", "width": 24, "blocks": 1},
                                   decoder={"type": "vocos", "width": 24, "blocks": 1})
    assert isinstance(model.encoder, STFTEncoder) and isinstance(model.decoder, VocosDecoder)
    assert model.frame_rate == 200 and model.quantizer.num_codebooks == 2
    x = 0.1 * torch.randn(2, 1, 1000)
    encoded = model.encode(x, 2.0)
    assert encoded.codes.shape == (2, 1, 25)
    assert model.decode(encoded).shape == (2, 1, 1000)
    args = argparse.Namespace(lr=1e-3, lr_final=0.1, steps=10, warmup=1, clip=10.0, mel_weight=15.0, stft_weight=0.0,
                              l1_weight=0.0, commit_weight=1.0, quantizer_dropout=1.0, adversarial=False, adv_start=0,
                              adv_warmup=1, adv_weight=3.0, feat_weight=3.0, disc_lr=None, disc_filters=4, amp=True)
    trainer = Trainer(model, args, torch.device("cpu"))
    before = [p.detach().clone() for p in model.encoder.parameters()]
    record = trainer.step(x, 0)
    assert torch.isfinite(torch.tensor(record["loss"])) and "stft_sc" not in record  # weight 0: not computed
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    for bad in ({"type": "wavelet"}, {"type": "seanet", "width": 8}):
        with pytest.raises(ValueError):
            SEANetCodecModel.build([2.0], 8000, encoder=bad)
    with pytest.raises(ValueError):
        SEANetCodecModel.build([2.0], 8000, decoder={"type": "stft"})


def test_frame_rate_networks_stream_like_one_call() -> None:
    """Pieces of any size (empty ones too) give the frames and samples of one call on the whole signal."""
    torch.manual_seed(0)
    model = SEANetCodecModel.build([2.0, 4.0], 8000, 1, causal=True, dimension=16, ratios=[8, 5],
                                   encoder={"type": "stft", "width": 24, "blocks": 2},
                                   decoder={"type": "vocos", "width": 24, "blocks": 2}).eval()
    x = 0.1 * torch.randn(2, 1, 5003)
    with torch.no_grad():
        z, y = model.encoder(x), model.decoder(model.encoder(x))
    encoder = streaming(model.encoder)
    assert isinstance(encoder, StreamingSTFTEncoder)
    pieces, start = [], 0
    for n in (300, 1, 0, 7, 2000, 39):
        pieces.append(encoder(x[..., start:start + n]))
        start += n
    pieces.append(encoder(x[..., start:], final=True))
    assert [p.shape[-1] for p in pieces[:3]] == [7, 0, 0]          # frames complete at 40-sample boundaries
    torch.testing.assert_close(torch.cat(pieces, dim=-1), z, rtol=0, atol=1e-5)
    decoder = streaming(model.decoder)
    assert isinstance(decoder, StreamingVocosDecoder)
    parts = [decoder(z[..., :1]), decoder(z[..., 1:2]), decoder(z[..., 2:40]), decoder(z[..., 40:40]),
             decoder(z[..., 40:], final=True)]
    assert parts[0].shape[-1] == 0 and parts[2].shape[-1] == 40 * 40 - 80  # n_fft / 2 held back
    torch.testing.assert_close(torch.cat(parts, dim=-1), y, rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="ended"):
        decoder(z)
    centred = SEANetCodecModel.build([2.0], 8000, 1, causal=False, dimension=16, ratios=[8, 5],
                                     encoder={"type": "stft", "width": 8, "blocks": 1})
    with pytest.raises(ValueError, match="causal"):
        streaming(centred.encoder)
