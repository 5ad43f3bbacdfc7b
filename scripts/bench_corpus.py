"""Tokenizing a corpus: the local engine against Ray with 1 and 2 workers, in one run, on this machine.

    python scripts/bench_corpus.py --data ../shared/data/audio/speech/dev --model encodec_24khz

Prints files/s and audio-seconds/s per engine (the Ray cluster is started before the timing,
as a running cluster would be), checks that every engine gave the same tokens, and times the
pipeline's stages on one core (decode + resample, the model, writing the shard) to show where
the time goes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.corpus.ray_engine import connect, decode_item, tokenize_corpus, tokenize_item
from ncodec.corpus.shards import read_corpus, write_shard
from ncodec.corpus.sources import item_name, list_items
from ncodec.tokenizers.folder import read_tokens, token_settings, tokenize_folder
from ncodec.tokenizers.tokenizer import open_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "audio" / "speech" / "dev"))
    p.add_argument("--model", default="encodec_24khz", help="audio model: zoo name or weights path")
    p.add_argument("--bandwidth", type=float)
    p.add_argument("--items-per-shard", type=int, default=2)
    args = p.parse_args()
    data = Path(args.data)
    items = list_items(data, "audio")
    tokenizer, name, model_hash = open_tokenizer(args.model, args.bandwidth)
    print(f"{len(items)} files in {data}; model {name} ({model_hash[:12]}), {tokenizer.bandwidth:g} kbps, "
          f"torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = tokenize_folder(data, Path(tmp) / "local.safetensors", tokenizer, name, model_hash)
        local_s = time.perf_counter() - t0
        seconds = sum(f["seconds"] for f in read_tokens(Path(tmp) / "local.safetensors")[1]["files"].values())
        tensors, _ = read_tokens(Path(tmp) / "local.safetensors")
        rows = [("local (1 process; the model on 1 thread)", local_s, summary.files)]
        t0 = time.perf_counter()
        connect(workers=2)
        print(f"Ray cluster started in {time.perf_counter() - t0:.1f} s (not counted below)")
        for workers in (1, 2):
            out = Path(tmp) / f"ray{workers}"
            t0 = time.perf_counter()
            tokenize_corpus(data, out, args.model, args.bandwidth, workers=workers,
                            items_per_shard=args.items_per_shard)
            elapsed = time.perf_counter() - t0
            same = all(np.array_equal(r.codes, tensors[f"codes/{r.item}"].numpy()) for r, _ in read_corpus(out)
                       if r.error is None)
            rows.append((f"Ray, {workers} worker{'s' if workers > 1 else ''} (1 thread each)", elapsed, len(items)))
            print(f"  Ray {workers} worker(s): same tokens as local: {same}")

        print("\n| engine | wall (s) | files/s | audio s/s | vs local |\n|---|---|---|---|---|")
        for label, wall, files in rows:
            print(f"| {label} | {wall:.1f} | {files / wall:.2f} | {seconds / wall:.1f} | {local_s / wall:.2f}x |")

        # where one worker's time goes (one thread, as an actor runs)
        torch.set_num_threads(1)
        decode_s = model_s = 0.0
        decoded, token_rows = [], []
        for item in items:
            t0 = time.perf_counter()
            d = decode_item(item, tokenizer.channels, tokenizer.sample_rate)
            decode_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            token_rows.append(tokenize_item(tokenizer, d, item_name(item, data)))
            model_s += time.perf_counter() - t0
            decoded.append(d)
        t0 = time.perf_counter()
        write_shard(Path(tmp), 999, token_rows, token_settings(tokenizer, name, model_hash))
        write_s = time.perf_counter() - t0
        total = decode_s + model_s + write_s
        print(f"\none worker, one thread, per stage: decode + resample {decode_s:.2f} s ({decode_s / total:.1%}), "
              f"model {model_s:.2f} s ({model_s / total:.1%}), Parquet write {write_s:.3f} s ({write_s / total:.1%}); "
              f"{seconds / model_s:.1f} audio s/s per model thread")


if __name__ == "__main__":
    main()
