"""The Ray engine on a real local Ray cluster (``ray.init(num_cpus=2)``), through the real pipelines.

The corpus is made from the bundled speech sample: cuts of several lengths at 16, 24 and 44.1 kHz,
one stereo, plus a corrupt file. The model is a tiny causal SEANet (seeded) saved as a weights
file, passed by path so that the Ray workers load the same file.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf
import torch

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'ncodec[ray]')")

from ncodec.cli import main  # noqa: E402
from ncodec.corpus.shards import MANIFEST, read_corpus  # noqa: E402
from ncodec.corpus.sources import list_items, read_item  # noqa: E402
from ncodec.media.resample import resample  # noqa: E402
from ncodec.tokenizers.folder import read_tokens  # noqa: E402
from ncodec.zoo.audio import build_audio_model, save_audio_model  # noqa: E402
from tiny_audio_models import CAUSAL  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs for the module; its address, for drivers in other processes."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_audio_model(build_audio_model("seanet", CAUSAL), path, "seanet", CAUSAL)
    return str(path)


def make_corpus(folder: Path, copies: int = 1) -> Path:
    """Cuts of the speech sample at several rates and lengths (one stereo), and one corrupt file."""
    data, rate = sf.read(ROOT / "samples" / "speech.flac", dtype="float32")
    x = torch.from_numpy(data)[None]
    for c in range(copies):
        for i, (target, seconds) in enumerate([(24_000, 1.3), (16_000, 0.9), (44_100, 1.1), (24_000, 0.4)]):
            cut = x[:, int(0.05 * i * rate): int(0.05 * i * rate + seconds * rate)]
            y = resample(cut, rate, target)[0].numpy() if target != rate else cut[0].numpy()
            sub = folder / f"set{c}" / ("nested" if i % 2 else "")
            sub.mkdir(parents=True, exist_ok=True)
            if i == 2:  # stereo: the clip and a quieter copy
                y = np.stack([y, 0.5 * y], axis=1)
            sf.write(sub / f"clip{i}.{'flac' if i % 2 else 'wav'}", y, target)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is no audio")
    return folder


def local_tokens(folder: Path, out: Path, model: str) -> tuple[dict[str, torch.Tensor], dict]:
    assert main(["-q", "tokenize", str(folder), "--out", str(out), "--model", model]) == 0
    return read_tokens(out)


def assert_same_tokens(local: tuple[dict[str, torch.Tensor], dict], folder: Path) -> None:
    tensors, meta = local
    rows = {row.item: row for row, _ in read_corpus(folder)}
    good = {k for k, r in rows.items() if r.error is None}
    assert good == set(meta["files"]), (sorted(good), sorted(meta["files"]))
    for rel, facts in meta["files"].items():
        assert np.array_equal(tensors[f"codes/{rel}"].numpy(), rows[rel].codes), rel
        assert rows[rel].samples == facts["samples"] and rows[rel].sample_rate == facts["sample_rate"]


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_ray_tokens_equal_the_local_engine_and_record_the_corrupt_file(cluster: str, model: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    local = local_tokens(corpus, tmp_path / "local.safetensors", model)
    out = tmp_path / "tokens"
    assert main(["tokenize", str(corpus), "--out", str(out), "--model", model, "--engine", "ray",
                 "--items-per-shard", "2"]) == 0
    err = capsys.readouterr().err
    assert "broken.wav: skipped" in err and "1 unreadable files recorded" in err
    assert visible_files(out) == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert_same_tokens(local, out)
    rows = {row.item: row for row, _ in read_corpus(out)}
    assert rows["broken.wav"].error and rows["broken.wav"].codes.size == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["settings"]["model_hash"] == local[1]["settings"]["model_hash"]
    # a rerun finds everything done
    assert main(["tokenize", str(corpus), "--out", str(out), "--model", model, "--engine", "ray"]) == 0
    assert "0 new in 0 shards, 5 done before" in capsys.readouterr().err


def test_read_back_and_decode(cluster: str, model: str, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "tokens"
    assert main(["-q", "tokenize", str(corpus), "--out", str(out), "--model", model, "--engine", "ray"]) == 0
    assert main(["-q", "detokenize", str(out), "--out", str(tmp_path / "wav"), "--model", model]) == 0
    for row, _ in read_corpus(out):
        if row.error is not None:
            continue
        decoded, rate = sf.read(tmp_path / "wav" / Path(row.item).with_suffix(".wav"))
        assert rate == row.sample_rate and len(decoded) == round(row.duration * rate)


def test_resume_after_a_killed_run(cluster: str, model: str, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", copies=4)
    out = tmp_path / "tokens"
    command = [sys.executable, "-m", "ncodec", "-q", "tokenize", str(corpus), "--out", str(out), "--model", model,
               "--engine", "ray", "--address", cluster, "--workers", "1", "--items-per-shard", "1"]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    listed = 0
    while listed < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no shard was written"
        time.sleep(0.05)
        try:
            listed = len(json.loads((out / MANIFEST).read_text())["shards"])
        except (OSError, ValueError, KeyError):
            listed = 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    shards = json.loads((out / MANIFEST).read_text())["shards"]
    assert 2 <= len(shards) < 17, "the run was not killed in the middle"
    # what is visible is complete: every listed or renamed shard reads back
    for name in visible_files(out):
        assert name == MANIFEST or name.startswith("part-")
    assert sum(1 for _ in read_corpus(out)) == sum(len(s["items"]) for s in shards)
    time.sleep(1.0)  # the killed driver's actors are torn down
    assert main(["-q", "tokenize", str(corpus), "--out", str(out), "--model", model, "--engine", "ray",
                 "--items-per-shard", "1"]) == 0
    rows = [row for row, _ in read_corpus(out)]
    assert len(rows) == 17 and len({r.item for r in rows}) == 17
    assert_same_tokens(local_tokens(corpus, tmp_path / "local.safetensors", model), out)


def test_tokenize_dataset_in_a_users_pipeline(cluster: str, model: str, tmp_path: Path) -> None:
    from ncodec.corpus.ray_engine import tokenize_dataset

    corpus = make_corpus(tmp_path / "corpus")
    local_tensors, meta = local_tokens(corpus, tmp_path / "local.safetensors", model)
    paths = list_items(corpus, "audio")
    ds = ray.data.from_items([{"path": p, "bytes": Path(p).read_bytes()} for p in paths])
    rows = {Path(r["path"]).relative_to(corpus).as_posix(): r for r in tokenize_dataset(ds, model).take_all()}
    assert rows["broken.wav"]["error"]
    for rel in meta["files"]:
        codes = np.array([np.asarray(level) for level in rows[rel]["codes"]])
        assert np.array_equal(codes, local_tensors[f"codes/{rel}"].numpy()), rel
        assert rows[rel]["model_hash"] == meta["settings"]["model_hash"]


def test_compress_on_ray_equals_the_local_engine(cluster: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    (tree / "img").mkdir(parents=True)
    (tree / "img" / "garden.png").write_bytes((ROOT / "samples" / "garden.png").read_bytes())
    (tree / "speech.flac").write_bytes((ROOT / "samples" / "speech.flac").read_bytes())
    (tree / "img" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["-q", "compress", str(tree), str(tmp_path / "local")]) == 1  # the bad file fails, the rest done
    assert main(["compress", str(tree), str(tmp_path / "ray"), "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert "bad.png" in err and "compressed 2 files" in err
    for rel in ("img/garden.png.ncd", "speech.flac.ncd"):
        assert (tmp_path / "ray" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
    assert not (tmp_path / "ray" / "img" / "bad.png.ncd").exists()
    assert main(["compress", str(tree), str(tmp_path / "ray"), "--engine", "ray"]) == 1
    assert "kept 2 done before" in capsys.readouterr().err


def test_sources_webdataset_tar_and_listings(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for p in list_items(corpus, "audio"):
            tar.add(p, arcname=f"{Path(p).stem}.{Path(p).suffix[1:]}")
        info = tarfile.TarInfo("meta.json")
        info.size = 2
        tar.addfile(info, __import__("io").BytesIO(b"{}"))
    items = list_items(shard, "audio")
    assert len(items) == 5 and all("#" in i for i in items)
    assert read_item(items[0])[:4] in (b"RIFF", b"fLaC")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(os.path.relpath(p, tmp_path) for p in list_items(corpus, "audio")) + "\n")
    assert list_items(listing, "audio") == list_items(corpus, "audio")


def test_import_ncodec_does_not_import_ray() -> None:
    code = "import sys, ncodec, ncodec.cli, ncodec.corpus.shards; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
