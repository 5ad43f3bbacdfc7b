"""Run codecs over a folder of media at common operating points; cache, aggregate, BD-rate.

For every codec and file the harness finds the codec's operating points (see
`ncodec.eval.codec`): knob codecs are searched per file to land on each target rate (the
knob value whose rate is closest to the target), rate-controlled codecs take the target,
fixed-point codecs run their own settings, lossless codecs run once. Each (codec, setting,
file) result is cached on disk under the codec's `version()` and the file's SHA-256, so a
re-run only computes what is new. Per operating point the metrics are averaged over files.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import Error, MediaError
from ..media import formats
from ..progress import Progress
from .codec import EvalCodec

DEFAULT_TARGETS = {"image": (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5), "audio": (6.0, 8.0, 12.0, 16.0, 24.0, 32.0)}
RATE_KEY = {"image": "bpp", "audio": "kbps", "video": "bpp"}
BD_QUALITY = {"image": "psnr", "audio": "neg_mel_distance", "video": "psnr"}  # higher is better


def resolve_codec(name: str, media: str) -> EvalCodec:
    """A peer (``ncodec.eval.peers``) or a registered ncodec codec by name, checked against ``media``."""
    from .ncodec_codecs import NcodecEvalCodec
    from .peers import PEERS

    codec = PEERS[name]() if name in PEERS else NcodecEvalCodec(name)
    if codec.media != media:
        raise Error(f"codec {name!r} codes {codec.media}, not {media}")
    return codec


def media_files(folder: Path, media: str) -> list[Path]:
    """The media files directly in ``folder``, sorted."""
    if not folder.is_dir():
        raise Error(f"no such folder: {folder}")
    files = formats.media_files(folder, media)
    if not files:
        raise Error(f"no {media} files in {folder}")
    return files


def load_media(path: Path, media: str, max_seconds: float | None = None, max_frames: int | None = None) -> Any:
    """Read a file as Image / Audio (16-bit PCM when it was lossy) / Video, optionally shortened."""
    from ..media import io as nio
    from ..media.types import Audio, Image

    if media == "image":  # 8-bit RGB or gray: what every peer takes
        px = nio.read_image(path).pixels
        px = px[..., :3] if px.shape[2] >= 3 else px[..., :1]
        return Image(np.ascontiguousarray(px if px.dtype == np.uint8 else (px >> 8).astype(np.uint8)))
    if media == "audio":
        audio = nio.read_audio(path)
        x = audio.samples
        if max_seconds is not None:
            x = x[: int(max_seconds * audio.sample_rate)]
        if not audio.is_integer:  # decoded lossy audio: the 16-bit PCM a user would hold
            x = np.clip(np.rint(x.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
            return Audio(x, audio.sample_rate, bit_depth=16)
        return Audio(x, audio.sample_rate, bit_depth=audio.bit_depth)
    from ..media.video import read_video

    return read_video(path, max_frames=max_frames)


def measure(media_kind: str, reference: Any, decoded: Any, nbytes: int,
            prepared: Any | None = None) -> dict[str, float]:
    """Rate and distortion of one decoded file against its reference (``prepared``: the reference's
    `metrics.ImageReference`, made once per file when many points are measured)."""
    from . import metrics as m

    if media_kind == "image":
        return {"bpp": m.bpp(nbytes, reference), **(prepared or m.ImageReference(reference)).scores(decoded)}
    if media_kind == "audio":
        rate = reference.sample_rate
        out = {"kbps": m.kbps(nbytes, reference.duration), "si_sdr": m.si_sdr(reference, decoded),
               "mel_distance": m.mel_distance(reference, decoded, rate)}
        out["neg_mel_distance"] = -out["mel_distance"]
        return out
    per_frame = m.video_psnr(reference.frames, decoded.frames)
    return {"bpp": m.video_bpp(nbytes, reference.frames), "kbps": m.video_kbps(nbytes, reference.frames, reference.fps),
            "psnr": float(per_frame["psnr"]), "psnr_y": float(per_frame["psnr_y"])}


class Cache:
    """Results on disk: one JSON object per (codec, version, file), keyed by setting."""

    def __init__(self, root: Path | None):
        self.root = root

    def _path(self, codec: EvalCodec, digest: str) -> Path | None:
        if self.root is None:
            return None
        key = hashlib.sha256(f"{codec.name}|{codec.version()}".encode()).hexdigest()[:16]
        return self.root / codec.name / f"{key}-{digest[:24]}.json"

    def load(self, codec: EvalCodec, digest: str) -> dict[str, Any]:
        path = self._path(codec, digest)
        if path is None or not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def save(self, codec: EvalCodec, digest: str, entries: dict[str, Any]) -> None:
        path = self._path(codec, digest)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, sort_keys=True))
        tmp.replace(path)


@dataclass
class FileRun:
    """One codec on one file: cached evaluations by setting, computed on demand."""

    codec: EvalCodec
    media_kind: str
    reference: Any
    digest: str
    cache: Cache
    entries: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False
    #: the rates the previous file measured, by setting (where this file's searches start)
    hints: dict[float, float] = field(default_factory=dict)
    #: the reference prepared for the image metrics, shared by the codecs run on this file
    prepared: Any | None = None
    #: streams encoded during the search and their encode times, kept (in memory) for `evaluate`
    encoded: dict[str, tuple[bytes, float]] = field(default_factory=dict)

    def _encode(self, quality: float | None) -> tuple[bytes, float]:
        key = _key(quality)
        if key not in self.encoded:
            t0 = time.perf_counter()
            data = self.codec.encode(self.reference, quality)
            self.encoded[key] = (data, time.perf_counter() - t0)
        return self.encoded[key]

    def rate_of(self, quality: float | None) -> float:
        """The rate at a setting (encodes, but does not decode, when not cached)."""
        key = _key(quality)
        if key in self.entries:
            return float(self.entries[key]["rate"])
        rates = self.entries.setdefault("_rates", {})
        if key not in rates:
            data, _ = self._encode(quality)
            rates[key] = _rate(self.media_kind, len(data), self.reference)
            self.dirty = True
        return float(rates[key])

    def known_rates(self) -> dict[float, float]:
        """Every setting whose rate on this file is known (measured or cached), with that rate."""
        known = {float(k): float(v["rate"]) for k, v in self.entries.items() if k not in ("_rates", "lossless")}
        known.update({float(k): float(v) for k, v in self.entries.get("_rates", {}).items() if k != "lossless"})
        return known

    def evaluate(self, quality: float | None) -> dict[str, Any]:
        """Full result (rate, metrics, timings) at a setting."""
        key = _key(quality)
        if key not in self.entries:
            data, enc_s = self._encode(quality)
            t1 = time.perf_counter()
            decoded = self.codec.decode(data, self.reference)
            dec_s = time.perf_counter() - t1
            result = measure(self.media_kind, self.reference, decoded, len(data), self.prepared)
            result.update({"rate": _rate(self.media_kind, len(data), self.reference), "bytes": len(data),
                           "enc_s": enc_s, "dec_s": dec_s, "setting": quality})
            self.entries[key] = result
            self.dirty = True
        return self.entries[key]

    def flush(self) -> None:
        if self.dirty:
            self.cache.save(self.codec, self.digest, self.entries)
            self.dirty = False


def _key(quality: float | None) -> str:
    return "lossless" if quality is None else repr(float(quality))


def _rate(media_kind: str, nbytes: int, reference: Any) -> float:
    from . import metrics as m

    if media_kind == "image":
        return m.bpp(nbytes, reference)
    if media_kind == "audio":
        return m.kbps(nbytes, reference.duration)
    return m.video_bpp(nbytes, reference.frames)


def _log_rate_at(curve: dict[float, float], settings: np.ndarray) -> np.ndarray:
    """Log-rate of another file at ``settings``, interpolated linearly between its measured settings."""
    known = sorted((k, math.log(max(r, 1e-300))) for k, r in curve.items())
    return np.interp(settings, [k for k, _ in known], [v for _, v in known])


def _brackets(known: dict[float, float], target: float) -> bool:
    """True when the measured rates lie on both sides of ``target``."""
    return any(r <= target for r in known.values()) and any(r > target for r in known.values())


def _probe_from_curve(run: FileRun, target: float, curve: dict[float, float]) -> None:
    """Probe where another file's measured rate curve, shifted in log-rate to agree with what this file
    measured, crosses ``target``, and the setting beside it: rate curves of photos differ mostly by such a
    shift, so these probes usually bracket the target at once (integer knobs)."""
    knob = run.codec.knob
    assert knob is not None
    settings = np.arange(knob.lo, knob.hi + 1)
    shape = _log_rate_at(curve, settings)
    goal = math.log(target)
    if not run.known_rates():  # where the other file met the target
        run.rate_of(float(settings[int(np.argmin(np.abs(shape - goal)))]))
    for _ in range(2):
        known = run.known_rates()
        if _brackets(known, target):
            return
        near = min(known, key=lambda k: abs(math.log(max(known[k], 1e-300)) - goal))
        shift = math.log(max(known[near], 1e-300)) - float(_log_rate_at(curve, np.array([near]))[0])
        above = settings[shape + shift > goal]
        if len(above) == 0:
            return
        candidates = [float(c) for c in (above[0] - 1, above[0]) if knob.lo <= c <= knob.hi and float(c) not in known]
        if not candidates:
            return
        run.rate_of(candidates[0])


def search_knob(run: FileRun, target: float, curve: dict[float, float] | None = None) -> float:
    """The knob value whose rate is closest to ``target`` (rate rises with the knob).

    Every rate already measured on the file (for this target or earlier ones) narrows the
    bracket first. Without a bracket, an integer knob's search starts where ``curve`` (the rates
    the previous file measured, by setting), shifted to agree with this file, meets the target;
    then the knob's ends are probed as needed. Each new probe then
    interpolates in log-rate between the bracket's ends, bisecting instead when the
    interpolation would hug an end (a plateau) or when the last probe did not halve the bracket.
    With a monotonic rate it ends on the same adjacent pair as plain bisection, whatever the
    hint, in fewer encodes.
    """
    knob = run.codec.knob
    assert knob is not None
    if not _brackets(run.known_rates(), target) and curve and len(curve) >= 2 and knob.integer:
        _probe_from_curve(run, target, curve)
    known = run.known_rates()
    if not any(r <= target for k, r in known.items() if knob.lo <= k <= knob.hi) and run.rate_of(knob.lo) >= target:
        return float(knob.lo)
    if not any(r > target for k, r in known.items() if knob.lo <= k <= knob.hi) and run.rate_of(knob.hi) <= target:
        return float(knob.hi)
    last_side = 0
    stalled = False
    for _ in range(60):
        known = run.known_rates()
        lo = max(k for k, r in known.items() if knob.lo <= k <= knob.hi and r <= target)
        above = [k for k, r in known.items() if lo < k <= knob.hi and r > target]
        if not above:  # a rate that falls with the knob somewhere: settle on the top end or lo
            if knob.hi not in known and run.rate_of(knob.hi) > target:
                continue
            hi = float(knob.hi)
            break
        hi = min(above)
        if (knob.integer and hi - lo <= 1) or (not knob.integer and hi - lo <= 1e-3 * (knob.hi - knob.lo)):
            break
        f_lo, f_hi = math.log(max(known[lo], 1e-300) / target), math.log(known[hi] / target)
        if f_lo == 0 or stalled:  # a plateau at the target (bisect to its end, as bisection does), or stuck
            mid = (lo + hi) / 2
        else:
            mid = lo + (hi - lo) * f_lo / (f_lo - f_hi)
        if knob.integer:
            mid = float(min(max(round(mid), lo + 1), hi - 1))
        else:
            mid = min(max(mid, lo + (hi - lo) / 64), hi - (hi - lo) / 64)
        side = -1 if run.rate_of(mid) <= target else 1
        stalled = side == last_side  # two probes on one side: the interpolation is off, bisect next
        last_side = side
    return lo if abs(run.rate_of(lo) - target) <= abs(run.rate_of(hi) - target) else hi


def settings_for(codec: EvalCodec, targets: Iterable[float]) -> list[tuple[float | None, Callable[[FileRun], float | None]]]:
    """(label, how to find the file's setting) per operating point of a codec."""
    if codec.lossless and codec.knob is None and not codec.rate_controlled and not codec.fixed_points:
        return [(None, lambda run: None)]
    if codec.fixed_points:
        return [(p, (lambda run, p=p: p)) for p in codec.fixed_points]
    if codec.rate_controlled:
        return [(t, (lambda run, t=t: t)) for t in targets]
    if codec.knob is not None:
        ordered = sorted(targets)

        return [(t, (lambda run, t=t: search_knob(run, t, run.hints))) for t in ordered]
    raise Error(f"codec {codec.name!r} has no way to reach operating points")


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None]
    if not finite:
        return float("nan")
    return float("inf") if any(math.isinf(v) and v > 0 for v in finite) else float(np.mean(finite))


def evaluate_file(path: Path, media_kind: str, codecs: list[EvalCodec], targets: tuple[float, ...],
                  cache_dir: Path | None, max_seconds: float | None, max_frames: int | None,
                  hints: dict[str, dict[float, float]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every codec's result at each of its operating points on one file (cached point by point).

    ``hints`` (codec name -> setting -> rate) start the knob searches from the rate curve another
    file measured; it is updated with this file's, for the next file."""
    hints = {} if hints is None else hints
    cache = Cache(cache_dir)
    reference = load_media(path, media_kind, max_seconds, max_frames)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() + f"|{max_seconds}|{max_frames}"
    digest = hashlib.sha256(digest.encode()).hexdigest()
    out: dict[str, list[dict[str, Any]]] = {}
    prepared = None
    if media_kind == "image":
        from .metrics import ImageReference

        prepared = ImageReference(reference)
    for codec in codecs:
        run = FileRun(codec, media_kind, reference, digest, cache, cache.load(codec, digest),
                      hints=dict(hints.get(codec.name, {})), prepared=prepared)
        out[codec.name] = []
        try:
            for _, find in settings_for(codec, targets):
                result = dict(run.evaluate(find(run)))
                result["file"] = path.name
                out[codec.name].append(result)
                run.flush()   # point by point: an interrupted run of slow codecs (fits) keeps its work
        finally:
            run.flush()
        hints[codec.name] = run.known_rates()
    return out


def _evaluate_files_by_names(paths: list[Path], media_kind: str, names: list[str], targets: tuple[float, ...],
                             cache_dir: Path | None, max_seconds: float | None, max_frames: int | None
                             ) -> list[dict[str, list[dict[str, Any]]]]:
    """`evaluate_file` over consecutive files in a worker process (which resolves the codecs by name
    itself), each file's searches starting from the previous file's rate curve."""
    codecs = [resolve_codec(n, media_kind) for n in names]
    hints: dict[str, dict[float, float]] = {}
    return [evaluate_file(p, media_kind, codecs, targets, cache_dir, max_seconds, max_frames, hints) for p in paths]


def _worker_init() -> None:
    """One thread per worker: the workers are the parallelism."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run_eval(media_kind: str, codec_names: list[str], data: Path, targets: Iterable[float] | None = None,
             cache_dir: Path | None = None, max_files: int | None = None, max_seconds: float | None = None,
             max_frames: int | None = None, progress: bool | None = None, jobs: int = 1) -> dict[str, Any]:
    """Evaluate codecs over the files of ``data``; returns the JSON-ready results with BD-rates.

    ``jobs`` > 1 evaluates that many files at once in worker processes (one thread each); the
    results, and the cache, are the same as with one.
    """
    from .bdrate import bd_rate

    if media_kind not in RATE_KEY:
        raise MediaError(f"media must be image, audio or video, got {media_kind!r}")
    if jobs < 1:
        raise Error(f"jobs must be at least 1, got {jobs}")
    codecs = [resolve_codec(n, media_kind) for n in codec_names]
    files = media_files(data, media_kind)[:max_files]
    targets = tuple(targets or DEFAULT_TARGETS.get(media_kind, ()))
    plans = {c.name: settings_for(c, targets) for c in codecs}
    per_point: dict[str, list[list[dict[str, Any]]]] = {c.name: [[] for _ in plans[c.name]] for c in codecs}
    bar = Progress(len(files), f"eval {media_kind}", enabled=progress)
    if jobs == 1 or len(files) < 2:
        per_file = []
        hints: dict[str, dict[float, float]] = {}
        for path in files:
            per_file.append(evaluate_file(path, media_kind, codecs, targets, cache_dir, max_seconds, max_frames,
                                          hints))
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        workers = min(jobs, len(files))
        size = -(-len(files) // workers)  # one run of consecutive files per worker: each file's search starts
        # from the previous file's curve (photos of a set cost about the same, so the runs stay balanced)
        chunks = [files[i:i + size] for i in range(0, len(files), size)]
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_evaluate_files_by_names, chunk, media_kind, [c.name for c in codecs], targets,
                                   cache_dir, max_seconds, max_frames) for chunk in chunks]
            per_file = []
            for future, chunk in zip(futures, chunks):  # in file order
                per_file.extend(future.result())
                bar.update(len(chunk))
    for results in per_file:
        for codec in codecs:
            for i, result in enumerate(results[codec.name]):
                per_point[codec.name][i].append(result)
    bar.close()
    rate_key = RATE_KEY[media_kind]
    out: dict[str, Any] = {"media": media_kind, "data": str(data), "files": [p.name for p in files],
                           "rate": rate_key, "bd_quality": BD_QUALITY[media_kind], "codecs": {}}
    for codec in codecs:
        points = []
        for (label, _), results in zip(plans[codec.name], per_point[codec.name]):
            keys = [k for k in results[0] if isinstance(results[0][k], (int, float)) and k not in ("setting", "bytes")]
            point = {"quality": label, **{k: _mean([r[k] for r in results]) for k in keys}}
            point[rate_key] = point.pop("rate")
            if codec.knob is not None:
                point["knob_mean"] = _mean([r["setting"] for r in results])
            points.append(point)
        out["codecs"][codec.name] = {"description": codec.description, "lossless": codec.lossless,
                                     "version": codec.version(), "points": points}
    quality = BD_QUALITY[media_kind]
    out["bd_rate"] = []
    for a in codecs:
        for b in codecs:
            pa, pb = out["codecs"][a.name]["points"], out["codecs"][b.name]["points"]
            if a is b or len(pa) < 2 or len(pb) < 2:
                continue
            value = bd_rate([p[rate_key] for p in pa], [p[quality] for p in pa],
                            [p[rate_key] for p in pb], [p[quality] for p in pb])
            out["bd_rate"].append({"codec": b.name, "anchor": a.name, "quality": quality,
                                   "bd_rate": None if math.isnan(value) else value})
    return out


def bd_rate_of(result: dict[str, Any], codec: str, anchor: str) -> float | None:
    """The BD-rate (%) of ``codec`` against ``anchor`` in a result: negative when ``codec`` needs fewer bits
    for the same quality; None when not computed (too few points, no overlap)."""
    for record in result["bd_rate"]:
        if record["codec"] == codec and record["anchor"] == anchor:
            return record["bd_rate"]
    return None


def to_json(result: dict[str, Any]) -> str:
    """JSON text of a result, with infinite / NaN numbers (lossless PSNR) written as null."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(result), indent=1, sort_keys=True)


def format_table(result: dict[str, Any]) -> str:
    """The results as a text table: one line per codec and point, then the BD-rate matrix."""
    rate = result["rate"]
    cols = {"image": ["psnr", "psnr_y", "ms_ssim"], "audio": ["mel_distance", "si_sdr"],
            "video": ["psnr", "psnr_y", "kbps"]}[result["media"]]
    lines = [f"{'codec':<16} {'point':>8} {rate:>8} " + " ".join(f"{c:>12}" for c in cols) + f" {'enc_s':>8} {'dec_s':>8}"]
    for name, codec in result["codecs"].items():
        for p in codec["points"]:
            label = "lossless" if p["quality"] is None else f"{p['quality']:g}"
            lines.append(f"{name:<16} {label:>8} {p[rate]:8.4f} " + " ".join(f"{p.get(c, float('nan')):12.4f}" for c in cols)
                         + f" {p['enc_s']:8.3f} {p['dec_s']:8.3f}")
    names = [n for n, c in result["codecs"].items() if len(c["points"]) >= 2]
    if len(names) >= 2:
        lines.append("")
        lines.append(f"BD-rate (%) of column vs row, at equal {result['bd_quality']}; negative: column needs fewer bits")
        lines.append(f"{'':<16}" + "".join(f"{n:>14}" for n in names))
        for a in names:
            row = []
            for b in names:
                v = bd_rate_of(result, b, a)
                row.append(f"{'-':>14}" if v is None else f"{v:14.2f}")
            lines.append(f"{a:<16}" + "".join(row))
    return "\n".join(lines)


def curves(result: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(rate, quality) per codec, for the rate-distortion plot."""
    rate, quality = result["rate"], {"image": "psnr", "audio": "mel_distance", "video": "psnr"}[result["media"]]
    return {name: [(p[rate], p[quality]) for p in c["points"]] for name, c in result["codecs"].items()}
