"""The ncodec command: round trips, output rules, exit status, pipes."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncodec.cli import main
from ncodec.media.io import read_audio, read_image


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path, samples) -> Path:
    for name in ("speech.flac", "garden.png"):
        shutil.copy(samples / name, tmp_path / name)
    return tmp_path


def test_audio_roundtrip_default_names(work, capsys):
    src = work / "speech.flac"
    before = digest(src)
    assert main(["compress", str(src)]) == 0
    assert (work / "speech.ncd").exists()
    assert "kbps" in capsys.readouterr().err
    assert main(["decompress", str(work / "speech.ncd")]) == 0
    out = work / "speech.decoded.flac"  # speech.flac exists, so the decoder writes beside it
    assert out.exists(), sorted(p.name for p in work.iterdir())
    assert np.array_equal(read_audio(out).samples, read_audio(src).samples)
    assert digest(src) == before  # the input is never touched


def test_image_roundtrip_explicit_output(work):
    assert main(["-q", "compress", str(work / "garden.png"), str(work / "g.ncd"), "--codec", "wavelet-lossless"]) == 0
    assert main(["-q", "decompress", str(work / "g.ncd"), str(work / "g.png")]) == 0
    assert np.array_equal(read_image(work / "g.png").pixels, read_image(work / "garden.png").pixels)


def test_no_overwrite_without_force(work):
    target = work / "speech.ncd"
    target.write_bytes(b"keep me")
    assert main(["-q", "compress", str(work / "speech.flac")]) == 1
    assert target.read_bytes() == b"keep me"
    assert main(["-q", "compress", str(work / "speech.flac"), "--force"]) == 0
    assert target.read_bytes()[:4] == b"NCDC"


def test_failures_leave_no_files(work, capsys):
    bad = work / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert main(["compress", str(bad), str(work / "bad.ncd")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ncodec: error:") and err.count("\n") == 1  # one line, no traceback
    assert not (work / "bad.ncd").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert main(["-q", "compress", str(work / "speech.flac"), str(work / "s.ncd")]) == 0
    broken = work / "broken.ncd"
    broken.write_bytes((work / "s.ncd").read_bytes()[:-30])
    assert main(["decompress", str(broken), str(work / "b.wav")]) == 1
    assert "truncated" in capsys.readouterr().err.lower()
    assert not (work / "b.wav").exists()


def test_exit_status_for_usage_errors(work, capsys):
    assert main(["decompress", str(work / "garden.png")]) == 1  # no stream: a failure, as gzip and zstd say
    assert main(["compress", str(work / "garden.png"), "--codec", "audio-lossless"]) == 2
    assert main(["compress", str(work / "missing.wav")]) == 1
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_debug_shows_traceback(work, capsys):
    assert main(["--debug", "compress", str(work / "missing.wav")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_info_and_list(work, capsys):
    main(["-q", "compress", str(work / "speech.flac"), str(work / "s.ncd")])
    capsys.readouterr()
    assert main(["info", str(work / "s.ncd")]) == 0
    text = capsys.readouterr().out
    assert "audio-lossless" in text and "kbps" in text and "AUDB" in text
    assert main(["info", "--json", str(work / "s.ncd")]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["sample_rate"] == 24000
    assert main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    models = [r for r in rows if "model" in r]
    rows = [r for r in rows if "model" not in r]
    assert all({"name", "media", "pretrained", "lossless"} <= set(r) for r in rows)
    assert any(m["model"] == "mbt2018-mean-tiny" for m in models)  # the bundled zoo
    assert {r["name"] for r in rows} >= {"audio-lossless", "wavelet-lossless"}


def test_stdin_stdout_pipeline(work):
    png = (work / "garden.png").read_bytes()
    enc = subprocess.run([sys.executable, "-m", "ncodec", "compress", "-", "-", "--codec", "wavelet-lossless"], input=png, capture_output=True,
                         check=True)
    assert enc.stdout[:4] == b"NCDC"
    dec = subprocess.run([sys.executable, "-m", "ncodec", "decompress", "-", "-"], input=enc.stdout,
                         capture_output=True, check=True)
    (work / "piped.png").write_bytes(dec.stdout)
    assert np.array_equal(read_image(work / "piped.png").pixels, read_image(work / "garden.png").pixels)
