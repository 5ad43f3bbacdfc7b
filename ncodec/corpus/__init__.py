"""Whole corpora: tokenize or compress many files, on one machine or on a Ray cluster.

- `sources`: what a corpus is made of (a folder, paths, a text / Parquet listing, WebDataset tar
  shards) and reading one item's bytes;
- `shards`: the token shards (Parquet) and their manifest: writing atomically, resuming, reading back;
- `ray_engine`: the Ray Data pipelines (``ncodec tokenize --engine ray``, ``ncodec compress DIR OUT
  --engine ray``, and `ray_engine.tokenize_dataset` for a user's own `ray.data.Dataset`).

Ray is an optional dependency (``pip install 'ncodec[ray]'``): only `ray_engine` imports it, and
nothing imports `ray_engine` until a Ray engine is asked for.
"""
