"""`ncodec fetch` of the peers' own checkpoint files, served over local HTTP as their publishers ship them.

The peer reference scripts (``.ci/<peer>/setup.sh``, run by CI) write, beside the references,
``publisher/<file>``: a checkpoint made by the peer package itself, in its publisher's format and
file name (CompressAI's ``<stem>-<quality>-<sha256[:8]>.pth.tar``, EnCodec's
``encodec_<rate>-<sha256[:8]>.th``, DAC's ``weights_16khz.pth``). Each test serves them from a
local server through a catalogue that points at it, fetches them with the real command, and
checks that the cached model is the peer's model and round-trips media. Skipped without the
references, like the compatibility tests.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image as PILImage

import ncodec
import ncodec.zoo
from http_server import FileServer
from ncodec import cli
from ncodec.models.audio.dac import DACModel
from ncodec.tokenizers import Tokenizer
from ncodec.zoo import from_compressai, from_dac, from_encodec, read_metadata, save_audio_model, save_model
from ncodec.zoo.fetch import load
from peer_refs import PeerRefs

ROOT = Path(__file__).resolve().parents[2]
COMPRESSAI = PeerRefs("NCODEC_COMPRESSAI_REFS", ".ci/compressai/setup.sh", "CompressAI 1.2.8", "CompressAI")
ENCODEC = PeerRefs("NCODEC_ENCODEC_REFS", ".ci/encodec/setup.sh", "EnCodec 0.1.1", "EnCodec")
DAC = PeerRefs("NCODEC_DAC_REFS", ".ci/dac/setup.sh", "descript-audio-codec 1.0.0", "DAC")
PUBLISHER_NAMES = {"compressai": re.compile(r"(bmshj2018-factorized-prior|bmshj2018-hyperprior|mbt2018-mean)"
                                            r"-1-([0-9a-f]{8})\.pth\.tar"),
                   "encodec": re.compile(r"(encodec_24khz|encodec_48khz)-([0-9a-f]{8})\.th"),
                   "dac": re.compile(r"(weights_16khz)\.pth")}


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    srv = FileServer().start()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("NCODEC_CATALOGUE", str(tmp_path / "catalogue.json"))
    monkeypatch.delenv("NCODEC_OFFLINE", raising=False)
    return tmp_path / "models"


def published(refs: PeerRefs, server: FileServer, converter: str) -> list[tuple[dict[str, Any], str, re.Match[str]]]:
    """The publisher files the references hold, served by ``server``: (manifest entry, URL, file-name match)."""
    assert refs.manifest is not None
    folder = Path(os.environ[refs.env])
    out = []
    for model in refs.manifest["models"]:
        info = model.get("publisher_file")
        if not info:
            continue
        name = Path(info["file"]).name
        match = PUBLISHER_NAMES[converter].fullmatch(name)
        assert match, f"{name} is not named as the publisher names its files"
        data = (folder / info["file"]).read_bytes()
        assert len(data) == info["size"]
        server.files[name] = data
        out.append((model, f"{server.url}/ok/{name}", match))
    assert out, f"the {refs.env} references hold no publisher file: rerun {refs.manifest}"
    return out


def write_catalogue(cache: Path, entries: list[dict[str, Any]]) -> None:
    Path(os.environ["NCODEC_CATALOGUE"]).write_text(json.dumps(entries))


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def speech(seconds: float = 2.0) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(ROOT / "samples" / "speech.flac", dtype="int16")
    return data[: int(seconds * rate)], rate


@COMPRESSAI.needed
def test_fetch_compressai_zoo_files(server: FileServer, cache: Path, tmp_path: Path) -> None:
    files = published(COMPRESSAI, server, "compressai")
    write_catalogue(cache, [{"name": f"{m['architecture']}-q1", "url": url, "sha256": match.group(2), "size": None,
                             "licence": "test", "converter": "compressai", "architecture": m["architecture"],
                             "quality": 1} for m, url, match in files])
    with PILImage.open(ROOT / "samples" / "garden.png") as im:
        image = np.asarray(im.convert("RGB"))[:128, :192].copy()
    for model, _, _ in files:
        arch = model["architecture"]
        assert cli.main(["-q", "fetch", f"{arch}-q1"]) == 0
        fetched, facts = ncodec.zoo.load(f"{arch}-q1")
        _, weights, _ = COMPRESSAI.files(model["name"])
        direct = from_compressai(weights, arch, 1)
        assert_same_weights(fetched, direct)
        # a round trip through the codec with the fetched model, as with the directly converted one
        path = tmp_path / f"direct-{arch}-q1.safetensors"
        save_model(direct, path)
        stream = ncodec.encode(image, codec="learned", model=arch, quality=1)
        decoded = ncodec.decode(stream)
        assert np.array_equal(decoded, ncodec.decode(ncodec.encode(image, codec="learned", model=str(path)),
                                                     model=str(path)))
        assert ncodec.info(stream)["model_hash"] == facts["hash"]


@ENCODEC.needed
def test_fetch_encodec_checkpoints_and_compress_with_the_default_model(server: FileServer, cache: Path,
                                                                       tmp_path: Path) -> None:
    files = published(ENCODEC, server, "encodec")
    assert {m["name"] for m, _, _ in files} == {"encodec_24khz", "encodec_48khz"}
    write_catalogue(cache, [{"name": m["name"], "url": url, "sha256": match.group(2), "size": None, "licence": "test",
                             "converter": "encodec", "architecture": m["name"]} for m, url, match in files])
    for model, _, _ in files:
        assert cli.main(["-q", "fetch", model["name"]]) == 0
        assert read_metadata(cache / f"{model['name']}.safetensors")["source_sha256"] == model["publisher_file"]["sha256"]
        _, weights, _ = ENCODEC.files(model["name"])
        fetched, _ = load(model["name"])
        assert_same_weights(fetched, from_encodec(weights, model["name"]))
    # `ncodec compress --codec encodec --model encodec_24khz` takes the fetched file by its name; with no model
    # named it is still the bundled ncodec_24khz
    samples, rate = speech()
    source = tmp_path / "speech.wav"
    soundfile.write(source, samples, rate)
    assert cli.main(["-q", "compress", str(source), str(tmp_path / "a.ncd"), "--codec", "encodec",
                     "--model", "encodec_24khz"]) == 0
    assert cli.main(["-q", "compress", str(source), str(tmp_path / "b.ncd"), "--codec", "encodec"]) == 0
    assert ncodec.info(str(tmp_path / "a.ncd"))["config"]["model"] == "encodec_24khz"
    assert ncodec.info(str(tmp_path / "b.ncd"))["config"]["model"] == "ncodec_24khz"
    assert cli.main(["-q", "decompress", str(tmp_path / "a.ncd"), str(tmp_path / "out.wav")]) == 0
    out, out_rate = soundfile.read(tmp_path / "out.wav", dtype="int16")
    assert out_rate == rate and out.shape == samples.shape
    # the same weights saved directly decode the stream to the same samples
    direct = tmp_path / "direct.safetensors"
    _, weights, _ = ENCODEC.files("encodec_24khz")
    save_audio_model(from_encodec(weights, "encodec_24khz"), direct, "encodec_24khz")
    assert cli.main(["-q", "decompress", str(tmp_path / "a.ncd"), str(tmp_path / "direct.wav"),
                     "--model", str(direct)]) == 0
    assert np.array_equal(soundfile.read(tmp_path / "direct.wav", dtype="int16")[0], out)


@DAC.needed
def test_fetch_dac_release_file_and_tokenize(server: FileServer, cache: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = published(DAC, server, "dac")
    model, url, _ = files[0]
    name = model["name"]
    write_catalogue(cache, [{"name": name, "url": url, "sha256": None, "size": model["publisher_file"]["size"],
                             "licence": "test", "converter": "dac", "architecture": name}])
    assert cli.main(["-q", "fetch", name]) == 1  # DAC publishes no hash: refused without the user's word
    assert cli.main(["fetch", name, "--allow-unpinned"]) == 0
    assert model["publisher_file"]["sha256"] in capsys.readouterr().err
    _, weights, _ = DAC.files(name)
    direct = from_dac(weights, name)
    tokenizer = Tokenizer(name)
    assert isinstance(tokenizer.model, DACModel)
    assert_same_weights(tokenizer.model, direct)
    samples, rate = speech(1.0)
    codes = tokenizer.encode(samples, rate)
    x = tokenizer.prepare(samples, rate)
    assert torch.equal(codes, direct.encode(x))
    wav = tokenizer.decode(codes, length=x.shape[-1])
    assert wav.shape == x.shape and torch.isfinite(wav).all()
    # and through the command line: a folder tokenized with the fetched model, read back and decoded
    folder = tmp_path / "clips"
    folder.mkdir()
    soundfile.write(folder / "a.wav", samples, rate)
    assert cli.main(["-q", "tokenize", str(folder), "--out", str(tmp_path / "t.safetensors"), "--model", name]) == 0
    assert cli.main(["-q", "detokenize", str(tmp_path / "t.safetensors"), "--out", str(tmp_path / "back")]) == 0
    back, back_rate = soundfile.read(tmp_path / "back" / "a.wav", dtype="int16")
    assert back_rate == rate and back.shape == samples.shape
    # the encodec codec codes SEANet models only, and says so
    capsys.readouterr()
    assert cli.main(["compress", str(folder / "a.wav"), str(tmp_path / "a.ncd"), "--codec", "encodec",
                     "--model", name]) == 1
    assert "DAC models tokenize" in capsys.readouterr().err and not (tmp_path / "a.ncd").exists()
