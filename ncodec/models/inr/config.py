"""What the INR architecture configurations share: their stream form and their bounds checks.

A stream records a configuration as the fields that differ from the defaults (the defaults
are part of the stream format); decoders parse it back and check every bound before they
build anything.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="ArchitectureConfig")  # typing.Self needs Python 3.11; the project supports 3.10


def is_int(value: Any) -> bool:
    """A true integer (JSON numbers parse to int; bool is refused although it is an int subclass)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_limits(config: Any, limits: dict[str, tuple[int, int]]) -> None:
    """ValueError unless each named field of ``config`` is an integer within its (lo, hi)."""
    for name, (lo, hi) in limits.items():
        value = getattr(config, name)
        if not (is_int(value) and lo <= value <= hi):
            raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


class ArchitectureConfig:
    """Mixin of the frozen dataclasses that describe an INR decoder's architecture."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what a stream records), tuples as lists."""
        default = type(self)()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.to_dict().items()
                if getattr(default, k) != v}

    @classmethod
    def from_changes(cls: type[C], d: Any) -> C:
        """Parse a stream's architecture object of changed fields (ValueError on anything unexpected)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if not isinstance(d, dict) or not set(d) <= names:
            raise ValueError(f"architecture must be an object with keys among {sorted(names)}")
        return cls(**d)
