"""EnCodec's .ecdc files: the bit packing, reading and writing, hostile files, and against files written by
EnCodec 0.1.1 itself (``bash .ci/encodec/setup.sh``; set NCODEC_ENCODEC_REFS to the folder it prints)."""
from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from peer_refs import refs_folder

from ncodec.cli import main
from ncodec.codecs.audio.ecdc import ECDC_MODELS, decode_ecdc, encode_ecdc, read_ecdc, write_ecdc
from ncodec.entropy.bitpack import pack_bits, unpack_bits
from ncodec.models.audio.encodec import SEANetCodecModel
from ncodec.errors import BitstreamError, ModelFileError
from ncodec.media.io import read_audio

REFS_ENV = "NCODEC_ENCODEC_REFS"
REFS = refs_folder(REFS_ENV)
NEEDS_REFS = pytest.mark.skipif(REFS is None, reason=f"{REFS_ENV} is unset: run `bash .ci/encodec/setup.sh` and "
                                                      f"set {REFS_ENV} to compare with files EnCodec wrote")


pytestmark = pytest.mark.usefixtures("one_thread")


def _bitpacker(values: list[int], bits: int) -> bytes:
    """The packing as the format describes it, value by value (least significant bit first)."""
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc |= v << n
        n += bits
        while n >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            n -= 8
    if n:
        out.append(acc)
    return bytes(out)


# ------------------------------------------------------------------ format
@pytest.mark.parametrize("bits", [1, 3, 8, 10, 13])
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 1001])
def test_bit_packing(bits: int, count: int) -> None:
    values = np.random.default_rng(bits * 1000 + count).integers(0, 1 << bits, count)
    packed = pack_bits(values, bits)
    assert packed == _bitpacker(values.tolist(), bits)
    assert np.array_equal(unpack_bits(packed, bits, count), values)


def test_bit_packing_across_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    import ncodec.entropy.bitpack as bitpack

    monkeypatch.setattr(bitpack, "_GROUP", 16)  # several groups, as an hour of codes would take
    values = np.random.default_rng(0).integers(0, 1024, 100)
    packed = pack_bits(values, 10)
    assert packed == _bitpacker(values.tolist(), 10)
    assert np.array_equal(unpack_bits(packed, 10, 100), values)


@pytest.mark.parametrize("name,length", [("encodec_24khz", 32480), ("encodec_24khz", 6720),
                                         ("encodec_48khz", 64960), ("encodec_48khz", 100)])
def test_write_read_round_trip(name: str, length: int) -> None:
    spec = ECDC_MODELS[name]
    segments = spec.segments(length)
    frames = sum(spec.frames(n) for _, n in segments)
    codes = torch.randint(0, 1024, (1, 4, frames))
    scales = [0.5 + i for i in range(len(segments))] if spec.normalize else None
    data = write_ecdc(codes, name, length, scales)
    meta_len = struct.unpack("!I", data[5:9])[0]
    assert data[:5] == b"ECDC\x00"
    assert json.loads(data[9:9 + meta_len]) == {"m": name, "al": length, "nc": 4, "lm": False}
    assert data[9:9 + meta_len] == json.dumps({"m": name, "al": length, "nc": 4, "lm": False}).encode()
    back, meta = read_ecdc(data)
    assert torch.equal(back, codes) and meta["scales"] == scales and meta["al"] == length
    # 6720 samples: EnCodec's own reader computes ceil(6720 / 24000 * 75) = 22 frames in floating point,
    # its encoder writes ceil(6720 / 320) = 21; the file holds 21
    if length == 6720:
        assert back.shape[-1] == 21 and math.ceil(6720 / 24000 * 75) == 22


def test_hostile_files() -> None:
    good = write_ecdc(torch.randint(0, 1024, (1, 2, 10)), "encodec_24khz", 3000)

    def with_meta(meta: object, body: bytes = good[9 + struct.unpack("!I", good[5:9])[0]:]) -> bytes:
        raw = json.dumps(meta).encode()
        return b"ECDC\x00" + struct.pack("!I", len(raw)) + raw + body

    cases = {
        "magic": b"ECDX" + good[4:],
        "short": good[:6],
        "version": good[:4] + b"\x01" + good[5:],
        "meta too long": good[:5] + struct.pack("!I", 1 << 30) + good[9:],
        "json": good[:9] + b"{" * struct.unpack("!I", good[5:9])[0] + good[9 + struct.unpack("!I", good[5:9])[0]:],
        "not object": with_meta([1, 2]),
        "model": with_meta({"m": "encodec_96khz", "al": 3000, "nc": 2, "lm": False}),
        "lm": with_meta({"m": "encodec_24khz", "al": 3000, "nc": 2, "lm": True}),
        "nc": with_meta({"m": "encodec_24khz", "al": 3000, "nc": 33, "lm": False}),
        "nc zero": with_meta({"m": "encodec_24khz", "al": 3000, "nc": 0, "lm": False}),
        "huge length": with_meta({"m": "encodec_24khz", "al": 10**13, "nc": 2, "lm": False}),
        "float length": with_meta({"m": "encodec_24khz", "al": 3000.0, "nc": 2, "lm": False}),
        "truncated": good[:-1],
        "trailing": good + b"\x00",
    }
    for what, data in cases.items():
        with pytest.raises(BitstreamError):
            read_ecdc(data)
        assert what
    scale_nan = write_ecdc(torch.zeros(1, 2, 2, dtype=torch.long), "encodec_48khz", 500, [1.0])
    with pytest.raises(BitstreamError, match="volume"):
        read_ecdc(scale_nan[:-(4 + 5)] + struct.pack("!f", float("nan")) + scale_nan[-5:])  # 4 codes: 5 bytes


def test_write_refuses_inconsistent_codes() -> None:
    with pytest.raises(ValueError, match="frames"):
        write_ecdc(torch.zeros(1, 2, 5, dtype=torch.long), "encodec_24khz", 3000)
    with pytest.raises(ValueError, match="volume"):
        write_ecdc(torch.zeros(1, 2, 10, dtype=torch.long), "encodec_48khz", 3000)
    with pytest.raises(ValueError):
        write_ecdc(torch.full((1, 2, 10), 1024), "encodec_24khz", 3000)


def test_decode_with_a_small_model(samples: Path) -> None:
    """Mechanics with a small random model of the 24 kHz layout: encode_ecdc -> decode_ecdc = model round trip,
    and long files decode in pieces the same as at once."""
    torch.manual_seed(0)
    net = SEANetCodecModel.build([1.5, 3.0, 6.0], 24000, 1, causal=True, n_filters=4, dimension=16, lstm=1,
                                 name="encodec_24khz")
    speech = read_audio(samples / "speech.flac")
    wav = torch.from_numpy(speech.samples.T.astype(np.float32) / 32768)
    data = encode_ecdc(wav, net, 3.0)
    codes, meta = read_ecdc(data)
    assert meta["nc"] == 4 and torch.equal(codes, net.encode(wav[None], 3.0).codes)
    import ncodec.codecs.audio.ecdc as ecdc

    out = decode_ecdc(data, model=net)
    with torch.no_grad():
        expected = net.decode(codes, None, meta["al"])[0].T.numpy()
    assert out.sample_rate == 24000 and out.samples.shape == (speech.frames, 1)
    assert np.abs(out.samples - expected).max() < 1e-5
    ecdc.DECODE_FRAMES, saved = 7, ecdc.DECODE_FRAMES
    try:
        assert np.abs(decode_ecdc(data, model=net).samples - expected).max() < 1e-5
    finally:
        ecdc.DECODE_FRAMES = saved
    with pytest.raises(ModelFileError):
        decode_ecdc(write_ecdc(codes[:, :, :3], "encodec_48khz", 700, [1.0]), model=net)


def test_missing_weights_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCODEC_MODELS", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    data = write_ecdc(torch.zeros(1, 2, 10, dtype=torch.long), "encodec_24khz", 3000)
    with pytest.raises(ModelFileError, match="--model"):
        decode_ecdc(data)
    (tmp_path / "x.ecdc").write_bytes(data)
    assert main(["-q", "decompress", str(tmp_path / "x.ecdc")]) == 1


# ------------------------------------------------------------------ against EnCodec
def _ref(name: str) -> tuple[bytes, dict[str, np.ndarray]]:
    assert REFS is not None
    path = REFS / f"{name}.ecdc"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: the references predate .ecdc files; rerun .ci/encodec/setup.sh")
    with np.load(REFS / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k.startswith("ecdc.") or k == "x"}
    return path.read_bytes(), arrays


@NEEDS_REFS
@pytest.mark.parametrize("name", ["encodec_24khz", "encodec_48khz"])
def test_reads_and_writes_encodecs_files(name: str) -> None:
    """ncodec reads EnCodec's codes (and volumes) from its file, and writes the very same bytes for them."""
    data, ref = _ref(name)
    codes, meta = read_ecdc(data)
    assert meta["m"] == name and meta["lm"] is False and meta["al"] == ref["x"].shape[-1]
    assert torch.equal(codes, torch.from_numpy(ref["ecdc.codes"]))
    if name == "encodec_48khz":
        np.testing.assert_array_equal(np.float32(meta["scales"]), ref["ecdc.scales"].reshape(-1))
    assert write_ecdc(torch.from_numpy(ref["ecdc.codes"]), name, meta["al"], meta["scales"]) == data


@NEEDS_REFS
@pytest.mark.parametrize("name", ["encodec_24khz", "encodec_48khz"])
def test_encodes_and_decodes_like_encodec(name: str, tmp_path: Path) -> None:
    """With EnCodec's weights (its own key names, no metadata), ncodec encodes the input to EnCodec's file
    byte for byte and decodes the file to EnCodec's waveform within 1e-4, through the API and the CLI."""
    data, ref = _ref(name)
    weights = REFS / f"{name}.safetensors"
    out = decode_ecdc(data, model=weights)
    assert out.samples.shape == ref["ecdc.decoded"].T.shape
    assert np.abs(out.samples - ref["ecdc.decoded"].T).max() < 1e-4
    from ncodec.zoo.audio import load_audio_model

    net, facts = load_audio_model(weights, name)
    assert facts["architecture"] == name
    assert encode_ecdc(torch.from_numpy(ref["x"][0]), net, 6.0, name) == data
    src = tmp_path / f"{name}.ecdc"
    src.write_bytes(data)
    assert main(["-q", "decompress", str(src), "--model", str(weights)]) == 0
    pcm = read_audio(tmp_path / f"{name}.wav").samples.astype(np.float64) / 32768
    assert np.abs(pcm - np.clip(ref["ecdc.decoded"].T, -1, 32767 / 32768)).max() < 1e-4
    with io.BytesIO(data) as f:  # a file object's bytes read the same
        assert torch.equal(read_ecdc(f.read())[0], torch.from_numpy(ref["ecdc.codes"]))
