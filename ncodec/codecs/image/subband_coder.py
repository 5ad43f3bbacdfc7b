"""Context-modelled coding of integer wavelet subbands (used by wavelet-lossless and wavelet).

Each detail band is coded in wavefronts (``x + 2y`` constant), so that a whole front decodes
at once and still sees all its causal neighbours. A coefficient's context is the activity of
what the decoder already has: its neighbours N, NW, NE, NN, W, WW, the parent band one level
coarser (same orientation, same place), and the sibling bands coded before it (HL, then LH,
then HH of the same level, and the same band of the planes coded before this one). The
activity, an integer, falls into one of `BINS` bins by fixed integer thresholds; each (band,
bin) has its own two-sided geometric table (shift k, mean index a and shape from
`ncodec.entropy.residuals`), fitted by the encoder and sent as side information (neighbouring
bins share a table where a table of their own would not pay for itself). Everything that
picks a table is integer arithmetic, so decoders on any machine pick the same tables. The
coarsest low band is coded as horizontal differences with partition-adaptive tables.

With prediction on (the lossless codec: it gives the coder each level's low band), a band may
carry a linear predictor (`band_prediction`) and the coder codes the prediction residual; the
context then reads the residual magnitudes of the band's own neighbours, plus the low band's
differences across the band's orientation (`edge_activity`: edges below and to the right too).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...entropy import rans
from ...entropy import residuals as rc
from ...errors import BitstreamError
from . import band_prediction as bp

THRESHOLDS = np.array([1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024,
                       1448, 2048, 4096, 8192], dtype=np.int64)  # sqrt(2) steps
BINS = THRESHOLDS.size + 1
FORMAT = 6  # version of this coder's stream layout; codecs store it and refuse others
ORIENTATIONS = ("HL", "LH", "HH")  # coding order within a level


# The causal neighbours in a band and their weights in the activity: (dy, dx, weight). All lie
# on earlier wavefronts (`wavefront`): x + 2y decreases by 1 (NE, W), 2 (N, WW), 3 (NW) or 4 (NN).
NEIGHBOURS = ((-1, 0, 2), (-1, -1, 1), (-1, 1, 1), (-2, 0, 1), (0, -1, 2), (0, -2, 1))
_PAD = 2  # the farthest neighbour offset: magnitudes are kept in an array padded by zeros this wide


@dataclass(frozen=True)
class ContextWeights:
    """The integer weights of a band's context activity: one per causal neighbour of `NEIGHBOURS` (same
    order), the parent's, a same-level sibling's and a sibling from a plane coded before (cross-plane)."""

    neighbours: tuple[int, ...] = tuple(w for _, _, w in NEIGHBOURS)
    parent: int = 2
    sibling: int = 1
    cross_plane: int = 1

    def offsets(self) -> tuple[tuple[int, int, int], ...]:
        """(dy, dx, weight) of the neighbours that count."""
        return tuple((dy, dx, w) for (dy, dx, _), w in zip(NEIGHBOURS, self.neighbours) if w)

    def sibling_weight(self, index: int, same_level: int | None) -> int:
        """The weight of a band's ``index``-th sibling: the first ``same_level`` (None: all) are of its plane."""
        return self.sibling if same_level is None or index < same_level else self.cross_plane

    @classmethod
    def from_row(cls, row: Sequence[int]) -> "ContextWeights":
        """From a context-table row: the neighbours' weights, then parent, sibling and cross-plane."""
        r = [int(v) for v in row]
        n = len(NEIGHBOURS)
        return cls(tuple(r[:n]), r[n], r[n + 1], r[n + 2])

    def row(self) -> list[int]:
        """The inverse of `from_row`."""
        return [*self.neighbours, self.parent, self.sibling, self.cross_plane]


DEFAULT_WEIGHTS = ContextWeights()
MAX_WEIGHT = 64   # a learned weight beyond this is refused (activities stay far inside int64)
#: Band classes of a learned context table: plane (first / later), level (0, 1, 2, 3 and coarser), HH or not.
CONTEXT_CLASSES = 2 * 4 * 2


def context_class(plane: int, level: int, orientation: str) -> int:
    """Row of a learned context table for a band: by plane (first or later), level (3 and up share) and
    orientation (HL and LH share, HH apart)."""
    return (min(plane, 1) * 4 + min(level, 3)) * 2 + (orientation == "HH")


class ContextTable:
    """Per band class (`context_class`) context weights: learned ones (an int array, one row of
    ``len(NEIGHBOURS) + 3`` per class), or the hand-set `DEFAULT_WEIGHTS` for every band."""

    def __init__(self, rows: np.ndarray | None = None):
        if rows is not None:
            rows = np.asarray(rows)
            width = len(NEIGHBOURS) + 3
            if rows.shape != (CONTEXT_CLASSES, width) or not np.issubdtype(rows.dtype, np.integer) or \
                    rows.min(initial=0) < 0 or rows.max(initial=0) > MAX_WEIGHT:
                raise ValueError(f"a context table is {CONTEXT_CLASSES} x {width} integers in 0..{MAX_WEIGHT}")
        self.rows = rows

    def weights(self, plane: int, level: int, orientation: str) -> ContextWeights:
        if self.rows is None:
            return DEFAULT_WEIGHTS
        return ContextWeights.from_row(self.rows[context_class(plane, level, orientation)])


#: The hand-set weights for every band (what `wavelet` and `wavelet-lossless` code with).
HAND_SET = ContextTable()


def activity(mag: np.ndarray, parent: np.ndarray, siblings: np.ndarray,
             weights: ContextWeights = DEFAULT_WEIGHTS) -> np.ndarray:
    """Integer context activity of a whole band from magnitudes: its causal `NEIGHBOURS`, and the
    parent and siblings at the same places (``siblings``: their weighted magnitudes, `sibling_magnitudes`;
    what `decode_band` computes front by front)."""
    act = weights.parent * parent + siblings
    for dy, dx, weight in weights.offsets():
        act = act + weight * bp.shifted(mag, dy, dx)
    return act


def context_bins(act: np.ndarray) -> np.ndarray:
    """Bin of each activity value (integer comparisons only)."""
    return np.searchsorted(THRESHOLDS, act, side="right")


def band_bins(band: np.ndarray, parent: np.ndarray | None, siblings: list[np.ndarray],
              edges: np.ndarray | None = None, weights: ContextWeights = DEFAULT_WEIGHTS,
              same_level: int | None = None) -> np.ndarray:
    """The context bin of every coefficient of a whole band (what the decoder finds front by front);
    ``edges``: `edge_activity`, when the coder has the level's low band; ``same_level``: how many of
    ``siblings`` are of this plane (the rest are cross-plane; None: all)."""
    sib = sibling_magnitudes(siblings, band.shape, weights, same_level)
    act = activity(np.abs(band), upsample_parent(parent, band.shape), sib, weights)
    return context_bins(act if edges is None else act + edges)


# Pairs of low-band places (dy, dx) whose differences show an edge a band of each orientation sees
# (the low band is known whole, so these see below and to the right too).
_EDGE_PAIRS = {"HL": (((0, 0), (0, 1)), ((1, 0), (1, 1))), "LH": (((0, 0), (1, 0)), ((0, 1), (1, 1))),
               "HH": (((0, 0), (1, 1)), ((0, 1), (1, 0)))}


def edge_activity(context: bp.Context | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Half the level's low-band differences across the band's orientation at each place."""
    if context is None or context.approximation is None or context.approximation.size == 0:
        return None
    padded = np.pad(context.approximation, ((0, 1), (0, 1)), mode="edge")
    total = np.zeros(shape, dtype=np.int64)
    for (y0, x0), (y1, x1) in _EDGE_PAIRS[context.orientation]:
        total += np.abs(bp.aligned(padded[y0:, x0:], shape) - bp.aligned(padded[y1:, x1:], shape))
    return total >> 1


def wavefront(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The band's coding order: flat indexes sorted by front ``x + 2y`` then row, and each front's
    start in that order (plus the end). Every neighbour of a coefficient is on an earlier front,
    so a whole front decodes in one call."""
    h, w = shape
    y, x = np.divmod(np.arange(h * w, dtype=np.int64), max(w, 1))
    front = x + 2 * y
    order = np.lexsort((y, front))
    bounds = np.searchsorted(front[order], np.arange(front.max(initial=-1) + 2))
    return order, bounds


GROUP_SIDE_BITS = 9  # about what one more table costs in side information (a start gap, dk, da)


def group_bins(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Start-of-group flags over the bins: neighbouring bins share a table unless a table of
    their own saves more bits (estimated) than it costs to send."""
    counts = np.bincount(bins.reshape(-1), minlength=BINS).astype(np.float64)
    sums = np.bincount(bins.reshape(-1), weights=np.abs(values).reshape(-1).astype(np.float64), minlength=BINS)
    used = np.flatnonzero(counts > 0)
    if used.size == 0:
        used = np.array([0])
    first, g_sum, g_count = used.copy(), sums[used], counts[used]   # groups: first bin, sum |v|, count

    def cost(total: np.ndarray, count: np.ndarray) -> np.ndarray:
        return rc.fit_parameters(total, count)[2] + GROUP_SIDE_BITS

    while first.size > 1:  # merge the neighbours whose merge saves most, while one saves anything
        alone = cost(g_sum, g_count)
        gains = alone[:-1] + alone[1:] - cost(g_sum[:-1] + g_sum[1:], g_count[:-1] + g_count[1:])
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        g_sum[best] += g_sum[best + 1]
        g_count[best] += g_count[best + 1]
        first, g_sum, g_count = (np.delete(a, best + 1) for a in (first, g_sum, g_count))
    starts = np.zeros(BINS, dtype=np.int64)
    starts[0] = 1              # the first group starts at bin 0 (bins below its first used one are empty)
    starts[first[1:]] = 1
    return starts


def _group_sums(values: np.ndarray, bins: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group of bins: how many values it serves, their sum of magnitudes, how many are zero."""
    groups = (np.cumsum(starts) - 1)[bins.reshape(-1)]
    n = int(starts.sum())
    flat = values.reshape(-1)
    return (np.bincount(groups, minlength=n).astype(np.float64),
            np.bincount(groups, weights=np.abs(flat).astype(np.float64), minlength=n),
            np.bincount(groups, weights=(flat == 0).astype(np.float64), minlength=n))


def estimated_bits(values: np.ndarray, bins: np.ndarray) -> float:
    """Estimated bits of a band coded with these bins (Laplace tables and their side information)."""
    starts = group_bins(values, bins)
    counts, sums, _ = _group_sums(values, bins, starts)
    return float(rc.fit_parameters(sums, counts)[2].sum()) + GROUP_SIDE_BITS * counts.size


SHAPE_SIDE_BITS = 3.0  # about what a group's shape costs in side information
SHAPE_MIN_MEAN = 0.25  # quieter groups keep the Laplace law (their shaped tables save nothing real)


def fit_groups(values: np.ndarray, bins: np.ndarray,
               starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, a, shape) per group of bins, fitted to the values the group serves (shaped tables,
    `residuals.shaped_bits`, for the groups that need no shift)."""
    counts, sums, zeros = _group_sums(values, bins, starts)
    n = counts.size
    k, a, bits = rc.fit_parameters(sums, counts)
    shape = np.zeros(n, dtype=np.int64)
    plain = (k == 0) & (sums >= SHAPE_MIN_MEAN * counts)
    if plain.any():
        s, a_s, bits_s = rc.shaped_bits(zeros[plain], sums[plain], counts[plain])
        if np.sum(bits[plain] - bits_s) > SHAPE_SIDE_BITS * n:   # shapes pay for their side information
            shape[plain], a[plain] = s, a_s
    return k, a, shape


def upsample_parent(parent: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Magnitudes of the coarser band at each child position (zeros when there is no parent)."""
    if parent is None or parent.size == 0:
        return np.zeros(shape, dtype=np.int64)
    return np.abs(bp.aligned(parent, shape, 2))


def sibling_magnitudes(siblings: list[np.ndarray], shape: tuple[int, int],
                       weights: ContextWeights = DEFAULT_WEIGHTS, same_level: int | None = None) -> np.ndarray:
    """Weighted sum of the magnitudes of already-coded bands of the same level at each position: the first
    ``same_level`` (None: all) of this plane, the rest from planes coded before it."""
    out = np.zeros(shape, dtype=np.int64)
    for i, s in enumerate(siblings):
        weight = weights.sibling_weight(i, same_level)
        if s.size and weight:
            out += weight * np.abs(bp.aligned(s, shape))
    return out


@dataclass
class Symbols:
    """Symbols and table indexes collected in stream order."""

    sym: list[np.ndarray]
    idx: list[np.ndarray]

    def add(self, pair: tuple[np.ndarray, np.ndarray]) -> None:
        self.sym.append(pair[0])
        self.idx.append(pair[1])

    def encode(self) -> bytes:
        if not self.sym:
            return rans.encode(np.zeros(0, np.int32), np.zeros(0, np.int32), rc.table_bank())
        sym = np.concatenate(self.sym)
        # few lanes: each costs 12 bytes of flush, which low-rate images feel (one per 4M symbols)
        return rans.encode(sym, np.concatenate(self.idx), rc.table_bank(), lanes=max(1, sym.size >> 22))


# Side information of a band: its bin groups and each group's (k, a), coded compactly with
# the bank's geometric tables: the number of extra groups, the gaps between group starts,
# the first group's k and a as raw fields, later groups' k and a as differences.
_GAP_A, _COUNT_A, _DK_A, _DA_A = 52, 48, 44, 56   # table mean indexes: means 2, 1, 0.5, 4


def _side_symbols(starts: np.ndarray, k: np.ndarray, a: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = np.flatnonzero(starts)
    gaps = np.diff(positions) - 1
    n = positions.size
    shaped = int(shape.any())   # a flag, then the groups' shapes only when some group has one
    fields = [(np.array([n - 1]), _COUNT_A), (gaps, _GAP_A), (np.array([shaped]), _DK_A),
              (shape if shaped else shape[:0], _GAP_A)]
    parts = [rc.value_symbols(v, np.zeros(v.size, np.int64), np.full(v.size, t)) for v, t in fields]
    for first, bits, rest, table in ((k, rc.SHIFT_BITS, np.diff(k), _DK_A), (a, rc.MEAN_BITS, np.diff(a), _DA_A)):
        parts.append(rc.raw_symbols(first[:1], bits))
        parts.append(rc.value_symbols(rest, np.zeros(rest.size, np.int64), np.full(rest.size, table)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _decode_field(dec: rans.Decoder, count: int, table: int) -> np.ndarray:
    return rc.decode_values(dec, np.zeros(count, np.int64), np.full(count, table, np.int64))


def _decode_side(dec: rans.Decoder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (k, a, shape), expanded from the groups the stream describes."""
    n = int(_decode_field(dec, 1, _COUNT_A)[0]) + 1
    if not 1 <= n <= BINS:
        raise BitstreamError("corrupt stream: impossible number of context groups")
    gaps = _decode_field(dec, n - 1, _GAP_A)
    positions = np.concatenate([[0], np.cumsum(gaps + 1)]).astype(np.int64)
    if np.any(gaps < 0) or positions[-1] >= BINS:
        raise BitstreamError("corrupt stream: context groups out of range")
    shaped = int(_decode_field(dec, 1, _DK_A)[0])
    if shaped not in (0, 1):
        raise BitstreamError("corrupt stream: bad table-shape flag")
    shape = _decode_field(dec, n, _GAP_A) if shaped else np.zeros(n, dtype=np.int64)
    k = np.concatenate([rc.decode_raw(dec, 1, rc.SHIFT_BITS), _decode_field(dec, n - 1, _DK_A)])
    a = np.concatenate([rc.decode_raw(dec, 1, rc.MEAN_BITS), _decode_field(dec, n - 1, _DA_A)])
    k, a = np.cumsum(k), np.cumsum(a)
    if np.any(k < 0) or np.any(k > rc.MAX_SHIFT) or np.any(a < 0) or np.any(a >= rc.MEAN_STEPS) or \
            np.any(shape < 0) or np.any(shape >= rc.SHAPES) or np.any((shape > 0) & (k > 0)):
        raise BitstreamError("corrupt stream: subband table parameters out of range")
    starts = np.zeros(BINS, dtype=np.int64)
    starts[positions] = 1
    group_of_bin = np.cumsum(starts) - 1
    return k[group_of_bin], a[group_of_bin], shape[group_of_bin]


def encode_band(out: Symbols, band: np.ndarray, parent: np.ndarray | None, siblings: list[np.ndarray],
                prediction: bp.Context | None = None, weights: ContextWeights = DEFAULT_WEIGHTS,
                same_level: int | None = None) -> None:
    """Append one detail band: with ``prediction`` (what the decoder knows before the band) its
    predictor if one pays, then its per-bin tables, then its coefficients (or their prediction
    residuals) front by front (`wavefront`); contexts weighted by ``weights``."""
    if band.size == 0:
        return
    edges = edge_activity(prediction, band.shape)
    bins = band_bins(band, parent, siblings, edges, weights, same_level)
    if prediction is not None:
        predictor, band, bins = _choose_predictor(band, bins, parent, siblings, prediction, edges)
        out.add(bp.symbols(predictor))
    starts = group_bins(band, bins)
    k, a, form = fit_groups(band, bins, starts)
    out.add(_side_symbols(starts, k, a, form))
    group_of_bin = np.cumsum(starts) - 1
    order, bounds = wavefront(band.shape)
    b = bins.reshape(-1)[order]
    front = np.repeat(np.arange(bounds.size - 1), np.diff(bounds))
    out.add(rc.grouped_value_symbols(band.reshape(-1)[order], k[group_of_bin][b], a[group_of_bin][b], front,
                                     form[group_of_bin][b]))


SCALE_ROUNDS = 1


def _context_scale(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Each coefficient's expected magnitude: the mean magnitude of its context bin (plus a half)."""
    b = bins.reshape(-1)
    sums = np.bincount(b, weights=np.abs(values).reshape(-1).astype(np.float64), minlength=BINS)
    counts = np.bincount(b, minlength=BINS)
    return (sums / np.maximum(counts, 1) + 0.5)[b].reshape(values.shape)


def _choose_predictor(band: np.ndarray, bins: np.ndarray, parent: np.ndarray | None, siblings: list[np.ndarray],
                      prediction: bp.Context,
                      edges: np.ndarray | None) -> tuple[bp.Predictor | None, np.ndarray, np.ndarray]:
    """The band's fitted predictor when its estimated saving exceeds its side information (else
    None), with what is then coded (the residual, or the band) and its context bins (``bins``:
    the band's own). Each round after the first weighs the fit by the last residual's context scale."""
    predictor, residual, residual_bins = None, band, bins
    for round_ in range(1 + SCALE_ROUNDS):
        scale = None if round_ == 0 else _context_scale(residual, residual_bins)
        predictor = bp.fit(band, prediction, scale)
        if predictor is None:
            return None, band, bins
        residual = predictor.residual(band, prediction)
        residual_bins = band_bins(residual, parent, siblings, edges)
    if estimated_bits(residual, residual_bins) + bp.side_bits(predictor) < estimated_bits(band, bins):
        return predictor, residual, residual_bins
    return None, band, bins


def decode_band(dec: rans.Decoder, shape: tuple[int, int], parent: np.ndarray | None,
                siblings: list[np.ndarray], prediction: bp.Context | None = None,
                weights: ContextWeights = DEFAULT_WEIGHTS, same_level: int | None = None) -> np.ndarray:
    """Inverse of `encode_band`, front by front: each front's contexts (and predictions) come from
    earlier fronts."""
    h, w = shape
    if h * w == 0:
        return np.zeros(shape, dtype=np.int64)
    predictor = bp.decode(dec, prediction, shape) if prediction is not None else None
    k, a, form = _decode_side(dec)
    outside = weights.parent * upsample_parent(parent, shape) + sibling_magnitudes(siblings, shape, weights, same_level)
    edges = edge_activity(prediction, shape)
    outside = (outside if edges is None else outside + edges).reshape(-1)
    stride = w + 2 * _PAD
    mag = np.zeros((h + _PAD) * stride, dtype=np.int64)  # flat, padded: zero rows above, columns both sides
    values = np.zeros(h * w, dtype=np.int64)
    order, bounds = wavefront(shape)
    ys, xs = np.divmod(order, w)
    at = (ys + _PAD) * stride + xs + _PAD                  # each coefficient's place in ``mag``
    outside = outside[order]
    offsets = [(dy * stride + dx, weight) for dy, dx, weight in weights.offsets()]
    if predictor is not None:
        known = predictor.outer(prediction, shape)[order]  # type: ignore[arg-type]
        causal = [(dy * stride + dx, weight) for dy, dx, weight in predictor.causal_offsets()]
        padded = np.zeros_like(mag)                         # decoded values, laid out like ``mag``
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        here = at[lo:hi]
        act = outside[lo:hi].copy()
        for offset, weight in offsets:
            act += weight * mag[here + offset]
        bins = context_bins(act)
        r = rc.decode_values(dec, k[bins], a[bins], form[bins])
        mag[here] = np.abs(r)
        if predictor is not None:
            acc = known[lo:hi].copy()
            for offset, weight in causal:
                acc += weight * padded[here + offset]
            r = r + bp.finish(acc)
            padded[here] = r
        values[order[lo:hi]] = r
    return values.reshape(shape)


def _ll_residual(ll: np.ndarray) -> np.ndarray:
    """Horizontal differences, the first column as vertical differences."""
    res = np.diff(ll, axis=1, prepend=0)
    res[:, 0] = np.diff(ll[:, 0], prepend=0)
    return res


def _ll_restore(res: np.ndarray) -> np.ndarray:
    out = res.copy()
    out[:, 0] = np.cumsum(res[:, 0])
    return np.cumsum(out, axis=1)


def _max_order(n: int) -> int:
    return int(np.clip(np.floor(np.log2(max(n, 1) / 64)), 0, 12))


def encode_low(out: Symbols, ll: np.ndarray) -> None:
    """The coarsest low band as differences with partition-adaptive tables."""
    values = _ll_residual(ll).reshape(-1)
    plan = rc.plan_partitions(values, max_order=_max_order(values.size), min_partition=64)
    out.add(rc.plan_symbols(plan))
    out.add(rc.residual_symbols(values, plan))


def decode_low(dec: rans.Decoder, shape: tuple[int, int]) -> np.ndarray:
    n = shape[0] * shape[1]
    plan = rc.decode_plan(dec, n, max_order=_max_order(n))
    return _ll_restore(rc.decode_residual(dec, plan).reshape(shape))


Details = list[dict[str, np.ndarray]]


def neighbour_bands(coded: list[np.ndarray], references: Sequence[Details], level: int, orientation: str) -> list[np.ndarray]:
    """The bands whose magnitudes join a band's context as "siblings": the bands of its level coded
    before it, and the same band of the planes coded before this one (cross-component context)."""
    return coded + [ref[level][orientation] for ref in references]


Synthesis = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]


def _prediction(parents: dict[str, np.ndarray], coded: list[np.ndarray], references: Sequence[Details],
                level: int, orientation: str, approximation: np.ndarray | None) -> bp.Context:
    return bp.Context(orientation, parents.get(orientation), list(coded), [ref[level][orientation] for ref in references],
                      approximation)


def encode_subbands(low: np.ndarray, details: Details, references: Sequence[Details] = (),
                    approximations: Sequence[np.ndarray] | None = None, contexts: ContextTable = HAND_SET) -> bytes:
    """One rANS stream for a plane's subbands: low band, then levels coarsest first, HL, LH, HH.

    ``references``: the subbands of planes coded before this one (same shapes), whose
    magnitudes are context for this plane's (the decoder has them when it reads this plane).
    ``approximations``: each level's low band (what its details refine, the coarsest being
    ``low``); given, bands may be predicted (`band_prediction`) and the decoder needs the
    matching ``synthesize``. ``contexts``: the context weights per band class (learned ones, or
    the hand-set `HAND_SET`; the decoder needs the same table).
    """
    out = Symbols([], [])
    encode_low(out, low)
    for level in range(len(details) - 1, -1, -1):
        coded: list[np.ndarray] = []
        parents = details[level + 1] if level + 1 < len(details) else {}
        for o in ORIENTATIONS:
            prediction = None if approximations is None else _prediction(
                parents, coded, references, level, o, approximations[level])
            weights = contexts.weights(len(references), level, o)
            encode_band(out, details[level][o], parents.get(o), neighbour_bands(coded, references, level, o),
                        prediction, weights, len(coded))
            coded.append(details[level][o])
    return out.encode()


def decode_subbands(data: bytes | memoryview, low_shape: tuple[int, int], detail_shapes: list[dict[str, tuple[int, ...]]],
                    references: Sequence[Details] = (), synthesize: Synthesis | None = None,
                    contexts: ContextTable = HAND_SET) -> tuple[np.ndarray, Details]:
    """Inverse of `encode_subbands`, given the band shapes and the same ``references``; with
    ``synthesize`` (one inverse level: low band and detail bands -> the next finer low band) for
    streams made with ``approximations``."""
    dec = rans.Decoder(data, rc.table_bank())
    low = decode_low(dec, low_shape)
    details: Details = [{} for _ in detail_shapes]
    approximation = low
    for level in range(len(detail_shapes) - 1, -1, -1):
        coded: list[np.ndarray] = []
        parents = details[level + 1] if level + 1 < len(details) else {}
        if synthesize is not None and level + 1 < len(details):
            approximation = synthesize(approximation, details[level + 1])
        for o in ORIENTATIONS:
            prediction = None if synthesize is None else _prediction(parents, coded, references, level, o,
                                                                     approximation)
            weights = contexts.weights(len(references), level, o)
            band = decode_band(dec, tuple(detail_shapes[level][o]), parents.get(o),  # type: ignore[arg-type]
                               neighbour_bands(coded, references, level, o), prediction, weights, len(coded))
            details[level][o] = band
            coded.append(band)
    dec.finish()
    return low, details


def check_format(value: object) -> None:
    """Refuse streams whose subband-coder layout version is not this one."""
    if value != FORMAT:
        raise BitstreamError(f"subband stream layout {value!r} is not the supported {FORMAT} (another ncodec version)")
