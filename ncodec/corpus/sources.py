"""The items of a corpus and their bytes: files of a folder, listed paths, or members of WebDataset tars.

An item is named by a string: a file path, or ``<shard>.tar#<member>`` for a member of a
WebDataset tar shard. `list_items` expands a source (a folder, a path, a ``.txt`` listing with
one path per line, a ``.parquet`` listing with a ``path`` column, a ``.tar`` shard, or a list of
any of these) into the sorted items of one kind of media; `read_item` gives an item's bytes.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import Error, MediaError
from ..media.formats import media_files, suffixes_of

__all__ = ["MAX_ITEM_BYTES", "TAR_SEPARATOR", "item_name", "list_items", "read_item"]

TAR_SEPARATOR = "#"
MAX_ITEM_BYTES = 4 << 30   # a tar member claiming more is refused (no huge allocation on a hostile tar)


def _wanted(name: str, media: str) -> bool:
    return Path(name).suffix.lower() in suffixes_of(media)


def _tar_items(path: Path, media: str) -> list[str]:
    try:
        with tarfile.open(path) as tar:
            return [f"{path}{TAR_SEPARATOR}{m.name}" for m in tar.getmembers() if m.isfile() and _wanted(m.name, media)]
    except (tarfile.TarError, OSError) as exc:
        raise Error(f"cannot read the WebDataset shard {path}: {exc}") from None


def _listing(path: Path) -> list[str]:
    """The paths a listing file names (relative paths are taken from the listing's folder)."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise Error("Parquet listings need pyarrow (pip install 'ncodec[ray]')") from None
        table = pq.read_table(path, columns=["path"])
        names = [str(p) for p in table.column("path").to_pylist() if p]
    else:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [n if os.path.isabs(n) else str(path.parent / n) for n in names]


def list_items(source: str | os.PathLike | Sequence[str | os.PathLike], media: str) -> list[str]:
    """The sorted, de-duplicated items of ``media`` (``"audio"`` / ``"image"``) that ``source`` holds."""
    sources: Iterable[str | os.PathLike] = [source] if isinstance(source, (str, os.PathLike)) else source
    items: set[str] = set()
    for src in sources:
        path = Path(src)
        if path.is_dir():
            items.update(str(p) for p in media_files(path, media, recursive=True))
        elif path.suffix == ".tar":
            items.update(_tar_items(path, media))
        elif path.suffix in (".txt", ".parquet"):
            for name in _listing(path):
                items.update(list_items(name, media) if name.endswith(".tar") else [name])
        elif path.is_file() or TAR_SEPARATOR in str(src):
            items.add(str(src))
        else:
            raise Error(f"{src}: no such file or folder")
    return sorted(items)


def item_name(item: str, root: str | os.PathLike | None = None) -> str:
    """An item's name relative to ``root`` (a folder source), as outputs and shards record it."""
    if root is not None and TAR_SEPARATOR not in item:
        try:
            return Path(item).relative_to(root).as_posix()
        except ValueError:
            pass
    return item


def read_item(item: str) -> bytes:
    """The bytes of a file, or of a tar member (``shard.tar#member``); MediaError when unreadable."""
    if TAR_SEPARATOR in item and not Path(item).is_file():
        shard, member = item.split(TAR_SEPARATOR, 1)
        try:
            with tarfile.open(shard) as tar:
                info = tar.getmember(member)
                if not info.isfile() or info.size > MAX_ITEM_BYTES:
                    raise MediaError(f"{item}: not a regular member of a sane size")
                handle = tar.extractfile(info)
                assert handle is not None
                return handle.read()
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise MediaError(f"cannot read {item}: {exc}") from None
    try:
        return Path(item).read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read {item}: {exc.strerror}") from None
