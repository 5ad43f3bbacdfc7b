"""`ncodec fetch`: catalogue models downloaded from a local HTTP server, verified, converted and cached.

The file served here is a CompressAI-format checkpoint (``torch.save`` of a bmshj2018-factorized
quality-1 state dict, named ``<stem>-1-<sha256[:8]>.pth.tar`` as CompressAI's zoo names its files),
made by ncodec's own network; the peers' own files are served in ``test_fetch_peers.py``.
Every failure case checks that the cache holds no file afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import ncodec
from http_server import FileServer
from ncodec import cli
from ncodec.errors import DownloadError, ModelFileError
from ncodec.models.image.hyperprior import FactorizedPrior
from ncodec.zoo import from_compressai, read_metadata, save_model
from ncodec.zoo.catalogue import builtin_entries, resolve
from ncodec.zoo.fetch import fetch, load, sweep_partials

ROOT = Path(__file__).resolve().parents[2]
ARCH, STEM = "bmshj2018-factorized", "bmshj2018-factorized-prior"
NAME = f"{ARCH}-q1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A publisher-format checkpoint: its bytes, file name (hash in the name), full hash and state dict."""
    torch.manual_seed(0)
    state = FactorizedPrior(128, 192).state_dict()
    path = tmp_path_factory.mktemp("publisher") / "checkpoint.pth.tar"
    torch.save(state, path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return {"data": data, "file": f"{STEM}-1-{digest[:8]}.pth.tar", "sha256": digest, "state": state}


@pytest.fixture(scope="module")
def server(checkpoint: dict[str, Any]) -> Iterator[FileServer]:
    srv = FileServer().start()
    srv.files[checkpoint["file"]] = checkpoint["data"]
    srv.files["garbage-1-x.pth.tar"] = b"not a checkpoint" * 100
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv("NCODEC_MODELS", str(folder))
    monkeypatch.delenv("NCODEC_OFFLINE", raising=False)
    return folder


def write_catalogue(path: Path, server: FileServer, checkpoint: dict[str, Any], mode: str = "ok",
                    **changes: Any) -> Path:
    """A user catalogue whose ``bmshj2018-factorized-q1`` entry points at the local server."""
    entry = {"name": NAME, "url": f"{server.url}/{mode}/{checkpoint['file']}", "sha256": checkpoint["file"][-16:-8],
             "size": None, "licence": "test", "converter": "compressai", "architecture": ARCH, "quality": 1,
             "publisher": "test server"}
    entry.update(changes)
    path.write_text(json.dumps([entry]))
    return path


@pytest.fixture
def catalogue_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "catalogue.json"
    monkeypatch.setenv("NCODEC_CATALOGUE", str(path))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _image() -> np.ndarray:
    with PILImage.open(ROOT / "samples" / "garden.png") as im:
        return np.asarray(im.convert("RGB"))[:64, :96].copy()


# ------------------------------------------------------------------ the catalogue
def test_builtin_catalogue_pins_every_hashed_publisher_file() -> None:
    entries = builtin_entries()
    for arch in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean"):
        assert [e.quality for e in resolve(arch, entries)] == list(range(1, 9))
    assert {"encodec_24khz", "encodec_48khz", "dac_16khz", "dac_24khz", "dac_44khz"} <= set(entries)
    for entry in entries.values():
        assert entry.url.startswith("https://") and entry.licence
        if entry.converter in ("compressai", "encodec"):  # the hash in the publisher's file name is the pin
            assert entry.sha256 is not None and f"-{entry.sha256}." in entry.filename
        else:
            assert entry.sha256 is None  # DAC publishes no hash: fetched only when the user says so
    assert entries["mbt2018-mean-q3"].filename == "mbt2018-mean-3-723404a8.pth.tar"
    assert entries["encodec_24khz"].filename == "encodec_24khz-d7cc33bc.th"


def test_bad_catalogue_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    monkeypatch.setenv("NCODEC_CATALOGUE", str(path))
    for content in ("{", "{}", json.dumps([{"name": "x"}]),
                    json.dumps([{"name": "x", "url": "file:///etc/passwd", "sha256": None, "size": None, "licence": "",
                                 "converter": "encodec", "architecture": "encodec_24khz"}]),
                    json.dumps([{"name": "x", "url": "http://h/x.th", "sha256": "XYZ", "size": -1, "licence": "",
                                 "converter": "pickle", "architecture": "y"}])):
        path.write_text(content)
        with pytest.raises(ModelFileError):
            resolve("x")
    with pytest.raises(ModelFileError, match="not in the catalogue"):
        monkeypatch.delenv("NCODEC_CATALOGUE")
        resolve("no-such-model")


# ------------------------------------------------------------------ a good fetch
def test_good_fetch_converts_caches_and_round_trips(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                                    catalogue_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_catalogue(catalogue_file, server, checkpoint)
    before = server.requests[checkpoint["file"]]
    assert cli.main(["fetch", NAME]) == 0
    target = cache / f"{ARCH}-q1.safetensors"
    assert capsys.readouterr().out.strip() == str(target)
    assert leftovers(cache) == [target.name]  # the raw download is gone, no temporary file is left
    meta = read_metadata(target)
    assert meta["source_sha256"] == checkpoint["sha256"] and meta["catalogue"] == NAME
    assert meta["source_url"].endswith(checkpoint["file"])

    # cached: a second fetch downloads nothing, and the listing says so
    assert cli.main(["fetch", NAME]) == 0
    assert server.requests[checkpoint["file"]] == before + 1
    capsys.readouterr()
    assert cli.main(["list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if r.get("catalogue") == NAME)
    assert row["cached"] is True and row["path"] == str(target)
    assert any(r.get("model") == ARCH and r.get("quality") == 1 and r.get("path") == str(target) for r in rows)

    # the fetched model codes exactly as the same weights converted directly
    direct = tmp_path / "direct-q1.safetensors"
    save_model(from_compressai(checkpoint["state"], ARCH, 1), direct)
    image = _image()
    stream = ncodec.encode(image, codec="learned", model=ARCH, quality=1)
    other = ncodec.encode(image, codec="learned", model=str(direct))
    assert ncodec.info(stream)["model_hash"] == ncodec.info(other)["model_hash"]
    decoded = ncodec.decode(stream)
    assert decoded.shape == image.shape and np.array_equal(decoded, ncodec.decode(other, model=str(direct)))
    model, facts = load(NAME)
    assert facts["architecture"] == ARCH and not model.training


def test_load_fetches_only_when_asked(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                      catalogue_file: Path) -> None:
    write_catalogue(catalogue_file, server, checkpoint)
    with pytest.raises(ModelFileError, match="ncodec fetch"):
        load(NAME)
    assert leftovers(cache) == []
    model, facts = load(NAME, download=True, progress=False)
    assert facts["architecture"] == ARCH and leftovers(cache) == [f"{ARCH}-q1.safetensors"]


def test_offline_refuses_before_any_request(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                            catalogue_file: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_catalogue(catalogue_file, server, checkpoint)
    before = sum(server.requests.values())
    monkeypatch.setenv("NCODEC_OFFLINE", "1")
    assert cli.main(["fetch", NAME]) == 1
    assert "NCODEC_OFFLINE" in capsys.readouterr().err
    with pytest.raises(DownloadError):
        load(NAME, download=True)
    assert sum(server.requests.values()) == before and leftovers(cache) == []


# ------------------------------------------------------------------ failures leave nothing
@pytest.mark.parametrize("mode, changes, message", [
    ("ok", {"sha256": "0123abcd"}, "does not match the pin"),
    ("truncate", {}, "truncated|broke"),
    ("ok", {"url": "/ok/missing-1-00000000.pth.tar"}, "HTTP 404"),
    ("stall", {}, "stalled"),
    ("ok", {"size": 1000}, "announces"),
    ("nolength", {"size": 1000}, "more than the 1000 bytes"),
])
def test_failed_fetch_leaves_no_file(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                     catalogue_file: Path, mode: str, changes: dict[str, Any], message: str) -> None:
    if "url" in changes:
        changes = {"url": server.url + changes["url"]}
    write_catalogue(catalogue_file, server, checkpoint, mode, **changes)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=message):
        fetch(NAME, timeout=1.0, progress=False)
    assert time.monotonic() - started < 30
    assert leftovers(cache) == []


def test_redirects_are_followed_to_http_only(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                              catalogue_file: Path) -> None:
    server.redirects[checkpoint["file"]] = f"{server.url}/ok/{checkpoint['file']}"
    write_catalogue(catalogue_file, server, checkpoint, "redirect")
    assert fetch(NAME, progress=False) == [cache / f"{ARCH}-q1.safetensors"]
    (cache / f"{ARCH}-q1.safetensors").unlink()
    for target in ("file:///etc/passwd", "ftp://127.0.0.1/x.pth.tar"):
        server.redirects[checkpoint["file"]] = target
        with pytest.raises(DownloadError, match="only http|is not allowed"):
            fetch(NAME, progress=False)
        assert leftovers(cache) == []


def test_bytes_that_match_the_pin_but_are_no_checkpoint_leave_no_file(server: FileServer, cache: Path,
                                                                      catalogue_file: Path) -> None:
    data = server.files["garbage-1-x.pth.tar"]
    entry = {"name": NAME, "url": f"{server.url}/ok/garbage-1-x.pth.tar", "sha256": hashlib.sha256(data).hexdigest(),
             "size": len(data), "licence": "test", "converter": "compressai", "architecture": ARCH, "quality": 1}
    catalogue_file.write_text(json.dumps([entry]))
    with pytest.raises(DownloadError, match="does not convert"):
        fetch(NAME, progress=False)
    assert leftovers(cache) == []


def test_unpinned_entries_need_the_users_word(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                              catalogue_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_catalogue(catalogue_file, server, checkpoint, sha256=None)
    assert cli.main(["fetch", NAME]) == 1
    assert "--allow-unpinned" in capsys.readouterr().err and leftovers(cache) == []
    assert cli.main(["fetch", NAME, "--sha256", "ffffffff"]) == 1
    assert "does not match" in capsys.readouterr().err and leftovers(cache) == []
    assert cli.main(["fetch", NAME, "--sha256", checkpoint["sha256"]]) == 0
    assert leftovers(cache) == [f"{ARCH}-q1.safetensors"]
    (cache / f"{ARCH}-q1.safetensors").unlink()
    assert cli.main(["fetch", NAME, "--allow-unpinned"]) == 0
    assert checkpoint["sha256"] in capsys.readouterr().err  # the hash it accepted is shown, and recorded
    assert read_metadata(cache / f"{ARCH}-q1.safetensors")["source_sha256"] == checkpoint["sha256"]


# ------------------------------------------------------------------ a full disk (a real small filesystem)
def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare --user --mount` to mount a small tmpfs")
@pytest.mark.parametrize("mode, size_kib, message", [
    ("ok", 4096, "not enough disk space"),       # the announced size does not fit: refused before writing
    ("nolength", 8192, "disk holding .* is full"),  # no size announced: the disk fills up mid-download
])
def test_full_cache_disk_leaves_no_file(server: FileServer, checkpoint: dict[str, Any], tmp_path: Path,
                                        catalogue_file: Path, mode: str, size_kib: int, message: str) -> None:
    write_catalogue(catalogue_file, server, checkpoint, mode)
    mount = tmp_path / "small"
    mount.mkdir()
    listing = tmp_path / "listing.txt"
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs {mount} && "
              f"NCODEC_MODELS={mount} {sys.executable} -m ncodec -q fetch {NAME}; rc=$?; "
              f"ls -A {mount} > {listing}; exit $rc")
    run = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "NCODEC_CATALOGUE": str(catalogue_file)})
    assert run.returncode == 1, run.stderr
    assert len(checkpoint["data"]) > size_kib * 1024
    import re

    assert re.search(message, run.stderr), run.stderr
    assert "Traceback" not in run.stderr
    assert listing.read_text().split() == []


# ------------------------------------------------------------------ an interrupted fetch, run again
def _start_fetch(catalogue: Path, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ncodec", "-q", "fetch", NAME], cwd=ROOT, text=True,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "NCODEC_CATALOGUE": str(catalogue), "NCODEC_MODELS": str(cache)})


def _wait_for_partial(cache: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not any(p.suffix == ".part" and p.stat().st_size > 0 for p in cache.glob(".*")) if cache.is_dir() else True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_interrupted_fetch_run_again(server: FileServer, checkpoint: dict[str, Any], cache: Path,
                                     catalogue_file: Path, how: str) -> None:
    write_catalogue(catalogue_file, server, checkpoint, "slow")
    proc = _start_fetch(catalogue_file, cache)
    _wait_for_partial(cache, proc)
    proc.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    if how == "interrupt":  # Ctrl-C: the fetch cleans up after itself
        assert proc.returncode == 130, err
        assert leftovers(cache) == []
    else:  # a killed process cannot: its partial file is hidden, never a model, and swept by the next fetch
        assert proc.returncode == -signal.SIGKILL
        assert [p for p in leftovers(cache) if not p.startswith(".")] == []
    write_catalogue(catalogue_file, server, checkpoint, "ok")
    assert cli.main(["-q", "fetch", NAME]) == 0
    assert leftovers(cache) == [f"{ARCH}-q1.safetensors"]
    assert read_metadata(cache / f"{ARCH}-q1.safetensors")["source_sha256"] == checkpoint["sha256"]


def test_sweep_keeps_the_partial_files_of_running_fetches(tmp_path: Path) -> None:
    mine = tmp_path / f".{os.getpid()}.x.abc.part"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    theirs = tmp_path / f".{dead.pid}.x.abc.part"
    mine.write_bytes(b"1")
    theirs.write_bytes(b"2")
    assert sweep_partials(tmp_path) == [theirs]
    assert mine.exists() and not theirs.exists()
