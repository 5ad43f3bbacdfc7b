"""Chunked encoding and decoding of `SEANetCodecModel` audio with bounded memory.

Causal models (EnCodec 24 kHz) run a piece at a time through `StreamingSEANet`, which keeps
each convolution's pending input, each transposed convolution's overlapping tail and the
LSTMs' states, so the frames and samples it gives are those of one call on the whole
signal (up to float rounding). The frame-rate networks (`STFTEncoder`, `VocosDecoder`) have
a finite reach instead: `StreamingSTFTEncoder` and `StreamingVocosDecoder` rerun each new
piece with the few earlier frames it depends on, and the decoder holds back the last
``n_fft / 2`` samples until the frames overlapping them have arrived. `streaming` picks
the runner of a network. Segmented models (EnCodec 48 kHz) code their 1 s segments
independently already: `encode_segment` / `decode_segment` code one segment as
`SEANetCodecModel.encode` / ``decode`` do, and `OverlapAdd` joins decoded segments as
`linear_overlap_add` does, emitting each sample as soon as no later segment covers it.

`ChunkPlan` cuts a signal of known length into chunks of whole frames (causal models) or
whole segments (segmented models); a model that is neither is coded in one chunk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .encodec import SEANetCodecModel
from .vocos import STFTEncoder, VocosDecoder
from .seanet import (
    SEANetDecoder,
    SEANetEncoder,
    SEANetLSTM,
    SEANetResnetBlock,
    StreamableConv1d,
    StreamableConvTranspose1d,
    extra_padding,
    pad1d,
)

__all__ = ["Chunk", "ChunkPlan", "OverlapAdd", "StreamingSEANet", "StreamingSTFTEncoder", "StreamingVocosDecoder",
           "decode_segment", "encode_segment", "is_streamable", "streaming"]


def is_streamable(model: SEANetCodecModel) -> bool:
    """Whether the model's encoder and decoder are causal (so `streaming` can run them a piece at a time)."""
    return bool(model.encoder.causal and model.decoder.causal)


def streaming(net: nn.Module) -> StreamingSEANet | StreamingSTFTEncoder | StreamingVocosDecoder:
    """The piece-at-a-time runner of a causal encoder or decoder (SEANet's, or the frame-rate ones)."""
    if isinstance(net, STFTEncoder):
        return StreamingSTFTEncoder(net)
    if isinstance(net, VocosDecoder):
        return StreamingVocosDecoder(net)
    return StreamingSEANet(net)


class _State:
    """What one layer carries from one piece to the next."""

    def __init__(self) -> None:
        self.pending: Tensor | None = None   # convolution: input not yet consumed (padded)
        self.started = False                 # convolution: the left padding has been applied
        self.seen = 0                        # convolution: input samples received
        self.carry: Tensor | None = None     # transposed convolution: overlapping tail, no bias
        self.trimmed = 0                     # transposed convolution: samples dropped on the left
        self.hidden: Any = None              # LSTM: (h, c)


def _cat(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None or a.shape[-1] == 0 else (a if b.shape[-1] == 0 else torch.cat([a, b], dim=-1))


class StreamingSEANet:
    """A causal `SEANetEncoder` or `SEANetDecoder` run a piece at a time, exactly as on the whole signal.

    Call it with consecutive pieces ``[B, C, n]`` (any sizes, empty ones too) and
    ``final=True`` on the last; each call returns the outputs its input completes.
    """

    def __init__(self, net: SEANetEncoder | SEANetDecoder):
        for m in net.modules():
            if isinstance(m, (StreamableConv1d, StreamableConvTranspose1d)) and not m.causal:
                raise ValueError("only causal SEANet networks stream; code non-causal models in segments")
            if isinstance(m, nn.GroupNorm):
                raise ValueError("group norms look at the whole signal: this network cannot stream")
        self.net = net
        self._states: dict[int, _State] = {}
        self.finished = False
        self.min_start = self._min_start(net)
        self._head: Tensor | None = None   # input held back until every layer can start

    @staticmethod
    def _min_start(net: SEANetEncoder | SEANetDecoder) -> int:
        """Input samples the first piece needs so that every convolution's reflect padding can start."""
        need, rate = 1, 1.0  # rate: this layer's samples per input sample
        for m in net.modules():
            if isinstance(m, StreamableConv1d):
                need = max(need, math.ceil((m.padding_total + 1) / rate) + math.ceil(1 / rate))
                rate /= m.stride
            elif isinstance(m, StreamableConvTranspose1d):
                rate *= m.stride
        return need

    def _state(self, module: nn.Module) -> _State:
        return self._states.setdefault(id(module), _State())

    @torch.no_grad()
    def __call__(self, x: Tensor, final: bool = False) -> Tensor:
        if self.finished:
            raise RuntimeError("this stream has ended (final=True was given)")
        self.finished = final
        if self._head is not None:
            x = _cat(self._head, x)
            self._head = None
        if not self._states:  # nothing ran yet
            if final:
                return self.net(x)  # the whole signal in one call
            if x.shape[-1] < self.min_start:
                self._head = x
                return x.new_zeros(x.shape[0], self._out_channels(), 0)
        return self._run(self.net, x, final)

    def _out_channels(self) -> int:
        last = [m for m in self.net.modules() if isinstance(m, StreamableConv1d)][-1]
        return int(last.conv.conv.out_channels)

    def _run(self, module: nn.Module, x: Tensor, final: bool) -> Tensor:
        if isinstance(module, (SEANetEncoder, SEANetDecoder)):
            return self._run(module.model, x, final)
        if isinstance(module, nn.Sequential):
            for m in module:
                x = self._run(m, x, final)
            return x
        if isinstance(module, SEANetResnetBlock):
            return self._run(module.shortcut, x, final) + self._run(module.block, x, final)
        if isinstance(module, StreamableConv1d):
            return self._conv(module, x, final)
        if isinstance(module, StreamableConvTranspose1d):
            return self._convtr(module, x, final)
        if isinstance(module, SEANetLSTM):
            return self._lstm(module, x)
        if any(True for _ in module.parameters()) or any(True for _ in module.children()):
            raise ValueError(f"cannot stream a {type(module).__name__}")
        return module(x)  # activations and identities work sample by sample

    def _conv(self, m: StreamableConv1d, x: Tensor, final: bool) -> Tensor:
        st = self._state(m)
        total, span = m.padding_total, (m.kernel_size - 1) * m.dilation + 1
        st.seen += x.shape[-1]
        if not st.started:
            if x.shape[-1] <= total:  # `min_start` prevents this: reflect padding needs more samples
                raise RuntimeError("first piece too short for this layer's padding")
            x = pad1d(x, total, 0, m.pad_mode)
            st.started = True
        buf = _cat(st.pending, x)
        if final:
            buf = pad1d(buf, 0, extra_padding(st.seen, m.kernel_size, m.stride, total), m.pad_mode)
        n = (buf.shape[-1] - span) // m.stride + 1 if buf.shape[-1] >= span else 0
        st.pending = buf[..., n * m.stride:]
        if n <= 0:
            return self._empty(m, x)
        return m.conv(buf[..., :(n - 1) * m.stride + span])

    @staticmethod
    def _empty(m: StreamableConv1d, like: Tensor) -> Tensor:
        return like.new_zeros(like.shape[0], m.conv.conv.out_channels, 0)

    def _convtr(self, m: StreamableConvTranspose1d, x: Tensor, final: bool) -> Tensor:
        st = self._state(m)
        conv = m.convtr.convtr
        if x.shape[-1]:
            y = F.conv_transpose1d(x, conv.weight, None, m.stride)
            if st.carry is not None:
                y[..., :st.carry.shape[-1]] += st.carry
        else:
            y = x.new_zeros(x.shape[0], conv.out_channels, 0) if st.carry is None else st.carry
        keep = y.shape[-1] if final else x.shape[-1] * m.stride
        out, st.carry = y[..., :keep], y[..., keep:]
        if conv.bias is not None:
            out = out + conv.bias[:, None]
        out = m.convtr.norm(out)
        total = m.kernel_size - m.stride
        right = math.ceil(total * m.trim_right_ratio)
        drop = min(total - right - st.trimmed, out.shape[-1])
        if drop > 0:
            out, st.trimmed = out[..., drop:], st.trimmed + drop
        return out[..., :out.shape[-1] - right] if final else out

    def _lstm(self, m: SEANetLSTM, x: Tensor) -> Tensor:
        if x.shape[-1] == 0:
            return x
        st = self._state(m)
        seq = x.permute(2, 0, 1)
        y, st.hidden = m.lstm(seq, st.hidden)
        if m.skip:
            y = y + seq
        return y.permute(1, 2, 0)


# ------------------------------------------------------------------ segments
@torch.no_grad()
def encode_segment(model: SEANetCodecModel, x: Tensor, levels: int) -> tuple[Tensor, Tensor | None]:
    """Codes ``[B, levels, frames]`` and volume ``[B]`` (None when not normalising) of one segment ``[B, C, n]``."""
    scale = None
    if model.normalize:
        volume = x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt()
        scale = 1e-8 + volume
        x = x / scale
        scale = scale.view(-1)
    return model.quantizer.encode(model.encoder(x), levels), scale


@torch.no_grad()
def decode_segment(model: SEANetCodecModel, codes: Tensor, scale: Tensor | None) -> Tensor:
    """One segment's untrimmed waveform ``[B, C, frames * hop]`` from its codes (and volume)."""
    out = model.decoder(model.quantizer.decode(codes))
    return out if scale is None else out * scale.view(-1, 1, 1)


class OverlapAdd:
    """`linear_overlap_add` of segments ``stride`` apart, given one at a time; emits finished samples."""

    def __init__(self, stride: int):
        self.stride = int(stride)
        self._weight: Tensor | None = None
        self._out: Tensor | None = None      # weighted sum of the samples not emitted yet
        self._covered: Tensor | None = None  # their weight
        self._segments = 0

    def add(self, frame: Tensor, last: bool = False) -> Tensor:
        """Add the next segment; return the samples no later segment touches (all of them when ``last``)."""
        if self._weight is None:  # the triangle spans the first segment (EnCodec's rule)
            span = frame.shape[-1]
            position = torch.linspace(0, 1, span + 2, device=frame.device, dtype=frame.dtype)[1:-1]
            self._weight = 0.5 - (position - 0.5).abs()
            self._out = frame.new_zeros(*frame.shape[:-1], 0)
            self._covered = frame.new_zeros(0)
        assert self._out is not None and self._covered is not None
        n = frame.shape[-1]
        if n > self._weight.shape[-1]:
            raise ValueError("a later segment is longer than the first")
        grow = n - self._out.shape[-1]
        if grow > 0:
            self._out = F.pad(self._out, (0, grow))
            self._covered = F.pad(self._covered, (0, grow))
        self._out[..., :n] += self._weight[:n] * frame
        self._covered[:n] += self._weight[:n]
        self._segments += 1
        done = self._out.shape[-1] if last else min(self.stride, self._out.shape[-1])
        ready = self._out[..., :done] / self._covered[:done]
        self._out, self._covered = self._out[..., done:], self._covered[done:]
        return ready


# ---------------------------------------------------------------- chunk plan
@dataclass(frozen=True)
class Chunk:
    """One chunk of a coded signal: its samples, frames and (segmented models) segments."""

    index: int
    start: int        # first sample (at the model's rate)
    samples: int      # samples it covers, starting at ``start`` (segments overlap the next chunk)
    frames: int       # code frames
    segments: int     # segments (0: unsegmented model)


class ChunkPlan:
    """How a ``length``-sample signal is cut into chunks of about ``seconds`` (whole frames or segments)."""

    def __init__(self, model: SEANetCodecModel, length: int, seconds: float):
        if length < 1 or not seconds > 0:
            raise ValueError("need a signal of at least one sample and chunks of positive duration")
        self.model, self.length = model, int(length)
        hop = model.encoder.hop_length
        self.segment_length, self.segment_stride = model.segment_length, model.segment_stride
        if self.segment_stride is not None:
            self.per_chunk = max(1, round(seconds * model.sample_rate / self.segment_stride))
            self.num_segments = -(-self.length // self.segment_stride)
            self.count = -(-self.num_segments // self.per_chunk)
        elif is_streamable(model):  # at least what the streaming networks need to start
            least = max(-(-StreamingSEANet._min_start(model.encoder) // hop), StreamingSEANet._min_start(model.decoder))
            self.per_chunk = max(least, round(seconds * model.sample_rate / hop))
            self.count = -(-self.length // (self.per_chunk * hop))
        else:
            self.per_chunk = model.encoder.frames(self.length)
            self.count = 1
        if self.segment_stride is None:
            self.total_frames = model.encoder.frames(self.length)
        else:
            assert self.segment_length is not None
            full = min(self.num_segments, max(0, (self.length - self.segment_length) // self.segment_stride + 1))
            self.total_frames = full * model.encoder.frames(self.segment_length) + sum(
                model.encoder.frames(self._segment_size(s)) for s in range(full, self.num_segments))

    def _segment_size(self, s: int) -> int:
        assert self.segment_length is not None and self.segment_stride is not None
        return min(self.segment_length, self.length - s * self.segment_stride)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Chunk:
        if not 0 <= i < self.count:
            raise IndexError(i)
        enc = self.model.encoder
        if self.segment_stride is not None:
            first, last = i * self.per_chunk, min(self.num_segments, (i + 1) * self.per_chunk)
            start = first * self.segment_stride
            end = (last - 1) * self.segment_stride + self._segment_size(last - 1)
            frames = sum(enc.frames(self._segment_size(s)) for s in range(first, last))
            return Chunk(i, start, end - start, frames, last - first)
        if self.count == 1:
            return Chunk(0, 0, self.length, enc.frames(self.length), 0)
        size = self.per_chunk * enc.hop_length
        start = i * size
        samples = min(size, self.length - start)
        frames = self.per_chunk if i < self.count - 1 else enc.frames(self.length) - i * self.per_chunk
        return Chunk(i, start, samples, frames, 0)

    def segment_sizes(self, chunk: Chunk) -> list[int]:
        """Sample counts of a chunk's segments."""
        first = chunk.index * self.per_chunk
        return [self._segment_size(s) for s in range(first, first + chunk.segments)]


def _empty(like: Tensor, channels: int) -> Tensor:
    return like.new_zeros(like.shape[0], channels, 0)


class StreamingSTFTEncoder:
    """A causal `STFTEncoder` run a piece at a time: each call returns the frames its input completes.

    Frame ``t`` needs the samples up to ``(t + 1) * hop``, so a piece completes the frames
    whose last sample it brings; the final call pads the tail as one call on the whole signal
    does. Each call reruns the encoder from `STFTEncoder.context` frames back, and only those
    samples are kept.
    """

    def __init__(self, net: STFTEncoder):
        if not net.causal:
            raise ValueError("only a causal STFTEncoder streams")
        self.net = net
        self.buffer: Tensor | None = None   # samples from `origin` on
        self.origin = 0
        self.seen = 0                       # samples received
        self.done = 0                       # frames returned
        self.ended = False

    @torch.no_grad()
    def __call__(self, x: Tensor, final: bool = False) -> Tensor:
        if self.ended:
            raise RuntimeError("the stream has ended")
        hop = self.net.hop_length
        self.buffer = _cat(self.buffer, x)
        self.seen += x.shape[-1]
        self.ended = final
        total = math.ceil(self.seen / hop) if final else self.seen // hop
        if total <= self.done:
            return _empty(x, self.net.dimension)
        first = max(0, self.done - self.net.context)   # frames before `done` the new ones depend on
        piece = self.buffer[..., first * hop - self.origin:total * hop - self.origin]
        out = self.net(piece)[..., self.done - first:]
        keep = max(0, total - self.net.context) * hop
        if keep > self.origin:
            self.buffer, self.origin = self.buffer[..., keep - self.origin:], keep
        self.done = total
        return out


class StreamingVocosDecoder:
    """A causal `VocosDecoder` run a piece of latent frames at a time: each call returns the samples no later
    frame can change (all but the last ``n_fft / 2`` received; the final call returns the rest)."""

    def __init__(self, net: VocosDecoder):
        if not net.causal:
            raise ValueError("only a causal VocosDecoder streams")
        self.net = net
        self.latents: Tensor | None = None  # latent frames from `origin` on
        self.origin = 0
        self.received = 0                   # frames received
        self.emitted = 0                    # samples returned
        self.ended = False

    @torch.no_grad()
    def __call__(self, z: Tensor, final: bool = False) -> Tensor:
        if self.ended:
            raise RuntimeError("the stream has ended")
        net, hop, half = self.net, self.net.hop_length, self.net.n_fft // 2
        self.latents = _cat(self.latents, z)
        self.received += z.shape[-1]
        self.ended = final
        end = self.received * hop if final else max(self.emitted, self.received * hop - half)
        if end <= self.emitted:
            return z.new_zeros(z.shape[0], net.channels, 0)
        low = max(0, (self.emitted - half) // hop)      # the first frame whose window reaches `emitted`
        first = max(0, low - net.context)               # and the frames its spectrum depends on
        spec = net.spectra(self.latents[..., first - self.origin:self.received - self.origin])[..., low - first:]
        signal, envelope = net.overlap_add(spec)        # position 0 is sample low * hop - half
        a, b = self.emitted - (low * hop - half), end - (low * hop - half)
        wav = signal[:, a:b] / envelope[:, a:b]
        self.emitted = end
        keep = max(0, (end - half) // hop - net.context)
        if keep > self.origin:
            self.latents, self.origin = self.latents[..., keep - self.origin:], keep
        return wav.view(z.shape[0], net.channels, -1)
