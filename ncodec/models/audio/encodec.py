"""EnCodec-compatible neural audio codec: SEANet encoder, residual VQ, SEANet decoder.

`SEANetCodecModel` has EnCodec 0.1.1's architectures (`encodec_24khz`: mono, causal,
weight-normalised; `encodec_48khz`: stereo, non-causal with time group norm, each 1 s
segment normalised by its volume and the segments overlap-added) and gives EnCodec's codes
and waveforms for EnCodec's weights. Its quantizer is ncodec's `ResidualVQ` (EMA codebooks,
squared-L2 nearest code), so the codes can be entropy-coded with ``quantizer.bits`` /
``quantizer.compress`` like any ncodec quantizer's. The same class holds ncodec's own
frame-rate codecs (``build(encoder={"type": "stft"}, decoder={"type": "vocos"})``: the
networks of `ncodec.models.audio.vocos`, e.g. the bundled ``ncodec_24khz``).

Weights: an EnCodec state dict (``torch.load`` of its checkpoints, or its
``model.state_dict()``) loads with `SEANetCodecModel.load_state_dict` or
`load_encodec_state_dict`, and `to_encodec_state_dict` writes one back. Key translation:

======================================================  ==========================================
EnCodec 0.1.1                                           ncodec
======================================================  ==========================================
``<conv>.weight_g`` / ``<conv>.weight_v``               ``<conv>.parametrizations.weight.original0`` / ``original1``
``quantizer.vq.layers.{i}._codebook.embed``             ``quantizer.levels.{i}.embed``
``quantizer.vq.layers.{i}._codebook.embed_avg``         ``quantizer.levels.{i}.embed_sum``
``quantizer.vq.layers.{i}._codebook.cluster_size``      ``quantizer.levels.{i}.cluster_size``
``quantizer.vq.layers.{i}._codebook.inited`` (float [1])  ``quantizer.levels.{i}.initted`` (bool [])
(none)                                                  ``quantizer.prior.*``, ``quantizer.levels.{i}.prior.*``
======================================================  ==========================================

Everything else (``encoder.model.*``, ``decoder.model.*``: convolutions, group norms,
LSTMs) has the same names. The codebook priors are ncodec's own (index statistics for the
entropy coder); loading an EnCodec state dict keeps the model's current ones.

Codes are ``[B, K, T]`` int64 with K the codebooks the bandwidth allows (EnCodec's rule:
``floor(bandwidth / (log2(codebook size) * frame_rate / 1000))``, at least 1); for
segmented models the segments' frames follow one another along T and `EncodedAudio`
carries the per-segment scales and the input length that fixes the segment boundaries.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ...quantizers.residual import ResidualVQ
from .seanet import SEANetDecoder, SEANetEncoder, encodec_weight_names, ncodec_weight_names
from .vocos import STFTEncoder, VocosDecoder

__all__ = ["EncodedAudio", "SEANetCodecModel", "encodec_to_ncodec_state_dict", "is_encodec_state_dict",
           "linear_overlap_add", "load_encodec_state_dict", "ncodec_to_encodec_state_dict", "to_encodec_state_dict"]

CODEBOOK_SIZE = 1024


class EncodedAudio(NamedTuple):
    """What `SEANetCodecModel.encode` returns."""

    codes: Tensor            # int64 [B, K, T]: K codebooks, the segments' frames one after another
    scales: Tensor | None    # [B, S] volume of each of the S segments (normalising models), else None
    length: int              # samples of the input (fixes the segments and trims the output)


def linear_overlap_add(frames: Sequence[Tensor], stride: int) -> Tensor:
    """Join decoded segments ``[..., L_i]`` that start ``stride`` samples apart, cross-fading the overlaps.

    Every segment is weighted by a triangle over the first segment's length (peak in its
    middle, never zero) and each sample is divided by the sum of the weights covering it, so
    a sample covered by one segment keeps that segment's value and two overlapping segments
    fade linearly into each other (EnCodec's rule).
    """
    if not frames:
        raise ValueError("no segments to join")
    first = frames[0]
    span = first.shape[-1]
    position = torch.linspace(0, 1, span + 2, device=first.device, dtype=first.dtype)[1:-1]
    weight = 0.5 - (position - 0.5).abs()
    total = stride * (len(frames) - 1) + frames[-1].shape[-1]
    out = first.new_zeros(*first.shape[:-1], total)
    covered = first.new_zeros(total)
    for i, frame in enumerate(frames):
        n, start = frame.shape[-1], i * stride
        out[..., start:start + n] += weight[:n] * frame
        covered[start:start + n] += weight[:n]
    return out / covered


class SEANetCodecModel(nn.Module):
    """Waveform ``[B, channels, T]`` <-> residual-VQ codes ``[B, K, frames]`` at a chosen bandwidth (kbps)."""

    def __init__(self, encoder: SEANetEncoder | STFTEncoder, decoder: SEANetDecoder | VocosDecoder,
                 quantizer: ResidualVQ,
                 target_bandwidths: Sequence[float], sample_rate: int, channels: int, normalize: bool = False,
                 segment: float | None = None, overlap: float = 0.01, name: str = "unset"):
        super().__init__()
        sizes = set(quantizer.codebook_sizes)
        if len(sizes) != 1 or 2 ** int(math.log2(next(iter(sizes)))) != next(iter(sizes)):
            raise ValueError("codebooks must all have the same power-of-two size")
        if encoder.dimension != quantizer.dim or decoder.dimension != quantizer.dim:
            raise ValueError("encoder, quantizer and decoder dimensions differ")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.target_bandwidths = [float(b) for b in target_bandwidths]
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.normalize = bool(normalize)
        self.segment, self.overlap = (None if segment is None else float(segment)), float(overlap)
        self.name = name
        self.bandwidth: float | None = None  # None: every codebook
        self.frame_rate = math.ceil(self.sample_rate / encoder.hop_length)
        self.bits_per_codebook = int(math.log2(next(iter(sizes))))

    # ------------------------------------------------------------ building
    @classmethod
    def build(cls, target_bandwidths: Sequence[float], sample_rate: int = 24_000, channels: int = 1,
              causal: bool = True, norm: str = "weight_norm", normalize: bool = False,
              segment: float | None = None, name: str = "unset", encoder: Mapping[str, Any] | None = None,
              decoder: Mapping[str, Any] | None = None, **seanet: Any) -> SEANetCodecModel:
        """EnCodec's recipe: SEANet pair, as many 1024-code levels as the highest bandwidth needs, eval mode.

        ``encoder={"type": "stft", ...}`` / ``decoder={"type": "vocos", ...}`` put the frame-rate
        networks of `ncodec.models.audio.vocos` in place of SEANet's (the other keys are their
        ``width``, ``blocks``, ``n_fft``, ``kernel_size``); hop and dimension still come from
        ``ratios`` and ``dimension``.
        """
        hop = math.prod(int(r) for r in seanet.get("ratios", (8, 5, 4, 2)))
        dimension = int(seanet.get("dimension", 128))
        frame_nets = dict(dimension=dimension, hop_length=hop, channels=channels, causal=causal)

        def network(role: str, spec: Mapping[str, Any] | None, seanet_cls: type[nn.Module],
                    frame_kind: str, frame_cls: type[nn.Module]) -> nn.Module:
            """The SEANet half (no spec, or type seanet alone) or the frame-rate one (type ``frame_kind``)."""
            options = dict(spec or {"type": "seanet"})
            kind = options.pop("type", "seanet")
            if kind == frame_kind:
                return frame_cls(**frame_nets, **options)
            if kind == "seanet" and not options:
                return seanet_cls(channels=channels, norm=norm, causal=causal, **seanet)
            raise ValueError(f"unknown {role} {spec!r} (seanet, or {frame_kind} with width / blocks / n_fft / "
                             f"kernel_size)")

        enc = network("encoder", encoder, SEANetEncoder, "stft", STFTEncoder)
        dec = network("decoder", decoder, SEANetDecoder, "vocos", VocosDecoder)
        frame_rate = math.ceil(sample_rate / hop)
        bits = int(math.log2(CODEBOOK_SIZE))
        levels = int(1000 * max(target_bandwidths) // (frame_rate * bits))
        # EnCodec's EMA settings, used when training (inference only needs the codebooks)
        quantizer = ResidualVQ(dimension, levels, CODEBOOK_SIZE, decay=0.99, eps=1e-5, kmeans_init=True,
                               kmeans_iters=50, distance="l2", commitment_weight=1.0, threshold_dead=2.0)
        model = cls(enc, dec, quantizer, target_bandwidths, sample_rate, channels, normalize=normalize,
                    segment=segment, name=name)
        return model.eval()

    @classmethod
    def encodec_24khz(cls) -> SEANetCodecModel:
        """EnCodec's 24 kHz mono causal model (1.5 / 3 / 6 / 12 / 24 kbps = 2 / 4 / 8 / 16 / 32 codebooks)."""
        return cls.build([1.5, 3.0, 6.0, 12.0, 24.0], 24_000, 1, causal=True, norm="weight_norm",
                         normalize=False, segment=None, name="encodec_24khz")

    @classmethod
    def encodec_48khz(cls) -> SEANetCodecModel:
        """EnCodec's 48 kHz stereo model: non-causal, time group norm, 1 s normalised segments overlapping 1%
        (3 / 6 / 12 / 24 kbps = 2 / 4 / 8 / 16 codebooks)."""
        return cls.build([3.0, 6.0, 12.0, 24.0], 48_000, 2, causal=False, norm="time_group_norm",
                         normalize=True, segment=1.0, name="encodec_48khz")

    # ----------------------------------------------------------- bandwidth
    @property
    def bandwidth_per_codebook(self) -> float:
        """kbps one codebook costs at the nominal rate."""
        return self.bits_per_codebook * self.frame_rate / 1000

    def num_codebooks(self, bandwidth: float | None = None) -> int:
        """Codebooks used at ``bandwidth`` kbps (None: `bandwidth`, or all when that is None too)."""
        bandwidth = self.bandwidth if bandwidth is None else bandwidth
        if not bandwidth or bandwidth <= 0:
            return self.quantizer.num_codebooks
        if float(bandwidth) not in self.target_bandwidths:
            raise ValueError(f"bandwidth {bandwidth} kbps is not one of {self.target_bandwidths}")
        return int(max(1, math.floor(bandwidth / self.bandwidth_per_codebook)))

    def set_target_bandwidth(self, bandwidth: float) -> None:
        """Default bandwidth of `encode` (one of `target_bandwidths`)."""
        self.num_codebooks(bandwidth)  # validates
        self.bandwidth = float(bandwidth)

    # ------------------------------------------------------------ segments
    @property
    def segment_length(self) -> int | None:
        return None if self.segment is None else int(self.segment * self.sample_rate)

    @property
    def segment_stride(self) -> int | None:
        length = self.segment_length
        return None if length is None else max(1, int((1 - self.overlap) * length))

    def segments(self, length: int) -> list[tuple[int, int]]:
        """(start, size) of the segments a ``length``-sample input is coded in (one when unsegmented)."""
        seg, stride = self.segment_length, self.segment_stride
        if seg is None or stride is None:
            return [(0, length)]
        return [(start, min(seg, length - start)) for start in range(0, length, stride)]

    # -------------------------------------------------------------- coding
    @torch.no_grad()
    def encode(self, wav: Tensor, bandwidth: float | None = None) -> EncodedAudio:
        """Codes of ``wav`` ``[B, channels, T]`` at ``bandwidth`` kbps (default: `bandwidth`)."""
        if wav.ndim != 3 or wav.shape[1] != self.channels or wav.shape[-1] == 0:
            raise ValueError(f"expected a waveform [B, {self.channels}, T > 0], got {tuple(wav.shape)}")
        levels = self.num_codebooks(bandwidth)
        codes, scales = [], []
        for start, size in self.segments(wav.shape[-1]):
            x = wav[..., start:start + size]
            if self.normalize:  # unit RMS of the channels' mean; the volume travels as the scale
                volume = x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt()
                scale = 1e-8 + volume
                x = x / scale
                scales.append(scale.view(-1))
            codes.append(self.quantizer.encode(self.encoder(x), levels))
        return EncodedAudio(torch.cat(codes, dim=-1), torch.stack(scales, dim=1) if scales else None,
                            int(wav.shape[-1]))

    def decode(self, codes: Tensor | EncodedAudio, scales: Tensor | None = None, length: int | None = None
               ) -> Tensor:
        """Waveform ``[B, channels, length]`` from codes (all or the first k codebooks).

        ``length`` (the input's) is required for segmented models, where it fixes the segment
        boundaries; without it an unsegmented model returns whole frames
        (``frames * hop_length`` samples), as EnCodec's ``decode`` does.
        """
        if isinstance(codes, EncodedAudio):
            codes, scales, length = codes.codes, codes.scales, codes.length
        if self.normalize and scales is None:
            raise ValueError("this model normalises its input: decoding needs the segment scales")
        if self.segment is not None and length is None:
            raise ValueError("a segmented model needs the input length to decode")
        parts = self.segments(length) if length is not None else [(0, codes.shape[-1] * self.encoder.hop_length)]
        frames = [self.encoder.frames(size) for _, size in parts]
        if codes.ndim != 3 or sum(frames) != codes.shape[-1]:
            raise ValueError(f"codes {tuple(codes.shape)} do not hold the {sum(frames)} frames of {length} samples")
        if scales is not None and tuple(scales.shape) != (codes.shape[0], len(parts)):
            raise ValueError(f"scales must be [B, {len(parts)}], got {tuple(scales.shape)}")
        outs = []
        for i, piece in enumerate(codes.split(frames, dim=-1)):
            out = self.decoder(self.quantizer.decode(piece))
            if scales is not None:
                out = out * scales[:, i].view(-1, 1, 1)
            outs.append(out)
        stride = self.segment_stride
        wav = outs[0] if stride is None else linear_overlap_add(outs, stride)
        return wav if length is None else wav[..., :length]

    def forward(self, wav: Tensor, bandwidth: float | None = None) -> Tensor:
        """Reconstruction of ``wav`` (encode then decode, same length); inference only: the codes carry no
        gradient (train through ``encoder``, ``quantizer(...)`` and ``decoder``)."""
        return self.decode(self.encode(wav, bandwidth))

    # ------------------------------------------------------------- weights
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load an ncodec or an EnCodec 0.1.1 state dict (recognised by its key names, see the module docs)."""
        if is_encodec_state_dict(state_dict):
            state_dict = encodec_to_ncodec_state_dict(state_dict, keep=self.state_dict())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


# ------------------------------------------------------------ key translation
_ENCODEC_VQ = re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.(embed|embed_avg|cluster_size|inited)$")
_NCODEC_VQ = re.compile(r"^quantizer\.levels\.(\d+)\.(embed|embed_sum|cluster_size|initted)$")
_TO_NCODEC = {"embed": "embed", "embed_avg": "embed_sum", "cluster_size": "cluster_size", "inited": "initted"}
_TO_ENCODEC = {v: k for k, v in _TO_NCODEC.items()}


def is_encodec_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether the keys are EnCodec's (its codebook paths, or old-style weight-norm names)."""
    return any(_ENCODEC_VQ.match(k) or k.endswith((".weight_g", ".weight_v")) for k in state_dict)


def encodec_to_ncodec_state_dict(state_dict: Mapping[str, Tensor], keep: Mapping[str, Tensor] | None = None
                                 ) -> dict[str, Tensor]:
    """An EnCodec state dict in ncodec's names; ncodec-only entries (codebook priors) are taken from ``keep``."""
    out: dict[str, Tensor] = {}
    for key, value in ncodec_weight_names(state_dict).items():
        m = _ENCODEC_VQ.match(key)
        if m:
            name = _TO_NCODEC[m.group(2)]
            if name == "initted":
                value = torch.tensor(bool(value.reshape(-1)[0].item()))
            key = f"quantizer.levels.{m.group(1)}.{name}"
        out[key] = value
    for key, value in (keep or {}).items():
        if ".prior." in f".{key}" and key not in out:
            out[key] = value
    return out


def ncodec_to_encodec_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An ncodec `SEANetCodecModel` state dict in EnCodec 0.1.1's names (priors dropped)."""
    out: dict[str, Tensor] = {}
    for key, value in encodec_weight_names(state_dict).items():
        if key.startswith("quantizer.") and ".prior." in f".{key}":
            continue
        m = _NCODEC_VQ.match(key)
        if m:
            name = _TO_ENCODEC[m.group(2)]
            if name == "inited":
                value = torch.tensor([float(bool(value.item()))], device=value.device)
            key = f"quantizer.vq.layers.{m.group(1)}._codebook.{name}"
        out[key] = value
    return out


def load_encodec_state_dict(model: SEANetCodecModel, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
    """Load EnCodec 0.1.1 weights (e.g. ``torch.load("encodec_24khz-d7cc33bc.th")``) into ``model``."""
    translated = encodec_to_ncodec_state_dict(state_dict, keep=model.state_dict())
    return nn.Module.load_state_dict(model, translated, strict=strict)


def to_encodec_state_dict(model: SEANetCodecModel) -> dict[str, Tensor]:
    """``model``'s weights as EnCodec 0.1.1's ``EncodecModel`` would save them."""
    return ncodec_to_encodec_state_dict(model.state_dict())
