"""Write descript-audio-codec (DAC) reference outputs for tests/zoo/test_dac_compat.py.

Run with the DAC venv that ``.ci/dac/setup.sh`` builds (DAC stays out of ncodec's venv; this
script imports no ncodec):

    .ci/dac/.venv/bin/python scripts/dac_reference.py --out /tmp/dac-refs

The three released architectures of descript-audio-codec 1.0.0 (16 kHz, 24 kHz, 44.1 kHz;
settings of the package's ``conf/final/*.yml``) are built with seeded random weights made to
look trained: weight-norm gains no longer equal to the directions' norms, Snake ``alpha`` per
channel and biases random, latents of unit spread, waveforms of speech-like level, and
codebooks that are not degenerate (per level, 1024 distinct codes drawn around the projected
residuals that level sees, and an output projection that maps a code back onto the
residual's subspace, so each level removes part of the residual). A level's codebook is
drawn again while any of its decisions on the input lies within ``MIN_GAP`` of a tie
(second-nearest minus nearest squared distance between the L2-normalised vectors, in DAC's
own arithmetic): below float32 resolution (about 5e-7 here) the choice is decided by
rounding, which two implementations, or DAC on two backends, do differently, so the
comparison would test rounding rather than the model. Only the model's tensor
paths run: ``model.encode(audio)``, ``model.decode(z)``, ``model.quantizer.from_codes(codes)``
and ``model(audio)``. The input is real speech: the loudest 0.51 s of ``samples/speech.flac``
(24 kHz), resampled to each model's rate here by zero-padding or truncating its spectrum;
each batch holds that excerpt and its time-reversed copy at another gain. Written per model,
without pickle:

- ``<model>.safetensors``: the state dict with DAC's own key names (``weight_g`` /
  ``weight_v``, ``quantizer.quantizers.{i}.{in_proj,out_proj,codebook}.*``);
- ``<model>.npz``: ``x`` (input ``[2, 1, T]``), ``x_padded`` (DAC's ``preprocess``),
  ``encoder_out`` and ``decoder_out`` (the encoder on ``x_padded``, the decoder on that),
  and for each number of quantizers ``<n>``: ``n<n>.codes``, ``n<n>.z`` (quantized latents of
  ``encode``), ``n<n>.decoded`` (``decode(z)``), ``n<n>.from_codes_z`` / ``n<n>.from_codes``
  (``quantizer.from_codes(codes)`` and its decoding) and ``n<n>.output``
  (``model(x, n_quantizers=n)["audio"]``); ``gaps`` ``[2, K, frames]``: for every coded vector
  of the full encode, the squared-distance gap between the second-nearest and the nearest
  code in DAC's own arithmetic (how far each decision is from a tie);
- ``publisher/weights_16khz.pth``: the 16 kHz model as DAC's releases ship it (``torch.save`` of
  ``{"state_dict", "metadata": {"kwargs"}}``), which the fetch tests serve over HTTP;
- ``manifest.json``: DAC / torch / numpy versions and, per model, the constructor kwargs as
  DAC's ``save`` records them, sizes, numbers of quantizers, distinct codes per level, the
  smallest decision gap and the latents' energy the residual VQ leaves.
"""
from __future__ import annotations

import inspect
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import dac
from dac.model import DAC
from peer_reference_common import (audio_args, distinct_codes_per_level, read_mono, resample, save_weights,
                                   seeded_models, write_publisher_file)

# descript-audio-codec's conf/final/{16khz,24khz,44khz}.yml (the released 8 kbps models)
CONFIGS: dict[str, dict[str, Any]] = {
    "dac_16khz": dict(sample_rate=16_000, encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536,
                      decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8),
    "dac_24khz": dict(sample_rate=24_000, encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536,
                      decoder_rates=[8, 5, 4, 2], n_codebooks=32, codebook_size=1024, codebook_dim=8),
    "dac_44khz": dict(sample_rate=44_100, encoder_dim=64, encoder_rates=[2, 4, 8, 8], decoder_dim=1536,
                      decoder_rates=[8, 8, 4, 2], n_codebooks=9, codebook_size=1024, codebook_dim=8),
}
N_QUANTIZERS = {"dac_16khz": [4, 12], "dac_24khz": [8, 32], "dac_44khz": [4, 9]}  # a prefix and all levels
#: the models also written as DAC releases them, under the release's file name (one: each is ~300 MB)
PUBLISHER_FILES = {"dac_16khz": "weights_16khz"}
DURATION = 0.51  # seconds: no model's hop divides the excerpt, so DAC's padding is exercised
MIN_GAP = 1e-5  # smallest decision gap allowed in the references (20x float32 rounding of the distances)


def load_inputs(path: Path) -> dict[str, torch.Tensor]:
    """Each model's input batch ``[2, 1, T]``: the loudest excerpt of the clip at its rate, and a reversed copy."""
    mono, rate = read_mono(path)
    size = int(DURATION * rate)
    energy = np.convolve(mono.astype(np.float64) ** 2, np.ones(size), mode="valid")
    start = int(np.argmax(energy)) / rate  # seconds
    out = {}
    for name, config in CONFIGS.items():
        sr = config["sample_rate"]
        whole = resample(mono, rate, sr)
        first = int(round(start * sr))
        excerpt = whole[first:first + int(round(DURATION * sr))]
        batch = np.stack([excerpt, 0.6 * excerpt[::-1]])[:, None, :]
        out[name] = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    return out


def saved_kwargs(model: DAC) -> dict[str, Any]:
    """The constructor kwargs DAC's ``save`` writes into a weights file's metadata."""
    args = {k: p.default for k, p in inspect.signature(type(model)).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for key in list(args):
        if hasattr(model, key):
            args[key] = getattr(model, key)
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in args.items()}


def _last_conv(seq: torch.nn.Sequential) -> torch.nn.Module:
    """The final Conv1d of a DAC stack."""
    return [m for m in seq if isinstance(m, torch.nn.Conv1d)][-1]


def _scale_output(conv: torch.nn.Module, out: torch.Tensor, std: float) -> None:
    """Scale what ``conv`` (weight-normalised, with bias) produces so that ``out``, its output, would have ``std``."""
    factor = std / max(float(out.std()), 1e-8)
    conv.weight_g.mul_(factor)
    conv.bias.mul_(factor)


@torch.no_grad()
def make_trained_looking(model: DAC, x: torch.Tensor, generator: torch.Generator) -> float:
    """Perturb the freshly built model in place so that it behaves like a trained one; returns the fraction of
    the latents' energy that the residual VQ leaves."""
    for module in model.modules():
        if hasattr(module, "weight_g"):  # gains no longer equal to ||v||: catches a g / v mix-up
            module.weight_g.mul_(torch.exp(0.2 * torch.randn(module.weight_g.shape, generator=generator)))
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and module.bias is not None:
            module.bias.copy_(0.02 * torch.randn(module.bias.shape, generator=generator))
        if hasattr(module, "alpha"):  # Snake: one frequency per channel
            module.alpha.copy_(torch.exp(0.4 * torch.randn(module.alpha.shape, generator=generator)))
    xp = model.preprocess(x, None)
    _scale_output(_last_conv(model.encoder.block), model.encoder(xp), std=1.0)
    latents = model.encoder(xp)
    pre_tanh = model.decoder.model[:-1](latents)
    _scale_output(_last_conv(model.decoder.model), pre_tanh, std=0.2)

    # Quantizer, level by level on the residual it sees: codes drawn around the projected
    # residuals (every code distinct, chosen by cosine similarity as DAC does), and an output
    # projection that is the in-projection's pseudo-inverse, so that a code stands for the part
    # of the residual in that level's 8-dim subspace and later levels see what is left.
    residual = latents
    energy = float(latents.pow(2).sum())
    for level, vq in enumerate(model.quantizer.quantizers):
        w_in = torch._weight_norm(vq.in_proj.weight_v, vq.in_proj.weight_g, 0)[..., 0]  # [8, D]
        z_e = vq.in_proj(residual)                                 # [B, 8, T]
        rows = z_e.transpose(1, 2).reshape(-1, z_e.shape[1])
        mean, spread = rows.mean(dim=0, keepdim=True), rows.std(dim=0, keepdim=True)
        for _ in range(200):  # redraw while a decision is a near-tie (see the module docs)
            vq.codebook.weight.copy_(mean + spread * torch.randn(vq.codebook_size, vq.codebook_dim,
                                                                 generator=generator))
            if float(level_gaps(vq, residual)[1].min()) >= MIN_GAP:
                break
        else:
            raise RuntimeError(f"level {level}: no codebook without near-tie decisions in 200 draws")
        w_out = torch.linalg.pinv(w_in)                            # [D, 8]
        scale = torch.exp(0.2 * torch.randn(w_out.shape[0], 1, generator=generator))
        vq.out_proj.weight_v.copy_((w_out * scale)[..., None])     # direction and gain disagree in norm
        vq.out_proj.weight_g.copy_(w_out.norm(dim=1, keepdim=True)[..., None])
        vq.out_proj.bias.copy_(-(w_out @ vq.in_proj.bias))         # out(in(r)) = P r, P the projection
        z_q, _, _, _, _ = vq(residual)
        residual = residual - z_q
    return float(residual.pow(2).sum()) / energy


@torch.no_grad()
def level_gaps(vq: torch.nn.Module, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level (a DAC ``VectorQuantize``) on ``residual``: its output and, per coded vector ``[B, T]``, the
    second-nearest minus nearest squared distance, computed as DAC's ``decode_latents`` computes distances."""
    z_q, _, _, indices, z_e = vq(residual)
    enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))
    book = F.normalize(vq.codebook.weight)
    dist = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ book.t() + book.pow(2).sum(1, keepdim=True).t()
    two = dist.topk(2, dim=1, largest=False)
    assert torch.equal(two.indices[:, 0].view_as(indices), indices)
    return z_q, (two.values[:, 1] - two.values[:, 0]).view_as(indices)


@torch.no_grad()
def decision_gaps(model: DAC, z: torch.Tensor) -> torch.Tensor:
    """``[B, K, T]``: the decision gaps (`level_gaps`) of every level on the latents ``z``."""
    residual, gaps = z, []
    for vq in model.quantizer.quantizers:
        z_q, gap = level_gaps(vq, residual)
        gaps.append(gap)
        residual = residual - z_q
    return torch.stack(gaps, dim=1)


@torch.no_grad()
def reference(model: DAC, x: torch.Tensor, n_quantizers: list[int]) -> dict[str, np.ndarray]:
    """The reference arrays of one model (see the module docs)."""
    xp = model.preprocess(x, None)
    arrays = {"x": x.numpy(), "x_padded": xp.numpy()}
    latents = model.encoder(xp)
    arrays["encoder_out"] = latents.numpy()
    arrays["decoder_out"] = model.decode(latents).numpy()
    arrays["gaps"] = decision_gaps(model, latents).numpy()
    for n in n_quantizers:
        z, codes, _, _, _ = model.encode(xp, n_quantizers=n)
        arrays[f"n{n}.codes"] = codes.numpy().astype(np.int64)
        arrays[f"n{n}.z"] = z.numpy()
        arrays[f"n{n}.decoded"] = model.decode(z).numpy()
        from_codes, _, _ = model.quantizer.from_codes(codes)
        arrays[f"n{n}.from_codes_z"] = from_codes.numpy()
        arrays[f"n{n}.from_codes"] = model.decode(from_codes).numpy()
        arrays[f"n{n}.output"] = model(x, n_quantizers=n)["audio"].numpy()
    return arrays


def main(argv: list[str] | None = None) -> None:
    args = audio_args(__doc__, 2025, argv)
    inputs = load_inputs(args.audio)
    entries = []
    builders = {name: partial(DAC, **config) for name, config in CONFIGS.items()}
    for name, model, generator, started in seeded_models(builders, args.seed):
        x = inputs[name]
        left = make_trained_looking(model, x, generator)
        model.eval()
        save_weights(model, args.out / f"{name}.safetensors", {"descript-audio-codec": dac.__version__})
        arrays = reference(model, x, N_QUANTIZERS[name])
        publisher = None
        if name in PUBLISHER_FILES:  # the checkpoint as DAC releases it (audiotools' BaseModel.save, no hash)
            checkpoint = {"state_dict": model.state_dict(), "metadata": {"kwargs": saved_kwargs(model)}}
            publisher = write_publisher_file(checkpoint, args.out / "publisher", PUBLISHER_FILES[name], ".pth",
                                             hashed=False)
        np.savez(args.out / f"{name}.npz", **arrays)
        top = arrays[f"n{CONFIGS[name]['n_codebooks']}.codes"]
        entry = {"name": name, "publisher_file": publisher, "kwargs": saved_kwargs(model), "sample_rate": model.sample_rate,
                 "hop_length": int(model.hop_length), "latent_dim": model.latent_dim,
                 "n_codebooks": model.n_codebooks, "n_quantizers": N_QUANTIZERS[name], "length": int(x.shape[-1]),
                 "batch": int(x.shape[0]), "frames": int(top.shape[-1]), "delay": int(model.delay),
                 "distinct_codes_per_level": distinct_codes_per_level(top),
                 "min_gap": float(arrays["gaps"].min()), "min_gap_required": MIN_GAP, "residual_energy": left}
        entries.append(entry)
        print(f"{name}: codes {list(top.shape)}, distinct codes per level {min(entry['distinct_codes_per_level'])}.."
              f"{max(entry['distinct_codes_per_level'])}, smallest decision gap {entry['min_gap']:.3g}, "
              f"residual energy after {model.n_codebooks} levels {left:.3g}, "
              f"output std {float(arrays[f'n{model.n_codebooks}.output'].std()):.3f} "
              f"({time.monotonic() - started:.1f} s)")
    manifest = {"descript-audio-codec": dac.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "audio": args.audio.name, "seed": args.seed, "duration": DURATION, "models": entries}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
