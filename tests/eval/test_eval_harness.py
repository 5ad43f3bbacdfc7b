"""The evaluation harness: operating points, knob search, caching, JSON, BD-rates, the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from ncodec.cli import main
from ncodec.eval import harness
from ncodec.eval.codec import EvalCodec, Knob
from ncodec.eval.peers import PEERS
from ncodec.media.io import read_image


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, samples) -> Path:
    """Three real image crops of the bundled sample."""
    folder = tmp_path_factory.mktemp("images")
    px = read_image(samples / "garden.png").pixels
    for i, (y, x) in enumerate([(0, 0), (64, 128), (120, 200)]):
        PILImage.fromarray(px[y:y + 96, x:x + 128]).save(folder / f"crop{i}.png")
    return folder


class CountingJpeg(EvalCodec):
    """The jpeg peer, counting encodes (to see what the cache saves)."""

    name = "counting-jpeg"
    media = "image"
    knob = Knob(1, 100)
    calls = 0

    def __init__(self):
        self.inner = PEERS["jpeg"]()

    def encode(self, media, quality):
        CountingJpeg.calls += 1
        return self.inner.encode(media, quality)

    def decode(self, data, reference):
        return self.inner.decode(data, reference)


def test_knob_search_lands_near_each_target(image_dir, tmp_path):
    codec = PEERS["jpeg"]()
    reference = harness.load_media(sorted(image_dir.iterdir())[0], "image")
    run = harness.FileRun(codec, "image", reference, "x", harness.Cache(None))
    for target in (0.3, 0.8, 1.6):
        q = harness.search_knob(run, target)
        assert 1 <= q <= 100 and float(q).is_integer()
        rate = run.rate_of(q)
        # no other integer quality is closer to the target
        assert all(abs(rate - target) <= abs(run.rate_of(k) - target) + 1e-12 for k in (q - 1, q + 1) if 1 <= k <= 100)


def test_run_eval_structure_bd_rates_and_cache(image_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(PEERS, "counting-jpeg", CountingJpeg)
    cache = tmp_path / "cache"
    CountingJpeg.calls = 0
    first = harness.run_eval("image", ["counting-jpeg", "webp", "png", "wavelet-lossless"], image_dir,
                             targets=(0.5, 1.0, 2.0), cache_dir=cache, progress=False)
    calls = CountingJpeg.calls
    assert calls > 0
    jpeg = first["codecs"]["counting-jpeg"]["points"]
    assert [p["quality"] for p in jpeg] == [0.5, 1.0, 2.0]
    assert all(p["bpp"] > 0 and 20 < p["psnr"] < 60 and 0 < p["ms_ssim"] <= 1 for p in jpeg)
    assert jpeg[0]["bpp"] < jpeg[1]["bpp"] < jpeg[2]["bpp"] and jpeg[0]["psnr"] < jpeg[2]["psnr"]
    lossless = first["codecs"]["wavelet-lossless"]["points"]
    assert len(lossless) == 1 and math.isinf(lossless[0]["psnr"])
    assert first["codecs"]["png"]["points"][0]["bpp"] > lossless[0]["bpp"]
    assert {(r["codec"], r["anchor"]) for r in first["bd_rate"]} == {("webp", "counting-jpeg"),
                                                                      ("counting-jpeg", "webp")}
    assert harness.bd_rate_of(first, "webp", "counting-jpeg") < 0  # WebP needs fewer bits than JPEG 4:2:0 here
    assert harness.bd_rate_of(first, "counting-jpeg", "webp") > 0
    second = harness.run_eval("image", ["counting-jpeg", "webp", "png", "wavelet-lossless"], image_dir,
                              targets=(0.5, 1.0, 2.0), cache_dir=cache, progress=False)
    assert CountingJpeg.calls == calls  # everything came from the cache
    assert second["codecs"] == first["codecs"]
    text = json.loads(harness.to_json(first))
    assert text["codecs"]["wavelet-lossless"]["points"][0]["psnr"] is None  # infinite PSNR written as null
    table = harness.format_table(first)
    assert "BD-rate" in table and "counting-jpeg" in table


def test_cli_eval_writes_json_and_plot(image_dir, tmp_path, capsys):
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["eval", "image", "--codec", "jpeg,jpeg444,png", "--data", str(image_dir), "--targets", "0.5,1,2",
                 "--json", str(out), "--plot", str(plot), "--no-cache"]) == 0
    result = json.loads(out.read_text())
    assert set(result["codecs"]) == {"jpeg", "jpeg444", "png"}
    assert {"codec": "jpeg444", "anchor": "jpeg", "quality": "psnr"}.items() <= next(
        r for r in result["bd_rate"] if r["codec"] == "jpeg444").items()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "BD-rate" in capsys.readouterr().out


def test_wrong_media_and_unknown_codec(image_dir):
    from ncodec.errors import Error, UnknownCodecError

    with pytest.raises(Error, match="codes audio"):
        harness.run_eval("image", ["opus"], image_dir, progress=False)
    with pytest.raises(UnknownCodecError):
        harness.run_eval("image", ["no-such"], image_dir, progress=False)


def test_audio_eval_runs_opus_and_lossless(samples, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "speech.flac").write_bytes((samples / "speech.flac").read_bytes())
    result = harness.run_eval("audio", ["opus", "flac", "audio-lossless"], folder, targets=(8, 16), progress=False)
    opus = result["codecs"]["opus"]["points"]
    assert [p["quality"] for p in opus] == [8, 16]
    assert opus[0]["mel_distance"] > opus[1]["mel_distance"] > 0
    assert result["codecs"]["audio-lossless"]["points"][0]["mel_distance"] == 0.0
    assert result["codecs"]["audio-lossless"]["points"][0]["kbps"] < result["codecs"]["flac"]["points"][0]["kbps"] * 1.05
    assert np.isfinite(result["codecs"]["opus"]["points"][0]["si_sdr"])


def test_ncodec_codecs_cache_key_follows_the_source(tmp_path) -> None:
    """Any change to ncodec's code gives its codecs a new cache key (not only a new stream layout)."""
    from ncodec.eval.ncodec_codecs import NcodecEvalCodec, source_digest

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "b.c").write_text("int y;\n")
    (tmp_path / "pkg" / "notes.txt").write_text("ignored\n")
    before = source_digest(tmp_path / "pkg")
    (tmp_path / "pkg" / "notes.txt").write_text("still ignored\n")
    assert source_digest.__wrapped__(tmp_path / "pkg") == before
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert source_digest.__wrapped__(tmp_path / "pkg") != before
    assert source_digest() in NcodecEvalCodec("wavelet-lossless").version()


class SecondPointLooksAtTheCache(EvalCodec):
    """JPEG at two fixed qualities; while encoding the second it records what the cache holds on disk."""

    name = "cache-watcher"
    media = "image"
    fixed_points = (30.0, 60.0)
    cache: Path | None = None
    seen: list[set[str]] = []

    def __init__(self):
        self.inner = PEERS["jpeg"]()

    def encode(self, media, quality):
        if quality == 60.0 and self.cache is not None:
            files = list((self.cache / self.name).glob("*.json"))
            SecondPointLooksAtTheCache.seen.append(set(json.loads(files[-1].read_text())) if files else set())
        return self.inner.encode(media, quality)

    def decode(self, data, reference):
        return self.inner.decode(data, reference)


def test_cache_keeps_each_point_as_soon_as_it_is_done(image_dir, tmp_path, monkeypatch):
    """A killed run of slow codecs (fits) loses at most the point it was computing."""
    monkeypatch.setitem(PEERS, "cache-watcher", SecondPointLooksAtTheCache)
    monkeypatch.setattr(SecondPointLooksAtTheCache, "cache", tmp_path / "cache")
    monkeypatch.setattr(SecondPointLooksAtTheCache, "seen", [])
    harness.run_eval("image", ["cache-watcher"], image_dir, cache_dir=tmp_path / "cache", max_files=1, progress=False)
    assert SecondPointLooksAtTheCache.seen == [{"30.0"}]


class _Stepped(EvalCodec):
    """A codec whose rate is a fixed increasing function of its knob (no encoding): the search's arithmetic."""

    name = "stepped"
    media = "image"

    def __init__(self, knob: Knob, rate) -> None:
        self.knob, self.rate, self.calls = knob, rate, 0

    def encode(self, media, quality):
        self.calls += 1
        return bytes(max(1, int(self.rate(quality) * media.num_pixels / 8)))

    def decode(self, data, reference):
        return reference


def _bisection(run, target):
    """The search as it was (bisection from the knob's whole range): the reference the faster one must match."""
    knob = run.codec.knob
    lo, hi = float(knob.lo), float(knob.hi)
    if run.rate_of(lo) >= target:
        return lo
    if run.rate_of(hi) <= target:
        return hi
    while hi - lo > 1:
        mid = math.floor((lo + hi) / 2)
        lo, hi = (mid, hi) if run.rate_of(mid) <= target else (lo, mid)
    return lo if abs(run.rate_of(lo) - target) <= abs(run.rate_of(hi) - target) else hi


@pytest.mark.parametrize("shape", ["exp", "power", "steps", "jpeg-like"])
def test_faster_knob_search_finds_the_same_settings_in_fewer_encodes(image_dir, shape) -> None:
    rates = {"exp": lambda q: 0.05 * math.exp(q / 22), "power": lambda q: 0.02 + (q / 40) ** 3,
             "steps": lambda q: 0.1 * (1 + math.floor(q / 7)),
             "jpeg-like": lambda q: 0.15 + 2.5 * (q / 100) ** 4 + 0.5 * q / 100}
    reference = harness.load_media(sorted(image_dir.iterdir())[0], "image")
    targets = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
    slow = _Stepped(Knob(1, 100), rates[shape])
    slow_run = harness.FileRun(slow, "image", reference, "x", harness.Cache(None))
    expected = [_bisection(slow_run, t) for t in targets]
    fast = _Stepped(Knob(1, 100), rates[shape])
    fast_run = harness.FileRun(fast, "image", reference, "x", harness.Cache(None))
    found = [find(fast_run) for _, find in harness.settings_for(fast, targets)]
    assert found == expected
    if shape == "steps":  # plateaus defeat interpolation: it falls back to bisection, at a similar count
        assert fast.calls <= 1.25 * slow.calls
    else:
        assert fast.calls < 0.9 * slow.calls


def test_jobs_give_the_same_results(image_dir, tmp_path) -> None:
    one = harness.run_eval("image", ["jpeg", "webp"], image_dir, targets=(0.5, 1.0), cache_dir=None, progress=False)
    two = harness.run_eval("image", ["jpeg", "webp"], image_dir, targets=(0.5, 1.0), cache_dir=tmp_path / "c",
                           progress=False, jobs=2)
    for name in ("jpeg", "webp"):
        for a, b in zip(one["codecs"][name]["points"], two["codecs"][name]["points"]):
            assert a["bpp"] == b["bpp"] and a["psnr"] == b["psnr"] and a["knob_mean"] == b["knob_mean"]
    assert one["bd_rate"] == two["bd_rate"]
