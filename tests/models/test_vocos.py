"""The Vocos-style decoder: lengths, causality of its frame-rate stack, gradients, and a training step in place of
SEANet's decoder."""
from __future__ import annotations

import argparse

import pytest
import torch

from ncodec.models.audio.encodec import SEANetCodecModel
from ncodec.models.audio.vocos import VocosDecoder
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
