"""The catalogue: published checkpoints ncodec runs, by name, with where to get them and how to trust them.

Each `CatalogueEntry` names the publisher's URL, the hash pin the publisher gives (CompressAI
and EnCodec put the first 8 hex digits of the file's SHA-256 in its name, as ``torch.hub``
checks them; DAC publishes none, so its entries are unpinned and fetched only when the user
accepts that or gives a hash), the size where known, the licence, and the ncodec architecture
the converter builds. `ncodec.zoo.fetch` downloads, verifies and converts them.

Further entries (a mirror, a private model) come from JSON files named in ``$NCODEC_CATALOGUE``
(``os.pathsep``-separated): a list of objects with the fields of `CatalogueEntry`; an entry of
the same name replaces the built-in one.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from .compressai import CONFIGS
from .convert import DAC_ARCHITECTURES, ENCODEC_ARCHITECTURES

__all__ = ["CATALOGUE_ENV", "CONVERTERS", "HEX_PIN", "CatalogueEntry", "builtin_entries", "catalogue", "resolve"]

CATALOGUE_ENV = "NCODEC_CATALOGUE"
#: The converters a catalogue entry may name (what `ncodec.zoo.fetch` runs on the publisher's file).
CONVERTERS = ("compressai", "encodec", "dac")
MAX_SIZE = 4 << 30              # no published checkpoint is near this; a larger claim is refused
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: a hash pin: the whole SHA-256 or a prefix of at least 8 lower-case hex digits
HEX_PIN = re.compile(r"[0-9a-f]{8,64}")

COMPRESSAI_LICENCE = "BSD-3-Clause-Clear (CompressAI; trained on Vimeo-90K)"
ENCODEC_LICENCE = "MIT (facebookresearch/encodec)"
DAC_LICENCE = "MIT (descriptinc/descript-audio-codec)"


@dataclass(frozen=True)
class CatalogueEntry:
    """One published checkpoint: where it is, how it is pinned, what it converts into."""

    name: str                  # what users type: ``mbt2018-mean-q3``, ``encodec_24khz``, ``dac_44khz``
    url: str                   # the publisher's file
    sha256: str | None         # the pin: a full SHA-256 or the publisher's prefix of it (>= 8 hex); None: unpinned
    size: int | None           # bytes, where known
    licence: str
    converter: str             # one of CONVERTERS
    architecture: str          # ncodec's architecture the converter builds
    quality: int | None = None  # CompressAI's quality level (1-8), image entries only
    publisher: str = ""

    @property
    def filename(self) -> str:
        """The publisher's file name (the URL's last part)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def media(self) -> str:
        return "image" if self.converter == "compressai" else "audio"

    @property
    def cached_name(self) -> str:
        """The converted file's name in the model folder: what the image or audio zoo finds it by."""
        if self.converter == "compressai":
            return f"{self.architecture}-q{self.quality}.safetensors"
        return f"{self.name}.safetensors"

    @property
    def model_name(self) -> str:
        """What ``--model`` takes once fetched (image entries also take ``--quality``)."""
        return self.architecture if self.converter == "compressai" else self.name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(entry: CatalogueEntry) -> CatalogueEntry:
    """The entry, or ModelFileError naming what is wrong with it (entries may come from user files)."""
    problems = []
    if not _NAME.fullmatch(entry.name):
        problems.append(f"name {entry.name!r}")
    if not entry.url.startswith(("https://", "http://")) or "/" not in entry.url.split("://", 1)[1]:
        problems.append(f"url {entry.url!r} (http or https, with a file name)")
    if entry.sha256 is not None and not HEX_PIN.fullmatch(entry.sha256):
        problems.append("sha256 (8-64 lower-case hex digits, or null)")
    if entry.size is not None and not (isinstance(entry.size, int) and 0 < entry.size <= MAX_SIZE):
        problems.append(f"size {entry.size!r}")
    if entry.converter not in CONVERTERS:
        problems.append(f"converter {entry.converter!r} (one of {', '.join(CONVERTERS)})")
    elif entry.converter == "compressai":
        if entry.architecture not in CONFIGS or entry.quality not in CONFIGS.get(entry.architecture, {}):
            problems.append(f"CompressAI architecture / quality {entry.architecture!r} / {entry.quality!r}")
    elif entry.architecture not in (ENCODEC_ARCHITECTURES if entry.converter == "encodec" else DAC_ARCHITECTURES):
        problems.append(f"{entry.converter} architecture {entry.architecture!r}")
    if problems:
        raise ModelFileError(f"catalogue entry {entry.name!r} is invalid: {'; '.join(problems)}")
    return entry


def _pin_from_name(filename: str) -> str:
    """The hash prefix a ``torch.hub``-style file name carries (``name-<hex>.ext``)."""
    match = re.search(r"-([0-9a-f]{8,64})\.", filename)
    if match is None:
        raise ValueError(f"{filename} carries no hash")
    return match.group(1)


_COMPRESSAI_ROOT = "https://compressai.s3.amazonaws.com/models/v1"
# CompressAI's MSE-trained zoo (compressai.zoo.image.model_urls): file stem and the hash in its name, per quality.
_COMPRESSAI_FILES = {
    "bmshj2018-factorized": ("bmshj2018-factorized-prior", ("446d5c7f", "87279a02", "5c6f152b", "1ed4405a",
                                                            "866ba797", "9b02ea3a", "6dfd6734", "5232faa3")),
    "bmshj2018-hyperprior": ("bmshj2018-hyperprior", ("7eb97409", "93677231", "6d87be32", "de1b779c",
                                                      "f8b614e1", "1ab9c41e", "3804dcbd", "a583f0cf")),
    "mbt2018-mean": ("mbt2018-mean", ("e522738d", "e54a039d", "723404a8", "6dba02a3",
                                      "d504e8eb", "a19628ab", "d5d441d1", "8089ae3e")),
}
_ENCODEC_ROOT = "https://dl.fbaipublicfiles.com/encodec/v0"
_ENCODEC_FILES = {"encodec_24khz": "encodec_24khz-d7cc33bc.th", "encodec_48khz": "encodec_48khz-7e698e3e.th"}
_DAC_ROOT = "https://github.com/descriptinc/descript-audio-codec/releases/download"
# (release tag, file, size in bytes where a public record gives it); DAC's releases publish no hashes.
_DAC_FILES = {"dac_44khz": ("0.0.1", "weights.pth", None), "dac_24khz": ("0.0.4", "weights_24khz.pth", None),
              "dac_16khz": ("0.0.5", "weights_16khz.pth", None),
              "dac_44khz_16kbps": ("1.0.0", "weights_44khz_16kbps.pth", 256_984_809)}


def builtin_entries() -> dict[str, CatalogueEntry]:
    """The published checkpoints ncodec knows, by name."""
    out: dict[str, CatalogueEntry] = {}
    for arch, (stem, hashes) in _COMPRESSAI_FILES.items():
        for quality, pin in enumerate(hashes, start=1):
            url = f"{_COMPRESSAI_ROOT}/{stem}-{quality}-{pin}.pth.tar"
            out[f"{arch}-q{quality}"] = CatalogueEntry(f"{arch}-q{quality}", url, pin, None, COMPRESSAI_LICENCE,
                                                       "compressai", arch, quality, "CompressAI")
    for arch, filename in _ENCODEC_FILES.items():
        out[arch] = CatalogueEntry(arch, f"{_ENCODEC_ROOT}/{filename}", _pin_from_name(filename), None,
                                   ENCODEC_LICENCE, "encodec", arch, None, "EnCodec (Meta)")
    for arch, (tag, filename, size) in _DAC_FILES.items():
        out[arch] = CatalogueEntry(arch, f"{_DAC_ROOT}/{tag}/{filename}", None, size, DAC_LICENCE, "dac", arch,
                                   None, "Descript")
    return {name: _check(entry) for name, entry in out.items()}


def _entries_from_file(path: Path) -> list[CatalogueEntry]:
    """The entries of a user catalogue file (a JSON list of objects), validated."""
    try:
        raw = json.loads(path.read_bytes()[: 1 << 22])
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read the catalogue {path}: {exc}") from None
    if not isinstance(raw, list):
        raise ModelFileError(f"the catalogue {path} must hold a JSON list of entries")
    names = {f.name for f in fields(CatalogueEntry)}
    required = {"name", "url", "sha256", "size", "licence", "converter", "architecture"}
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not required <= set(item) or not set(item) <= names:
            raise ModelFileError(f"the catalogue {path}: each entry is an object with {', '.join(sorted(required))} "
                                 f"(and optionally quality, publisher), got {str(item)[:200]}")
        try:
            entries.append(_check(CatalogueEntry(**item)))
        except TypeError as exc:
            raise ModelFileError(f"the catalogue {path}: {exc}") from None
    return entries


def catalogue() -> dict[str, CatalogueEntry]:
    """The built-in entries, with those of the files in ``$NCODEC_CATALOGUE`` added (replacing same names)."""
    out = builtin_entries()
    for part in os.environ.get(CATALOGUE_ENV, "").split(os.pathsep):
        if part:
            out.update({e.name: e for e in _entries_from_file(Path(part).expanduser())})
    return out


def resolve(name: str, entries: dict[str, CatalogueEntry] | None = None) -> list[CatalogueEntry]:
    """The entries a name means: one entry, or every quality of a CompressAI architecture
    (``mbt2018-mean`` is ``mbt2018-mean-q1`` ... ``-q8``). ModelFileError for an unknown name."""
    entries = catalogue() if entries is None else entries
    if name in entries:
        return [entries[name]]
    group = [e for e in entries.values() if e.converter == "compressai" and e.architecture == name]
    if group:
        return sorted(group, key=lambda e: e.quality or 0)
    groups = sorted({e.architecture for e in entries.values() if e.converter == "compressai"})
    single = sorted(e.name for e in entries.values() if e.converter != "compressai")
    raise ModelFileError(f"{name!r} is not in the catalogue; known: {', '.join(f'{g}[-q1..8]' for g in groups)}, "
                         f"{', '.join(single)} (`ncodec list` shows them)")
