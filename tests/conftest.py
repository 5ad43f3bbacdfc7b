"""Shared fixtures: the bundled real samples, and the shared data set when it is present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
