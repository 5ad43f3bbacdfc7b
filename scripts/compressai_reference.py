"""Write CompressAI reference outputs for tests/zoo/test_compressai_compat.py.

Run with the CompressAI venv that ``.ci/compressai/setup.sh`` builds (CompressAI 1.2.8
needs numpy<2, so it cannot share ncodec's venv; this script imports no ncodec):

    .ci/compressai/.venv/bin/python scripts/compressai_reference.py --out /tmp/compressai-refs

For every architecture and quality of CompressAI's zoo that ncodec supports, a model is
built with the zoo's (N, M) and seeded random weights made to look trained (non-trivial
GDN, latents of a few units, entropy bottleneck densities fitted to the latents, scales
and images in sensible ranges), then ``update()``'d. Written per model, without pickle:

- ``<arch>-q<quality>.safetensors``: the state dict, CompressAI's own key names;
- ``<arch>-q<quality>.npz``: for each crop set ``<c>`` of ``samples/garden.png``:
  ``<c>.x`` (input), ``<c>.x_hat`` / ``<c>.likelihoods_y`` / ``<c>.likelihoods_z`` (eval
  forward), ``<c>.decoded`` (compress then decompress), ``<c>.bytes`` (stream sizes);
- ``publisher/<zoo file stem>-<quality>-<sha256[:8]>.pth.tar`` for quality 1 of each
  architecture: the state dict as CompressAI's zoo publishes it (``torch.save``, the hash
  prefix in the name, ``bmshj2018-factorized-prior-1-...`` for the factorized model), which
  the fetch tests serve over HTTP;
- ``manifest.json``: CompressAI / torch / numpy versions and the list of models.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import compressai
from compressai import zoo
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import MeanScaleHyperprior
from peer_reference_common import ROOT, reference_parser, save_weights, start, write_publisher_file

#: the file-name stems of CompressAI's published zoo files (compressai.zoo.image.model_urls)
PUBLISHED_STEMS = {"bmshj2018-factorized": "bmshj2018-factorized-prior", "bmshj2018-hyperprior": "bmshj2018-hyperprior",
                   "mbt2018-mean": "mbt2018-mean"}
ARCHITECTURES = {
    "bmshj2018-factorized": zoo.bmshj2018_factorized,
    "bmshj2018-hyperprior": zoo.bmshj2018_hyperprior,
    "mbt2018-mean": zoo.mbt2018_mean,
}
# Crop sets of samples/garden.png (384 x 256): name -> list of (top, left, height, width).
# Sizes are multiples of 64 (CompressAI does not pad); a batch of two and a single wide crop.
CROPS = {"pair": [(0, 0, 64, 64), (128, 224, 64, 64)], "wide": [(64, 64, 128, 192)]}


def load_crops(path: Path) -> dict[str, torch.Tensor]:
    """The crop sets as float [B, 3, H, W] tensors in [0, 1]."""
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    out = {}
    for name, boxes in CROPS.items():
        crops = [image[t:t + h, l:l + w] for t, l, h, w in boxes]
        out[name] = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return out


def _rescale(layer: torch.nn.Module, out: torch.Tensor, std: float, mean: float | None = None) -> None:
    """Scale ``layer``'s weights so that its output ``out`` would have ``std`` (and shift to ``mean``)."""
    factor = std / max(float(out.std()), 1e-6)
    layer.weight.mul_(factor)
    layer.bias.mul_(factor)
    if mean is not None:
        layer.bias.add_(mean - float(out.mean()) * factor)


def _fit_bottleneck(eb: EntropyBottleneck, values: torch.Tensor, steps: int = 150) -> None:
    """A short maximum-likelihood fit of the bottleneck's density to ``values`` (+ uniform noise)."""
    params = [p for n, p in eb.named_parameters() if n != "quantiles"]
    opt = torch.optim.Adam(params, lr=0.05)
    eb.train()
    with torch.enable_grad():
        for _ in range(steps):
            _, likelihood = eb(values)
            loss = -torch.log2(likelihood).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    eb.eval()


@torch.no_grad()
def make_trained_looking(net: torch.nn.Module, x: torch.Tensor, quality: int) -> None:
    """Perturb the zoo's initial weights in place so that the model behaves like a trained one."""
    for module in net.modules():
        if isinstance(module, GDN):
            c = module.beta.numel()
            gamma = 0.1 * torch.eye(c) + 0.02 * torch.rand(c, c)
            module.gamma.copy_(module.gamma_reparam.init(gamma))
            module.beta.copy_(module.beta_reparam.init(1.0 + 0.5 * torch.rand(c)))
    _rescale(net.g_a[6], net.g_a(x), std=1.0 + 0.75 * quality)  # higher quality, wider latents
    y = net.g_a(x)
    _rescale(net.g_s[6], net.g_s(y), std=0.22, mean=0.45)
    if hasattr(net, "h_a"):
        hyper_input = y if isinstance(net, MeanScaleHyperprior) else torch.abs(y)  # as the models' forward
        _rescale(net.h_a[4], net.h_a(hyper_input), std=2.5)
        z = net.h_a(hyper_input)
        _fit_bottleneck(net.entropy_bottleneck, z)
        z_hat = torch.round(z)
        last = net.h_s[4]
        out = net.h_s[:5](z_hat)
        _rescale(last, out, std=0.3)
        m = net.M
        last.bias[:m] += float(y.std())  # scales around the latents' spread; means near 0
    else:
        _fit_bottleneck(net.entropy_bottleneck, y)
    net.update(force=True, update_quantiles=True)


@torch.no_grad()
def reference(net: torch.nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Eval forward outputs and the compress -> decompress image for one crop set."""
    out = net(x)
    enc = net.compress(x)
    dec = net.decompress(enc["strings"], enc["shape"])
    lik = out["likelihoods"]
    res = {"x": x, "x_hat": out["x_hat"], "likelihoods_y": lik["y"], "decoded": dec["x_hat"]}
    if "z" in lik:
        res["likelihoods_z"] = lik["z"]
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in res.items()}
    arrays["bytes"] = np.array([sum(len(s) for s in strings) for strings in enc["strings"]], dtype=np.int64)
    return arrays


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main(argv: list[str] | None = None) -> None:
    p = reference_parser(__doc__)
    p.add_argument("--image", type=Path, default=ROOT / "samples" / "garden.png")
    p.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    p.add_argument("--qualities", nargs="+", type=int, default=list(range(1, 9)))
    args = p.parse_args(argv)
    start(args.out)  # tiny tensors: extra threads only contend
    crops = load_crops(args.image)
    calibration = torch.cat([crops["pair"], crops["wide"][:, :, :64, :64]])
    models = []
    for a, arch in enumerate(args.architectures):
        for quality in args.qualities:
            started = time.monotonic()
            torch.manual_seed(1000 * a + quality)
            net = ARCHITECTURES[arch](quality=quality, pretrained=False)
            make_trained_looking(net, calibration, quality)
            net.eval()
            name = f"{arch}-q{quality}"
            save_weights(net, args.out / f"{name}.safetensors",
                         {"architecture": arch, "quality": str(quality), "compressai": compressai.__version__})
            publisher = None
            if quality == 1:  # as CompressAI's zoo publishes it
                publisher = write_publisher_file(net.state_dict(), args.out / "publisher",
                                                 f"{PUBLISHED_STEMS[arch]}-{quality}", ".pth.tar", hashed=True)
            arrays = {}
            for crop_name, x in crops.items():
                for key, value in reference(net, x).items():
                    arrays[f"{crop_name}.{key}"] = value
            np.savez(args.out / f"{name}.npz", **arrays)
            entry = {"name": name, "architecture": arch, "quality": quality, "N": net.N, "M": net.M,
                     "publisher_file": publisher,
                     "bpp": {c: float(8 * arrays[f"{c}.bytes"].sum() / (x.shape[0] * x.shape[2] * x.shape[3]))
                             for c, x in crops.items()},
                     "psnr": {c: psnr(arrays[f"{c}.decoded"], arrays[f"{c}.x"]) for c in crops}}
            models.append(entry)
            print(f"{name}: N={net.N} M={net.M} bpp={entry['bpp']} psnr={entry['psnr']} "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
    manifest = {"compressai": compressai.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "crops": CROPS, "models": models}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
