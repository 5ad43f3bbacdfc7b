"""The overfitted video codec `nerv` and its model (ncodec.models.inr.nerv): fitting, exact embedding coding,
container round trips, hostile streams, the CLI and the evaluation harness. CPU only, tiny clips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLES, shared_data_dir
from fitted_streams import FORGED_FITTED_CONFIG, check_hostile_chunks, repack
from PIL import Image as PILImage

import ncodec
from ncodec import bitstream
from ncodec.codecs.fitted import quality_to_lmbda
from ncodec.codecs.video.nerv import NervVideoCodec, sized_config
from ncodec.errors import BitstreamError, MediaError
from ncodec.models.inr.arm import Arm, ArmCoder
from ncodec.models.inr.fit import fit, preset
from ncodec.models.inr.nerv import (NervModel, VideoInrConfig, complexity, embedding_shape, frames_tensor, from_grids,
                                    grid_shapes, network_parameters, to_grids)
from ncodec.media.types import Video

SMALL = {"embed": 4, "strides": [2, 2], "widths": [8, 6], "arm_context": 8, "arm_hidden": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip() -> Video:
    """8 frames of 32x48: a crop of a real clip when PyAV and the data set are there, else the bundled
    photo panned 2 px a frame (real content either way)."""
    data = shared_data_dir()
    path = data / "video" / "dev" / "iscc_liveband.mp4" if data else None
    try:
        from ncodec.media.video import read_video

        if path is not None and path.is_file():
            video = read_video(path, max_frames=8)
            return Video(np.ascontiguousarray(video.frames[:, 40:72, 60:108]), video.fps)
    except MediaError:   # no PyAV
        pass
    px = np.asarray(PILImage.open(SAMPLES / "garden.png").convert("RGB"))
    return Video(np.stack([px[100:132, 120 + 2 * t:168 + 2 * t] for t in range(8)]), 25.0)


@pytest.fixture(scope="module")
def encoded(clip: Video):
    torch.set_num_threads(1)
    codec = NervVideoCodec(quality=6, preset="fast", iterations=60, device="cpu", **SMALL)
    return codec.encode_video(clip)


# ----------------------------------------------------------------------------- the model
def test_config_changes_round_trip_and_limits():
    cfg = VideoInrConfig(embed=6, strides=[4, 2], widths=[12, 8], layout="spatial")
    assert cfg.strides == (4, 2) and cfg.stride == 8
    assert VideoInrConfig.from_changes(json.loads(json.dumps(cfg.changes()))) == cfg
    assert VideoInrConfig().changes() == {}
    for bad in ({"strides": [2], "widths": [8, 8]}, {"strides": [6], "widths": [8]}, {"widths": [0, 8]},
                {"kernel": 4}, {"layout": "diagonal"}, {"arm_context": 13}, {"embed": True},
                {"strides": [5, 5, 5, 5], "widths": [8, 8, 8, 8]}):
        with pytest.raises(ValueError):
            VideoInrConfig(**bad)
    with pytest.raises(ValueError):
        VideoInrConfig.from_changes({"bogus": 1})


@pytest.mark.parametrize("layout", ["temporal", "spatial"])
def test_grid_layouts_are_inverse(layout: str):
    emb = torch.arange(5 * 3 * 4 * 6).reshape(5, 3, 4, 6)
    grids = to_grids(emb, layout)
    assert grids.shape == (3, 20, 6) and torch.equal(from_grids(grids, 5, layout), emb)
    if layout == "temporal":   # the row above an embedding is the same row of the previous frame
        assert torch.equal(grids[1, 2 * 5 + 3], emb[3, 1, 2]) and torch.equal(grids[1, 2 * 5 + 2], emb[2, 1, 2])


def test_any_frame_size_and_parameter_count():
    cfg = VideoInrConfig(**SMALL)
    model = NervModel(cfg, 3, 13, 21)
    assert embedding_shape(cfg, 3, 13, 21) == (3, 4, 4, 6) and grid_shapes(cfg, 3, 13, 21) == [(12, 6)] * 4
    out = model.rd_forward("noise")
    assert out.recon.shape == (1, 3, 3, 13, 21) and float(out.rate_bits.detach()) > 0
    assert network_parameters(cfg) == sum(p.numel() for _, p in model.decoder_tensors())
    macs = complexity(cfg, 3, 16, 24)
    assert macs["total"] == pytest.approx(macs["arm"] + macs["blocks"] + macs["head"])
    # at 16x24 (no padding): block 1 runs on 4x6 positions, block 2 on 8x12, the head on every pixel
    assert macs["blocks"] == pytest.approx((9 * 4 * 32 * 24 + 9 * 8 * 24 * 96) / 384)
    assert macs["head"] == 9 * 6 * 3 and model.macs_per_pixel() > 0


def test_sized_config_follows_budget_and_frame_size():
    small, large = sized_config(1.0, 16, 144, 176), sized_config(7.0, 16, 144, 176)
    assert network_parameters(small) < network_parameters(large)
    assert len(sized_config(4.0, 8, 32, 48).strides) == 2 and len(sized_config(4.0, 8, 720, 1280).strides) >= 5
    assert sized_config(4.0, 8, 144, 176, widths=[9, 7, 5, 3]).widths == (9, 7, 5, 3)


def test_fit_psnr_rises(clip: Video):
    x = frames_tensor(clip.frames)
    torch.manual_seed(0)
    model = NervModel(VideoInrConfig(**SMALL), *clip.frames.shape[:3])
    model.init_embeddings(x)
    result = fit(model, x, 1e-3, preset("fast", iterations=120, eval_every=30))
    psnrs = [p["psnr"] for p in result.history]
    assert len(psnrs) == 4 and psnrs[-1] > psnrs[0] + 1.0 and result.best["psnr"] > 18.0
    assert result.best["loss"] == min(p["loss"] for p in result.history)


# ----------------------------------------------------------------------------- the codec
def test_round_trip_reproduces_encoder_output(encoded, clip: Video):
    decoded = ncodec.decode(encoded.data)
    assert isinstance(decoded, Video) and decoded.fps == clip.fps
    assert np.array_equal(decoded.frames, encoded.frames)
    mse = np.mean((decoded.frames.astype(np.float64) - clip.frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 18.0


def test_embeddings_decode_identically_across_threads_and_dtypes(encoded):
    reader = bitstream.Reader(encoded.data)
    model = NervVideoCodec.from_header(reader.header).decoder_model(reader)   # weights and embeddings decoded
    cfg = model.config
    grids = model.integer_latents()
    latents = {c.kind: c.payload for c in bitstream.unpack(encoded.data)[1]}["LATN"]
    torch.set_num_threads(1)
    sym1, tab1 = ArmCoder(model.arm).symbols(grids)
    torch.set_num_threads(2)
    sym2, tab2 = ArmCoder(model.arm).symbols(grids)
    arm64 = Arm(cfg.arm_context, cfg.arm_hidden, cfg.arm_layers).double()
    arm64.load_state_dict({k: v.double() for k, v in model.arm.state_dict().items()})
    sym3, tab3 = ArmCoder(arm64).symbols(grids)
    assert np.array_equal(tab1, tab2) and np.array_equal(tab1, tab3)
    assert np.array_equal(sym1, sym2) and np.array_equal(sym1, sym3)
    assert len(np.unique(tab1)) > 3   # the tables really vary
    again = ArmCoder(arm64).decode(latents, grid_shapes(cfg, model.frames, model.height, model.width))
    assert all(np.array_equal(a, b) for a, b in zip(grids, again))   # float64 ARM, 2 threads
    assert np.array_equal(model.decode_frames(), encoded.frames)


def test_info_reports_decoder_macs(encoded):
    info = ncodec.info(encoded.data)
    assert info["codec"] == "nerv" and 0 < info["macs"] < 5000 and "MACs/pixel" in info["decoder"]
    assert info["params"] > 0 and info["metadata"]["frames"] == 8 and info["kbps"] > 0 and info["bpp"] > 0


def test_bad_options_and_inputs(clip: Video):
    for bad in ({"quality": 50}, {"lmbda": -1}, {"preset": "turbo"}, {"widths": [0]}, {"layout": "x"}):
        with pytest.raises(MediaError):
            NervVideoCodec(**bad)
    with pytest.raises(MediaError):
        NervVideoCodec(iterations=1).encode_video(clip.frames)   # type: ignore[arg-type]
    assert NervVideoCodec(quality=1).lmbda == quality_to_lmbda(1) > NervVideoCodec(quality=7).lmbda


@pytest.mark.parametrize("change", [*FORGED_FITTED_CONFIG,
    {"config": {"architecture": {"embed": 1000}}},
    {"config": {"architecture": {"bogus": 1}}},
    {"config": {"architecture": {**SMALL, "widths": [8, 6, 4]}}},
    {"config": {"architecture": {**SMALL, "embed": 5}}},
    {"config": {"architecture": {"strides": [1, 1], "widths": [256, 256]}}},
    {"meta": {"frames": 0}},
    {"meta": {"frames": 9}},
    {"meta": {"frames": 1 << 20}},
    {"meta": {"frames": 2.5}},
    {"meta": {"frames": True}},
    {"meta": {"width": 1 << 20}},
    {"meta": {"height": 0}},
    {"meta": {"width": 4096, "height": 4096}},
    {"meta": {"frames": 60000, "width": 2048, "height": 2048}},
    {"meta": {"fps": 0}},
    {"meta": {"fps": "fast"}},
    {"meta": {"fps": None}},
])
def test_hostile_headers_raise_bitstream_errors(encoded, change: dict):
    with pytest.raises(BitstreamError):
        ncodec.decode(repack(encoded.data, change.get("config"), change.get("meta")))


def test_hostile_chunks_raise_bitstream_errors(encoded):
    check_hostile_chunks(encoded.data, lambda out: out.frames.shape == encoded.frames.shape)


def test_describe_tolerates_corrupt_header(encoded):
    data = repack(encoded.data, {"architecture": {"embed": 1000}})
    assert "decoder" not in ncodec.info(data)
    assert json.dumps(ncodec.info(encoded.data), default=str)


# ----------------------------------------------------------------------------- files, CLI, evaluation
@pytest.fixture
def clip_file(clip: Video, tmp_path: Path) -> Path:
    """The clip as a lossless FFV1 .mkv file (needs PyAV)."""
    pytest.importorskip("av")
    from ncodec.media.io import write_video_lossless

    path = tmp_path / "clip.mkv"
    write_video_lossless(path, clip)
    return path


def test_video_files_read_through_pyav(clip: Video, clip_file: Path):
    from ncodec.media.io import read_media, video_format_for, write_video_lossless

    video = read_media(clip_file)
    assert isinstance(video, Video) and np.array_equal(video.frames, clip.frames)
    assert np.array_equal(read_media(clip_file.read_bytes()).frames, clip.frames)
    assert video_format_for("x.mp4") == "mp4" and video_format_for("x") == "matroska"
    odd = Video(np.ascontiguousarray(clip.frames[:2, :7, :9]), clip.fps)   # RGB FFV1 keeps odd sizes
    write_video_lossless(clip_file.parent / "odd.mkv", odd)
    assert np.array_equal(read_media(clip_file.parent / "odd.mkv").frames, odd.frames)
    with pytest.raises(MediaError):
        video_format_for("x.gif")


def test_cli_compress_decompress_info(clip_file: Path, capsys):
    from ncodec.cli import main
    from ncodec.media.video import read_video

    stream, out = clip_file.with_suffix(".ncd"), clip_file.parent / "back.mkv"
    assert main(["compress", str(clip_file), str(stream), "--codec", "nerv", "--quality", "5",
                 "--option", "preset=fast", "--option", "iterations=15", "--option", "widths=[6,4]"]) == 0
    assert "kbps" in capsys.readouterr().err
    assert main(["-q", "decompress", str(stream), str(out)]) == 0
    assert np.array_equal(read_video(out).frames, ncodec.decode(stream).frames)   # lossless FFV1 output
    assert main(["-q", "decompress", str(stream)]) == 0 and (clip_file.parent / "clip.decoded.mkv").exists()
    assert main(["info", str(stream)]) == 0
    text = capsys.readouterr().out
    assert "MACs/pixel" in text and "8 frames" in text and "params" in text
    assert main(["compress", str(clip_file), str(stream), "--codec", "inr", "-f"]) == 2   # an image codec


def test_eval_harness_runs_nerv(clip_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ncodec.eval.harness import format_table, run_eval

    monkeypatch.setenv("NCODEC_NERV_PRESET", "fast")
    monkeypatch.setenv("NCODEC_NERV_ITERATIONS", "4")
    result = run_eval("video", ["nerv"], clip_file.parent, cache_dir=tmp_path / "cache", max_frames=3)
    points = result["codecs"]["nerv"]["points"]
    assert [p["quality"] for p in points] == NervVideoCodec.eval_fixed_points()
    assert all(p["bpp"] > 0 and p["psnr"] > 5 for p in points) and "nerv" in format_table(result)
    assert "iterations=4" in result["codecs"]["nerv"]["version"]
