"""Write EnCodec reference outputs for tests/zoo/test_encodec_compat.py.

Run with the EnCodec venv that ``.ci/encodec/setup.sh`` builds (EnCodec stays out of
ncodec's venv; this script imports no ncodec):

    .ci/encodec/.venv/bin/python scripts/encodec_reference.py --out /tmp/encodec-refs

Both of EnCodec 0.1.1's architectures are built with ``pretrained=False`` (no download) and
given seeded random weights made to look trained: weight-norm gains and group-norm affine
parameters perturbed, latents of unit spread, waveforms of speech-like level, and
codebooks that are not degenerate (1024 distinct Gaussian codes per level with the mean
and half the spread of the residuals that level sees on the input, ``inited`` set). The input is real speech:
``samples/speech.flac`` (24 kHz mono); the 48 kHz stereo input is that clip upsampled 2x
(band-limited, by zero-padding its spectrum) with a delayed, quieter copy as the second
channel. Each batch holds the clip and its time-reversed copy at another gain. Written per
model, without pickle:

- ``<model>.safetensors``: the state dict, EnCodec's own key names (``weight_g`` /
  ``weight_v``, ``quantizer.vq.layers.{i}._codebook.*``);
- ``<model>.npz``: ``x`` (input), ``encoder_out`` / ``decoder_out`` (the SEANet pair on the
  whole input), and for each bandwidth ``<bw>``: ``bw<bw>.codes`` (the segments' codes
  concatenated along time), ``bw<bw>.scales`` (per segment, normalising models only),
  ``bw<bw>.decoded`` (``model.decode``, untrimmed) and ``bw<bw>.output`` (``model(x)``);
- ``<model>.ecdc``: the first batch element compressed by ``encodec.compress.compress`` with
  ``use_lm=False`` at ``ECDC_BANDWIDTH`` kbps, and in the npz ``ecdc.codes`` (``[1, K, frames]``,
  what ``model.encode`` gave for it), ``ecdc.scales`` (normalising models) and ``ecdc.decoded``
  (``model.decode`` of those codes, trimmed to the input's length, as ``decompress`` returns it);
- ``publisher/<model>-<sha256[:8]>.th``: the state dict as EnCodec publishes its checkpoints
  (``torch.save``, the hash prefix in the name), which the fetch tests serve over HTTP;
- ``manifest.json``: EnCodec / torch / numpy versions and, per model, its settings, the
  bandwidths with their codebook counts, the smallest relative gap between the nearest and
  second-nearest code over all coded vectors (how far the codes are from a tie) and the
  latents' energy the residual VQ leaves.
"""
from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import encodec
from encodec import EncodecModel
from encodec.compress import compress
from peer_reference_common import (ROOT, audio_args, distinct_codes_per_level, read_mono, resample, save_weights,
                                   seeded_models, write_publisher_file)

MODELS = {"encodec_24khz": EncodecModel.encodec_model_24khz, "encodec_48khz": EncodecModel.encodec_model_48khz}
BANDWIDTHS = {"encodec_24khz": [1.5, 24.0], "encodec_48khz": [3.0, 24.0]}  # lowest and highest of each
ECDC_BANDWIDTH = 6.0


def load_inputs(path: Path) -> dict[str, torch.Tensor]:
    """The two models' input batches ``[2, channels, T]`` from the speech clip."""
    mono, rate = read_mono(path)
    at24 = resample(mono, rate, 24_000)
    x24 = np.stack([at24, 0.5 * at24[::-1]])[:, None, :]
    at48 = resample(mono, rate, 48_000)
    delay = 240  # 5 ms
    right = 0.6 * np.concatenate([np.zeros(delay, np.float32), at48[:-delay]])
    stereo = np.stack([at48, right])
    x48 = np.stack([stereo, 0.7 * stereo[:, ::-1]])
    return {"encodec_24khz": torch.from_numpy(np.ascontiguousarray(x24, dtype=np.float32)),
            "encodec_48khz": torch.from_numpy(np.ascontiguousarray(x48, dtype=np.float32))}


def _normalised_segments(model: EncodecModel, x: torch.Tensor) -> list[torch.Tensor]:
    """The segments the model's encoder sees (volume-normalised when the model normalises)."""
    length = x.shape[-1]
    size = model.segment_length or length
    stride = model.segment_stride or length
    out = []
    for start in range(0, length, stride):
        seg = x[..., start:start + size]
        if model.normalize:
            seg = seg / (1e-8 + seg.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt())
        out.append(seg)
    return out


def _last_conv(seq: torch.nn.Sequential) -> torch.nn.Module:
    """The final SConv1d of a SEANet stack."""
    return [m for m in seq if type(m).__name__ == "SConv1d"][-1]


def _scale_output(sconv: torch.nn.Module, out: torch.Tensor, std: float) -> None:
    """Scale what ``sconv`` (an SConv1d) produces so that ``out``, its output, would have ``std``."""
    factor = std / max(float(out.std()), 1e-8)
    norm = sconv.conv.norm
    if isinstance(norm, torch.nn.GroupNorm):  # the norm fixes the spread: scale its affine part
        norm.weight.mul_(factor)
        norm.bias.mul_(factor)
        return
    conv = sconv.conv.conv
    if hasattr(conv, "weight_g"):
        conv.weight_g.mul_(factor)
    else:
        conv.weight.mul_(factor)
    conv.bias.mul_(factor)


@torch.no_grad()
def make_trained_looking(model: EncodecModel, x: torch.Tensor, generator: torch.Generator) -> None:
    """Perturb the freshly built model in place so that it behaves like a trained one."""
    for module in model.modules():
        if hasattr(module, "weight_g"):  # gains no longer equal to ||v||: catches a g / v mix-up
            module.weight_g.mul_(torch.exp(0.2 * torch.randn(module.weight_g.shape, generator=generator)))
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    segments = _normalised_segments(model, x)
    latents = [model.encoder(s) for s in segments]
    _scale_output(_last_conv(model.encoder.model), torch.cat(latents, dim=-1), std=1.0)
    latents = [model.encoder(s) for s in segments]
    _scale_output(_last_conv(model.decoder.model), torch.cat([model.decoder(z) for z in latents], dim=-1), std=0.15)

    # Codebooks: Gaussian codes with the mean and half the spread of the residuals each level
    # sees. All 1024 codes differ, every code is a real decision (in 128 dimensions the best of
    # 1024 random directions removes about a fifth of the residual's energy), and later levels
    # do not collapse onto the test vectors as codes copied from them would.
    residual = torch.cat([z.transpose(1, 2).reshape(-1, z.shape[1]) for z in latents])
    for layer in model.quantizer.vq.layers:
        book = layer._codebook
        size, dim = book.embed.shape
        mean, spread = residual.mean(dim=0, keepdim=True), residual.std(dim=0, keepdim=True)
        embed = mean + 0.5 * spread * torch.randn(size, dim, generator=generator)
        book.embed.copy_(embed)
        book.cluster_size.copy_(torch.rand(size, generator=generator) * 50 + 1)
        book.embed_avg.copy_(embed * book.cluster_size[:, None])
        book.inited.fill_(1.0)
        residual = residual - book.decode(book.encode(residual))


@torch.no_grad()
def code_margin(model: EncodecModel, x: torch.Tensor, levels: int) -> tuple[float, float]:
    """Smallest (second-nearest - nearest) / nearest squared distance over every coded vector and
    level, and the energy left after ``levels`` levels relative to the latents'."""
    margin, left, energy = float("inf"), 0.0, 0.0
    for seg in _normalised_segments(model, x):
        residual = model.encoder(seg).transpose(1, 2).reshape(-1, model.encoder.dimension)
        energy += float(residual.pow(2).sum())
        for layer in model.quantizer.vq.layers[:levels]:
            embed = layer._codebook.embed
            dist = (residual[:, None, :] - embed[None]).pow(2).sum(-1)
            two = dist.topk(2, dim=-1, largest=False).values
            margin = min(margin, float(((two[:, 1] - two[:, 0]) / two[:, 0].clamp_min(1e-12)).min()))
            residual = residual - embed[dist.argmin(dim=-1)]
        left += float(residual.pow(2).sum())
    return margin, left / energy


@torch.no_grad()
def reference(model: EncodecModel, x: torch.Tensor, bandwidths: list[float]) -> dict[str, np.ndarray]:
    """The reference arrays of one model (see the module docs)."""
    arrays = {"x": x.numpy()}
    if model.segment is None:
        arrays["encoder_out"] = model.encoder(x).numpy()
        arrays["decoder_out"] = model.decoder(torch.from_numpy(arrays["encoder_out"])).numpy()
    else:  # the SEANet pair alone on the first segment (no normalisation)
        arrays["encoder_out"] = model.encoder(x[..., :model.segment_length]).numpy()
        arrays["decoder_out"] = model.decoder(torch.from_numpy(arrays["encoder_out"])).numpy()
    for bw in bandwidths:
        model.set_target_bandwidth(bw)
        frames = model.encode(x)
        arrays[f"bw{bw}.codes"] = torch.cat([codes for codes, _ in frames], dim=-1).numpy().astype(np.int64)
        if model.normalize:
            arrays[f"bw{bw}.scales"] = torch.cat([scale for _, scale in frames], dim=1).numpy()
        arrays[f"bw{bw}.decoded"] = model.decode(frames).numpy()
        arrays[f"bw{bw}.output"] = model(x).numpy()
    return arrays


@torch.no_grad()
def ecdc_reference(model: EncodecModel, wav: torch.Tensor, path: Path) -> dict[str, np.ndarray]:
    """Write ``wav`` ``[C, T]`` as an .ecdc file (no language model); its codes, scales and decoding.

    A model built with ``pretrained=False`` is named ``"unset"``, which ``compress`` refuses; it
    gets the name of the architecture it has (the file names the model it was made with).
    """
    model.set_target_bandwidth(ECDC_BANDWIDTH)
    model.name = path.stem
    path.write_bytes(compress(model, wav, use_lm=False))
    frames = model.encode(wav[None])
    arrays = {"ecdc.codes": torch.cat([codes for codes, _ in frames], dim=-1).numpy().astype(np.int64),
              "ecdc.decoded": model.decode(frames)[0, :, :wav.shape[-1]].numpy()}
    if model.normalize:
        arrays["ecdc.scales"] = torch.cat([scale for _, scale in frames], dim=1).numpy()
    return arrays


def main(argv: list[str] | None = None) -> None:
    args = audio_args(__doc__, 2024, argv)
    inputs = load_inputs(args.audio)
    entries = []
    builders = {name: partial(make, pretrained=False) for name, make in MODELS.items()}
    for name, model, generator, started in seeded_models(builders, args.seed):
        x = inputs[name]
        make_trained_looking(model, x, generator)
        model.eval()
        save_weights(model, args.out / f"{name}.safetensors", {"encodec": encodec.__version__})
        # the checkpoint as EnCodec publishes it (torch.save of the state dict, hash in the name)
        publisher = write_publisher_file(model.state_dict(), args.out / "publisher", name, ".th", hashed=True)
        arrays = reference(model, x, BANDWIDTHS[name])
        arrays.update(ecdc_reference(model, x[0], args.out / f"{name}.ecdc"))
        np.savez(args.out / f"{name}.npz", **arrays)
        levels = {str(bw): model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, bw)
                  for bw in BANDWIDTHS[name]}
        top = arrays[f"bw{BANDWIDTHS[name][-1]}.codes"]
        entry = {"name": name, "publisher_file": publisher, "sample_rate": model.sample_rate, "channels": model.channels,
                 "causal": bool(model.encoder.model[0].causal), "normalize": model.normalize,
                 "segment": model.segment, "overlap": model.overlap, "frame_rate": model.frame_rate,
                 "n_q": model.quantizer.n_q, "target_bandwidths": model.target_bandwidths,
                 "bandwidths": BANDWIDTHS[name], "codebooks": levels, "length": int(x.shape[-1]),
                 "batch": int(x.shape[0]), "frames": int(top.shape[-1]),
                 "distinct_codes_per_level": distinct_codes_per_level(top)}
        entry["min_code_margin"], entry["residual_energy"] = code_margin(model, x, model.quantizer.n_q)
        entry["ecdc"] = {"file": f"{name}.ecdc", "bandwidth": ECDC_BANDWIDTH, "use_lm": False,
                         "codebooks": int(arrays["ecdc.codes"].shape[1]),
                         "bytes": (args.out / f"{name}.ecdc").stat().st_size}
        entries.append(entry)
        print(f"{name}: codes {list(top.shape)}, min code margin {entry['min_code_margin']:.3g}, "
              f"residual energy after {model.quantizer.n_q} levels {entry['residual_energy']:.3g}, "
              f"output std {float(arrays[f'bw{BANDWIDTHS[name][-1]}.output'].std()):.3f} "
              f"({time.monotonic() - started:.1f} s)", flush=True)
    manifest = {"encodec": encodec.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "audio": str(args.audio.relative_to(ROOT)) if args.audio.is_relative_to(ROOT) else str(args.audio),
                "seed": args.seed, "models": entries}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
