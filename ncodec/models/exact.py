"""Bit-exact, device-independent evaluation of small conv networks (hyper-synthesis `h_s`).

Why
---
A hyperprior codec decodes the hyper-latent ẑ, runs the hyper-synthesis network ``h_s`` on it,
and uses the result (scales; or means and scales; or mixture parameters) to pick the entropy
coder's tables. Encoder and decoder must get *identical* numbers: a scale that differs in the
last bit can fall into another table, and the stream no longer decodes. Float convolutions do
not give identical numbers across devices, thread counts, batch compositions, memory formats or
cuDNN/oneDNN algorithm choices (Winograd and FFT algorithms even make non-integer intermediates
out of integer data). `ExactNetwork` evaluates such a network in integer arithmetic instead, so
that its output is a pure function of the input values and the float weights.

The contract (what makes streams decode across devices)
--------------------------------------------------------
Parameters: ``W = weight_bits`` (default 20), ``A = activation_bits`` (default 28) and
``F = frac_bits`` (default 14). Every activation is an integer ``q`` with ``|q| <= Q = 2**(A-1) - 1``
standing for the value ``q / 2**F`` (default: range ±8192, resolution 2**-14 ≈ 6.1e-5). The input
is assumed to lie in that range (it is clamped to it), as are intermediate activations and outputs.

1. Weights (at construction and in `refresh`, computed on the CPU from the float weights cast to
   float64; only exact operations are used, so this too is the same everywhere). Each layer's
   output channel ``o`` gets a power-of-two scale ``2**e_o`` with ``0 <= e_o <= 52``, the
   largest for which (a) ``max|w_o| * 2**e_o < 2**(W-1)`` and (b) the accumulator bound of step 4
   holds; an all-zero channel gets ``e_o = 0``. Then ``w_q = round_half_even(w * 2**e_o)``
   (``|w_q| <= 2**(W-1)``) and ``b_q = round_half_even(b * 2**(F + e_o))``: the bias lives in
   the accumulator's fixed point, so it costs no extra rounding. A per-output-channel scale
   (rather than per layer) gives every channel ``W`` significant bits whatever the spread of
   channel norms, which is what keeps the rate cost negligible. If a channel needs ``e_o < 0``
   (a weight ``>= 2**(W-1)``, or fan-in × weights too large for any scale) `ncodec.errors.Error`
   is raised.
2. Input: cast to float64 (exact for every float dtype), ``q = round_half_even(x * 2**F)``,
   clamped to ``[-Q, Q]`` (±inf clamp too; NaN raises). Channels-last or any other strides give
   the same values.
3. Conv2d: ``acc[o] = sum_{c,i,j} w_q[o,c,i,j] * q[c, y*s+i*d-p, x*s+j*d-p] + b_q[o]`` with zero
   (or reflect/replicate/circular, as the layer says) padding. ConvTranspose2d: the adjoint,
   each input pixel scattered through the kernel, cropped by ``padding``, extended by
   ``output_padding``, plus ``b_q``.
   Both are computed as ``unfold`` + matrix multiply (conv) and matrix multiply + ``fold``
   (transposed conv) in float64, never with ``conv2d``/``conv_transpose2d``.
4. Exactness: every product and every partial sum is an integer of magnitude at most
   ``B_o = L1_o * Q + |b_q[o]| + 2**(e_o-1)``, where ``L1_o`` is the sum of ``|w_q|`` over the
   taps that can reach one output pixel (all taps for a conv; for a transposed conv the largest
   sum over one output phase of the stride). Construction checks ``B_o < 2**53`` exactly (Python
   integers), so float64 represents every intermediate exactly, and the sum is the same in
   *any* order, with or without FMA, blocked, split-K or atomically accumulated: BLAS and
   cuBLAS may reorder freely. The bound holds for every input, since activations are clamped.
   ``W`` is thus a cap: in wide layers (``L1_o`` large) the bound, not ``W``, sets ``e_o``. With
   the defaults, a layer of fan-in ``n`` (per output phase) turns its largest weights into
   integers of magnitude ``2**min(19, 26 - log2(n))`` in the worst case (all weights equal), about
   1-2 bits more for realistic weight distributions: 2**14-2**16 for the 192/320-channel
   hyper-synthesis layers of mean-scale hyperprior models.
5. Rescale: ``q' = clamp((acc + 2**(e_o-1)) >> e_o, -Q, Q)`` in int64 with an arithmetic
   (flooring) shift, i.e. round half up (toward +inf); no half term when ``e_o = 0``.
6. ReLU: ``max(q, 0)``. LeakyReLU(slope): ``q`` for ``q >= 0``, else
   ``(q * s_q + 2**15) >> 16`` with ``s_q = round_half_even(slope * 2**16)``, then clamped.
   Identity: nothing. Nested ``nn.Sequential`` is flattened. Anything else raises.
7. Output: float64 ``q / 2**F`` (exactly representable), contiguous NCHW.

Hence the output bits depend only on the input values and the float weights: not on the device
(CPU or CUDA run the same code path), thread count, batch composition, memory format or input
float dtype. Changing any rule above changes decoded streams: treat it as a format change.

Accuracy: weights keep 15-20 significant bits per channel and activations an absolute resolution
of 2**-14, so the output of a typical hyper-synthesis network differs from the float64 network by
a few 1e-4 at most (~3e-5 of the output range; `quantization_error` measures it). Scale tables
are spaced ~13% apart and means are needed to far below a quantization step, so the rate cost
is negligible.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import Error

__all__ = ["ExactNetwork", "conv2d_exact", "conv_transpose2d_exact", "quantization_error"]

EXACT_LIMIT = 2**53
"""Integers of magnitude below this are exactly representable in float64."""
MAX_SHIFT = 52
"""Largest per-channel weight exponent e_o (keeps 2**(e_o-1) and int64 shifts in range)."""
SLOPE_FRAC_BITS = 16
"""Fixed-point fraction bits of a LeakyReLU negative slope."""
CHUNK_ELEMENTS = 1 << 24
"""Largest unfolded/column matrix (float64 elements, 128 MiB) built at once; rows are chunked."""

Pair = tuple[int, int]


def _pair(v: int | Sequence[int]) -> Pair:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def _rows_per_chunk(elements_per_row: int) -> int:
    """Output rows (conv) or input rows (transposed conv) to process at once within CHUNK_ELEMENTS."""
    return max(1, CHUNK_ELEMENTS // max(1, elements_per_row))


def _require_float64(x: Tensor, weight: Tensor) -> None:
    if x.dtype != torch.float64 or weight.dtype != torch.float64:
        raise Error(f"exact convolution needs float64 operands holding integers, got {x.dtype} and {weight.dtype}")


# ===================================================================== integer convolutions
def conv2d_exact(x: Tensor, weight: Tensor, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1) -> Tensor:
    """``F.conv2d(x, weight, None, stride, padding, dilation)`` as ``unfold`` + matrix multiply.

    x: (N, C, H, W) float64, weight: (O, C, kh, kw) float64. When both hold integers and, for every
    output, the sum of |products| is below 2**53, the result is exact, whatever order the matrix
    multiply sums in (see the module docstring). Zero padding, symmetric; pre-pad for anything else.
    Output rows are processed in chunks so the unfolded matrix stays below CHUNK_ELEMENTS.
    """
    _require_float64(x, weight)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    n, _, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise Error(f"input {h}x{w} (after padding) is smaller than the {kh}x{kw} kernel with dilation {dh}x{dw}")
    w2d = weight.reshape(out_ch, -1)
    rows = _rows_per_chunk(n * w2d.shape[1] * wo)
    blocks = []
    for r0 in range(0, ho, rows):
        r1 = min(ho, r0 + rows)
        band = x[:, :, r0 * sh:(r1 - 1) * sh + dh * (kh - 1) + 1]
        cols = F.unfold(band, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (N, C*kh*kw, rows*wo)
        blocks.append(torch.matmul(w2d, cols).view(n, out_ch, r1 - r0, wo))
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=2)


def conv_transpose2d_exact(x: Tensor, weight: Tensor, stride: int | Sequence[int] = 1,
                           padding: int | Sequence[int] = 0, output_padding: int | Sequence[int] = 0,
                           dilation: int | Sequence[int] = 1) -> Tensor:
    """``F.conv_transpose2d(x, weight, None, stride, padding, output_padding, 1, dilation)`` as matmul + ``fold``.

    x: (N, C, H, W) float64, weight: (C, O, kh, kw) float64. Each input pixel is multiplied into a
    (O, kh, kw) patch, and ``fold`` sums the overlapping patches; exact under the same condition as
    `conv2d_exact`. Input rows are chunked; chunks overlap in the output and are summed into it.
    """
    _require_float64(x, weight)
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = (_pair(stride), _pair(padding), _pair(output_padding),
                                               _pair(dilation))
    n, c, h, w = x.shape
    _, out_ch, kh, kw = weight.shape
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
    ho, wo = full_h - 2 * ph + oph, full_w - 2 * pw + opw
    if ho <= 0 or wo <= 0:
        raise Error(f"transposed convolution output would be {ho}x{wo}")
    # Uncropped output, tall/wide enough for output_padding beyond the last contribution.
    full = x.new_zeros(n, out_ch, max(full_h, ph + ho), max(full_w, pw + wo))
    w2d = weight.reshape(c, -1).t()  # (O*kh*kw, C), the channel-major order fold expects
    rows = _rows_per_chunk(n * w2d.shape[0] * w)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        cols = torch.matmul(w2d, x[:, :, r0:r1].reshape(n, c, -1))  # (N, O*kh*kw, rows*w)
        band_h = (r1 - r0 - 1) * sh + dh * (kh - 1) + 1
        band = F.fold(cols, (band_h, full_w), (kh, kw), dilation=(dh, dw), stride=(sh, sw))
        full[:, :, r0 * sh:r0 * sh + band_h, :full_w] += band
    return full[:, :, ph:ph + ho, pw:pw + wo]


# ===================================================================== weight quantization
def _tap_l1(abs_w: Tensor, stride: Pair, dilation: Pair) -> Tensor:
    """Per output channel, the largest sum of |w_q| over the taps that can reach one output pixel.

    abs_w: (O, C, kh, kw) int64. For a transposed conv with stride s, output pixel u receives tap
    t only if t*d ≡ u (mod s), so taps split into s_h*s_w phases; a conv passes stride (1, 1).
    """
    per_tap = abs_w.sum(dim=1)  # (O, kh, kw)
    _, kh, kw = per_tap.shape
    best = torch.zeros(per_tap.shape[0], dtype=torch.int64)
    for phase_h in range(stride[0]):
        rows = [i for i in range(kh) if (i * dilation[0]) % stride[0] == phase_h]
        for phase_w in range(stride[1]):
            cols = [j for j in range(kw) if (j * dilation[1]) % stride[1] == phase_w]
            if rows and cols:
                best = torch.maximum(best, per_tap[:, rows][:, :, cols].sum(dim=(1, 2)))
    return best


def _weight_exponents(weight: Tensor, weight_bits: int) -> list[int]:
    """Largest e_o with max|w_o| * 2**e_o < 2**(weight_bits-1), capped at MAX_SHIFT; 0 for zero channels."""
    exps = []
    for peak in weight.abs().amax(dim=(1, 2, 3)).tolist():
        if peak == 0.0:
            exps.append(0)
            continue
        _, binary_exp = math.frexp(peak)  # peak < 2**binary_exp
        exps.append(min(MAX_SHIFT, weight_bits - 1 - binary_exp))
    return exps


def _scale(values: Tensor, exps: list[int]) -> Tensor:
    """values (O, ...) float64 times 2**exps[o]: exact (power-of-two scaling of finite doubles)."""
    factors = torch.tensor([2.0**e for e in exps], dtype=torch.float64)
    return values * factors.view(-1, *([1] * (values.dim() - 1)))


class _Quantized:
    """Integer weights and per-channel exponents of one conv layer, with their exactness bound."""

    def __init__(self, weight: Tensor, bias: Tensor, exps: list[int], frac_bits: int, act_max: int,
                 stride: Pair, dilation: Pair) -> None:
        self.exps = exps
        self.weight = torch.round(_scale(weight, exps)).to(torch.int64)
        self.bias = torch.round(_scale(bias, [e + frac_bits for e in exps]))  # float64 until it is known to fit
        l1 = _tap_l1(self.weight.abs(), stride, dilation).tolist()
        self.bounds = [l1_o * act_max + abs(int(b)) + ((1 << e) >> 1)
                       for l1_o, b, e in zip(l1, self.bias.tolist(), exps, strict=True)]


def _quantize(name: str, weight: Tensor, bias: Tensor, weight_bits: int, frac_bits: int, act_max: int,
              stride: Pair, dilation: Pair) -> _Quantized:
    """Quantize weight (O, C, kh, kw) and bias (O,) (float64, CPU) under the module's rules 1 and 4.

    Starts from the exponents that give every channel weight_bits and lowers, per channel, those
    whose accumulator bound reaches 2**53 by the excess bits, until all fit (1-2 rounds).
    """
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise Error(f"{name}: weights or bias are not finite")
    exps = _weight_exponents(weight, weight_bits)
    if min(exps, default=0) < 0:
        raise Error(f"{name}: a weight of magnitude {weight.abs().max().item():.4g} does not fit "
                    f"weight_bits={weight_bits} (needs < 2**{weight_bits - 1}); raise weight_bits")
    for _ in range(MAX_SHIFT + 2):
        quantized = _Quantized(weight, bias, exps, frac_bits, act_max, stride, dilation)
        over = [o for o, bound in enumerate(quantized.bounds) if bound >= EXACT_LIMIT]
        if not over:
            return quantized
        for o in over:
            if exps[o] == 0:
                raise Error(f"{name}: output channel {o} cannot be evaluated exactly: its weights times the "
                            f"activation range (±2**{act_max.bit_length()}) reach 2**53 even with integer "
                            f"weights; lower activation_bits or shrink the weights/bias")
            exps[o] = max(0, exps[o] - (quantized.bounds[o].bit_length() - 53))  # minus the excess bits (>= 1)
    raise AssertionError("unreachable: every round lowers an exponent or raises")


# ===================================================================== integer layers
class _IntConv(nn.Module):
    """One Conv2d / ConvTranspose2d evaluated on int64 activations (rules 3-5)."""

    weight: Tensor
    bias: Tensor
    shift: Tensor
    rounding: Tensor

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, name: str, weight_bits: int, frac_bits: int,
                 act_max: int) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.stride, self.dilation = _pair(conv.stride), _pair(conv.dilation)
        self.padding_mode = conv.padding_mode
        self.output_padding = _pair(conv.output_padding)
        self.pad = self._pad_amounts(conv)
        self.act_max = act_max
        w = conv.weight.detach().to("cpu", torch.float64)
        if self.transposed:
            w = w.transpose(0, 1)  # (O, C, kh, kw) for quantization
        b = (conv.bias.detach().to("cpu", torch.float64) if conv.bias is not None
             else torch.zeros(w.shape[0], dtype=torch.float64))
        q = _quantize(name, w, b, weight_bits, frac_bits, act_max,
                      self.stride if self.transposed else (1, 1), self.dilation)
        shift = torch.tensor(q.exps, dtype=torch.int64)
        weight = q.weight.transpose(0, 1).contiguous() if self.transposed else q.weight
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", q.bias.to(torch.int64), persistent=False)  # |b_q| < 2**53: exact
        self.register_buffer("shift", shift.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("rounding", ((1 << shift) >> 1).view(1, -1, 1, 1), persistent=False)

    @staticmethod
    def _pad_amounts(conv: nn.Conv2d | nn.ConvTranspose2d) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) as PyTorch pads a Conv2d ('same' puts the odd pixel right/bottom)."""
        if isinstance(conv, nn.ConvTranspose2d):
            ph, pw = _pair(conv.padding)
            return (pw, pw, ph, ph)
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        if conv.padding == "same":
            (dh, dw), (kh, kw) = _pair(conv.dilation), _pair(conv.kernel_size)
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        ph, pw = _pair(conv.padding)  # type: ignore[arg-type]
        return (pw, pw, ph, ph)

    def _accumulate(self, x: Tensor) -> Tensor:
        weight = self.weight.to(torch.float64)
        if self.transposed:
            return conv_transpose2d_exact(x, weight, self.stride, (self.pad[2], self.pad[0]),
                                          self.output_padding, self.dilation)
        if any(self.pad):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, self.pad, mode=mode)
        return conv2d_exact(x, weight, self.stride, 0, self.dilation)

    def forward(self, q: Tensor) -> Tensor:
        acc = self._accumulate(q.to(torch.float64)) + self.bias.to(torch.float64).view(1, -1, 1, 1)
        out = torch.bitwise_right_shift(acc.to(torch.int64) + self.rounding, self.shift)
        return out.clamp_(-self.act_max, self.act_max)

    def extra_repr(self) -> str:
        kind = "transposed" if self.transposed else "conv"
        shifts = self.shift.flatten().tolist()
        return (f"{kind}, weight {tuple(self.weight.shape)}, stride {self.stride}, "
                f"exponents {min(shifts)}..{max(shifts)}")


class _IntReLU(nn.Module):
    def forward(self, q: Tensor) -> Tensor:
        return q.clamp_min(0)


class _IntLeakyReLU(nn.Module):
    """LeakyReLU with the slope in Q.16 fixed point; the negative branch is rounded half up (rule 6)."""

    def __init__(self, slope: float, act_max: int) -> None:
        super().__init__()
        self.slope_q = round(slope * 2**SLOPE_FRAC_BITS)
        if abs(self.slope_q) * act_max >= 2**62:
            raise Error(f"LeakyReLU negative_slope {slope} is too large for exact int64 evaluation")
        self.act_max = act_max

    def forward(self, q: Tensor) -> Tensor:
        neg = (q * self.slope_q + (1 << (SLOPE_FRAC_BITS - 1))) >> SLOPE_FRAC_BITS
        return torch.where(q >= 0, q, neg).clamp_(-self.act_max, self.act_max)

    def extra_repr(self) -> str:
        return f"slope {self.slope_q}/2**{SLOPE_FRAC_BITS}"


def _flatten(net: nn.Module) -> Iterator[nn.Module]:
    for module in net.children() if isinstance(net, nn.Sequential) else (net,):
        if isinstance(module, nn.Sequential):
            yield from _flatten(module)
        else:
            yield module


def _check_conv(conv: nn.Conv2d | nn.ConvTranspose2d, name: str) -> None:
    if conv.groups != 1:
        raise Error(f"{name}: grouped convolutions (groups={conv.groups}) are not supported")
    if conv.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        raise Error(f"{name}: padding_mode {conv.padding_mode!r} is not supported")


# ===================================================================== the network
class ExactNetwork(nn.Module):
    """Integer, bit-exact version of a float ``nn.Sequential`` of convs and ReLUs (see the module docstring).

    ``net`` is kept by reference but not registered as a submodule, so a parent model holding both
    has one copy of the float weights in its state_dict; the integer buffers are non-persistent
    (derived data). When float parameters are changed in place (optimizer step,
    ``load_state_dict``) or replaced (``.to()``, assigning ``.data``), the next `forward`
    re-quantizes automatically (re-quantizing is deterministic, so this is safe on both sides of a
    stream); call `refresh` after edits that bypass autograd's version counters, such as
    ``p.data.add_(...)``. The output is not differentiable.
    """

    def __init__(self, net: nn.Sequential, weight_bits: int = 20, activation_bits: int = 28,
                 frac_bits: int = 14) -> None:
        super().__init__()
        if not isinstance(net, nn.Sequential):
            raise Error(f"ExactNetwork takes an nn.Sequential, got {type(net).__name__}")
        if not 2 <= weight_bits <= 32:
            raise Error(f"weight_bits must be in 2..32, got {weight_bits}")
        if not 2 <= activation_bits <= 48:
            raise Error(f"activation_bits must be in 2..48, got {activation_bits}")
        if not 0 <= frac_bits < activation_bits - 1:
            raise Error(f"frac_bits must be in 0..activation_bits-2, got {frac_bits}")
        self.weight_bits, self.activation_bits, self.frac_bits = weight_bits, activation_bits, frac_bits
        self.act_max = 2 ** (activation_bits - 1) - 1
        object.__setattr__(self, "_float_net", net)  # not a submodule, on purpose
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        self.register_buffer("_anchor", torch.zeros(0, dtype=torch.int64, device=device), persistent=False)
        self.layers = nn.ModuleList()
        self._fingerprint: tuple[tuple[int, int], ...] = ()
        self.refresh()

    @property
    def float_net(self) -> nn.Sequential:
        """The float network this one was built from."""
        return self._float_net  # type: ignore[no-any-return]

    def refresh(self) -> None:
        """Re-quantize from the float network's current weights (keeps this module's device)."""
        layers = nn.ModuleList()
        for i, module in enumerate(_flatten(self.float_net)):
            name = f"layer {i} ({type(module).__name__})"
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                _check_conv(module, name)
                layers.append(_IntConv(module, name, self.weight_bits, self.frac_bits, self.act_max))
            elif isinstance(module, nn.ReLU):
                layers.append(_IntReLU())
            elif isinstance(module, nn.LeakyReLU):
                layers.append(_IntLeakyReLU(module.negative_slope, self.act_max))
            elif not isinstance(module, nn.Identity):
                raise Error(f"{name}: not supported by ExactNetwork (Conv2d, ConvTranspose2d, ReLU, "
                            f"LeakyReLU, Identity and nested Sequential are)")
        self.layers = layers.to(self._anchor.device)
        self._fingerprint = self._current_fingerprint()

    def _current_fingerprint(self) -> tuple[tuple[int, int], ...]:
        """(storage pointer, in-place version) of every float parameter; changes when they are modified."""
        def version(p: Tensor) -> int:
            try:
                return int(p._version)
            except RuntimeError:  # inference tensors have no version counter
                return -1
        return tuple((p.data_ptr(), version(p)) for p in self.float_net.parameters())

    def to_fixed(self, x: Tensor) -> Tensor:
        """Rule 2: the input as int64 fixed point (round half to even, clamped), NCHW contiguous."""
        if x.is_complex():
            raise Error(f"ExactNetwork input must be real, got {x.dtype}")
        x = x.to(torch.float64)
        if torch.isnan(x).any():
            raise Error("ExactNetwork input contains NaN")
        q = torch.round(x * float(2**self.frac_bits)).clamp_(-self.act_max, self.act_max)
        return q.to(torch.int64).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) or (C, H, W), any real dtype and memory format -> float64 ``q / 2**frac_bits``."""
        if self._current_fingerprint() != self._fingerprint:
            self.refresh()
        if x.dim() not in (3, 4):
            raise Error(f"ExactNetwork input must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
        with torch.no_grad():
            q = self.to_fixed(x if x.dim() == 4 else x.unsqueeze(0))
            for layer in self.layers:
                q = layer(q)
            out = q.to(torch.float64) * (2.0 ** -self.frac_bits)
        return out if x.dim() == 4 else out.squeeze(0)

    def extra_repr(self) -> str:
        return (f"weight_bits={self.weight_bits}, activation_bits={self.activation_bits}, "
                f"frac_bits={self.frac_bits}")


def quantization_error(net: nn.Sequential, x: Tensor, exact: ExactNetwork | None = None) -> float:
    """Max |float64 network(x) - exact network(x)|: what the integer evaluation costs in accuracy.

    The reference is a float64 copy of ``net`` (so float32 rounding does not blur the measure);
    ``exact`` defaults to ``ExactNetwork(net)`` with the default bit widths.
    """
    exact = ExactNetwork(net) if exact is None else exact
    reference = copy.deepcopy(net).to(torch.float64)
    with torch.no_grad():
        want = reference(x.to(torch.float64)).cpu()
        got = exact(x).cpu()
    return float((want - got).abs().max())
