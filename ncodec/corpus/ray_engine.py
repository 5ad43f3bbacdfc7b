"""Corpora on Ray Data: tokenize into Parquet shards, or compress a tree, across a cluster's CPUs (and GPUs).

Tokenizing (`tokenize_corpus`, ``ncodec tokenize SOURCE --out DIR --engine ray``):

1. the items (`ncodec.corpus.sources.list_items`) not yet in a completed shard are grouped into
   shards of ``items_per_shard``, one dataset row per shard;
2. ``map`` decodes each shard's items and prepares them for the model (channels, resampling:
   `ncodec.tokenizers.tokenizer.prepare_waveform`), in Ray tasks;
3. ``map_batches`` with a callable class tokenizes them, the model loaded once per actor
   (``workers`` CPU actors, or GPU actors with ``gpus_per_worker``), and writes the shard
   atomically (`ncodec.corpus.shards.write_shard`);
4. the driver adds each finished shard to the manifest as it arrives, so a killed run loses at
   most the shards in flight, and a rerun does only the rest.

Each item is tokenized alone, exactly as ``ncodec tokenize`` does on one machine: the same
tokens, file for file. An item that cannot be read is recorded with its error, and the rest go on.

`tokenize_dataset` is the middle of that pipeline for a user's own `ray.data.Dataset` (rows with
``path``, or ``bytes`` and ``path``); it returns a dataset of token rows. `compress_corpus`
(``ncodec compress DIR OUT --engine ray``) compresses every image and audio file of a tree into
``OUT/<path>.ncd`` on actors that keep their codecs (and models) loaded; outputs that exist
are kept, so a rerun resumes.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import Error
from .shards import Manifest, TokenRow, plan_shards, write_shard
from .sources import item_name, list_items, read_item

__all__ = ["CorpusSummary", "compress_corpus", "connect", "tokenize_corpus", "tokenize_dataset"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise Error("the Ray engine needs Ray Data: pip install 'ncodec[ray]'") from None
    return ray


def connect(address: str | None = None, workers: int | None = None) -> Any:
    """Ray, connected: to the cluster at ``address`` (``auto``: the one this machine belongs to), else to a
    local one started with ``workers`` CPUs (all by default). An existing connection is kept."""
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise Error(f"cannot start or reach a Ray cluster{f' at {address}' if address else ''}: {exc}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def _actors(ray: Any, tasks: int, workers: int | None) -> int:
    """Actors for ``tasks`` units of work: ``workers``, else one per CPU of the cluster; never more than the work."""
    return max(1, min(tasks, workers or int(ray.cluster_resources().get("CPU", 1))))


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# ------------------------------------------------------------------ per item: decode, tokenize
def decode_item(item: str, channels: int, model_rate: int, data: bytes | None = None) -> dict[str, Any]:
    """An item decoded and prepared for a model (float32 bytes ``[channels, T']`` at ``model_rate``), with the
    facts a shard records; ``error`` instead when it cannot be read."""
    from ..media.io import read_audio_float
    from ..tokenizers.tokenizer import prepare_waveform

    try:
        wav, rate = read_audio_float(read_item(item) if data is None else data)
        x = prepare_waveform(wav, rate, channels, model_rate)[0].numpy()
    except Exception as exc:  # noqa: BLE001 - soundfile and the resampler raise many kinds on bad files
        return {"item": item, "error": _one_line(exc)}
    return {"item": item, "wave": np.ascontiguousarray(x, np.float32).tobytes(), "wave_channels": int(x.shape[0]),
            "sample_rate": int(rate), "channels": int(wav.shape[0]), "duration": wav.shape[-1] / rate,
            "samples": -(-wav.shape[-1] * model_rate // rate), "error": None}


def tokenize_item(tokenizer: Any, decoded: dict[str, Any], name: str) -> TokenRow:
    """A decoded item's tokens (the tokenizer's own `encode_with_scales`, the item alone)."""
    if decoded.get("error") is not None:
        return TokenRow(name, error=str(decoded["error"]))
    import torch

    x = torch.from_numpy(np.frombuffer(decoded["wave"], np.float32).reshape(int(decoded["wave_channels"]), -1).copy())
    try:
        encoded = tokenizer.encode_with_scales(x, tokenizer.sample_rate)
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        return TokenRow(name, error=_one_line(exc))
    scales = None if encoded.scales is None else encoded.scales[0].cpu().numpy()
    return TokenRow(name, float(decoded["duration"]), int(decoded["sample_rate"]), int(decoded["channels"]),
                    int(decoded["samples"]), encoded.codes[0].cpu().numpy().astype(np.int16), scales)


class _ModelFacts:
    """What the driver needs of the model (loaded once there; the actors load their own): the settings the
    shards record, and the rate and channels the decoding tasks prepare audio for."""

    def __init__(self, model: str | None, bandwidth: float | None):
        from ..tokenizers.folder import token_settings
        from ..tokenizers.tokenizer import open_tokenizer

        tokenizer, name, model_hash = open_tokenizer(model, bandwidth, "cpu")
        self.settings = token_settings(tokenizer, name, model_hash)
        self.channels, self.sample_rate = tokenizer.channels, tokenizer.sample_rate


# ------------------------------------------------------------------ the corpus pipeline
def _decode_shard(row: dict[str, Any], channels: int, model_rate: int) -> dict[str, Any]:
    """Ray ``map`` (a task): a shard row (its items) -> the decoded, prepared items."""
    items = json.loads(row["items"])
    decoded = [decode_item(item, channels, model_rate) for item, _ in items]
    return {"shard": row["shard"], "items": row["items"],
            "decoded": json.dumps([{k: v for k, v in d.items() if k != "wave"} for d in decoded]),
            "waves": [d.get("wave", b"") for d in decoded]}


class _TokenizeShards:
    """Ray ``map_batches`` actor: tokenizes decoded shards with a model loaded once, writes each shard."""

    def __init__(self, model: str | None, bandwidth: float | None, device: str, folder: str,
                 settings: dict[str, Any]):
        import torch

        from ..tokenizers.tokenizer import open_tokenizer

        torch.set_num_threads(1)  # the actors are the parallelism
        self.tokenizer, _, model_hash = open_tokenizer(model, bandwidth, device)
        if model_hash != settings["model_hash"]:
            raise Error(f"the model on this worker ({model_hash[:12]}) is not the driver's "
                        f"({settings['model_hash'][:12]}): give every node the same model files")
        self.folder, self.settings = Path(folder), settings

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"shard": [], "entry": []}
        for shard, items, decoded, waves in zip(batch["shard"], batch["items"], batch["decoded"], batch["waves"]):
            rows = []
            for (item, name), facts, wave in zip(json.loads(items), json.loads(decoded), waves):
                rows.append(tokenize_item(self.tokenizer, {**facts, "wave": bytes(wave)}, name))
            entry = write_shard(self.folder, int(shard), rows, self.settings)
            out["shard"].append(int(shard))
            out["entry"].append(json.dumps(entry))
        return out


@dataclass
class CorpusSummary:
    """What a corpus run did."""

    items: int = 0                 # in the source
    new: int = 0                   # tokenized / compressed by this run
    kept: int = 0                  # done before (resumed)
    shards: int = 0                # written by this run
    seconds: float = 0.0           # of audio tokenized by this run
    wall: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)


def tokenize_corpus(source: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                    model: str | None = None, bandwidth: float | None = None, *, address: str | None = None,
                    workers: int | None = None, gpus_per_worker: float = 0.0, items_per_shard: int = 64,
                    force: bool = False, on_shard: Callable[[dict[str, Any]], None] | None = None) -> CorpusSummary:
    """Tokenize every audio item of ``source`` into the tokens folder ``out`` on Ray (see the module docs)."""
    started = time.monotonic()
    ray = connect(address, workers)
    facts = _ModelFacts(model, bandwidth)
    out = Path(out)
    manifest = Manifest.open(out, facts.settings, force)
    root = source if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() else None
    items = list_items(source, "audio")
    names = {item: item_name(item, root) for item in items}
    by_name = {v: k for k, v in names.items()}
    summary = CorpusSummary(items=len(items))
    summary.kept = len(manifest.done & set(by_name))
    plan = plan_shards([names[i] for i in items], manifest, items_per_shard)
    if plan:
        rows = [{"shard": shard, "items": json.dumps([[by_name[n], n] for n in chunk])} for shard, chunk in plan]
        actors = _actors(ray, len(plan), workers)
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map(_decode_shard, fn_kwargs={"channels": facts.channels, "model_rate": facts.sample_rate})
        ds = ds.map_batches(_TokenizeShards, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
                            num_gpus=gpus_per_worker or None,
                            fn_constructor_args=(model, bandwidth, "cuda" if gpus_per_worker else "cpu", str(out),
                                                 facts.settings))
        for row in ds.iter_rows():
            entry = json.loads(row["entry"])
            manifest.add(entry)
            summary.shards += 1
            summary.new += len(entry["items"])
            summary.seconds += float(entry.get("seconds", 0.0))
            summary.failed.update(entry["failed"])
            if on_shard is not None:
                on_shard(entry)
    summary.wall = time.monotonic() - started
    return summary


# ------------------------------------------------------------------ a user's own dataset
def _decode_row(row: dict[str, Any], channels: int, model_rate: int) -> dict[str, Any]:
    """Ray ``map`` (a task): a row with ``path`` (and maybe ``bytes``) -> the decoded, prepared item."""
    data = row.get("bytes")
    return decode_item(str(row["path"]), channels, model_rate, bytes(data) if data is not None else None)


class _TokenizeRows:
    def __init__(self, model: str | None, bandwidth: float | None, device: str):
        import torch

        from ..tokenizers.tokenizer import open_tokenizer

        torch.set_num_threads(1)
        self.tokenizer, self.name, self.hash = open_tokenizer(model, bandwidth, device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {k: [] for k in ("path", "duration", "sample_rate", "channels", "samples",
                                                     "codes", "scales", "bandwidth", "model", "model_hash", "error")}
        for i in range(len(batch["item"])):
            facts = {k: batch[k][i] for k in batch}
            row = tokenize_item(self.tokenizer, facts, str(batch["item"][i]))
            for key, value in (("path", row.item), ("duration", row.duration), ("sample_rate", row.sample_rate),
                               ("channels", row.channels), ("samples", row.samples),
                               ("codes", row.codes.tolist()),
                               ("scales", None if row.scales is None else row.scales.tolist()),
                               ("bandwidth", self.tokenizer.bandwidth), ("model", self.name),
                               ("model_hash", self.hash), ("error", row.error)):
                out[key].append(value)
        return out


def tokenize_dataset(ds: Any, model: str | None = None, bandwidth: float | None = None, *, workers: int = 1,
                     gpus_per_worker: float = 0.0, batch_size: int = 8) -> Any:
    """Tokens of a `ray.data.Dataset` whose rows hold ``path`` (and optionally the file's ``bytes``): a
    dataset of rows ``path, duration, sample_rate, channels, samples, codes [K][T], scales, bandwidth,
    model, model_hash, error``, each item tokenized alone as ``ncodec tokenize`` does."""
    ray = _ray()
    facts = _ModelFacts(model, bandwidth)
    ds = ds.map(_decode_row, fn_kwargs={"channels": facts.channels, "model_rate": facts.sample_rate})
    return ds.map_batches(_TokenizeRows, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
                          num_gpus=gpus_per_worker or None, batch_format="numpy",
                          fn_constructor_args=(model, bandwidth, "cuda" if gpus_per_worker else "cpu"))


# ------------------------------------------------------------------ compressing a tree
class _CompressFiles:
    """Ray ``map_batches`` actor: compresses files with codecs kept loaded across its batches."""

    def __init__(self, codec: str | None, options: dict[str, Any], force: bool):
        import torch

        torch.set_num_threads(1)
        self.codec, self.options, self.force, self.codecs = codec, options, force, {}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from .. import api

        out: dict[str, list[Any]] = {"item": [], "bytes_in": [], "bytes_out": [], "error": []}
        for src, target in zip(batch["item"], batch["out"]):
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                _, size_in, size_out, _ = api.compress_file(src, target, self.codec, self.force,
                                                            codecs=self.codecs, **self.options)
                error = None
            except (Error, OSError) as exc:
                size_in = size_out = 0
                error = _one_line(exc)
            out["item"].append(str(src))
            out["bytes_in"].append(int(size_in))
            out["bytes_out"].append(int(size_out))
            out["error"].append(error)
        return out


def compress_corpus(root: str | os.PathLike, out_root: str | os.PathLike, codec: str | None = None,
                    options: dict[str, Any] | None = None, *, address: str | None = None,
                    workers: int | None = None, force: bool = False, suffix: str = ".ncd") -> CorpusSummary:
    """Compress every image and audio file under ``root`` into ``out_root/<path><suffix>`` on Ray actors;
    outputs that exist are kept unless ``force`` (a rerun resumes); failures are listed in the summary."""
    started = time.monotonic()
    ray = connect(address, workers)
    root, out_root = Path(root), Path(out_root)
    items = list_items(root, "image") + list_items(root, "audio")
    summary = CorpusSummary(items=len(items))
    todo = []
    for item in sorted(items):
        target = out_root / (item_name(item, root) + suffix)
        if target.exists() and not force:
            summary.kept += 1
        else:
            todo.append({"item": item, "out": str(target)})
    if todo:
        actors = _actors(ray, len(todo), workers)
        ds = ray.data.from_items(todo, override_num_blocks=min(len(todo), 4 * actors))
        ds = ds.map_batches(_CompressFiles, batch_size=4, compute=ray.data.ActorPoolStrategy(size=actors),
                            fn_constructor_args=(codec, dict(options or {}), force))
        for row in ds.iter_rows():
            if row["error"] is not None:
                summary.failed[row["item"]] = row["error"]
            else:
                summary.new += 1
    summary.wall = time.monotonic() - started
    return summary
