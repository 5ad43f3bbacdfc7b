"""Benchmarks that run ncodec and its peers side by side in one process (``ncodec bench ...``)."""
from __future__ import annotations

import importlib
from typing import Sequence

BENCHES = {"entropy": "ncodec.bench.entropy", "lossless-audio": "ncodec.bench.lossless_audio"}


def run_bench(what: str, argv: Sequence[str]) -> None:
    """Run the benchmark ``what`` with its own command-line arguments."""
    importlib.import_module(BENCHES[what]).main(list(argv))
