"""What a new user must be able to trust (issue: no silent data loss, errors as one line): 16-bit
colour PNG kept whole, the input never overwritten, output suffixes that mean what they say,
`info` that checks the CRCs, one-line errors with documented exit codes, fuzzed options and paths."""
from __future__ import annotations

import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ncodec.cli import main
from ncodec.media.io import read_audio, read_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def work(tmp_path: Path, samples: Path) -> Path:
    for name in ("speech.flac", "garden.png"):
        shutil.copy(samples / name, tmp_path / name)
    return tmp_path


def _wide_png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """A 16-bit PNG whose rows use the given filter types in turn (a reference encoder, written plainly)."""
    h, w, c = pixels.shape
    raw = pixels.astype(">u2").view(np.uint8).reshape(h, w * 2 * c).astype(np.int64)
    bpp = 2 * c
    body = bytearray()
    prev = np.zeros(w * bpp, dtype=np.int64)
    for y in range(h):
        kind, cur = filters[y % len(filters)], raw[y]
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(cur)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        body += bytes([kind]) + bytes(((cur - pred) & 255).astype(np.uint8))
        prev = cur

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(body))) + chunk(b"IEND", b""))


# ------------------------------------------------------------------ 16-bit colour
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_png_reader_undoes_every_filter(channels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from ncodec.media.png import read_png16, write_png16

    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # the numpy fallback, not imagecodecs
    px = np.random.default_rng(channels).integers(0, 65536, (9, 13, channels)).astype(np.uint16)
    assert np.array_equal(read_png16(_wide_png(px, [0, 1, 2, 3, 4])), px)
    assert np.array_equal(read_png16(write_png16(px)), px)


def test_16bit_rgb_png_path_keeps_every_bit(work: Path, capsys: pytest.CaptureFixture) -> None:
    garden = read_image(work / "garden.png").pixels[:40, :56].astype(np.uint16)
    px = (garden * 257 + np.random.default_rng(0).integers(0, 256, garden.shape)).astype(np.uint16)
    src = work / "deep.png"
    src.write_bytes(_wide_png(px, [4, 1, 2]))
    assert main(["-q", "compress", str(src), str(work / "d.ncd"), "--codec", "wavelet-lossless"]) == 0
    assert main(["info", "--json", str(work / "d.ncd")]) == 0
    assert '"bit_depth": 16' in capsys.readouterr().out
    assert main(["-q", "decompress", str(work / "d.ncd"), str(work / "back.png")]) == 0
    back = read_image(work / "back.png")
    assert back.bit_depth == 16 and np.array_equal(back.pixels, px)


def test_corrupt_16bit_png_is_refused(work: Path) -> None:
    data = bytearray(_wide_png(np.ones((4, 4, 3), np.uint16), [0]))
    data[45] ^= 0xFF  # inside IDAT: its CRC no longer matches
    (work / "bad.png").write_bytes(bytes(data))
    assert main(["-q", "compress", str(work / "bad.png"), str(work / "bad.ncd")]) == 1
    assert not (work / "bad.ncd").exists()


# ------------------------------------------------------------------ the input is never the output
def test_output_that_is_the_input_is_refused(work: Path, capsys: pytest.CaptureFixture) -> None:
    src = work / "garden.png"
    before = src.read_bytes()
    os.link(src, work / "hard.png")
    (work / "soft.png").symlink_to(src)
    for out in (src, work / "hard.png", work / "soft.png"):
        assert main(["compress", str(src), str(out), "--force"]) == 2
        assert "input" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert main(["-q", "compress", str(src), str(work / "g.ncd")]) == 0
    assert main(["decompress", str(work / "g.ncd"), str(work / "g.ncd"), "--force"]) == 2
    assert (work / "g.ncd").read_bytes()[:4] == b"NCDC"


# ------------------------------------------------------------------ output suffixes
def test_audio_output_suffix_names_a_lossless_format_or_is_refused(work: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "compress", str(work / "speech.flac"), str(work / "s.ncd")]) == 0
    for bad in ("out.png", "out.mp3", "out.ogg", "out"):
        assert main(["decompress", str(work / "s.ncd"), str(work / bad)]) == 2, bad
        err = capsys.readouterr().err
        assert ".flac" in err and ".wav" in err and err.count("\n") == 1
        assert not (work / bad).exists()
    assert main(["-q", "decompress", str(work / "s.ncd"), str(work / "out.flac")]) == 0
    assert (work / "out.flac").read_bytes()[:4] == b"fLaC"
    assert np.array_equal(read_audio(work / "out.flac").samples, read_audio(work / "speech.flac").samples)


def test_image_output_suffix_names_a_lossless_format_or_is_refused(work: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "compress", str(work / "garden.png"), str(work / "g.ncd"), "--codec", "wavelet-lossless"]) == 0
    for bad in ("out.jpg", "out.gif", "out.wav", "out.webp"):
        assert main(["decompress", str(work / "g.ncd"), str(work / bad)]) == 2, bad
        err = capsys.readouterr().err
        assert ".png" in err and "Traceback" not in err and err.count("\n") == 1
        assert not (work / bad).exists()
    assert main(["-q", "decompress", str(work / "g.ncd"), str(work / "out.tif")]) == 0
    assert (work / "out.tif").read_bytes()[:2] in (b"II", b"MM")
    assert np.array_equal(read_image(work / "out.tif").pixels, read_image(work / "garden.png").pixels)


# ------------------------------------------------------------------ info checks the CRCs
def test_info_checks_every_crc(work: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "compress", str(work / "speech.flac"), str(work / "s.ncd")]) == 0
    data = bytearray((work / "s.ncd").read_bytes())
    data[len(data) // 2] ^= 0x01  # a payload byte
    (work / "bad.ncd").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["info", str(work / "bad.ncd")]) == 1
    assert "CRC" in capsys.readouterr().err
    assert main(["info", "--no-verify", str(work / "bad.ncd")]) == 0
    assert "header and chunk table only" in capsys.readouterr().out
    assert main(["info", str(work / "s.ncd")]) == 0
    assert "every chunk's CRC" in capsys.readouterr().out


# ------------------------------------------------------------------ errors: one line, documented codes
@pytest.mark.parametrize("option,status", [("bpp=1e400", 2), ("bpp=inf", 2), ("bpp=-1", 2), ("bpp=nan", 2),
                                           ("quality=abc", 2), ("levels=2.5", 2), ("bpp=0.000001", 1)])
def test_bad_rate_options_are_one_line_errors(work: Path, capsys: pytest.CaptureFixture, option: str,
                                              status: int) -> None:
    out = work / "w.ncd"
    assert main(["compress", str(work / "garden.png"), str(out), "--codec", "wavelet", "--option", option]) == status
    err = capsys.readouterr().err
    assert err.startswith("ncodec: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_refused_weights_file_is_one_line(work: Path, capsys: pytest.CaptureFixture) -> None:
    import torch
    from safetensors.torch import save_file

    weights = work / "wrong.safetensors"
    save_file({"g_a.0.weight": torch.zeros(3, 3)}, str(weights), metadata={"architecture": "mbt2018-mean",
                                                                          "N": "8", "M": "12"})
    assert main(["compress", str(work / "garden.png"), str(work / "x.ncd"), "--codec", "learned",
                 "--model", str(weights)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ncodec: error: ") and err.count("\n") == 1


class _ClosedPipe:
    """A stdout whose reader has gone away (``ncodec info x | head`` once head has exited)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("no file descriptor")


def test_closed_pipe_is_quiet(work: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["-q", "compress", str(work / "garden.png"), str(work / "g.ncd"), "--codec", "wavelet-lossless"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["info", str(work / "g.ncd")]) == 141
    assert capsys.readouterr().err == ""


_TOKENS = st.sampled_from(["1", "0", "-1", "0.5", "1e400", "-1e400", "inf", "nan", "", "[]", "{}", "null", "true",
                           "x", "99999999999999999999", "1e-300", "\u00e9", "0x10", "[1,2]", '"s"'])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["bpp", "quality", "levels", "step", "model", "preset", "x"]), value=_TOKENS)
def test_fuzzed_options_end_in_a_documented_status(work: Path, capsys: pytest.CaptureFixture, key: str,
                                                   value: str) -> None:
    out = work / "fuzz.ncd"
    if out.exists():
        out.unlink()
    status = main(["compress", str(work / "garden.png"), str(out), "--codec", "wavelet", "--option", f"{key}={value}"])
    err = capsys.readouterr().err
    assert status in (0, 1, 2)
    assert "Traceback" not in err and err.count("\n") <= 1
    assert out.exists() == (status == 0)
    assert [p.name for p in work.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.lists(st.sampled_from(list("ab.-_ ~") + ["png", "wav", "tif", "ncd", "flac", "jpg", "/"]),
                     min_size=1, max_size=8).map("".join).filter(lambda n: n.strip("/ ") not in ("", ".", "..")))
def test_fuzzed_output_paths_end_in_a_documented_status(work: Path, capsys: pytest.CaptureFixture, name: str) -> None:
    stream = work / "s.ncd"
    if not stream.exists():
        assert main(["-q", "compress", str(work / "speech.flac"), str(stream)]) == 0
    before = {p.name for p in work.iterdir()}
    out = work / "out" / name
    status = main(["-q", "decompress", str(stream), str(out)])
    err = capsys.readouterr().err
    assert status in (0, 1, 2) and "Traceback" not in err and err.count("\n") <= 1
    after = {p.name for p in work.iterdir()} - before
    assert after <= {"out"} and stream.read_bytes()[:4] == b"NCDC"
    if status != 0 and (work / "out").is_dir():
        assert [p.name for p in (work / "out").rglob("*") if p.is_file()] == []


# ------------------------------------------------------------------ folders in, folders out
def test_folder_compress_and_decompress_mirror_the_tree_resume_and_report(work: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    tree = work / "tree"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(work / "garden.png", tree / "garden.png")
    shutil.copy(work / "speech.flac", tree / "sub" / "speech.flac")
    (tree / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tree / "notes.txt").write_text("not media")
    assert main(["compress", str(tree), str(work / "out"), "--codec", "wavelet-lossless"]) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "2 of 3 files failed" in err
    made = sorted(p.relative_to(work / "out").as_posix() for p in (work / "out").rglob("*") if p.is_file())
    assert made == ["garden.png.ncd"]  # wavelet-lossless takes no audio: the speech file failed too
    assert "sub/speech.flac" in err
    assert main(["-q", "compress", str(tree), str(work / "out2")]) == 1  # media defaults: only broken.wav fails
    first = (work / "out2" / "garden.png.ncd").stat().st_mtime_ns
    assert main(["-q", "compress", str(tree), str(work / "out2")]) == 1  # a rerun keeps what was done
    assert (work / "out2" / "garden.png.ncd").stat().st_mtime_ns == first
    capsys.readouterr()
    assert main(["-q", "decompress", str(work / "out2"), str(work / "back")]) == 0
    assert np.array_equal(read_audio(work / "back" / "sub" / "speech.flac").samples,
                          read_audio(tree / "sub" / "speech.flac").samples)
    assert read_image(work / "back" / "garden.png").pixels.shape == read_image(tree / "garden.png").pixels.shape
    assert main(["compress", str(tree), str(tree / "inside")]) == 2  # the output tree may not lie inside the input


def test_codec_options_are_listed(capsys: pytest.CaptureFixture) -> None:
    import json

    assert main(["list", "--options", "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines()) if "name" in r}
    assert rows["wavelet"]["options"]["quality"] == 75.0 and "bpp" in rows["wavelet"]["options"]
    assert {"model", "quality"} <= set(rows["learned"]["options"])


def test_rate_targets_from_the_command_line(work: Path, capsys: pytest.CaptureFixture) -> None:
    out = work / "g.ncd"
    assert main(["-q", "compress", str(work / "garden.png"), str(out), "--bpp", "0.5"]) == 0  # the default: learned-wavelet (a wavelet stream)
    bpp = 8 * out.stat().st_size / (384 * 256)
    assert 0.4 < bpp <= 0.5
    assert main(["compress", str(work / "garden.png"), str(work / "x.ncd"), "--codec", "wavelet-lossless",
                 "--bpp", "0.5"]) == 2  # no rate target there: a usage error, not a silent lossless stream
    assert "does not take" in capsys.readouterr().err


def test_every_lossy_codec_documents_its_quality_scale(capsys) -> None:
    """`ncodec list` says, per lossy codec, what --quality means (range, direction, default) and its rate target."""
    import json

    assert main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    codecs = [r for r in rows if "name" in r]
    assert {r["name"] for r in codecs} >= {"wavelet", "learned", "encodec", "inr", "nerv"}
    for row in codecs:
        if row["lossless"]:
            continue
        scale = row["quality_scale"]
        assert scale and "higher is better" in scale and "default" in scale, row["name"]
        assert ("rate target --" in scale) or ("no rate target" in scale), row["name"]
    assert main(["list"]) == 0
    assert "rate target --bpp" in capsys.readouterr().out
