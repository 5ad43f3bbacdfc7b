"""ncodec's own registered codecs as harness codecs, under the names ``ncodec list`` gives them."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import __version__, api
from ..codecs.registry import codec_class
from .codec import EvalCodec, Knob


PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def source_digest(root: Path = PACKAGE_ROOT) -> str:
    """Digest of the package's Python and C sources under ``root``: part of ncodec codecs' cache
    keys, so results are recomputed after any code change (an encoder-only tweak keeps the stream
    layout, and an editable install keeps the version number)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".c") and p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


class NcodecEvalCodec(EvalCodec):
    """A registry codec: lossless ones give one point; lossy ones either take the target rate as an
    option (class attribute ``eval_rate_option``, e.g. "bpp"), expose ``quality_range`` as their knob,
    or list discrete settings (classmethod ``eval_fixed_points()``, e.g. the qualities of installed
    models); ``eval_version()``, when present, joins the cache key (e.g. the weights' hashes)."""

    def __init__(self, name: str):
        cls = codec_class(name)
        self.name = name  # type: ignore[misc]  # instance value of the ClassVar
        self.media = cls.media  # type: ignore[misc]
        self.lossless = cls.lossless  # type: ignore[misc]
        self.description = cls.description  # type: ignore[misc]
        knob = getattr(cls, "quality_range", None)
        self.knob = knob if isinstance(knob, Knob) else None  # type: ignore[misc]
        self._rate_option = getattr(cls, "eval_rate_option", None)
        self.rate_controlled = self._rate_option is not None  # type: ignore[misc]
        fixed = getattr(cls, "eval_fixed_points", None)
        self.fixed_points = tuple(fixed()) if callable(fixed) else None  # type: ignore[misc]
        self._cls = cls

    def encode(self, media: Any, quality: float | None) -> bytes:
        options = {} if quality is None else {self._rate_option or "quality": quality}
        return self._cls(**options).encode(media)

    def decode(self, data: bytes, reference: Any) -> Any:
        return api.decode_media(data)

    def version(self) -> str:
        extra = getattr(self._cls, "eval_version", None)
        return f"ncodec {__version__} src {source_digest()}" + (f" {extra()}" if callable(extra) else "")
