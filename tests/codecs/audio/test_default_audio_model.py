"""The bundled audio model (ncodec_24khz): what `Tokenizer()`, `ncodec tokenize` and ``--codec encodec`` use when
no model is named; trained weights, fp16, listed as pretrained, streaming, and better than an untrained model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ncodec
from ncodec.cli import main
from ncodec.codecs.audio.neural import DEFAULT_MODEL, NeuralAudioCodec
from ncodec.eval.metrics import mel_distance
from ncodec.media.io import read_audio
from ncodec.tokenizers import Tokenizer
from ncodec.zoo.audio import find_audio_model, load_audio_model
from ncodec.zoo.files import BUNDLED_DIR, read_metadata

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def bundled_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user cache or $NCODEC_MODELS: the zoo holds what the package ships."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NCODEC_MODELS", raising=False)
    return BUNDLED_DIR / f"{DEFAULT_MODEL}.safetensors"


def test_the_default_is_bundled_trained_and_small(bundled_only: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert DEFAULT_MODEL == "ncodec_24khz" and find_audio_model(DEFAULT_MODEL).path == bundled_only
    meta = read_metadata(bundled_only)
    assert int(meta["steps"]) >= 1000 and meta["dtype"] == "float16" and int(meta["prior_frames"]) > 0
    assert bundled_only.stat().st_size <= 40 * 2**20
    net, facts = load_audio_model(bundled_only)
    assert net.sample_rate == 24000 and net.frame_rate == 75 and net.target_bandwidths == [1.5, 3.0, 6.0, 12.0]
    assert facts["config"]["causal"] is True
    assert main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if r.get("model") == DEFAULT_MODEL)
    assert row["pretrained"] is True and row["default"] is True and row["steps"] == int(meta["steps"])


def test_tokenizer_and_codec_default_to_it(bundled_only: Path, samples: Path, tmp_path: Path) -> None:
    speech = read_audio(samples / "speech.flac")
    tok = Tokenizer()
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks) == (24000, 75, 8)  # 6 kbps
    wav = torch.from_numpy(speech.samples.T.astype(np.float32) / 32768)
    codes = tok.encode(wav, speech.sample_rate)
    assert codes.shape == (1, 8, -(-speech.frames // 320))
    stream = tmp_path / "s.ncd"
    assert main(["-q", "compress", str(samples / "speech.flac"), str(stream), "--codec", "encodec"]) == 0
    info = ncodec.info(str(stream))
    assert info["config"]["model"] == DEFAULT_MODEL and info["config"]["bandwidth"] == 6.0
    assert info["config"]["coding"] == "categorical"  # the counted prior, through rANS
    decoded = ncodec.decode(stream.read_bytes())
    assert decoded[0].shape == speech.samples.shape
    codec = NeuralAudioCodec()
    assert codec.facts == {} and codec.net.name == DEFAULT_MODEL


def test_it_codes_speech_far_better_than_an_untrained_model(bundled_only: Path, samples: Path) -> None:
    """Mel distance of the bundled speech sample at 6 and 12 kbps: the trained weights against the same
    architecture untrained (a model that did not learn, or weights that did not load, fails this)."""
    speech = read_audio(samples / "speech.flac")
    net, facts = load_audio_model(bundled_only)
    untrained = type(net).build(**{k: v for k, v in facts["config"].items()})
    x = torch.from_numpy(speech.samples.T.astype(np.float32) / 32768)[None]
    untrained.quantizer.train()
    with torch.no_grad():
        untrained.quantizer(untrained.encoder(x))  # k-means codebooks from the clip itself
    untrained.eval()
    ref = x[0, 0].numpy()
    for bandwidth in (6.0, 12.0):
        with torch.no_grad():
            ours = net.decode(net.encode(x, bandwidth))[0, 0, :ref.shape[0]].numpy()
            base = untrained.decode(untrained.encode(x, bandwidth))[0, 0, :ref.shape[0]].numpy()
        trained_mel, untrained_mel = mel_distance(ref, ours, 24000), mel_distance(ref, base, 24000)
        assert trained_mel < 2.5 and trained_mel < 0.6 * untrained_mel, (bandwidth, trained_mel, untrained_mel)
