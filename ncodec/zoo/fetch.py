"""Fetching catalogue models, only when asked: download, verify, convert once to safetensors, cache.

    paths = fetch("mbt2018-mean-q3")            # or ``ncodec fetch mbt2018-mean-q3``
    model, facts = load("encodec_24khz", download=True)

- Nothing is fetched unless a caller asks; with ``NCODEC_OFFLINE=1`` every fetch is refused.
- A download streams into a hidden temporary file in the cache folder (with a progress bar), is
  checked against the entry's size and hash pin, converted by the entry's converter (the
  publisher's torch file read with ``weights_only=True``), written as ``<cached name>.safetensors``
  through another temporary file and an atomic rename, and the raw download is deleted. Any
  failure (HTTP error, stall past the timeout, short body, wrong hash, full disk, interrupt)
  removes both temporary files: the cache never holds a partial file. A killed process cannot clean
  up, so its temporary files carry its PID and the next fetch deletes those of dead processes.
- The cache is the first folder of ``$NCODEC_MODELS``, else ``~/.cache/ncodec/models``; the
  converted files record the source URL, its full SHA-256, the licence and the step that made
  them, and are found afterwards by the image and audio zoos like any model file.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from ..errors import DownloadError, ModelFileError
from ..progress import Progress
from .catalogue import HEX_PIN, CatalogueEntry, resolve
from .files import MODELS_ENV, model_dirs, read_metadata

__all__ = ["OFFLINE_ENV", "cache_dir", "cached_path", "download", "fetch", "fetch_entry", "is_offline", "load",
           "sweep_partials"]

OFFLINE_ENV = "NCODEC_OFFLINE"
DEFAULT_TIMEOUT = 30.0          # seconds without a byte before a download is given up
CHUNK = 1 << 20
UNKNOWN_SIZE_LIMIT = 4 << 30    # the most an entry of unknown size may send
SPACE_MARGIN = 1 << 20          # free space kept beyond the file being written


def is_offline() -> bool:
    """True when ``$NCODEC_OFFLINE`` forbids downloads (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Where fetched models are written: the first folder of ``$NCODEC_MODELS``, else ``~/.cache/ncodec/models``."""
    for part in os.environ.get(MODELS_ENV, "").split(os.pathsep):
        if part:
            return Path(part).expanduser()
    return Path("~/.cache/ncodec/models").expanduser()


def _pin_matches(pin: str | None, digest: str) -> bool:
    return pin is None or digest.startswith(pin)


def cached_path(entry: CatalogueEntry) -> Path | None:
    """The converted file of ``entry`` in the model folders, when it was made from bytes that match its pin."""
    for folder in model_dirs():
        path = folder / entry.cached_name
        if not path.is_file():
            continue
        try:
            meta = read_metadata(path)
        except ModelFileError:
            continue
        if meta.get("catalogue") == entry.name and _pin_matches(entry.sha256, meta.get("source_sha256", "")):
            return path
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def sweep_partials(folder: Path) -> list[Path]:
    """Delete the temporary files that killed fetches left in ``folder`` (``.<pid>.<name>...part`` /
    ``.tmp`` of processes no longer running); the files removed. A fetch runs this before it starts."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in list(folder.glob(".*.part")) + list(folder.glob(".*.tmp")):
        pid = path.name.split(".")[1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _space_check(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need + SPACE_MARGIN:
        raise DownloadError(f"not enough disk space in {folder}: {free / 1e6:.1f} MB free, "
                            f"{(need + SPACE_MARGIN) / 1e6:.1f} MB needed; free some or set ${MODELS_ENV}")


def _disk_error(exc: OSError, folder: Path) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DownloadError(f"the disk holding {folder} is full ({exc.strerror}); nothing was kept")
    return DownloadError(f"cannot write in {folder}: {exc}")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only (urllib would also follow one to ftp://)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.lower().startswith(("https://", "http://")):
            raise DownloadError(f"{req.full_url} redirects to {newurl!r}: only http(s) is followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


#: http(s) only, whatever the environment's proxy or handler settings add
_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def download(url: str, folder: Path, *, sha256: str | None, size: int | None, timeout: float = DEFAULT_TIMEOUT,
             progress: bool = True, label: str = "") -> tuple[Path, str]:
    """Stream ``url`` into a hidden temporary file in ``folder``; its path and full SHA-256 once the bytes
    match ``size`` and the ``sha256`` pin (a prefix or the whole digest). On any failure the file is gone."""
    if is_offline():
        raise DownloadError(f"${OFFLINE_ENV} is set: refusing to download {url}")
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"refusing to download {url!r}: only http(s) URLs are fetched")
    folder.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "ncodec-fetch"})
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url}: {reason}") from None
    with response:
        announced = response.headers.get("Content-Length")
        length = int(announced) if announced and announced.isdigit() else None
        if size is not None and length is not None and length != size:
            raise DownloadError(f"{url}: the server announces {length} bytes, the catalogue pins {size}")
        expected = size if size is not None else length
        limit = expected if expected is not None else UNKNOWN_SIZE_LIMIT
        _space_check(folder, expected or 0)
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{os.getpid()}.{label or 'download'}.",
                                             suffix=".part", delete=False)
        part = Path(handle.name)
        try:
            digest, got = hashlib.sha256(), 0
            with handle, Progress(expected or 1, f"fetch {label}", enabled=progress) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (socket.timeout, TimeoutError):
                        raise DownloadError(f"{url}: no data for {timeout:g} s after {got} bytes (stalled)") from None
                    except (OSError, ValueError) as exc:  # connection reset, http.client.IncompleteRead
                        raise DownloadError(f"{url}: the transfer broke after {got} bytes: {exc}") from None
                    if not block:
                        break
                    got += len(block)
                    if got > limit:
                        raise DownloadError(f"{url}: more than the {limit} bytes expected; refused")
                    digest.update(block)
                    try:
                        handle.write(block)
                    except OSError as exc:
                        raise _disk_error(exc, folder) from None
                    if expected:
                        bar.update(len(block))
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError as exc:
                    raise _disk_error(exc, folder) from None
            if expected is not None and got != expected:
                raise DownloadError(f"{url}: got {got} bytes, expected {expected} (truncated)")
            hexdigest = digest.hexdigest()
            if not _pin_matches(sha256, hexdigest):
                raise DownloadError(f"{url}: SHA-256 {hexdigest} does not match the pin {sha256}; "
                                    f"the file was deleted")
            return part, hexdigest
        except BaseException:
            part.unlink(missing_ok=True)
            raise


def _convert(entry: CatalogueEntry, raw: Path) -> tuple[Any, Callable[..., None]]:
    """The network the entry's converter makes of the publisher's file, and the zoo writer for it."""
    if entry.converter == "compressai":
        from .compressai import from_compressai
        from .image import save_model

        assert entry.quality is not None
        return from_compressai(raw, entry.architecture, entry.quality), save_model
    from .audio import save_audio_model
    from .convert import from_dac, from_encodec

    net = from_encodec(raw, entry.architecture) if entry.converter == "encodec" else from_dac(raw, entry.architecture)
    return net, lambda model, path, **meta: save_audio_model(model, path, entry.architecture, **meta)


def fetch_entry(entry: CatalogueEntry, *, force: bool = False, allow_unpinned: bool = False,
                sha256: str | None = None, timeout: float = DEFAULT_TIMEOUT, progress: bool = True) -> Path:
    """The cached, converted file of one catalogue entry, downloading it first when it is not cached
    (or with ``force``). ``sha256`` pins an entry the publisher left unpinned (or replaces the pin)."""
    pin = (sha256 or "").strip().lower() or entry.sha256
    if pin is not None and not HEX_PIN.fullmatch(pin):
        raise DownloadError(f"--sha256 takes 8-64 hex digits, got {sha256!r}")
    entry = dataclasses.replace(entry, sha256=pin)
    existing = cached_path(entry)
    if existing is not None and not force:
        return existing
    if pin is None and not allow_unpinned:
        raise DownloadError(f"{entry.name}: {entry.publisher or 'the publisher'} publishes no hash for {entry.url}; "
                            f"give one (--sha256 HEX) or accept the file unverified (--allow-unpinned: its SHA-256 "
                            f"is printed and recorded in the converted file)")
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, folder) from None
    sweep_partials(folder)
    raw, digest = download(entry.url, folder, sha256=pin, size=entry.size, timeout=timeout, progress=progress,
                           label=entry.name)
    target = folder / entry.cached_name
    try:
        net, save = _convert(entry, raw)
        _space_check(folder, raw.stat().st_size)  # the fp32 safetensors is about the checkpoint's size
        meta = {"catalogue": entry.name, "source_url": entry.url, "source_sha256": digest, "licence": entry.licence,
                "publisher": entry.publisher, "converter": entry.converter, "name": entry.model_name}
        try:
            save(net, target, **meta)
        except OSError as exc:
            raise _disk_error(exc, folder) from None
    except ModelFileError as exc:
        raise DownloadError(f"{entry.name}: the downloaded file does not convert: {exc}") from None
    finally:
        raw.unlink(missing_ok=True)
    return target


def fetch(name: str, *, force: bool = False, allow_unpinned: bool = False, sha256: str | None = None,
          timeout: float = DEFAULT_TIMEOUT, progress: bool = True) -> list[Path]:
    """Fetch a catalogue entry, or every quality of a CompressAI architecture; the converted files' paths."""
    entries = resolve(name)
    if sha256 and len(entries) > 1:
        raise DownloadError(f"{name} names {len(entries)} files: give --sha256 for one entry at a time")
    return [fetch_entry(e, force=force, allow_unpinned=allow_unpinned, sha256=sha256, timeout=timeout,
                        progress=progress) for e in entries]


def load(name: str, *, download: bool = False, **fetch_options: Any) -> tuple[Any, dict[str, Any]]:
    """The network of a catalogue entry and its facts, from the cache; with ``download=True`` it is fetched
    first when missing. Without, a missing entry is a `ModelFileError` that says how to fetch it."""
    entries = resolve(name)
    if len(entries) != 1:
        raise ModelFileError(f"{name} names {len(entries)} models; load one ({entries[0].name}, ...)")
    entry = entries[0]
    path = cached_path(entry)
    if path is None:
        if not download:
            raise ModelFileError(f"{name} is not fetched yet: run `ncodec fetch {name}` or pass download=True")
        path = fetch_entry(entry, **fetch_options)
    if entry.converter == "compressai":
        from .image import load_model

        return load_model(path)
    from .audio import load_audio_model

    return load_audio_model(path)
