"""Stream surgery shared by the tests of the fitted codecs (``inr``, ``nerv``): forged headers and chunks."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import ncodec
from ncodec import bitstream
from ncodec.errors import BitstreamError


# Header fields every fitted codec must refuse: a non-object architecture, malformed weight codes
# (bad digits, odd length, none), foreign coding tables, another stream format.
FORGED_FITTED_CONFIG = [
    {"config": {"architecture": "x"}},
    {"config": {"weights": "zz"}},
    {"config": {"weights": "3"}},
    {"config": {"weights": ""}},
    {"config": {"tables": "0" * 16}},
    {"config": {"format": 2}},
]


def repack(data: bytes, config: dict | None = None, meta: dict | None = None,
           chunks: list[tuple[str, bytes]] | None = None) -> bytes:
    """``data`` with header config / metadata fields replaced, and optionally other chunks (CRCs made anew)."""
    header, old = bitstream.unpack(data)
    new_header = dataclasses.replace(header, config={**header.config, **(config or {})},
                                     metadata={**header.metadata, **(meta or {})})
    return bitstream.pack(new_header, chunks if chunks is not None else [(c.kind, c.payload) for c in old])


def forged_chunk_lists(data: bytes, flips: int = 6, seed: int = 0) -> list[list[tuple[str, bytes]]]:
    """Missing, doubled, truncated, swapped and garbage ``WGHT`` / ``LATN`` chunks, and random byte flips."""
    _, chunks = bitstream.unpack(data)
    weights, latents = (c.payload for c in chunks)
    rng = np.random.default_rng(seed)
    cases = [
        [("WGHT", weights)],                                   # latents missing
        [("WGHT", weights), ("LATN", latents), ("LATN", latents)],
        [("WGHT", weights[:-4]), ("LATN", latents)],           # truncated rANS streams
        [("WGHT", weights), ("LATN", latents[:-4])],
        [("WGHT", weights), ("LATN", latents[:20])],
        [("WGHT", latents), ("LATN", weights)],                 # swapped
        [("WGHT", b"garbage"), ("LATN", latents)],
    ]
    for _ in range(flips):
        w, lat = bytearray(weights), bytearray(latents)
        for buf in (w, lat):
            i = int(rng.integers(16, len(buf)))
            buf[i] ^= 0xFF
        cases.append([("WGHT", bytes(w)), ("LATN", bytes(lat))])
    return cases


def check_hostile_chunks(data: bytes, sane: Callable[[Any], bool]) -> None:
    """Every forged chunk list raises BitstreamError or decodes to something ``sane``; cuts always raise."""
    for chunk_list in forged_chunk_lists(data):
        try:
            out = ncodec.decode(repack(data, chunks=chunk_list))
        except BitstreamError:
            continue
        assert sane(out)   # a flip may still decode; then the output must be sane
    for cut in (10, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            ncodec.decode(data[:cut])
