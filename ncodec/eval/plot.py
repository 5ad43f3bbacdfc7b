"""Rate-distortion plots (PNG) with matplotlib, an optional dependency (``pip install matplotlib``).

`rd_plot` draws one line with markers per codec, points sorted by rate. Points whose quality
is +inf (lossless: PSNR of an exact decode) cannot sit on a finite axis: they are drawn as
hollow markers of the codec's colour on a dashed line just above the highest finite quality,
labelled "lossless", at their true rate. Points with a NaN / None rate or quality, or -inf
quality, are skipped. Only the Agg canvas is used (no pyplot, no global backend change), so it
works headless and in threads.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import Error

__all__ = ["rd_plot"]

_MARKERS = "osD^v<>phX*"


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


def rd_plot(curves: Mapping[str, Iterable[tuple[float, float]]], xlabel: str, ylabel: str, path: str | Path,
            logx: bool = False, title: str | None = None) -> Path:
    """Write a rate-distortion PNG of ``{codec: [(rate, quality), ...]}`` to ``path``; returns the path."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise Error("rate-distortion plots need the optional 'matplotlib' package: pip install matplotlib") from None

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lossless: list[tuple[str, str, str, float]] = []  # (name, colour, marker, rate)
    finite_q: list[float] = []
    for i, (name, points) in enumerate(curves.items()):
        pts = [(float(r), float(q)) for r, q in points if _finite(r) and q is not None and not math.isnan(float(q))]
        pts = [(r, q) for r, q in pts if not (logx and r <= 0)]
        line = sorted((r, q) for r, q in pts if math.isfinite(q))
        marker = _MARKERS[i % len(_MARKERS)]
        colour = f"C{i % 10}"
        if line:
            ax.plot([r for r, _ in line], [q for _, q in line], marker=marker, color=colour, label=name,
                    linewidth=1.5, markersize=5)
            finite_q += [q for _, q in line]
        lossless += [(name, colour, marker, r) for r, q in pts if q == math.inf]
        if not line and any(q == math.inf for _, q in pts):
            ax.plot([], [], marker=marker, markerfacecolor="none", markeredgecolor=colour, linestyle="none", label=name)
    if lossless:
        lo, hi = (min(finite_q), max(finite_q)) if finite_q else (0.0, 1.0)
        top = hi + 0.08 * max(hi - lo, 1.0)
        ax.axhline(top, color="0.6", linestyle="--", linewidth=0.8)
        ax.annotate("lossless", xy=(0.01, top), xycoords=("axes fraction", "data"), xytext=(0, 3),
                    textcoords="offset points", fontsize=8, color="0.4")
        for _, colour, marker, r in lossless:
            ax.plot([r], [top], marker=marker, markersize=8, markerfacecolor="none", markeredgecolor=colour,
                    linestyle="none")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
