"""Token shards: Parquet files of codes with a manifest, written atomically, resumed, read back.

A tokens folder holds ``part-<n>.parquet`` shards and ``manifest.json``. Each shard row is one
item (source file): ``item`` (its path, relative to a folder source), ``duration`` (seconds),
``sample_rate`` and ``channels`` of the source, ``samples`` (length at the model's rate),
``frames``, ``codebooks``, ``codes`` (``list<list<int16>>``, ``[codebooks][frames]``), ``scales``
(per-segment volumes of normalising models, else null), ``bandwidth``, ``model``, ``model_hash``
and ``error`` (why the item could not be tokenized; its codes are then empty). The settings
(model, hash, bandwidth, rates, codebooks) are also in each shard's schema metadata.

A shard file appears only complete (written under a hidden name, then renamed). The manifest
lists the shards and their items; a shard file that a killed run renamed into place but did not
list is adopted by the next run; items in no listed shard are tokenized into new shards.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import Error

__all__ = ["FORMAT", "MANIFEST", "Manifest", "TokenRow", "corpus_settings", "detokenize_corpus", "is_corpus",
           "plan_shards", "read_corpus", "shard_file", "write_shard"]

FORMAT = "ncodec-tokens-parquet/1"
MANIFEST = "manifest.json"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise Error("token shards need pyarrow (pip install 'ncodec[ray]')") from None
    return pyarrow


@dataclass
class TokenRow:
    """One item's tokens (or its error), as a shard row holds them."""

    item: str
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    samples: int = 0
    codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))  # [codebooks, frames]
    scales: np.ndarray | None = None
    error: str | None = None


def shard_file(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def _table(rows: Sequence[TokenRow], settings: dict[str, Any]) -> Any:
    """The Arrow table of a shard (codes built from flat buffers, not Python lists)."""
    pa = _pyarrow()
    codes = [np.ascontiguousarray(r.codes, dtype=np.int16) for r in rows]
    inner_lengths = [c.shape[1] for c in codes for _ in range(c.shape[0])]
    inner = np.zeros(len(inner_lengths) + 1, np.int64)
    np.cumsum(inner_lengths, out=inner[1:])
    outer = np.zeros(len(codes) + 1, np.int64)
    np.cumsum([c.shape[0] for c in codes], out=outer[1:])
    values = np.concatenate([c.reshape(-1) for c in codes]) if codes else np.zeros(0, np.int16)
    code_array = pa.ListArray.from_arrays(pa.array(outer, pa.int32()),
                                          pa.ListArray.from_arrays(pa.array(inner, pa.int32()),
                                                                   pa.array(values, pa.int16())))
    n = len(rows)
    columns = {
        "item": pa.array([r.item for r in rows], pa.string()),
        "duration": pa.array([r.duration for r in rows], pa.float64()),
        "sample_rate": pa.array([r.sample_rate for r in rows], pa.int32()),
        "channels": pa.array([r.channels for r in rows], pa.int32()),
        "samples": pa.array([r.samples for r in rows], pa.int64()),
        "frames": pa.array([int(c.shape[1]) for c in codes], pa.int32()),
        "codebooks": pa.array([int(c.shape[0]) for c in codes], pa.int32()),
        "codes": code_array,
        "scales": pa.array([None if r.scales is None else np.asarray(r.scales, np.float32).tolist() for r in rows],
                           pa.list_(pa.float32())),
        "bandwidth": pa.array([float(settings["bandwidth"])] * n, pa.float64()),
        "model": pa.array([str(settings["model"])] * n, pa.string()),
        "model_hash": pa.array([str(settings["model_hash"])] * n, pa.string()),
        "error": pa.array([r.error for r in rows], pa.string()),
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({b"ncodec": json.dumps({"format": FORMAT, "settings": settings}).encode()})


def write_shard(folder: Path, shard: int, rows: Sequence[TokenRow], settings: dict[str, Any]) -> dict[str, Any]:
    """Write one shard atomically (hidden name, fsync, rename); its manifest entry."""
    pa = _pyarrow()
    target = folder / shard_file(shard)
    tmp = folder / f".{os.getpid()}.{target.name}.tmp"
    try:
        pa.parquet.write_table(_table(rows, settings), tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"shard": shard, "file": target.name, "items": [r.item for r in rows],
            "seconds": float(sum(r.duration for r in rows)),
            "failed": {r.item: r.error for r in rows if r.error is not None}}


class Manifest:
    """The tokens folder's manifest: its settings and completed shards; saved atomically after each shard."""

    def __init__(self, folder: Path, settings: dict[str, Any], shards: list[dict[str, Any]] | None = None):
        self.folder, self.settings, self.shards = folder, settings, list(shards or [])

    @classmethod
    def open(cls, folder: Path, settings: dict[str, Any], force: bool = False) -> "Manifest":
        """The folder's manifest (a new one with ``force`` or none yet), with orphan shards adopted;
        Error when the folder was tokenized with other settings."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST
        if force:
            for old in list(folder.glob("part-*.parquet")) + [path]:
                old.unlink(missing_ok=True)
        manifest = cls(folder, settings)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise Error(f"{path} is unreadable ({exc}); --force starts over") from None
            if data.get("format") != FORMAT or data.get("settings") != settings:
                raise Error(f"{folder} holds tokens made with other settings ({data.get('settings')}); use the same "
                            f"model and bandwidth, or --force to start over")
            manifest.shards = list(data.get("shards", []))
        listed = {s["file"] for s in manifest.shards}
        for orphan in sorted(folder.glob("part-*.parquet")):
            if orphan.name not in listed:
                manifest._adopt(orphan)
        return manifest

    def _adopt(self, path: Path) -> None:
        pa = _pyarrow()
        try:
            meta = json.loads(pa.parquet.read_schema(path).metadata[b"ncodec"])
            table = pa.parquet.read_table(path, columns=["item", "error"])
        except Exception as exc:  # noqa: BLE001 - an unreadable orphan is redone
            path.unlink(missing_ok=True)
            del exc
            return
        if meta.get("settings") != self.settings:
            raise Error(f"{path} was made with other settings; --force starts over")
        items, errors = table.column("item").to_pylist(), table.column("error").to_pylist()
        self.add({"shard": int(path.stem.split("-")[1]), "file": path.name, "items": items,
                  "failed": {i: e for i, e in zip(items, errors) if e is not None}})

    @property
    def done(self) -> set[str]:
        return {item for s in self.shards for item in s["items"]}

    @property
    def next_shard(self) -> int:
        ids = [s["shard"] for s in self.shards] + [int(p.stem.split("-")[1]) for p in self.folder.glob("part-*.parquet")]
        return max(ids) + 1 if ids else 0

    def add(self, entry: dict[str, Any]) -> None:
        self.shards = [s for s in self.shards if s["shard"] != entry["shard"]] + [entry]
        self.shards.sort(key=lambda s: s["shard"])
        self.save()

    def save(self) -> None:
        path = self.folder / MANIFEST
        tmp = self.folder / f".{os.getpid()}.{MANIFEST}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT, "settings": self.settings, "shards": self.shards}, indent=1))
        os.replace(tmp, path)


def plan_shards(items: Sequence[str], manifest: Manifest, items_per_shard: int) -> list[tuple[int, list[str]]]:
    """The shards still to write: the items in no completed shard, in order, ``items_per_shard`` each."""
    if items_per_shard < 1:
        raise Error("items per shard must be at least 1")
    done = manifest.done
    pending = [i for i in items if i not in done]
    first = manifest.next_shard
    return [(first + n, pending[k:k + items_per_shard]) for n, k in enumerate(range(0, len(pending), items_per_shard))]


def read_corpus(folder: str | os.PathLike) -> Iterator[tuple[TokenRow, dict[str, Any]]]:
    """Every row of a tokens folder's listed shards, in shard order: (row, settings)."""
    pa = _pyarrow()
    folder = Path(folder)
    manifest = _read_manifest(folder)
    settings = manifest["settings"]
    for shard in manifest["shards"]:
        table = pa.parquet.read_table(folder / shard["file"])
        codes = table.column("codes").combine_chunks()
        flat = codes.flatten().flatten().to_numpy(zero_copy_only=False)
        inner = codes.flatten().offsets.to_numpy()
        outer = codes.offsets.to_numpy()
        data = table.drop_columns(["codes"]).to_pylist()
        for i, row in enumerate(data):
            k = int(row["codebooks"])
            t = int(row["frames"])
            start = int(inner[outer[i]]) if k else 0
            values = flat[start:start + k * t].reshape(k, t).astype(np.int16) if k else np.zeros((0, 0), np.int16)
            scales = None if row["scales"] is None else np.asarray(row["scales"], np.float32)
            yield TokenRow(row["item"], float(row["duration"]), int(row["sample_rate"]), int(row["channels"]),
                           int(row["samples"]), values, scales, row["error"]), settings


def is_corpus(path: str | os.PathLike) -> bool:
    """True for a tokens folder (Parquet shards and a manifest)."""
    return (Path(path) / MANIFEST).is_file()


def _read_manifest(folder: Path) -> dict[str, Any]:
    """A tokens folder's manifest (settings and shards); Error when it is missing or unreadable."""
    path = folder / MANIFEST
    if not path.is_file():
        raise Error(f"{folder} has no {MANIFEST}: not a tokens folder (ncodec tokenize --engine ray --out ...)")
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("settings"), dict) or not isinstance(manifest.get("shards"), list):
            raise ValueError("no settings or shards")
    except (OSError, ValueError, AttributeError) as exc:
        raise Error(f"{folder} is not a readable tokens folder: {exc}") from None
    return manifest


def corpus_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """The settings (model, hash, bandwidth, ...) a tokens folder was made with."""
    return dict(_read_manifest(Path(folder))["settings"])


def detokenize_corpus(folder: str | os.PathLike, out: str | os.PathLike, tokenizer: Any, model_hash: str,
                      force: bool = False, progress: Any = None) -> Any:
    """Every tokenized item of a tokens folder back to ``out/<item>.wav`` (as ``ncodec detokenize`` does for a
    tokens file); failed items (recorded with their error) are skipped."""
    import torch

    from ..tokenizers.folder import detokenize_items

    def items() -> Iterator[tuple[str, Any, Any, dict[str, Any]]]:
        for row, _ in read_corpus(folder):
            if row.error is None:
                scales = None if row.scales is None else torch.from_numpy(row.scales)
                yield (row.item, torch.from_numpy(row.codes.astype(np.int64)), scales,
                       {"samples": row.samples, "sample_rate": row.sample_rate, "seconds": row.duration})

    manifest = _read_manifest(Path(folder))
    count = sum(len(s["items"]) for s in manifest["shards"])
    return detokenize_items(str(folder), manifest["settings"], items(), count, out, tokenizer, model_hash, force,
                            progress)
