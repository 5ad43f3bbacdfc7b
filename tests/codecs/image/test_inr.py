"""The overfitted image codec `inr` and its building blocks (ncodec.models.inr): fitting, exact ARM coding,
weight coding, container round trips and hostile streams. CPU only, tiny images, few iterations."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fitted_streams import FORGED_FITTED_CONFIG, check_hostile_chunks, repack
from PIL import Image as PILImage

import ncodec
from ncodec.codecs.image.inr import InrImageCodec
from ncodec.errors import BitstreamError, MediaError
from ncodec.models.inr import tables as tb
from ncodec.models.inr import weights as wq
from ncodec.models.inr.arm import Arm, ArmCoder, _Layout, coding_params
from ncodec.models.inr.fit import FitConfig, _optimizer, _step, fit, preset
from ncodec.models.inr.image import ImageInrConfig, LatentImageModel, complexity
from ncodec.models.inr.latents import Upsampler, bilinear_equivalence_error, level_shapes
from ncodec.models.inr.layers import FourierMLP, Siren, coordinate_grid
from ncodec.models.inr.quantize import quantize, soft_round
from ncodec.media.types import Image

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garden.png"
SMALL = {"levels": 4, "syn_hidden": 12, "arm_hidden": 8, "arm_context": 12}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 32x48 RGB crop of the bundled sample."""
    px = np.asarray(PILImage.open(SAMPLE).convert("RGB"))
    return np.ascontiguousarray(px[96:128, 128:176])


@pytest.fixture(scope="module")
def encoded(crop: np.ndarray):
    torch.set_num_threads(1)
    codec = InrImageCodec(quality=5, preset="fast", iterations=80, device="cpu", **SMALL)
    return codec.encode_image(Image(crop))


def _lively_arm(seed: int, context: int = 16) -> Arm:
    torch.manual_seed(seed)
    arm = Arm(context, 16, 2)
    with torch.no_grad():
        for p in arm.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return arm


def _grids(shapes: list[tuple[int, int]], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.round(rng.laplace(0.0, 0.5 + lv, s)).astype(np.int64) for lv, s in enumerate(shapes)]


# ----------------------------------------------------------------------------- building blocks
def test_siren_and_fourier_mlp_shapes_and_init():
    coords = coordinate_grid(4, 6)
    assert coords.shape == (24, 2) and float(coords.abs().max()) < 1
    siren = Siren(2, 16, 3, layers=3)
    first = siren.body[0].linear.weight.detach()
    assert float(first.abs().max()) <= 0.5 and siren(coords).shape == (24, 3)
    later = siren.body[1].linear.weight.detach()
    assert float(later.abs().max()) <= (6 / 16) ** 0.5 / 30 + 1e-7
    mlp = FourierMLP(2, 16, 3, layers=2, num_frequencies=8)
    assert mlp(coords).shape == (24, 3) and mlp.macs_per_sample() == 16 * 16 + 16 * 16 + 16 * 3 + 16


def test_quantization_proxies():
    y = torch.linspace(-3, 3, 61)
    assert torch.equal(quantize(y, "hard"), torch.round(y))
    off_ties = y + 0.01
    assert torch.allclose(soft_round(off_ties, 1e-3), torch.round(off_ties), atol=1e-3)
    ste = quantize(y.clone().requires_grad_(), "ste")
    assert torch.equal(ste.detach(), torch.round(y))
    assert float((quantize(y, "noise") - y).abs().max()) <= 0.5


def test_upsampler_starts_bilinear_and_handles_odd_sizes():
    assert bilinear_equivalence_error(5, 7) < 1e-5
    shapes = level_shapes(13, 21, 4)
    assert shapes == [(13, 21), (7, 11), (4, 6), (2, 3)]
    grids = [torch.randn(1, 1, h, w) for h, w in shapes]
    for mode in ("learned", "bilinear"):
        assert Upsampler(4, mode)(grids).shape == (1, 4, 13, 21)


def test_decoder_complexity_within_budget():
    macs = complexity(ImageInrConfig(), 512, 768)
    assert macs["total"] <= 3000 and macs["arm"] > 0 and macs["synthesis"] > 0
    assert LatentImageModel(ImageInrConfig(), 512, 768).macs_per_pixel() == macs["total"]


def test_coding_params_integer_mapping():
    # mean 0.30 -> 2/8 (rounded half up on the 1/8 grid), mean -0.30 -> -2/8 = -1 + 6/8
    q = np.array([[round(0.30 * 2**14), round(-0.30 * 2**14), 0, 5 * 2**14],
                  [round(tb.LATENT_LOG_SCALE_MIN * 2**14), 0, -10 * 2**14, 10 * 2**14]], dtype=np.int64)
    base, table = coding_params(q)
    assert base.tolist() == [0, -1, 0, 5]
    rung = table // tb.MEAN_OFFSETS
    assert (table % tb.MEAN_OFFSETS).tolist() == [2, 6, 0, 0]
    assert rung[0] == 0 and rung[2] == 0 and rung[3] == tb.LATENT_RUNGS - 1
    assert rung[1] == round(-tb.LATENT_LOG_SCALE_MIN * 8)   # ln b = 0 is rung 26


# ----------------------------------------------------------------------------- exact ARM coding
@pytest.mark.parametrize("shape", [(17, 23), (32, 48)])
def test_arm_coder_round_trip(shape: tuple[int, int]):
    arm = _lively_arm(0)
    shapes = level_shapes(*shape, 4)
    grids = _grids(shapes, 1)
    coder = ArmCoder(arm)
    out = coder.decode(coder.encode(grids), shapes)
    assert all(np.array_equal(a, b) for a, b in zip(grids, out))


def test_arm_probabilities_identical_across_threads_and_dtypes():
    arm = _lively_arm(3)
    shapes = level_shapes(24, 40, 3)
    grids = _grids(shapes, 4)
    torch.set_num_threads(1)
    sym1, tab1 = ArmCoder(arm).symbols(grids)
    stream = ArmCoder(arm).encode(grids)
    torch.set_num_threads(2)
    sym2, tab2 = ArmCoder(arm).symbols(grids)
    arm64 = Arm(16, 16, 2).double()
    arm64.load_state_dict({k: v.double() for k, v in arm.state_dict().items()})
    sym3, tab3 = ArmCoder(arm64).symbols(grids)
    assert np.array_equal(tab1, tab2) and np.array_equal(tab1, tab3)
    assert np.array_equal(sym1, sym2) and np.array_equal(sym1, sym3)
    assert len(np.unique(tab1)) > 10   # the tables really vary
    decoded = ArmCoder(arm64).decode(stream, shapes)    # float64 decoder, 2 threads
    assert all(np.array_equal(a, b) for a, b in zip(grids, decoded))


@pytest.mark.parametrize("context", [8, 12, 16])
def test_arm_training_context_is_what_the_coder_gathers(context: int):
    """The neighbours the ARM trains on are, latent for latent, the ones the exact coder conditions on."""
    shapes = level_shapes(13, 21, 3)
    rng = np.random.default_rng(7)
    grids = [rng.integers(1, 9, s) * rng.choice([-1, 1], s) for s in shapes]   # no zeros: padding shows
    arm = Arm(context, 8, 1)
    trained = torch.cat([arm.context(torch.from_numpy(g).float()[None, None]) for g in grids]).numpy()
    layout = _Layout(shapes, arm.offsets)
    gathered = layout.gather(layout.fill(grids), slice(0, layout.pos.size)).T     # [n, C], decoding order
    starts = np.cumsum([0] + [h * w for h, w in shapes])
    raster = [start + np.arange(h * w).reshape(h, w) for start, (h, w) in zip(starts, shapes)]
    order = layout.fill(raster)[layout.pos]                       # each latent's row in `trained`
    assert np.array_equal(trained[order], gathered.astype(np.float32))
    assert 0 < np.count_nonzero(trained == 0) < trained.size // 4   # zeros are exactly the outside neighbours


def test_arm_training_rate_matches_coded_size():
    arm = _lively_arm(5)
    shapes = level_shapes(32, 48, 3)
    grids = _grids(shapes, 6)
    with torch.no_grad():
        bits = float(arm.rate_bits([torch.from_numpy(g).float()[None, None] for g in grids]))
    coded = 8 * len(ArmCoder(arm).encode(grids))
    assert 0.8 * bits < coded < 1.2 * bits + 8 * 64


# ----------------------------------------------------------------------------- weights
def test_weight_stream_round_trip_and_rd_choice():
    rng = np.random.default_rng(0)
    ints = [rng.integers(-40, 41, 30), np.zeros(5, dtype=np.int64), rng.integers(-3000, 3000, 7)]
    rungs = [wq.best_rung(i)[0] for i in ints]
    out = wq.decode_weights(wq.encode_weights(ints, rungs), [i.size for i in ints], rungs)
    assert all(np.array_equal(a, b) for a, b in zip(ints, out))
    p = torch.nn.Parameter(torch.tensor([0.3, -0.71, 0.05]))
    codes = wq.rd_quantize([("g", p)], lambda group: 0.0, bit_cost=1.0)   # rate only: coarsest step
    assert codes[0].exponent == min(wq.CANDIDATE_EXPONENTS)
    assert torch.equal(p.detach() * 2 ** codes[0].exponent, torch.round(p.detach() * 2 ** codes[0].exponent))


# ----------------------------------------------------------------------------- fitting
def test_fit_psnr_rises(crop: np.ndarray):
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    torch.manual_seed(0)
    model = LatentImageModel(ImageInrConfig(**SMALL), 32, 48)
    config = preset("fast", iterations=120, eval_every=30)
    result = fit(model, x, 1e-3, config)
    psnrs = [p["psnr"] for p in result.history]
    assert len(psnrs) == 4 and psnrs[-1] > psnrs[0] + 2.0 and result.best["psnr"] > 20.0
    assert result.best["loss"] == min(p["loss"] for p in result.history)


def test_first_step_moves_every_latent_by_its_learning_rate():
    """Per-pixel losses give fine latents tiny gradients (median below 1e-7 here): Adam must not damp them with its eps."""
    torch.manual_seed(0)
    model = LatentImageModel(ImageInrConfig(**SMALL), 384, 512)
    with torch.no_grad():
        model.synthesis.body[0].weight.normal_(0.0, 0.1)   # some of every latent reaches the pixels
    target = torch.rand(1, 3, 384, 512)
    before = model.latents.grids[0].detach().clone()
    optimizer = _optimizer(model, 1e-2)
    _step(model, optimizer, target, 1e-3, "noise", 0.0, None)
    grad = model.latents.grids[0].grad.abs()
    moved = (model.latents.grids[0].detach() - before).abs()
    assert float(grad.median()) < 1e-7                      # the regime of full-size images
    lr = 1e-2 * model.latent_lr_scale                        # Adam's first step is lr * sign(gradient)
    assert float(moved[grad > 0].median()) > 0.99 * lr


def test_fit_warm_up_candidates(crop: np.ndarray):
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    model = LatentImageModel(ImageInrConfig(**SMALL), 32, 48)
    config = FitConfig(iterations=10, candidates=2, warmup=5, eval_every=5, schedule="step")
    assert len(fit(model, x, 1e-3, config).history) == 2


# ----------------------------------------------------------------------------- the codec
def test_round_trip_reproduces_encoder_output(encoded, crop: np.ndarray):
    decoded = ncodec.decode(encoded.data)
    assert isinstance(decoded, np.ndarray) and decoded.shape == crop.shape
    assert np.array_equal(decoded, encoded.pixels)
    mse = np.mean((decoded.astype(np.float64) - crop) ** 2)
    assert 10 * np.log10(255**2 / mse) > 20.0


def test_info_reports_decoder_macs(encoded):
    info = ncodec.info(encoded.data)
    assert info["codec"] == "inr" and 0 < info["macs"] <= 3000
    assert "MACs/pixel" in info["decoder"]


def test_gray_image_and_bad_inputs(crop: np.ndarray):
    gray = np.ascontiguousarray(crop[:16, :16, :1])
    codec = InrImageCodec(quality=5, preset="fast", iterations=5, device="cpu", levels=2, syn_hidden=4,
                          arm_hidden=4, arm_context=8)
    enc = codec.encode_image(Image(gray))
    assert enc.pixels.shape == (16, 16, 1) and np.array_equal(ncodec.decode(enc.data), enc.pixels)
    with pytest.raises(MediaError):
        InrImageCodec(quality=50)
    with pytest.raises(MediaError):
        InrImageCodec(levels=99)
    with pytest.raises(MediaError):
        InrImageCodec(preset="turbo")
    with pytest.raises(MediaError):
        codec.encode_image(Image(np.zeros((4, 4, 4), np.uint8)))


@pytest.mark.parametrize("change", [*FORGED_FITTED_CONFIG,
    {"config": {"architecture": {"levels": 1000}}},
    {"config": {"architecture": {"bogus": 1}}},
    {"config": {"architecture": {"levels": 4, "syn_hidden": 12, "arm_hidden": 8, "arm_context": 13}}},
    {"meta": {"width": 1 << 20}},
    {"meta": {"height": 0}},
    {"meta": {"channels": 4}},
    {"meta": {"width": 4096, "height": 4096}},
])
def test_hostile_headers_raise_bitstream_errors(encoded, change: dict):
    with pytest.raises(BitstreamError):
        ncodec.decode(repack(encoded.data, change.get("config"), change.get("meta")))


def test_hostile_chunks_raise_bitstream_errors(encoded):
    check_hostile_chunks(encoded.data, lambda out: out.shape == encoded.pixels.shape)


def test_describe_tolerates_corrupt_header(encoded):
    data = repack(encoded.data, {"architecture": {"levels": 1000}})
    assert "decoder" not in ncodec.info(data)
    assert json.dumps(ncodec.info(encoded.data), default=str)


def test_read_only_pixels_encode_without_warnings():
    """PIL hands out read-only arrays; coding one must not trip torch's non-writable-array warning.

    In a child process: torch warns only once per process, so an earlier test could hide it here.
    """
    code = f"""
import numpy as np
from PIL import Image as P
from ncodec.codecs.image.inr import InrImageCodec
from ncodec.media import Image
px = np.asarray(P.open({str(SAMPLE)!r}).convert("RGB").crop((128, 96, 144, 112)))
assert not px.flags.writeable
codec = InrImageCodec(quality=5, preset="fast", iterations=2, device="cpu", levels=2, syn_hidden=4,
                      arm_hidden=4, arm_context=8)
codec.encode_image(Image(px))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
