"""The ``encodec`` audio codec: zoo files, chunked (streaming) coding, priors, resampling and channels,
``ncodec info``, and hostile streams and model files. Small random-weight models, real speech."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
import torch
from tiny_audio_models import CAUSAL, FRAME, SEGMENTED

import ncodec
from ncodec import api, bitstream, zoo
from ncodec.cli import main
from ncodec.models.audio.encodec import linear_overlap_add, to_encodec_state_dict
from ncodec.codecs.audio.neural import CHUNK_KIND, NeuralAudioCodec, _parse_chunk, model_identity, prior_tables
from ncodec.zoo.audio import build_audio_model, load_audio_model, save_audio_model
from ncodec.train.priors import fit_prior
from ncodec.models.audio.streaming import ChunkPlan, OverlapAdd, StreamingSEANet
from ncodec.errors import BitstreamError, MediaError, ModelFileError, ModelMismatchError
from ncodec.media.io import read_audio
from ncodec.media.types import Audio


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def speech(samples: Path) -> Audio:
    return read_audio(samples / "speech.flac")  # 24 kHz mono, 16-bit, 1.35 s


def _float(audio: Audio) -> torch.Tensor:
    return torch.from_numpy(audio.samples.T.astype(np.float32) / 32768)[None]


def _stereo48(audio: Audio) -> Audio:
    """The speech at 48 kHz, stereo: a delayed, quieter copy on the right."""
    up = ss.resample_poly(audio.samples[:, 0].astype(np.float64) / 32768, 2, 1)
    right = 0.6 * np.concatenate([np.zeros(240), up[:-240]])
    return Audio(np.stack([up, right], axis=1).astype(np.float32), 48000)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory, speech: Audio) -> Path:
    """tiny24 (no prior), tiny24p (prior counted on the speech), tiny48 (segmented stereo, prior), tinyframe (the
    frame-rate pair, prior, fp16 weights)."""
    folder = tmp_path_factory.mktemp("audio-zoo")
    torch.manual_seed(0)
    causal = build_audio_model("seanet", CAUSAL)
    save_audio_model(causal, folder / "tiny24.safetensors", "seanet", CAUSAL)
    fit_prior(causal, [_float(speech)])
    save_audio_model(causal, folder / "tiny24p.safetensors", "seanet", CAUSAL)
    seg = build_audio_model("seanet", SEGMENTED)
    fit_prior(seg, [torch.from_numpy(_stereo48(speech).samples.T.copy())[None]])
    save_audio_model(seg, folder / "tiny48.safetensors", "seanet", SEGMENTED)
    frame = build_audio_model("seanet", FRAME)
    fit_prior(frame, [_float(speech)])
    save_audio_model(frame, folder / "tinyframe.safetensors", "seanet", FRAME, half=True)
    return folder


@pytest.fixture()
def models(zoo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NCODEC_MODELS", str(zoo_dir))
    return zoo_dir


def _chunk_codes(data: bytes, codec: NeuralAudioCodec) -> tuple[torch.Tensor, list[float]]:
    """The codes (and volumes) a stream holds, chunk after chunk."""
    reader = bitstream.Reader(data)
    cfg = reader.header.config
    plan = ChunkPlan(codec.net, cfg["length"], cfg["chunk_seconds"])
    codes, scales = [], []
    for i, chunk in enumerate(c for c in reader if c.kind == CHUNK_KIND):
        c, s = _parse_chunk(chunk.payload, plan[i], cfg["codebooks"], prior_tables(codec.net))
        codes.append(c)
        scales += s
    return torch.cat(codes, dim=-1), scales


# ------------------------------------------------------------------ zoo and model files
def test_audio_zoo_lists_audio_files_only(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = {z.name: z.architecture for z in zoo.audio_zoo_models()}
    assert names == {"tiny24": "seanet", "tiny24p": "seanet", "tiny48": "seanet", "tinyframe": "seanet",
                     "ncodec_24khz": "seanet"}  # and the bundled default
    assert not [z for z in zoo.zoo_models() if z.name.startswith("tiny")]  # the image zoo is unchanged
    assert zoo.find_audio_model("tiny48").path == models / "tiny48.safetensors"
    with pytest.raises(ModelFileError, match="not in the zoo"):
        zoo.find_audio_model("nonesuch")
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "encodec " in listing and "audio models" in listing and "tiny48" in listing
    with pytest.raises(ModelFileError, match="not in the zoo"):
        ncodec.encode(read_audio(Path(__file__).resolve().parents[3] / "samples" / "speech.flac"), codec="encodec",
                      model="nonesuch")


def test_model_files_keep_weights_and_priors(models: Path) -> None:
    plain, facts = load_audio_model(models / "tiny24.safetensors")
    counted, facts_p = load_audio_model(models / "tiny24p.safetensors")
    assert facts["architecture"] == "seanet" and facts["config"]["n_filters"] == 4
    assert int(plain.quantizer.prior.counts.sum()) == 0 and prior_tables(plain) is None
    assert int(counted.quantizer.prior.counts.sum()) > 0 and prior_tables(counted) is not None
    assert facts["hash"] != facts_p["hash"] == model_identity(counted)
    for key, value in plain.state_dict().items():  # the weights are the same, only the prior differs
        if ".prior." not in f".{key}":
            assert torch.equal(value, counted.state_dict()[key]), key


def test_half_model_files(models: Path) -> None:
    """fp16 files (what gets committed) hold every float in half precision and load back as float32."""
    from safetensors import safe_open

    with safe_open(str(models / "tinyframe.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
        assert f.metadata()["dtype"] == "float16"
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    net, facts = load_audio_model(models / "tinyframe.safetensors")
    assert facts["config"]["encoder"] == FRAME["encoder"] and int(net.quantizer.prior.counts.sum()) > 0
    weights = [v for k, v in net.state_dict().items() if v.is_floating_point()]
    assert all(v.dtype == torch.float32 and torch.equal(v, v.half().float()) for v in weights)


def test_encodec_names_load(models: Path, tmp_path: Path) -> None:
    """A state dict in EnCodec's own key names (weight_g / weight_v, _codebook.*) loads as the same model."""
    from safetensors.torch import save_file

    plain, facts = load_audio_model(models / "tiny24.safetensors")
    path = tmp_path / "as_encodec.safetensors"
    save_file({k: v.contiguous() for k, v in to_encodec_state_dict(plain).items()}, str(path),
              metadata={"architecture": "seanet", "config": json.dumps(CAUSAL)})
    _, facts2 = load_audio_model(path)
    assert facts2["hash"] == facts["hash"]


def test_bad_model_files(tmp_path: Path, models: Path) -> None:
    from safetensors.torch import save_file

    state = load_audio_model(models / "tiny24.safetensors")[0].state_dict()
    cases = {
        "noarch": ({"w": torch.zeros(1)}, {}),
        "badarch": (state, {"architecture": "wavenet"}),
        "noconfig": (state, {"architecture": "seanet"}),
        "huge": (state, {"architecture": "seanet", "config": json.dumps({**CAUSAL, "n_filters": 10**6})}),
        "misfit": (state, {"architecture": "seanet", "config": json.dumps({**CAUSAL, "dimension": 32})}),
        "hugeframe": (state, {"architecture": "seanet",
                              "config": json.dumps({**FRAME, "encoder": {"type": "stft", "width": 10**6}})}),
        "badframe": (state, {"architecture": "seanet",
                             "config": json.dumps({**FRAME, "decoder": {"type": "vocos", "layers": 2}})}),
        "oddframe": (state, {"architecture": "seanet", "config": json.dumps({**FRAME, "decoder": "vocos"})}),
        "nan": ({**state, "encoder.model.0.conv.conv.bias": torch.full_like(state["encoder.model.0.conv.conv.bias"],
                                                                           float("nan"))},
                {"architecture": "seanet", "config": json.dumps(CAUSAL)}),
    }
    for name, (tensors, meta) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
        with pytest.raises(ModelFileError):
            load_audio_model(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError):
        load_audio_model(tmp_path / "junk.safetensors")


# ------------------------------------------------------------------ coding
@pytest.mark.parametrize("model", ["tiny24", "tiny24p", "tinyframe"])
def test_chunked_stream_holds_the_models_codes(models: Path, speech: Audio, model: str) -> None:
    """Chunks of 0.3 s are streamed exactly: the stream's codes are the model's on the whole clip, and the
    decoded audio equals a one-chunk stream's to one LSB."""
    codec = NeuralAudioCodec(model=model, bandwidth=6.0, chunk_seconds=0.3)
    data = codec.encode(speech)
    assert len([c for c in bitstream.Reader(data) if c.kind == CHUNK_KIND]) == 5
    codes, _ = _chunk_codes(data, codec)
    assert torch.equal(codes, codec.net.encode(_float(speech), 6.0).codes[0])
    out = ncodec.decode(data)
    assert out[0].shape == speech.samples.shape and out[0].dtype == np.int16 and out[1] == 24000
    whole = ncodec.decode(NeuralAudioCodec(model=model, bandwidth=6.0, chunk_seconds=60).encode(speech))
    assert np.abs(out[0].astype(np.int32) - whole[0].astype(np.int32)).max() <= 1
    ref = codec.net.decode(codec.net.encode(_float(speech), 6.0))[0, 0].detach().numpy()
    assert np.abs(out[0][:, 0] / 32768 - ref).max() < 1e-4


def test_streaming_networks_match_one_call() -> None:
    torch.manual_seed(1)
    model = build_audio_model("seanet", CAUSAL)
    x = 0.1 * torch.randn(2, 1, 24000 + 123)
    z = model.encoder(x)
    stream = StreamingSEANet(model.encoder)
    pieces, start = [], 0
    for n in (3000, 1, 0, 7, 9000):
        pieces.append(stream(x[..., start:start + n]))
        start += n
    pieces.append(stream(x[..., start:], final=True))
    torch.testing.assert_close(torch.cat(pieces, dim=-1), z, rtol=0, atol=1e-6)
    y = model.decoder(z)
    stream = StreamingSEANet(model.decoder)
    parts = [stream(z[..., :1]), stream(z[..., 1:40]), stream(z[..., 40:], final=True)]
    torch.testing.assert_close(torch.cat(parts, dim=-1), y, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="ended"):
        stream(z)
    with pytest.raises(ValueError, match="causal"):
        StreamingSEANet(build_audio_model("seanet", SEGMENTED).encoder)


def test_overlap_add_streams_like_linear_overlap_add() -> None:
    frames = [torch.randn(2, 100), torch.randn(2, 100), torch.randn(2, 100), torch.randn(2, 37)]
    ola = OverlapAdd(90)
    out = torch.cat([ola.add(f, last=i == 3) for i, f in enumerate(frames)], dim=-1)
    torch.testing.assert_close(out, linear_overlap_add(frames, 90), rtol=0, atol=1e-6)


def test_long_signal_is_coded_in_bounded_pieces(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 40 s signal in 2 s chunks: the network never sees more than one chunk of samples at a time."""
    seen: list[int] = []
    original = StreamingSEANet.__call__

    def spy(self: StreamingSEANet, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        seen.append(x.shape[-1])
        return original(self, x, final)

    monkeypatch.setattr(StreamingSEANet, "__call__", spy)
    rng = np.random.default_rng(0)
    audio = Audio((0.1 * rng.standard_normal((40 * 16000, 1))).astype(np.float32), 16000)  # resampled too
    codec = NeuralAudioCodec(model="tiny24", chunk_seconds=2.0)
    data = codec.encode(audio)
    encoder_calls = len(seen)
    assert encoder_calls == 20 and max(seen) == 2 * 24000
    out = api.decode_media(data)
    assert out.samples.shape == audio.samples.shape and out.sample_rate == 16000
    assert max(seen[encoder_calls:]) == 2 * 75  # the decoder gets one chunk of frames at a time


def test_prior_makes_files_smaller(models: Path, speech: Audio) -> None:
    """Fixed coding costs exactly 10 bits per code; the counted prior less (rANS through the core)."""
    sizes = {}
    for model in ("tiny24", "tiny24p"):
        data = NeuralAudioCodec(model=model, bandwidth=3.0).encode(speech)
        payload = sum(len(c.payload) for c in bitstream.Reader(data) if c.kind == CHUNK_KIND)
        sizes[model] = payload
    frames = -(-speech.frames // 320)
    assert sizes["tiny24"] == 18 + -(-4 * frames * 10 // 8)  # chunk head + 10-bit codes
    assert sizes["tiny24p"] < 0.8 * sizes["tiny24"]


def test_info_shows_nominal_and_coded_rates(models: Path, speech: Audio, tmp_path: Path, capsys) -> None:
    data = NeuralAudioCodec(model="tiny24p", bandwidth=6.0).encode(speech)
    info = ncodec.info(data)
    assert info["nominal"].startswith("6.000 kbps (8 codebooks") and "categorical prior" in info["coded"]
    reader = bitstream.Reader(data)
    rates = NeuralAudioCodec.rates(reader.header, reader.chunk_table())
    assert rates["nominal_kbps"] == 6.0 and 0 < rates["coded_kbps"] < 6.0 and rates["bits_per_code"] < 10
    path = tmp_path / "s.ncd"
    path.write_bytes(data)
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "nominal:  6.000 kbps" in text and f"coded:    {rates['coded_kbps']:.3f} kbps" in text


def test_segmented_stereo_model(models: Path, speech: Audio) -> None:
    """Segments (0.25 s, normalised) coded in chunks of 4: the model's codes and volumes, its decoding."""
    audio = _stereo48(speech)
    codec = NeuralAudioCodec(model="tiny48", bandwidth=6.0, chunk_seconds=1.0)
    data = codec.encode(audio)
    x = torch.from_numpy(audio.samples.T.copy())[None]
    ref = codec.net.encode(x, 6.0)
    codes, scales = _chunk_codes(data, codec)
    assert torch.equal(codes, ref.codes[0])
    np.testing.assert_allclose(scales, ref.scales[0].numpy(), rtol=1e-6)
    out = api.decode_media(data)
    assert out.samples.shape == audio.samples.shape and out.samples.dtype == np.float32
    expected = codec.net.decode(ref)[0].T.detach().numpy()
    assert np.abs(out.samples - expected).max() < 1e-5


def test_rates_and_channels(models: Path, speech: Audio) -> None:
    """44.1 kHz stereo into the 24 kHz mono model: coded as the mean at 24 kHz, back as 44.1 kHz stereo
    (both channels alike); mono into the stereo model: coded as two equal channels, back mono."""
    mono44 = ss.resample_poly(speech.samples[:, 0] / 32768, 147, 80)
    stereo = Audio((np.stack([mono44, 0.5 * mono44], axis=1) * 32767).astype(np.int16), 44100)
    out = api.decode_media(ncodec.encode(stereo, codec="encodec", model="tiny24"))
    assert out.sample_rate == 44100 and out.samples.shape == stereo.samples.shape and out.samples.dtype == np.int16
    assert np.array_equal(out.samples[:, 0], out.samples[:, 1])
    mono = Audio(speech.samples, 24000)
    out = api.decode_media(ncodec.encode(mono, codec="encodec", model="tiny48"))
    assert out.sample_rate == 24000 and out.samples.shape == (speech.frames, 1)


def test_bandwidth_choices(models: Path, speech: Audio) -> None:
    for kbps, k in ((1.5, 2), (3.0, 4), (6.0, 8)):
        data = ncodec.encode(speech, codec="encodec", model="tiny24", quality=kbps)
        assert ncodec.info(data)["config"]["codebooks"] == k
    assert ncodec.info(ncodec.encode(speech, codec="encodec", model="tiny24"))["config"]["bandwidth"] == 6.0
    with pytest.raises(MediaError, match="not 12"):
        ncodec.encode(speech, codec="encodec", model="tiny24", bandwidth=12)
    with pytest.raises(MediaError):
        NeuralAudioCodec(model="tiny24", bandwidth=-1)


def test_cli_round_trip(models: Path, speech: Audio, tmp_path: Path, samples: Path) -> None:
    src = tmp_path / "speech.flac"
    src.write_bytes((samples / "speech.flac").read_bytes())
    assert main(["-q", "compress", str(src), str(tmp_path / "s.ncd"), "--codec", "encodec", "--model",
                 "tiny24p", "--quality", "3"]) == 0
    assert main(["-q", "decompress", str(tmp_path / "s.ncd"), str(tmp_path / "out.flac")]) == 0
    assert read_audio(tmp_path / "out.flac").samples.shape == speech.samples.shape


def test_model_mismatch_is_refused(models: Path, speech: Audio) -> None:
    data = ncodec.encode(speech, codec="encodec", model="tiny24p")
    with pytest.raises(ModelMismatchError):
        ncodec.decode(data, model=str(models / "tiny24.safetensors"))


# ------------------------------------------------------------------ hostile streams
def _repack(data: bytes, config: dict | None = None, metadata: dict | None = None, chunks=None) -> bytes:
    header, items = bitstream.unpack(data)
    header = dataclasses.replace(header, config={**header.config, **(config or {})},
                                 metadata={**header.metadata, **(metadata or {})})
    return bitstream.pack(header, items if chunks is None else chunks(items))


def test_hostile_streams(models: Path, speech: Audio) -> None:
    fixed = ncodec.encode(speech, codec="encodec", model="tiny24", chunk_seconds=0.5)
    counted = ncodec.encode(speech, codec="encodec", model="tiny24p", chunk_seconds=0.5)
    seg = ncodec.encode(_stereo48(speech), codec="encodec", model="tiny48", chunk_seconds=0.5)
    head = 18

    def payload(items, i, new):
        return [bitstream.Chunk(c.kind, new(c.payload) if j == i else c.payload) for j, c in enumerate(items)]

    from ncodec.media.resample import resampled_length

    weird = resampled_length(10**6, 9_999_991, 24000)
    bad = [
        (_repack(fixed, config={"codebooks": 99}), "99 codebooks"),
        (_repack(fixed, config={"codebooks": "eight"}), "missing audio metadata"),
        (_repack(fixed, config={"length": 5}), "do not match"),
        (_repack(fixed, metadata={"frames": 10**15}), "impossible audio parameters"),
        (_repack(fixed, metadata={"sample_rate": 9_999_991, "frames": 10**6}, config={"length": weird}), "filter"),
        (_repack(fixed, config={"chunk_seconds": 0.0}), "chunk_seconds"),
        (_repack(fixed, config={"sample_rate": 16000}), "sample_rate=16000"),
        (_repack(fixed, config={"coding": "categorical"}), "tables"),
        (_repack(counted, config={"tables": "0" * 64}), "tables"),
        (_repack(fixed, chunks=lambda items: items[:-1]), "ends after 2 of its 3 chunks"),
        (_repack(fixed, chunks=lambda items: items + items[-1:]), "more than the 3 chunks"),
        (_repack(fixed, chunks=lambda items: items[1:] + items[:1]), "the header's plan says"),
        (_repack(fixed, chunks=lambda items: payload(items, 0, lambda p: p[:-1])), "code bytes"),
        (_repack(fixed, chunks=lambda items: payload(items, 0, lambda p: p[:10])), "shorter than its header"),
        (_repack(counted, chunks=lambda items: payload(items, 1, lambda p: p[:head + 30])), "rANS"),
        (_repack(counted, chunks=lambda items: payload(items, 1, lambda p: p[:head] + bytes(len(p) - head))),
         "rANS"),
        (_repack(seg, chunks=lambda items: payload(items, 0, lambda p: p[:head] + b"\x00\x00\xc0\x7f" + p[head + 4:])),
         "volume"),
        (fixed[:-30], "truncated"),
    ]
    for data, message in bad:
        with pytest.raises(BitstreamError, match=message):
            ncodec.decode(data)


def test_rans_escape_codes_are_refused(models: Path, speech: Audio) -> None:
    """A categorical stream whose symbols escape past the codebook decodes to an error, not to bad indices."""
    from ncodec.entropy import rans

    data = ncodec.encode(speech, codec="encodec", model="tiny24p", chunk_seconds=60)
    codec = NeuralAudioCodec(model="tiny24p")
    tables = prior_tables(codec.net)
    frames = -(-speech.frames // 320)
    symbols = np.zeros(8 * frames, dtype=np.int64)
    symbols[5] = 5000  # outside [0, 1024): coded through the escape
    forged = rans.encode(symbols, np.tile(np.arange(8, dtype=np.int32), frames), tables)

    def swap(items):
        c = items[0]
        return [bitstream.Chunk(c.kind, c.payload[:18] + forged)] + list(items[1:])

    with pytest.raises(BitstreamError, match="outside its codebook"):
        ncodec.decode(_repack(data, chunks=swap))
