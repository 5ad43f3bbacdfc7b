"""Bjontegaard deltas: agreement with the `bjontegaard` package (PCHIP), identities, edge cases."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ncodec.errors import Error
from ncodec.eval.bdrate import bd_quality, bd_rate, pchip_integral

# CompressAI's Kodak results (bpp, PSNR): bmshj2018-hyperprior and mbt2018-mean, qualities 1..8
HYPERPRIOR = [(.131, 27.58), (.209, 29.20), (.320, 30.97), (.478, 32.84), (.669, 34.53), (.939, 36.74),
              (1.259, 38.58), (1.660, 40.56)]
MEAN_SCALE = [(.124, 27.70), (.198, 29.36), (.307, 31.13), (.461, 32.95), (.662, 34.97), (.914, 36.91),
              (1.234, 38.84), (1.619, 40.63)]


def _split(points):
    return [p[0] for p in points], [p[1] for p in points]


def _reference(fn_name, a, b):
    bjontegaard = pytest.importorskip("bjontegaard")
    fn = getattr(bjontegaard, fn_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*_split(a), *_split(b), method="pchip", require_matching_points=False)


def test_compressai_kodak_curves_match_bjontegaard():
    ra, qa = _split(HYPERPRIOR)
    rb, qb = _split(MEAN_SCALE)
    value = bd_rate(ra, qa, rb, qb)
    assert -8.0 < value < -6.0                                   # mbt2018-mean saves ~7% over the hyperprior
    assert value == pytest.approx(_reference("bd_rate", HYPERPRIOR, MEAN_SCALE), abs=1e-9)
    assert bd_rate(rb, qb, ra, qa) == pytest.approx(_reference("bd_rate", MEAN_SCALE, HYPERPRIOR), abs=1e-9)
    psnr_gain = bd_quality(ra, qa, rb, qb)
    assert 0.2 < psnr_gain < 0.5
    assert psnr_gain == pytest.approx(_reference("bd_psnr", HYPERPRIOR, MEAN_SCALE), abs=1e-9)


def test_random_curves_match_bjontegaard():
    rng = np.random.default_rng(0)
    for _ in range(50):
        curves = []
        for _ in range(2):
            n = int(rng.integers(2, 9))
            rates = np.sort(rng.uniform(0.05, 2.0, n))
            quality = 25 + 10 * np.log2(rates) + rng.normal(0, 0.3, n)   # noisy, possibly non-monotone
            curves.append(list(zip(rates, quality, strict=True)))
        a, b = curves
        if len({q for _, q in a}) < len(a) or len({q for _, q in b}) < len(b):
            continue
        expected = _reference("bd_rate", sorted(a, key=lambda p: p[1]), sorted(b, key=lambda p: p[1]))
        got = bd_rate(*_split(a), *_split(b))
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        expected_q = _reference("bd_psnr", a, b)
        got_q = bd_quality(*_split(a), *_split(b))
        assert (math.isnan(expected_q) and math.isnan(got_q)) or got_q == pytest.approx(expected_q, rel=1e-9, abs=1e-9)


def test_identity_and_uniform_rate_shift():
    ra, qa = _split(HYPERPRIOR)
    assert bd_rate(ra, qa, ra, qa) == 0.0
    assert bd_quality(ra, qa, ra, qa) == 0.0
    for pct in (-30.0, -5.0, 12.5, 100.0):
        shifted = [r * (1 + pct / 100) for r in ra]
        assert bd_rate(ra, qa, shifted, qa) == pytest.approx(pct, abs=1e-10)
    up = [q + 0.7 for q in qa]
    assert bd_quality(ra, qa, ra, up) == pytest.approx(0.7, abs=1e-12)


def test_antisymmetry_in_log_domain():
    ra, qa = _split(HYPERPRIOR)
    rb, qb = _split(MEAN_SCALE)
    # with the same quality range, the mean log-rate gap just changes sign
    ab, ba = bd_rate(ra, qa, rb, qb), bd_rate(rb, qb, ra, qa)
    lo, hi = max(qa[0], qb[0]), min(qa[-1], qb[-1])
    assert lo < hi and (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0, abs=1e-12)


def test_unsorted_input_and_lossless_points():
    ra, qa = _split(HYPERPRIOR)
    rb, qb = _split(MEAN_SCALE)
    order = [3, 0, 7, 5, 1, 6, 2, 4]
    value = bd_rate([ra[i] for i in order], [qa[i] for i in order], rb[::-1], qb[::-1])
    assert value == pytest.approx(bd_rate(ra, qa, rb, qb), abs=1e-12)
    # a lossless point (quality inf) is left out
    assert bd_rate(ra + [4.0], qa + [math.inf], rb, qb) == pytest.approx(bd_rate(ra, qa, rb, qb), abs=1e-12)


def test_nan_cases():
    ra, qa = _split(HYPERPRIOR)
    assert math.isnan(bd_rate(ra[:4], qa[:4], ra[4:], qa[4:]))     # quality ranges do not overlap
    assert math.isnan(bd_rate(ra[:1], qa[:1], ra, qa))             # a single point is no curve
    assert math.isnan(bd_rate([], [], ra, qa))
    assert math.isnan(bd_rate([1.0, 2.0], [30.0, math.inf], ra, qa))
    assert math.isnan(bd_quality(ra[:3], qa[:3], ra[5:], qa[5:]))  # rate ranges do not overlap
    assert math.isnan(bd_rate(ra[:4], qa[:4], ra[3:], qa[3:]))     # touching in one point only


def test_bad_input():
    with pytest.raises(Error):
        bd_rate([0.0, 1.0], [30, 35], [0.5, 1.0], [30, 35])
    with pytest.raises(Error):
        bd_rate([0.5, 1.0, 2.0], [30, 35], [0.5, 1.0], [30, 35])


def test_pchip_integral_exact():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    y = 2 * x + 1                                                 # PCHIP reproduces straight lines
    assert pchip_integral(x, y, 0.5, 3.5) == pytest.approx((3.5 ** 2 + 3.5) - (0.5 ** 2 + 0.5), abs=1e-12)
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(1)
    xs = np.sort(rng.uniform(0, 10, 7))
    ys = rng.normal(0, 1, 7)
    ref = scipy_interpolate.PchipInterpolator(xs, ys).integrate(xs[1] + 0.3, xs[5] - 0.2)
    assert pchip_integral(xs, ys, xs[1] + 0.3, xs[5] - 0.2) == pytest.approx(ref, abs=1e-12)


# ------------------------------------------------------------------ rate-distortion plot
def test_rd_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image as PILImage

    from ncodec.eval.plot import rd_plot

    curves = {"hyperprior": HYPERPRIOR, "mean-scale": MEAN_SCALE[::-1],
              "lossless": [(9.5, math.inf)], "mixed": [(0.3, 30.0), (0.9, 36.0), (6.0, math.inf), (1.0, math.nan)]}
    for logx in (False, True):
        path = rd_plot(curves, xlabel="bpp", ylabel="PSNR (dB)", path=tmp_path / f"rd{logx}.png", logx=logx,
                       title="Kodak")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with PILImage.open(path) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_rd_plot_without_matplotlib(tmp_path, monkeypatch):
    import sys

    from ncodec.eval.plot import rd_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(Error, match="pip install matplotlib"):
        rd_plot({"a": HYPERPRIOR}, "bpp", "PSNR", tmp_path / "x.png")
