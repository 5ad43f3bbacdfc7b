"""Shared fixtures: the bundled real samples, and the shared data set when it is present."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def shared_data_dir() -> Path | None:
    """``$NCODEC_DATA`` or ``../shared/data`` beside the checkout, if it exists."""
    for candidate in (os.environ.get("NCODEC_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("the shared data set (../shared/data or $NCODEC_DATA) is not present")
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test single-threaded: small ops gain nothing from threads, and spinning OpenMP
    threads crawl on busy CPUs. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
