"""Learned image codecs: Ballé 2018 factorized prior and scale hyperprior, Minnen 2018 mean-scale
hyperprior, and a Gaussian-mixture hyperprior (Cheng et al. 2020 style).

The first three have CompressAI's architectures and submodule names (``g_a``, ``g_s``,
``h_a``, ``h_s``, ``entropy_bottleneck``, ``gaussian_conditional``), so a CompressAI state
dict loads with `load_state_dict` (see `ImageCompressionModel.load_state_dict`) and gives the
same transforms; coding goes through ncodec's entropy models and rANS core, one stream per
batch element, with CompressAI's ``compress`` / ``decompress`` interface.

Any image size works: inputs are padded up to a multiple of `stride` by replicating the last
row and column (a flat continuation costs fewer bits than a zero border), and outputs are
cropped back; ``compress`` returns the original ``"size"`` for ``decompress`` to crop to.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...entropy.conditional import GaussianConditional, ScaleConditional
from ...entropy.factorized import EntropyBottleneck
from ...entropy.mixture import GaussianMixtureConditional
from ...entropy.model import EntropyModel
from ...errors import BitstreamError
from .layers import GDN, conv, deconv

__all__ = ["FactorizedPrior", "GaussianMixtureHyperprior", "HyperpriorModel", "ImageCompressionModel",
           "MeanScaleHyperprior", "ScaleHyperprior", "analysis_transform", "synthesis_transform"]

Size = Sequence[int]
Strings = list[list[bytes]]


def analysis_transform(N: int, M: int) -> nn.Sequential:
    """g_a: four stride-2 5x5 convolutions with GDN between them, 3 -> M channels, 16x smaller."""
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis_transform(N: int, M: int) -> nn.Sequential:
    """g_s: the mirror of `analysis_transform` with transposed convolutions and inverse GDN."""
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                         deconv(N, N), GDN(N, inverse=True), deconv(N, 3))


def hyper_analysis(N: int, M: int, activation: type[nn.Module]) -> nn.Sequential:
    """h_a: a 3x3 convolution then two stride-2 5x5 ones, M -> N channels, 4x smaller."""
    return nn.Sequential(conv(M, N, stride=1, kernel_size=3), activation(inplace=True),
                         conv(N, N), activation(inplace=True), conv(N, N))


def mean_scale_synthesis(N: int, M: int, out_channels: int) -> nn.Sequential:
    """h_s of the mean-scale family (Minnen 2018): N -> M -> 3M/2 -> ``out_channels``, 4x larger."""
    return nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                         nn.LeakyReLU(inplace=True), conv(M * 3 // 2, out_channels, stride=1, kernel_size=3))


def crop(x: Tensor, size: Size | None) -> Tensor:
    """``x`` cut to ``size`` (H, W) at the top left; unchanged when ``size`` is None."""
    return x if size is None else x[..., : int(size[0]), : int(size[1])]


def _check_strings(strings: Any, count: int) -> None:
    """Raise unless ``strings`` is a list of ``count`` lists of per-image streams of one batch size."""
    if not isinstance(strings, (list, tuple)) or len(strings) != count:
        raise BitstreamError(f"expected a list of {count} stream lists (as compress returns), got {type(strings)}"
                             + (f" of length {len(strings)}" if isinstance(strings, (list, tuple)) else ""))
    if len({len(s) for s in strings}) > 1:
        raise BitstreamError("the stream lists disagree on the batch size")


class ImageCompressionModel(nn.Module):
    """Shared body of the image codecs: padding, the forward / compress / decompress skeleton, the
    auxiliary loss, table updates, and loading CompressAI state dicts.

    Subclasses build ``g_a`` / ``g_s`` and say how the latent ``y`` is coded through three hooks:
    `_latent_forward`, `_latent_compress` and `_latent_decompress`.
    """

    stride: int = 16
    g_a: nn.Module
    g_s: nn.Module

    def __init__(self, N: int, M: int):
        super().__init__()
        self.N = int(N)
        self.M = int(M)

    @property
    def downsampling_factor(self) -> int:
        """CompressAI's name for `stride`."""
        return self.stride

    # ---------------------------------------------------------------- sizes
    def pad(self, x: Tensor) -> Tensor:
        """``x`` ``[B, C, H, W]`` padded at the bottom and right to multiples of `stride` (edge replicated)."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.stride, -w % self.stride
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    # ------------------------------------------------------------- the codec
    def forward(self, x: Tensor) -> dict[str, Any]:
        """``{"x_hat", "likelihoods": {"y", "z"}}`` (no "z" for the factorized prior).

        Training adds uniform noise to the latents; eval rounds them as coding does, so
        ``decompress(**compress(x))`` gives the eval ``x_hat`` clamped to [0, 1]. ``x_hat``
        has ``x``'s size; likelihoods cover the padded image's latents.
        """
        y_hat, likelihoods = self._latent_forward(self.g_a(self.pad(x)))
        return {"x_hat": crop(self.g_s(self._synthesis_input(y_hat)), x.shape[-2:]), "likelihoods": likelihoods}

    def _synthesis_input(self, y_hat: Tensor) -> Tensor:
        """``y_hat`` in g_s's dtype (exact entropy parameters make float64 means, hence float64 y_hat)."""
        dtype = next(self.g_s.parameters()).dtype
        return y_hat if y_hat.dtype == dtype else y_hat.to(dtype)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """``{"strings": [y_strings, (z_strings)], "shape": latent size, "size": (H, W)}``, one stream per image."""
        strings, shape = self._latent_compress(self.g_a(self.pad(x)))
        return {"strings": strings, "shape": shape, "size": (int(x.shape[-2]), int(x.shape[-1]))}

    @torch.no_grad()
    def decompress(self, strings: Strings, shape: Size, size: Size | None = None) -> dict[str, Tensor]:
        """``{"x_hat"}`` in [0, 1] from `compress`'s strings and shape, cropped to ``size`` when given."""
        y_hat = self._latent_decompress(strings, [int(s) for s in shape])
        return {"x_hat": crop(self.g_s(self._synthesis_input(y_hat)).clamp_(0, 1), size)}

    def _latent_forward(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(y_hat, likelihoods) for the training / evaluation pass."""
        raise NotImplementedError

    def _latent_compress(self, y: Tensor) -> tuple[Strings, torch.Size]:
        """(strings, the shape `_latent_decompress` needs) for ``y``."""
        raise NotImplementedError

    def _latent_decompress(self, strings: Strings, shape: list[int]) -> Tensor:
        """y_hat from `_latent_compress`'s output."""
        raise NotImplementedError

    # ------------------------------------------------------- entropy models
    def aux_loss(self) -> Tensor:
        """Sum of the entropy bottlenecks' quantile losses (train it with its own optimizer)."""
        losses = [m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck)]
        return torch.stack(losses).sum() if losses else torch.zeros(())

    def update(self, force: bool = False) -> bool:
        """(Re)build every entropy model's coding tables; True if any was rebuilt. Call after training."""
        updated = False
        for module in self.modules():
            if isinstance(module, EntropyModel):
                updated |= bool(module.update(force=force))
        return updated

    # ------------------------------------------------------------ loading
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load an ncodec or a CompressAI state dict.

        CompressAI's are recognised by their extra bound buffers and translated: entropy
        bottleneck ``matrices.i`` / ``_matrices.i`` become ``_matrix{i}`` (likewise biases and
        factors), a leading ``module.`` is dropped, ``likelihood_lower_bound.bound`` sets the
        entropy model's ``likelihood_bound``, ``lower_bound_scale.bound`` duplicates
        ``scale_bound``, and an empty ``scale_table`` keeps ours. CompressAI's
        ``_quantized_cdf`` / ``_offset`` / ``_cdf_length`` are not our table format: after
        such a load every table is rebuilt from the loaded densities (``update(force=True)``).
        An ncodec state dict keeps its stored tables.
        """
        translated, bounds, from_compressai = self.translate_state_dict(state_dict)
        result = super().load_state_dict(translated, strict=strict, assign=assign)
        for module, bound in bounds:
            module.likelihood_bound = bound
        if from_compressai:  # its tables are in CompressAI's format, not ours
            self.update(force=True)
        return result

    def translate_state_dict(self, state_dict: Mapping[str, Any]
                             ) -> tuple[dict[str, Any], list[tuple[EntropyModel, float]], bool]:
        """(the state dict in ncodec's names, the likelihood bounds it sets as (module, value) pairs,
        whether it was a CompressAI one). An ncodec state dict comes back unchanged."""
        modules = dict(self.named_modules())
        out: dict[str, Any] = {}
        bounds: list[tuple[EntropyModel, float]] = []
        renamed = False
        for key, value in state_dict.items():
            key = key[len("module."):] if key.startswith("module.") else key  # saved from DataParallel
            prefix, _, name = key.rpartition(".")
            match = re.fullmatch(r"(.*)\._?(matrices|biases|factors)\.(\d+)", key)
            owner = modules.get(match.group(1)) if match else None
            if match and isinstance(owner, EntropyBottleneck):
                single = {"matrices": "_matrix", "biases": "_bias", "factors": "_factor"}[match.group(2)]
                out[f"{match.group(1)}.{single}{match.group(3)}"] = value
                renamed = True
                continue
            owner = modules.get(prefix.rpartition(".")[0]) if name == "bound" else None
            if isinstance(owner, EntropyModel) and prefix.endswith("likelihood_lower_bound"):
                bounds.append((owner, float(torch.as_tensor(value).reshape(-1)[0])))
                continue
            if isinstance(owner, ScaleConditional) and prefix.endswith("lower_bound_scale"):
                out.setdefault(f"{prefix.rpartition('.')[0]}.scale_bound", value)
                renamed = True
                continue
            if name == "scale_table" and isinstance(modules.get(prefix), ScaleConditional) \
                    and torch.as_tensor(value).numel() == 0:
                continue
            out[key] = value
        return out, bounds, renamed or bool(bounds)


class FactorizedPrior(ImageCompressionModel):
    """bmshj2018-factorized: ``y = g_a(x)`` coded with a per-channel learned density (Ballé et al. 2018)."""

    stride = 16

    def __init__(self, N: int, M: int):
        super().__init__(N, M)
        self.entropy_bottleneck = EntropyBottleneck(self.M)
        self.g_a = analysis_transform(self.N, self.M)
        self.g_s = synthesis_transform(self.N, self.M)

    def _latent_forward(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return y_hat, {"y": y_likelihoods}

    def _latent_compress(self, y: Tensor) -> tuple[Strings, torch.Size]:
        return [self.entropy_bottleneck.compress(y)], y.shape[-2:]

    def _latent_decompress(self, strings: Strings, shape: list[int]) -> Tensor:
        _check_strings(strings, 1)
        return self.entropy_bottleneck.decompress(strings[0], shape)


class HyperpriorModel(ImageCompressionModel):
    """Shared body of the hyperprior codecs: side information ``z = h_a(y)`` coded with an entropy
    bottleneck, from which ``h_s`` predicts the parameters of ``y``'s conditional model.

    Subclasses build ``h_a`` / ``h_s`` / ``gaussian_conditional`` and split ``h_s``'s output
    into the conditional's arguments (`_conditional_params`). ``h_s`` always runs through
    `entropy_parameters`, so that `exact` can swap in a bit-exact evaluation of it.
    """

    stride = 64
    h_a: nn.Module
    h_s: nn.Sequential
    gaussian_conditional: nn.Module

    def __init__(self, N: int, M: int):
        super().__init__(N, M)
        self.entropy_bottleneck = EntropyBottleneck(self.N)
        self.g_a = analysis_transform(self.N, self.M)
        self.g_s = synthesis_transform(self.N, self.M)
        #: Evaluate ``h_s`` with `h_s_exact` (integer-exact on every device) instead of plain torch.
        self.exact = False

    # ------------------------------------------------- entropy parameters
    def entropy_parameters(self, z_hat: Tensor) -> Tensor:
        """``h_s(z_hat)``, the raw parameters of y's conditional; exact when `exact` is set.

        Encoder and decoder both compute these, so they must agree to the bit for the
        streams to decode: `exact` makes that hold across devices.
        """
        return self.h_s_exact(z_hat) if self.exact else self.h_s(z_hat)

    @property
    def h_s_exact(self) -> nn.Module:
        """``ExactNetwork(self.h_s)``, built on first use and dropped when weights or device change.

        Kept out of the module tree so that it adds nothing to ``state_dict``.
        """
        net = self.__dict__.get("_h_s_exact")
        if net is None:
            from ..exact import ExactNetwork

            net = ExactNetwork(self.h_s)
            self.__dict__["_h_s_exact"] = net
        return net

    def _forget_exact(self) -> None:
        """Drop the cached exact network (its weights may be stale)."""
        self.__dict__.pop("_h_s_exact", None)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> HyperpriorModel:
        self._forget_exact()
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._forget_exact()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    load_state_dict.__doc__ = ImageCompressionModel.load_state_dict.__doc__

    # ------------------------------------------------------ latent coding
    def _hyper_input(self, y: Tensor) -> Tensor:
        """What ``h_a`` sees (``y`` itself; the scale-only model uses ``|y|``)."""
        return y

    def _conditional_params(self, params: Tensor) -> tuple[Tensor, ...]:
        """``h_s``'s output split into the conditional model's arguments after ``y``."""
        raise NotImplementedError

    def _latent_forward(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(self._hyper_input(y)))
        params = self._conditional_params(self.entropy_parameters(z_hat))
        y_hat, y_likelihoods = self.gaussian_conditional(y, *params)
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def _latent_compress(self, y: Tensor) -> tuple[Strings, torch.Size]:
        z = self.h_a(self._hyper_input(y))
        z_strings = self.entropy_bottleneck.compress(z)
        # The decoder only has the decoded z_hat: predict y's parameters from that, not from z.
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        params = self._conditional_params(self.entropy_parameters(z_hat))
        return [self.gaussian_conditional.compress(y, *params), z_strings], z.shape[-2:]

    def _latent_decompress(self, strings: Strings, shape: list[int]) -> Tensor:
        _check_strings(strings, 2)
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        params = self._conditional_params(self.entropy_parameters(z_hat))
        return self.gaussian_conditional.decompress(strings[0], *params)


class ScaleHyperprior(HyperpriorModel):
    """bmshj2018-hyperprior: zero-mean Gaussian ``y`` whose scales ``h_s`` predicts from ``z = h_a(|y|)``."""

    def __init__(self, N: int, M: int):
        super().__init__(N, M)
        self.h_a = hyper_analysis(self.N, self.M, nn.ReLU)
        self.h_s = nn.Sequential(deconv(self.N, self.N), nn.ReLU(inplace=True), deconv(self.N, self.N),
                                 nn.ReLU(inplace=True), conv(self.N, self.M, stride=1, kernel_size=3),
                                 nn.ReLU(inplace=True))
        self.gaussian_conditional = GaussianConditional()

    def _hyper_input(self, y: Tensor) -> Tensor:
        return torch.abs(y)

    def _conditional_params(self, params: Tensor) -> tuple[Tensor, ...]:
        return (params,)


class MeanScaleHyperprior(HyperpriorModel):
    """mbt2018-mean: Gaussian ``y`` with predicted scales and means (Minnen et al. 2018, no context model)."""

    def __init__(self, N: int, M: int):
        super().__init__(N, M)
        self.h_a = hyper_analysis(self.N, self.M, nn.LeakyReLU)
        self.h_s = mean_scale_synthesis(self.N, self.M, 2 * self.M)
        self.gaussian_conditional = GaussianConditional()

    def _conditional_params(self, params: Tensor) -> tuple[Tensor, ...]:
        scales, means = params.chunk(2, 1)
        return scales, means


class GaussianMixtureHyperprior(HyperpriorModel):
    """Mean-scale hyperprior whose ``h_s`` predicts a K-component Gaussian mixture per latent (Cheng et al. 2020).

    ``h_s`` outputs ``3 K M`` channels: K mixture logits, K means and K scales for each of
    the M latent channels, in that order. ncodec-only (no CompressAI twin).
    """

    def __init__(self, N: int, M: int, K: int = 3):
        super().__init__(N, M)
        self.K = int(K)
        self.h_a = hyper_analysis(self.N, self.M, nn.LeakyReLU)
        self.h_s = mean_scale_synthesis(self.N, self.M, 3 * self.K * self.M)
        self.gaussian_conditional = GaussianMixtureConditional(self.K)

    def _conditional_params(self, params: Tensor) -> tuple[Tensor, ...]:
        b, _, h, w = params.shape
        weights, means, scales = params.reshape(b, 3, self.K, self.M, h, w).unbind(1)
        return weights, means, scales
