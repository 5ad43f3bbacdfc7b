"""Tokenize a folder of audio files into one safetensors file, in batches, resuming after interruption.

The output holds, for every file (its path relative to the folder, ``/``-separated),
``codes/<path>``: int16 ``[K, frames]``, and for normalising models ``scales/<path>``: float32
``[segments]``. Its metadata: ``format`` (``ncodec-tokens/1``), ``settings`` (JSON: model
name and hash, bandwidth, sample rate, channels, frame rate, codebooks, codebook size) and
``files`` (JSON: per path its frames, samples at the model's rate, source rate, channels
and seconds).

Work goes into ``<out>.partial/``: each batch becomes a shard written atomically (temporary
file, then rename), so an interrupted run loses at most the batch in progress; the next run
with the same settings skips every file a shard (or an existing output) already holds. The
output is written atomically from the shards at the end, and the shards are removed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from ..errors import Error, MediaError
from ..media.formats import media_files
from ..media.io import audio_info, read_audio_float
from ..progress import Progress
from .tokenizer import Tokenizer

__all__ = ["DetokenizeSummary", "FORMAT", "TokenizeSummary", "audio_files", "detokenize_file", "read_token_settings",
           "read_tokens", "tokenize_folder"]

FORMAT = "ncodec-tokens/1"
LONG_SECONDS = 60.0  # files longer than this are coded alone (causal models stream them in chunks)


@dataclass
class TokenizeSummary:
    """What a `tokenize_folder` run did."""

    files: int = 0                 # files in the output
    new: int = 0                   # of which coded in this run
    frames: int = 0                # code frames in the output
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped


def audio_files(folder: Path) -> list[str]:
    """Audio files under ``folder`` (recursively, by suffix), as sorted ``/``-separated relative paths."""
    return sorted(p.relative_to(folder).as_posix() for p in media_files(folder, "audio", recursive=True))


def token_settings(tokenizer: Tokenizer, model_name: str, model_hash: str) -> dict[str, Any]:
    """What a tokens file (or folder) records of the model and bandwidth that made it; resuming needs the same."""
    return {"model": model_name, "model_hash": model_hash, "bandwidth": tokenizer.bandwidth,
            "sample_rate": tokenizer.sample_rate, "channels": tokenizer.channels,
            "frame_rate": tokenizer.frame_rate, "codebooks": tokenizer.num_codebooks,
            "codebook_size": tokenizer.codebook_size}


def _read_meta(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return {"format": meta.get("format"), "settings": json.loads(meta["settings"]),
                "files": json.loads(meta["files"])}
    except Exception as exc:  # a torn or foreign file
        raise Error(f"{path} is not an ncodec tokens file: {exc}") from None


def read_token_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The ``settings`` of a tokens file (model name and hash, bandwidth, ...), without loading its codes."""
    return _read_meta(Path(path))["settings"]


def read_tokens(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors of a tokens file and its metadata (``settings`` and ``files`` decoded)."""
    from safetensors.torch import load_file

    meta = _read_meta(Path(path))
    return load_file(str(path)), meta


def _save(tensors: dict[str, torch.Tensor], path: Path, settings: dict[str, Any], files: dict[str, Any]) -> None:
    """Write a tokens file atomically (temporary file beside it, then rename)."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    meta = {"format": FORMAT, "settings": json.dumps(settings, sort_keys=True), "files": json.dumps(files)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


def tokenize_folder(folder: str | os.PathLike, out: str | os.PathLike, tokenizer: Tokenizer, model_name: str,
                    model_hash: str, batch_size: int = 16, batch_seconds: float = 600.0, force: bool = False,
                    progress: Progress | None = None, warn: Callable[[str], None] | None = None) -> TokenizeSummary:
    """Tokenize every audio file of ``folder`` into ``out`` (see the module docs); ``force`` starts over."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise Error(f"{folder} is not a folder")
    if batch_size < 1 or batch_seconds <= 0:
        raise Error("batch size and batch seconds must be positive")
    settings = token_settings(tokenizer, model_name, model_hash)
    partial = out.with_name(out.name + ".partial")
    if force:
        for shard in sorted(partial.glob("*.safetensors")) if partial.is_dir() else []:
            shard.unlink()
    done: dict[str, dict[str, Any]] = {}
    sources = ([out] if out.is_file() and not force else []) + \
        (sorted(partial.glob("shard-*.safetensors")) if partial.is_dir() else [])
    for src in sources:
        meta = _read_meta(src)
        if meta["format"] != FORMAT or meta["settings"] != settings:
            raise Error(f"{src} was made with other settings ({meta['settings']}); use the same model and "
                        f"bandwidth, or --force to start over")
        done.update(meta["files"])
    summary = TokenizeSummary()
    pending = [rel for rel in audio_files(folder) if rel not in done]
    lengths: dict[str, float] = {}
    for rel in pending:
        try:
            rate, _, frames = audio_info(folder / rel)
            lengths[rel] = frames / rate
        except MediaError as exc:
            summary.failed[rel] = str(exc).splitlines()[0][:200]
            if warn:
                warn(f"{rel}: skipped ({summary.failed[rel]})")
    pending = sorted(lengths, key=lambda r: (lengths[r], r))  # similar lengths share batches
    if progress is not None:
        progress.total = max(sum(lengths.values()), 1e-9)
    partial.mkdir(parents=True, exist_ok=True)
    shard_no = len(list(partial.glob("shard-*.safetensors")))
    batch: list[str] = []

    def flush() -> None:
        nonlocal shard_no, batch
        if not batch:
            return
        tensors, files = _code_batch(folder, batch, tokenizer, summary, warn)
        if files:
            _save(tensors, partial / f"shard-{shard_no:06d}.safetensors", settings, files)
            shard_no += 1
            summary.new += len(files)
        if progress is not None:
            progress.update(sum(lengths[r] for r in batch))
        batch = []

    for rel in pending:
        if lengths[rel] > LONG_SECONDS:
            flush()
            batch = [rel]
            flush()
            continue
        if batch and (len(batch) >= batch_size or sum(lengths[r] for r in batch) + lengths[rel] > batch_seconds):
            flush()
        batch.append(rel)
    flush()
    summary.frames, summary.files = _merge(out, partial, settings, force)
    return summary


def _code_batch(folder: Path, batch: list[str], tokenizer: Tokenizer, summary: TokenizeSummary,
                warn: Callable[[str], None] | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and file facts of one batch (unreadable files are noted in ``summary`` and left out)."""
    waves, rates, names = [], [], []
    for rel in batch:
        try:
            wav, rate = read_audio_float(folder / rel)
        except Exception as exc:  # soundfile raises several kinds on unreadable files
            summary.failed[rel] = str(exc).splitlines()[0][:200]
            if warn:
                warn(f"{rel}: skipped ({summary.failed[rel]})")
            continue
        waves.append(torch.from_numpy(wav))
        rates.append(rate)
        names.append(rel)
    if len(waves) == 1:  # alone: causal models stream long files chunk by chunk
        enc = tokenizer.encode_with_scales(waves[0], rates[0])
        results = [(enc.codes[0], None if enc.scales is None else enc.scales[0])]
    else:
        results = tokenizer.encode_batch(waves, rates)
    tensors: dict[str, torch.Tensor] = {}
    files: dict[str, Any] = {}
    for rel, wav, rate, (codes, scales) in zip(names, waves, rates, results):
        tensors[f"codes/{rel}"] = codes.to("cpu", torch.int16)
        if scales is not None:
            tensors[f"scales/{rel}"] = scales.to("cpu", torch.float32)
        samples = -(-wav.shape[-1] * tokenizer.sample_rate // rate)
        files[rel] = {"frames": int(codes.shape[-1]), "samples": int(samples), "sample_rate": rate,
                      "channels": int(wav.shape[0]), "seconds": wav.shape[-1] / rate}
    return tensors, files


def _merge(out: Path, partial: Path, settings: dict[str, Any], force: bool) -> tuple[int, int]:
    """Write ``out`` from itself (unless ``force``) and the shards, atomically; remove the shards."""
    from safetensors.torch import load_file

    shards = sorted(partial.glob("shard-*.safetensors"))
    if not shards and out.is_file() and not force:
        meta = _read_meta(out)
        return sum(f["frames"] for f in meta["files"].values()), len(meta["files"])
    tensors: dict[str, torch.Tensor] = {}
    files: dict[str, Any] = {}
    for src in ([out] if out.is_file() and not force else []) + shards:
        tensors.update(load_file(str(src)))
        files.update(_read_meta(src)["files"])
    _save(tensors, out, settings, dict(sorted(files.items())))
    for shard in shards:
        shard.unlink()
    try:
        partial.rmdir()
    except OSError:
        pass
    return sum(f["frames"] for f in files.values()), len(files)


@dataclass
class DetokenizeSummary:
    """What `detokenize_file` did."""

    files: int = 0                 # audio files written
    kept: int = 0                  # outputs that existed already (kept; a rerun resumes)
    seconds: float = 0.0           # audio written, in seconds


def detokenize_file(tokens: str | os.PathLike, out: str | os.PathLike, tokenizer: Tokenizer, model_hash: str,
                    force: bool = False, progress: Progress | None = None) -> DetokenizeSummary:
    """Tokens back to audio: every file of a tokens file (`tokenize_folder`'s output) decoded by ``tokenizer``
    into ``out/<path>.wav`` (16-bit PCM at the source's rate and length), each written atomically.

    `ModelMismatchError` when the tokens were made by another model than ``model_hash``.
    """
    tensors, meta = read_tokens(tokens)

    def items() -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None, dict[str, Any]]]:
        for rel, facts in sorted(meta["files"].items()):
            codes = tensors.get(f"codes/{rel}")
            if codes is None:
                raise Error(f"{tokens} lists {rel} but holds no codes for it")
            yield rel, codes, tensors.get(f"scales/{rel}"), facts

    return detokenize_items(str(tokens), meta["settings"], items(), len(meta["files"]), out, tokenizer, model_hash,
                            force, progress)


def detokenize_items(source: str, settings: dict[str, Any],
                     items: Iterable[tuple[str, torch.Tensor, torch.Tensor | None, dict[str, Any]]], count: int,
                     out: str | os.PathLike, tokenizer: Tokenizer, model_hash: str, force: bool = False,
                     progress: Progress | None = None) -> DetokenizeSummary:
    """Write ``out/<path>.wav`` for each ``(path, codes [K, T], scales, facts)`` of a tokens store (facts:
    ``samples`` at the model's rate, the source's ``sample_rate`` and ``seconds``); outputs that exist are
    kept unless ``force``. `ModelMismatchError` when ``settings`` name another model than ``model_hash``."""
    from ..errors import ModelMismatchError
    from ..media.io import atomic_output, write_audio
    from ..media.pcm import from_float
    from ..media.resample import resample
    from ..media.types import Audio

    if settings.get("model_hash") != model_hash:
        raise ModelMismatchError(f"{source} was made with model {settings.get('model')} "
                                 f"({str(settings.get('model_hash'))[:12]}), not the one given ({model_hash[:12]})")
    out = Path(out)
    summary = DetokenizeSummary()
    for rel, codes, scales, facts in items:
        target = out / (Path(rel).with_suffix(".wav").as_posix())
        if target.exists() and not force:
            summary.kept += 1
            continue
        with torch.no_grad():
            wav = tokenizer.decode(codes.long()[None], scales, int(facts["samples"]))[0]
        rate = int(facts["sample_rate"])
        if rate != tokenizer.sample_rate:
            wav = resample(wav.float().cpu(), tokenizer.sample_rate, rate)
        length = round(float(facts["seconds"]) * rate)
        pcm = from_float(wav[:, :length].T.contiguous().cpu().numpy(), 16)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, force) as f:
            write_audio(f, Audio(pcm, rate, bit_depth=16), "WAV")
        summary.files += 1
        summary.seconds += pcm.shape[0] / rate
        if progress:
            progress.update(1 / max(1, count))
    return summary
