"""scripts/train_image.py and scripts/train_lifting.py end to end: a few steps on the bundled photo,
validation through real bitstreams, weights written that load back."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def photos(tmp_path: Path, samples: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(samples / "garden.png", folder)
    return folder


def test_train_image_runs_validates_and_saves(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ncodec.zoo import load_model

    out = tmp_path / "run"
    _script("train_image").main(["--data", str(photos), "--val", str(photos), "--steps", "2", "--batch", "2",
                                 "--crop", "64", "--val-every", "2", "--N", "8", "--M", "12", "--out", str(out)])
    record = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert record["step"] == 2 and record["val"]["bpp"] > 0
    model, facts = load_model(out / "weights.safetensors")
    assert (facts["architecture"], facts["N"], facts["M"]) == ("mbt2018-mean", 8, 12)
    assert "| 2 | 0 |" in _script("learning_curve").table(out / "log.jsonl")


def test_train_variable_rate_model_exports_fp16_with_its_steps(photos: Path, tmp_path: Path) -> None:
    from ncodec.zoo import load_model, load_weights, read_metadata

    out, export = tmp_path / "run", tmp_path / "w.fp16.safetensors"
    args = ["--data", str(photos), "--val", str(photos), "--val-max", "1", "--val-qualities", "2,7", "--steps", "2",
            "--batch", "2", "--crop", "64", "--val-every", "2", "--N", "8", "--M", "12", "--scales", "1,0.5",
            "--jitter", "0.05", "--arch", "mbt2018-mean-gained", "--export", str(export), "--out", str(out)]
    _script("train_image").main(args)
    assert read_metadata(export)["steps"] == "2"
    assert all(v.dtype == torch.float16 or not v.is_floating_point() for v in load_weights(export).values())
    assert load_model(out / "weights.safetensors")[1]["architecture"] == "mbt2018-mean-gained"
    _script("train_image").main([*args[:-2], "--steps", "3", "--init", str(export), "--out", str(tmp_path / "again")])
    assert read_metadata(export)["steps"] == "3"  # resumed from the exported weights at their step count


def test_train_lifting_runs_validates_and_saves(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lifting.safetensors"
    _script("train_lifting").main(["--data", str(photos), "--val", str(photos), "--val-max", "1", "--steps", "2",
                                   "--batch", "2", "--crop", "64", "--val-every", "2", "--out", str(out)])
    record = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert record["step"] == 2 and record["bpp_53"] > 0 and out.is_file()
