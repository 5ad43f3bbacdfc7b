"""One registry of codecs, read by `ncodec.encode`, the CLI's ``--codec`` and ``ncodec list``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .errors import UnknownCodecError

_CODECS: dict[str, type] = {}
_DEFAULTS: dict[str, str] = {}
_BUILTINS_LOADED = False
C = TypeVar("C", bound=type)


def register(*, default_for: str | None = None) -> Callable[[C], C]:
    """Class decorator adding a codec under its ``name`` (and as the default for a media kind)."""

    def add(cls: C) -> C:
        name = cls.name
        if name in _CODECS and _CODECS[name] is not cls:
            raise ValueError(f"codec name {name!r} is registered twice")
        _CODECS[name] = cls
        if default_for:
            _DEFAULTS[default_for] = name
        return cls

    return add


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("ncodec.codecs")


def codec_class(name: str) -> type:
    """The codec class registered under ``name``."""
    _load_builtins()
    try:
        return _CODECS[name]
    except KeyError:
        known = ", ".join(sorted(_CODECS)) or "none"
        raise UnknownCodecError(f"unknown codec {name!r}; available: {known} (see `ncodec list`)") from None


def get_codec(name: str, **options: Any) -> Any:
    """A codec instance configured with ``options``."""
    return codec_class(name)(**options)


def default_codec(media: str) -> str:
    """The codec used for a media kind when none is named."""
    _load_builtins()
    if media not in _DEFAULTS:
        raise UnknownCodecError(f"no codec for {media} is available yet")
    return _DEFAULTS[media]


@dataclass(frozen=True)
class CodecInfo:
    """What `ncodec list` shows about a codec."""

    name: str
    media: str
    pretrained: bool
    lossless: bool
    default: bool
    description: str


def list_codecs() -> list[CodecInfo]:
    """Every registered codec, sorted by media then name."""
    _load_builtins()
    out = [CodecInfo(n, c.media, c.pretrained, c.lossless, _DEFAULTS.get(c.media) == n, c.description)
           for n, c in _CODECS.items()]
    return sorted(out, key=lambda i: (i.media, i.name))
