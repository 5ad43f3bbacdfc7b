"""The `learned` image codec: zoo files, container round trips, exact decoding across configurations,
hostile streams and model files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import ncodec
from ncodec import bitstream
from ncodec.codecs.image.learned import LearnedImageCodec
from ncodec.models.image.hyperprior import (FactorizedPrior, GaussianMixtureHyperprior, MeanScaleHyperprior,
                                            ScaleHyperprior)
from ncodec.errors import BitstreamError, MediaError, ModelFileError, ModelMismatchError
from ncodec.codecs.registry import default_codec
from ncodec.zoo import find_model, load_model, save_model, state_dict_hash, zoo_models

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "samples" / "garden.png"


def _lively(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights scaled so latents span several quantization bins (untrained nets give ~0)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        last = model.g_a[-1]
        last.weight.mul_(6.0)
        last.bias.normal_(0, 0.5)
    return model


@pytest.fixture()
def zoo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private zoo with a tiny model of every architecture, two qualities of one."""
    torch.manual_seed(0)
    save_model(_lively(MeanScaleHyperprior(16, 24), 1), tmp_path / "tiny-q2.safetensors", quality=2)
    save_model(_lively(MeanScaleHyperprior(16, 24), 2), tmp_path / "tiny-q5.safetensors", quality=5)
    save_model(_lively(ScaleHyperprior(16, 24), 3), tmp_path / "tinyscale-q1.safetensors")
    save_model(_lively(FactorizedPrior(16, 24), 4), tmp_path / "tinyfact-q1.safetensors")
    save_model(_lively(GaussianMixtureHyperprior(16, 24, K=2), 5), tmp_path / "tinygmm-q1.safetensors")
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path))
    return tmp_path


def _image(h: int = 70, w: int = 90) -> np.ndarray:
    return np.asarray(PILImage.open(SAMPLE).convert("RGB"))[40:40 + h, 60:60 + w].copy()


def test_zoo_finds_models_by_name_and_quality(zoo_dir: Path) -> None:
    names = {(z.name, z.quality) for z in zoo_models()}
    assert {("tiny", 2), ("tiny", 5), ("tinyscale", 1), ("tinyfact", 1), ("tinygmm", 1)} <= names
    assert find_model("tiny", 5).path == zoo_dir / "tiny-q5.safetensors"
    assert find_model("tiny").quality in (2, 5)
    with pytest.raises(ModelFileError, match="no quality 3"):
        find_model("tiny", 3)
    with pytest.raises(ModelFileError, match="not in the zoo"):
        find_model("nonesuch")


@pytest.mark.parametrize("name", ["tiny", "tinyscale", "tinyfact", "tinygmm"])
def test_round_trip_matches_the_model(zoo_dir: Path, name: str) -> None:
    """The container decodes to what the network's own compress/decompress gives, any size (padding)."""
    img = _image(70, 90)
    data = ncodec.encode(img, codec="learned", model=name)
    out = ncodec.decode(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    codec = LearnedImageCodec(model=name)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    enc = codec.net.compress(x)
    ref = codec.net.decompress(enc["strings"], enc["shape"], size=enc["size"])["x_hat"]
    ref_px = torch.round(ref[0] * 255).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(out, ref_px)
    info = ncodec.info(data)
    assert info["codec"] == "learned" and info["config"]["model"] == name
    assert info["model_hash"] == state_dict_hash(codec.net.state_dict())


def test_gray_images_and_quality_pick_files(zoo_dir: Path) -> None:
    gray = _image(48, 64)[..., :1].copy()
    out = ncodec.decode(ncodec.encode(gray, codec="learned", model="tiny", quality=5))
    assert out.shape == gray.shape
    a = ncodec.info(ncodec.encode(_image(), codec="learned", model="tiny", quality=2))
    b = ncodec.info(ncodec.encode(_image(), codec="learned", model="tiny", quality=5))
    assert (a["config"]["quality"], b["config"]["quality"]) == (2, 5) and a["model_hash"] != b["model_hash"]
    with pytest.raises(MediaError, match="integer qualities"):
        LearnedImageCodec(model="tiny", quality=2.5)


def _decoded_latent(codec: LearnedImageCodec, data: bytes) -> torch.Tensor:
    reader = bitstream.Reader(data)
    chunks = {c.kind: bytes(c.payload) for c in reader}
    strings = [[chunks["LATY"]], [chunks["LATZ"]]]
    return codec.net._latent_decompress(strings, reader.header.config["latent"]).to(torch.float64)


@pytest.mark.parametrize("name", ["tiny", "tinygmm"])
def test_decoding_is_exact_across_configurations(zoo_dir: Path, name: str) -> None:
    """Encode with 2 threads, float32, NCHW; decode with 1 thread, float64 weights, channels-last:
    the same latents (symbols + means) come out, bit for bit."""
    img = _image(96, 128)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        encoder = LearnedImageCodec(model=name)
        data = ncodec.encode(img, codec="learned", model=name)
        reference = _decoded_latent(encoder, data)
        torch.set_num_threads(1)
        decoder = LearnedImageCodec(model=name)
        decoder.net.double().to(memory_format=torch.channels_last)
        other = _decoded_latent(decoder, data)
        assert torch.equal(reference, other)
        out = decoder.decode(bitstream.Reader(data))
        assert out.pixels.shape == img.shape
    finally:
        torch.set_num_threads(threads)


def test_the_exact_path_is_what_streams_use(zoo_dir: Path) -> None:
    codec = LearnedImageCodec(model="tiny")
    assert codec.net.exact
    z = torch.randn(1, 16, 2, 3) * 3
    exact = codec.net.entropy_parameters(z)
    assert exact.dtype == torch.float64
    assert torch.equal(exact * 2**14, torch.round(exact * 2**14))  # fixed point, 14 fractional bits
    codec.net.exact = False
    assert codec.net.entropy_parameters(z).dtype == torch.float32


def test_streams_need_the_same_weights(zoo_dir: Path, tmp_path: Path) -> None:
    data = ncodec.encode(_image(), codec="learned", model="tiny", quality=2)
    # decoding with other weights given explicitly is refused by the model hash
    with pytest.raises(ModelMismatchError):
        ncodec.decode(data, model=str(zoo_dir / "tiny-q5.safetensors"))
    # the same weights under another path decode
    copy = tmp_path / "elsewhere" / "mine.safetensors"
    copy.parent.mkdir()
    copy.write_bytes((zoo_dir / "tiny-q2.safetensors").read_bytes())
    assert ncodec.decode(data, model=str(copy)).shape == _image().shape
    # a zoo without the model: a clear error naming it
    (zoo_dir / "tiny-q2.safetensors").unlink()
    with pytest.raises(ModelFileError, match="'tiny' quality 2"):
        ncodec.decode(data)


def test_hostile_streams_give_ncodec_errors(zoo_dir: Path) -> None:
    data = ncodec.encode(_image(), codec="learned", model="tiny")
    reader = bitstream.Reader(data)
    header, chunks = reader.header, [(c.kind, bytes(c.payload)) for c in reader]

    def repack(config: dict | None = None, meta: dict | None = None, keep: list | None = None) -> bytes:
        h = bitstream.Header(header.codec, {**header.config, **(config or {})}, {**header.metadata, **(meta or {})},
                             header.model_hash)
        return bitstream.pack(h, keep if keep is not None else chunks)

    bad = [repack(config={"latent": [4000, 4000]}), repack(meta={"height": 1 << 16, "width": 1 << 16}),
           repack(config={"latent": "x"}), repack(keep=chunks[:1]), repack(keep=chunks + chunks[:1]),
           repack(config={"M": 999}), repack(keep=[(chunks[0][0], chunks[0][1][:5]), chunks[1]])]
    for stream in bad:
        with pytest.raises(ncodec.Error):
            ncodec.decode(stream)
    for cut in (10, len(data) // 2, len(data) - 3):
        with pytest.raises(BitstreamError):
            ncodec.decode(data[:cut])


def test_bad_model_files_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    junk = tmp_path / "junk-q1.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ModelFileError):
        load_model(junk)
    model = MeanScaleHyperprior(16, 24)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "nometa.safetensors"))
    with pytest.raises(ModelFileError, match="architecture"):
        load_model(tmp_path / "nometa.safetensors")
    save_file(state, str(tmp_path / "huge.safetensors"), metadata={"architecture": "mbt2018-mean", "N": "100000",
                                                                   "M": "24"})
    with pytest.raises(ModelFileError, match="implausible"):
        load_model(tmp_path / "huge.safetensors")
    save_file(state, str(tmp_path / "wrong.safetensors"), metadata={"architecture": "mbt2018-mean", "N": "16",
                                                                    "M": "32"})
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(tmp_path / "wrong.safetensors")
    state["g_a.0.weight"] = torch.full_like(state["g_a.0.weight"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"), metadata={"architecture": "mbt2018-mean", "N": "16",
                                                                  "M": "24"})
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(tmp_path / "nan.safetensors")
    with pytest.raises(ModelFileError, match=".safetensors"):
        load_model(tmp_path / "model.pth")


def test_default_image_codec_depends_on_the_image(zoo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ncodec.media.types import Image

    rgb8 = Image(_image(), 8)
    rgb16 = Image(_image().astype(np.uint16) * 257, 16)
    rgba8 = Image(np.concatenate([_image(), np.full((70, 90, 1), 255, np.uint8)], axis=2), 8)
    monkeypatch.setattr("ncodec.codecs.image.learned.DEFAULT_MODEL", "tiny")
    assert default_codec("image", rgb8) == "learned-wavelet"  # wavelet + the bundled restoration network
    assert default_codec("image", rgb16) == default_codec("image", rgba8) == "wavelet-lossless"
    monkeypatch.setattr("ncodec.codecs.image.learned_wavelet.DEFAULT_MODEL", "absent")
    assert default_codec("image", rgb8) == "wavelet"  # without its network: the best classical one
    monkeypatch.setattr("ncodec.codecs.image.learned.DEFAULT_MODEL", "absent")
    assert default_codec("image", rgb8) == "wavelet"


def test_cli_round_trip(zoo_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    PILImage.fromarray(_image(64, 80)).save(src)
    run = [sys.executable, "-m", "ncodec"]
    subprocess.run(run + ["compress", str(src), "--codec", "learned", "--model", "tiny", "--quality", "5"],
                   check=True, capture_output=True)
    stream = src.with_suffix(".ncd")
    info = subprocess.run(run + ["info", str(stream)], check=True, capture_output=True, text=True).stdout
    assert "tiny q5" in info
    subprocess.run(run + ["decompress", str(stream), str(tmp_path / "out.png")], check=True,
                   capture_output=True)
    assert np.asarray(PILImage.open(tmp_path / "out.png")).shape == (64, 80, 3)


def test_batches_code_each_image_alone(zoo_dir: Path) -> None:
    """A batch gives one stream per image, each equal to coding that image by itself."""
    codec = LearnedImageCodec(model="tiny")
    a, b = _image(64, 64), np.asarray(PILImage.open(SAMPLE).convert("RGB"))[100:164, 200:264].copy()
    x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float() / 255
    enc = codec.net.compress(x)
    assert [len(s) for s in enc["strings"]] == [2, 2]
    for i in range(2):
        alone = codec.net.compress(x[i:i + 1])
        assert [s[0] for s in alone["strings"]] == [s[i] for s in enc["strings"]]
    out = codec.net.decompress(enc["strings"], enc["shape"], size=enc["size"])["x_hat"]
    assert out.shape == x.shape
