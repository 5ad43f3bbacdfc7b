"""Audio training losses, the multi-scale STFT discriminator, and scripts/train_audio.py end to end."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from ncodec.train.discriminators import (MultiScaleSTFTDiscriminator, STFTDiscriminator, discriminator_hinge_loss,
                                         feature_matching_loss, generator_hinge_loss)
from ncodec.train.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss, stft_magnitude
from ncodec.eval.metrics import mel_distance

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def _speechlike(batch: int = 2, length: int = 6000, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with a decaying envelope and a little noise, ``[B, 1, T]`` at 24 kHz."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 24000
    out = []
    for _ in range(batch):
        f0 = 100 + 150 * torch.rand((), generator=g)
        x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 8))
        out.append(0.2 * x * torch.exp(-3 * t) + 0.01 * torch.randn(length, generator=g))
    return torch.stack(out)[:, None]


LOSSES = [lambda: MultiScaleMelLoss(24000), lambda: MultiResolutionSTFTLoss()]


@pytest.mark.parametrize("make", LOSSES, ids=["mel", "stft"])
def test_losses_zero_for_identical_and_grow_with_noise(make) -> None:
    loss, x = make(), _speechlike()
    assert float(loss(x, x)) == 0.0
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    values = [float(loss(x + level * noise, x)) for level in (0.001, 0.01, 0.1)]
    assert 0 < values[0] < values[1] < values[2]


@pytest.mark.parametrize("make", LOSSES, ids=["mel", "stft"])
def test_gradients_flow_and_amp_is_float32(make) -> None:
    loss, x = make(), _speechlike()
    for start in (x.clone(), x + 0.05 * torch.randn_like(x)):  # identical signals too: no NaN from norms / abs
        est = start.requires_grad_()
        loss(est, x).backward()
        assert est.grad is not None and torch.isfinite(est.grad).all()
    assert est.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x.bfloat16() + 0.01, x)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_mel_loss_is_the_validation_metric() -> None:
    x = _speechlike(1)
    y = x + 0.02 * torch.randn_like(x)
    ours = float(MultiScaleMelLoss(24000)(y, x))
    metric = mel_distance(x[0].T.numpy(), y[0].T.numpy(), 24000)
    assert ours == pytest.approx(metric, rel=1e-4)


def test_loss_shapes_and_short_signals() -> None:
    mel, stft = MultiScaleMelLoss(16000), MultiResolutionSTFTLoss()
    short = torch.randn(3, 2, 700)
    assert torch.isfinite(mel(short, short.flip(-1))) and torch.isfinite(stft(short, short.flip(-1)))
    assert stft_magnitude(torch.randn(2, 3, 4096), 512).shape == (2, 3, 257, 33)
    with pytest.raises(ValueError):
        mel(short, short[..., :-1])
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss((512,), (128,), (1024,))


# ------------------------------------------------------------------ discriminator
def test_discriminator_shapes_and_feature_maps() -> None:
    disc = MultiScaleSTFTDiscriminator(filters=8, n_ffts=(1024, 2048, 512))
    x = torch.randn(2, 1, 8000)
    logits, fmaps = disc(x)
    assert len(logits) == len(fmaps) == 3
    for n_fft, logit, maps in zip((1024, 2048, 512), logits, fmaps):
        frames = (8000 - n_fft) // (n_fft // 4) + 1
        bins = n_fft // 2 + 1
        assert len(maps) == 5  # first conv, three dilated strided convs, last conv
        assert [tuple(m.shape[:3]) for m in maps] == [(2, 8, frames)] * 5
        assert [m.shape[3] for m in maps] == [bins, (bins + 1) // 2, (bins + 3) // 4, (bins + 7) // 8, (bins + 7) // 8]
        assert logit.shape == (2, 1, frames, (bins + 7) // 8)
    stereo = STFTDiscriminator(filters=4, in_channels=2, n_fft=256)
    assert stereo.spectrogram(torch.randn(1, 2, 1000)).shape[:2] == (1, 4)
    logit, _ = stereo(torch.randn(1, 2, 100))  # shorter than one window: padded to one frame
    assert logit.shape[2] == 1
    with pytest.raises(ValueError):
        stereo(torch.randn(1, 1, 1000))


def test_hinge_and_feature_matching_losses() -> None:
    real, fake = [torch.full((2, 1, 3, 4), 2.0)], [torch.full((2, 1, 3, 4), -3.0)]
    assert float(discriminator_hinge_loss(real, fake)) == 0.0
    assert float(discriminator_hinge_loss(fake, real)) == pytest.approx(4.0 + 3.0)
    assert float(generator_hinge_loss(fake)) == pytest.approx(4.0)
    assert float(generator_hinge_loss(real)) == 0.0
    maps = [[torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 3)]]
    assert float(feature_matching_loss(maps, maps)) == 0.0
    assert float(feature_matching_loss(maps, [[2 * m for m in maps[0]]])) == pytest.approx(1.0)


def test_adversarial_gradients_reach_the_generator_only() -> None:
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(filters=4, n_ffts=(256, 512))
    x = _speechlike(2, 4000)
    y = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    disc.requires_grad_(False)
    fake, fake_maps = disc(y)
    with torch.no_grad():
        _, real_maps = disc(x)
    (generator_hinge_loss(fake) + feature_matching_loss(real_maps, fake_maps)).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    disc.requires_grad_(True)
    real, _ = disc(x)
    fake, _ = disc(y.detach())
    discriminator_hinge_loss(real, fake).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in disc.parameters())


# ------------------------------------------------------------------ training script
@pytest.fixture(scope="module")
def train_audio() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_audio", ROOT / "scripts" / "train_audio.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_audio"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def speech_dir(tmp_path: Path, samples: Path) -> Path:
    folder = tmp_path / "speech"
    folder.mkdir()
    shutil.copy(samples / "speech.flac", folder / "speech.flac")
    return folder


def test_segments_are_resampled_without_edge_transients(train_audio: ModuleType, tmp_path: Path) -> None:
    import soundfile as sf

    folder = tmp_path / "music"
    folder.mkdir()
    sf.write(folder / "dc.wav", np.full((2 * 44100, 2), 0.25, np.float32), 44100)  # stereo DC at 44.1 kHz
    sf.write(folder / "short.flac", np.full(1000, 0.5, np.float32), 48000)
    files = train_audio.scan_audio([folder])
    sampler = train_audio.SegmentSampler(files, 24000, 0.5)
    gen = np.random.default_rng(3)
    for _ in range(8):
        seg = sampler.read(files[0], gen)
        assert seg.shape == (1, 12000)
        assert torch.allclose(seg, torch.full_like(seg, 0.25), atol=2e-3)
    short = sampler.read(files[1], gen)  # shorter than a segment: zero-padded
    assert short.shape == (1, 12000) and float(short[0, 100]) == pytest.approx(0.5, abs=2e-3)
    assert float(short[0, -1]) == 0.0
    assert sampler.batch(3, gen).shape == (3, 1, 12000)


def test_bandwidths_from_codebooks(train_audio: ModuleType) -> None:
    assert train_audio.bandwidths_for(16, 75) == [1.5, 3.0, 6.0, 12.0]
    assert train_audio.bandwidths_for(6, 50) == [1.0, 2.0, 3.0]
    args = train_audio.parse_args(["--data", "d", "--out", "/tmp/x", "--tiny", "--codebooks", "8", "--ratios",
                                   "8,6,5", "--filters", "2"])
    arch, config = train_audio.model_config(args)
    model = train_audio.build(arch, config)
    assert model.frame_rate == 100 and model.quantizer.num_codebooks == 8 and model.encoder.n_filters == 2
    assert [model.num_codebooks(b) for b in model.target_bandwidths] == [2, 4, 8]
    with pytest.raises(SystemExit):
        train_audio.parse_args(["--data", "d", "--out", "/tmp/x", "--preset", "encodec_24khz", "--filters", "8"])


def test_training_step_updates_the_model(train_audio: ModuleType, speech_dir: Path, tmp_path: Path) -> None:
    args = train_audio.parse_args(["--data", str(speech_dir), "--out", str(tmp_path / "run"), "--tiny", "--steps", "4",
                                   "--adversarial", "--adv-warmup", "1", "--segment", "0.25", "--batch", "2"])
    torch.manual_seed(0)
    model = train_audio.build(*train_audio.model_config(args))
    trainer = train_audio.Trainer(model, args, torch.device("cpu"))
    sampler = train_audio.SegmentSampler(train_audio.scan_audio(args.data), model.sample_rate, args.segment)
    gen = np.random.default_rng(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    records = [trainer.step(sampler.batch(2, gen), step) for step in range(2)]
    for r in records:
        assert all(math.isfinite(v) for v in r.values())
        assert {"mel", "stft_sc", "stft_mag", "commit", "disc", "adv", "feat", "loss", "grad"} <= set(r)
        assert 2 <= r["codebooks"] <= 16
    assert bool(model.quantizer.levels[0].initted)  # k-means initialised on the first batch
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("encoder" in k for k in changed) and any("decoder" in k for k in changed)
    assert any(k.endswith(".embed") for k in changed)  # EMA codebooks moved
    drawn = trainer.active_codebooks(1000)
    assert set(drawn.tolist()) == {2, 4, 8, 16}


def test_train_audio_end_to_end(train_audio: ModuleType, speech_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from ncodec.cli import main as cli
    from ncodec.media.io import read_audio

    out = tmp_path / "run"
    common = ["--data", str(speech_dir), "--val", str(speech_dir), "--val-max", "1", "--tiny", "--segment", "0.5",
              "--batch", "2", "--prior-seconds", "2", "--val-prior-seconds", "1", "--out", str(out),
              "--name", "tinyrun"]
    path = train_audio.main([*common, "--steps", "2", "--val-every", "2"])
    text = capsys.readouterr().out
    record = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    assert record["step"] == 2 and set(record["val"]) == {"1.5", "3", "6", "12"}
    for band, v in record["val"].items():
        assert v["nominal_kbps"] == float(band) and 0 < v["coded_kbps"] < v["kbps"]
        assert math.isfinite(v["mel"])
    assert path == out / "tinyrun.safetensors" and path.is_file()
    train_audio.main([*common, "--steps", "3", "--val-every", "100"])  # resumes at step 2
    assert "resumed" in capsys.readouterr().out
    assert len((out / "log.jsonl").read_text().splitlines()) == 3
    stream, wav = tmp_path / "s.ncd", tmp_path / "s.wav"
    assert cli(["-q", "compress", str(speech_dir / "speech.flac"), str(stream), "--codec", "encodec", "--model",
                str(path), "--quality", "3"]) == 0
    assert cli(["-q", "decompress", str(stream), str(wav), "--model", str(path)]) == 0
    assert read_audio(wav).samples.shape == read_audio(speech_dir / "speech.flac").samples.shape
    capsys.readouterr()
    assert cli(["info", str(stream)]) == 0
    info = capsys.readouterr().out
    assert "tinyrun (seanet" in info and "categorical prior" in info


def test_gain_augmentation(train_audio: ModuleType, speech_dir: Path) -> None:
    """Segments are scaled by gains within +-gain_db (a fixed draw per seed); 0 leaves them as read."""
    files = train_audio.scan_audio([speech_dir])
    plain = train_audio.SegmentSampler(files, 24000, 0.5).batch(16, np.random.default_rng(5))
    scaled = train_audio.SegmentSampler(files, 24000, 0.5, gain_db=6.0).batch(16, np.random.default_rng(5))
    ratio = scaled.abs().amax(dim=-1) / plain.abs().amax(dim=-1)
    db = 20 * torch.log10(ratio)
    assert db.abs().max() <= 6.0 + 1e-4 and db.std() > 1.0


def test_frame_rate_model_exports_and_starts_from_an_export(train_audio: ModuleType, speech_dir: Path,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--encoder stft / --decoder vocos train; --export writes an fp16 zoo file with the steps at each checkpoint;
    --init starts a new run from it (weights and step count); another size is refused."""
    from safetensors import safe_open

    from ncodec.zoo.audio import load_audio_model

    assert train_audio.frame_net("stft:width=16,blocks=1") == {"type": "stft", "width": 16, "blocks": 1}
    export = tmp_path / "committed" / "frame.safetensors"
    common = ["--data", str(speech_dir), "--tiny", "--segment", "0.5", "--batch", "2", "--prior-seconds", "2",
              "--encoder", "stft:width=16,blocks=1", "--decoder", "vocos:width=16,blocks=1", "--stft-weight", "0",
              "--amp"]
    train_audio.main([*common, "--steps", "3", "--out", str(tmp_path / "a"), "--export", str(export),
                      "--ckpt-minutes", "0"])
    with safe_open(str(export), "pt") as f:
        assert f.metadata()["steps"] == "3" and f.metadata()["dtype"] == "float16"
    model, facts = load_audio_model(export)
    assert facts["config"]["encoder"]["type"] == "stft" and int(model.quantizer.prior.counts.sum()) > 0
    capsys.readouterr()
    path = train_audio.main([*common, "--steps", "5", "--out", str(tmp_path / "b"), "--init", str(export)])
    assert "starting from" in capsys.readouterr().out
    assert len((tmp_path / "b" / "log.jsonl").read_text().splitlines()) == 2  # steps 4 and 5
    assert load_audio_model(path)[1]["config"]["decoder"] == {"type": "vocos", "width": 16, "blocks": 1}
    with pytest.raises(SystemExit, match="another architecture"):
        bigger = [a.replace("stft:width=16", "stft:width=24") for a in common]
        train_audio.main([*bigger, "--steps", "5", "--out", str(tmp_path / "c"), "--init", str(export)])


def test_band_limit_augmentation(train_audio: ModuleType, speech_dir: Path) -> None:
    """low_pass leaves nothing above its cutoff and the band below as it was; with band_limit=1 every segment
    comes out band-limited at half one of the source rates."""
    from ncodec.train.audio import SOURCE_RATES, low_pass

    x = torch.randn(2, 24000, generator=torch.Generator().manual_seed(0))
    y = low_pass(x, 24000, 4000.0)
    spec_x, spec_y = torch.fft.rfft(x).abs(), torch.fft.rfft(y).abs()
    freqs = torch.fft.rfftfreq(24000, 1 / 24000)
    assert spec_y[:, freqs >= 4000].max() < 1e-3
    torch.testing.assert_close(spec_y[:, freqs < 3790], spec_x[:, freqs < 3790], rtol=1e-4, atol=1e-3)
    files = train_audio.scan_audio([speech_dir])
    batch = train_audio.SegmentSampler(files, 24000, 0.5, band_limit=1.0).batch(6, np.random.default_rng(1))
    spec = torch.fft.rfft(batch[:, 0]).abs()
    freqs = torch.fft.rfftfreq(batch.shape[-1], 1 / 24000)
    for s in spec:  # each segment is empty above one of the cutoffs
        assert any(s[freqs >= r / 2].max() < 1e-4 * s.max() for r in SOURCE_RATES if r < 24000)
