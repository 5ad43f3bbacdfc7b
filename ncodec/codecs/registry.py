"""One registry of codecs, read by `ncodec.encode`, the CLI's ``--codec`` and ``ncodec list``.

The built-in codecs register themselves when `ncodec.codecs` is imported, which Python does
before it imports this module, so the registry never imports a codec itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..errors import UnknownCodecError

_CODECS: dict[str, type] = {}
_DEFAULTS: dict[str, list[tuple[int, str]]] = {}  # media kind -> (priority, codec name)
C = TypeVar("C", bound=type)


def register(*, default_for: str | None = None, priority: int = 0) -> Callable[[C], C]:
    """Class decorator adding a codec under its ``name``, and as a default for a media kind.

    Several codecs may be defaults for one kind: the one with the highest ``priority`` whose
    ``accepts(media)`` holds is used (e.g. the learned image codec for 8-bit RGB when its
    weights are installed, the lossless wavelet codec for 16-bit or alpha).
    """

    def add(cls: C) -> C:
        name = cls.name
        if name in _CODECS and _CODECS[name] is not cls:
            raise ValueError(f"codec name {name!r} is registered twice")
        _CODECS[name] = cls
        if default_for:
            _DEFAULTS.setdefault(default_for, []).append((priority, name))
            _DEFAULTS[default_for].sort(key=lambda pn: -pn[0])
        return cls

    return add


def codec_class(name: str) -> type:
    """The codec class registered under ``name``."""
    try:
        return _CODECS[name]
    except KeyError:
        known = ", ".join(sorted(_CODECS)) or "none"
        raise UnknownCodecError(f"unknown codec {name!r}; available: {known} (see `ncodec list`)") from None


def get_codec(name: str, **options: Any) -> Any:
    """A codec instance configured with ``options``."""
    return codec_class(name)(**options)


def default_codec(media: str, item: Any = None) -> str:
    """The codec used for a media kind when none is named; with ``item`` (the media itself), the
    first default, by priority, whose ``accepts(item)`` is true."""
    if media not in _DEFAULTS:
        raise UnknownCodecError(f"no codec for {media} is available yet")
    for _, name in _DEFAULTS[media]:
        accepts = getattr(_CODECS[name], "accepts", None)
        if item is None or accepts is None or accepts(item):
            return name
    return _DEFAULTS[media][-1][1]


@dataclass(frozen=True)
class CodecInfo:
    """What `ncodec list` shows about a codec."""

    name: str
    media: str
    pretrained: bool
    lossless: bool
    default: bool
    description: str
    quality_scale: str = ""


def list_codecs() -> list[CodecInfo]:
    """Every registered codec, sorted by media then name."""
    firsts = {kind: names[0][1] for kind, names in _DEFAULTS.items()}
    out = [CodecInfo(n, c.media, c.pretrained, c.lossless, firsts.get(c.media) == n, c.description, c.quality_scale)
           for n, c in _CODECS.items()]
    return sorted(out, key=lambda i: (i.media, i.name))
