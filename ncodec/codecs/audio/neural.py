"""``encodec``: lossy audio through an EnCodec-compatible neural codec, in the container.

The model (`SEANetCodecModel`) comes from the local zoo by name (``<name>.safetensors``
whose metadata says ``architecture``: ``encodec_24khz``, ``encodec_48khz``, or ``seanet``
with the `SEANetCodecModel.build` arguments as JSON under ``config``) or from a path
(``.safetensors``, or EnCodec's own ``.th`` checkpoint read with ``weights_only``). The
bandwidth (kbps, one of the model's) sets the number of codebooks.

Audio is resampled to the model's rate (`ncodec.media.resample`), mono models take the mean of
the channels and stereo models duplicate mono input; decoding gives back the input's rate
and channel layout (a mono model's output copied to every channel, a stereo model's output
averaged for mono input), as integer PCM of the input's depth, or float.

Coding runs in chunks of about ``chunk_seconds`` (whole frames for causal models, streamed
exactly by `streaming`'s runners; whole 1 s segments for segmented ones), one container chunk
``NACD`` each: u64 first sample, u32 samples, u32 frames, u16 segments (little-endian), a
float32 volume per segment (normalising models), then the codes, frame after frame. The
codes are entropy coded with the model's categorical prior, one table per codebook, through
the rANS core (``coding: "categorical"``); a model without counts (``quantizer.prior.counts``
all zero, as EnCodec's own checkpoints) packs them in fixed 10 bits (``coding: "fixed"``).
"""
from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch
from torch import Tensor

from ... import bitstream, zoo
from ...entropy import rans
from ...entropy.cdf import CdfTables
from ...errors import BitstreamError, MediaError, ModelFileError
from ...media.types import Audio
from ...progress import Progress
from ..registry import register
from ...media.resample import Resampler, resampled_length
from ..base import Codec
from ...entropy.bitpack import pack_bits, packed_size, unpack_bits
from ...media.pcm import downmix, from_float, to_float, upmix
from ...models.audio.encodec import SEANetCodecModel
from ...models.audio.streaming import (ChunkPlan, OverlapAdd, decode_segment, encode_segment, streaming,
                                       is_streamable)
from ...zoo.audio import BUILDERS, load_audio_model, model_identity

__all__ = ["DEFAULT_MODEL", "NeuralAudioCodec", "prior_tables"]

#: the model coded with when none is named: ncodec's own, bundled (trained by scripts/train_audio.py; its model
#: card is in ncodec/weights/README.md)
DEFAULT_MODEL = "ncodec_24khz"
CHUNK_KIND = "NACD"
_CHUNK_HEAD = struct.Struct("<QIIH")
MAX_SECONDS = 24 * 3600          # longest signal a stream may announce
MAX_CHUNK_SECONDS = 600.0


def prior_tables(model: SEANetCodecModel) -> CdfTables | None:
    """The coding tables (one per codebook) of the model's counted prior, None when it has no counts."""
    prior = model.quantizer.prior
    if int(prior.counts.sum()) == 0:
        return None
    if not prior.has_tables:
        prior.update(force=True)
    return prior.tables()



# ------------------------------------------------------------------ codec
def _positive_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MediaError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise MediaError(f"{what} must be positive, got {value!r}")
    return v


@register()
class NeuralAudioCodec(Codec):
    """Lossy audio through an EnCodec-compatible model, its codes entropy coded with a counted prior."""

    name = "encodec"
    media = "audio"
    lossless = False
    pretrained = True
    description = ("lossy audio: neural codec with residual VQ (default: ncodec_24khz, bundled; EnCodec / SEANet "
                   "models from the zoo or --model), codes entropy coded with a per-codebook prior")
    quality_scale = ("quality = bandwidth in kbps (higher is better): one of the model's (1.5, 3, 6, 12 for "
                     'ncodec_24khz; 1.5 ... 24 for encodec_24khz), default 6; rate target --kbps (the same)')

    def __init__(self, model: str | os.PathLike | SEANetCodecModel | None = None, bandwidth: float | None = None,
                 quality: float | None = None, device: str = "cpu", chunk_seconds: float = 10.0):
        if bandwidth is not None and quality is not None and float(bandwidth) != float(quality):
            raise MediaError("give the bandwidth once (bandwidth= or quality=)")
        self.requested = _positive_float(bandwidth if bandwidth is not None else quality, "bandwidth (kbps)")
        self.chunk_seconds = _positive_float(chunk_seconds, "chunk_seconds") or 10.0
        if self.chunk_seconds > MAX_CHUNK_SECONDS:
            raise MediaError(f"chunk_seconds must be at most {MAX_CHUNK_SECONDS}")
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise MediaError(f"unknown device {device!r}: {exc}") from None
        self._option = model
        self._net: SEANetCodecModel | None = None
        self.facts: dict[str, Any] = {}
        self._architecture_hint: str | None = None

    # --------------------------------------------------------------- model
    @property
    def net(self) -> SEANetCodecModel:
        """The model, loaded on first use (so `describe` and `ncodec info` need no weights)."""
        if self._net is None:
            self._net, self.facts = self._load(self._option)
            self._net.to(self.device)
        return self._net

    def _load(self, model: Any) -> tuple[SEANetCodecModel, dict[str, Any]]:
        if isinstance(model, SEANetCodecModel):
            arch = model.name if model.name in BUILDERS else "seanet"
            return model.eval(), {"name": model.name, "architecture": arch, "config": None,
                                  "hash": model_identity(model)}
        name = DEFAULT_MODEL if model is None else str(model)
        if name.endswith((".safetensors", ".th", ".pt", ".pth")) or os.sep in name or Path(name).is_file():
            net, facts = load_audio_model(name, self._architecture_hint)
        else:
            entry = zoo.find_audio_model(name)
            net, facts = load_audio_model(entry.path, entry.architecture)
            facts["name"] = entry.name
        if not isinstance(net, SEANetCodecModel):
            raise ModelFileError(f"{facts['name']} is a {facts['architecture']} model: the encodec codec codes "
                                 f"EnCodec / SEANet models; DAC models tokenize (ncodec tokenize --model "
                                 f"{facts['name']}, or Tokenizer({facts['name']!r}))")
        return net, facts

    @property
    def bandwidth(self) -> float:
        """The bandwidth coded at (kbps): the one asked for, else 6 kbps where the model has it, else its lowest."""
        bands = self.net.target_bandwidths
        if self.requested is None:
            return 6.0 if 6.0 in bands else min(bands)
        if self.requested not in bands:
            raise MediaError(f"model {self.facts.get('name')} codes at {', '.join(f'{b:g}' for b in bands)} kbps, "
                             f"not {self.requested:g}")
        return self.requested

    def model_hash(self) -> str | None:
        self.net  # noqa: B018 - loads the facts
        return str(self.facts["hash"])

    @classmethod
    def eval_fixed_points(cls) -> list[float]:
        """The harness's operating points: the default model's bandwidths, when it is installed."""
        try:
            entry = zoo.find_audio_model(DEFAULT_MODEL)
            return list(load_audio_model(entry.path, entry.architecture)[0].target_bandwidths)
        except ModelFileError:
            return []

    @classmethod
    def eval_version(cls) -> str:
        """Part of the harness's cache key: the default model file's digest (results follow retrained weights)."""
        import hashlib

        try:
            path = zoo.find_audio_model(DEFAULT_MODEL).path
        except ModelFileError:
            return "no-default-model"
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    # --------------------------------------------------------------- header
    def _config(self, length: int, frames: int, codebooks: int, tables: CdfTables | None) -> dict[str, Any]:
        net = self.net
        return {"model": self.facts["name"], "architecture": self.facts["architecture"],
                "sample_rate": net.sample_rate, "channels": net.channels, "codebooks": codebooks,
                "codebook_size": 1 << net.bits_per_codebook, "bandwidth": self.bandwidth,
                "frame_rate": net.frame_rate, "length": length, "frames": frames,
                "chunk_seconds": self.chunk_seconds,
                "coding": "fixed" if tables is None else "categorical",
                "tables": None if tables is None else tables.digest()}

    @classmethod
    def from_header(cls, header: bitstream.Header, **options: Any) -> NeuralAudioCodec:
        cfg = header.config
        name, arch = cfg.get("model"), cfg.get("architecture")
        if not isinstance(name, str) or arch not in zoo.AUDIO_ARCHITECTURES:
            raise BitstreamError("corrupt encodec header: no model name / architecture")
        try:
            codec = cls(model=options.get("model") or name, bandwidth=cfg.get("bandwidth"),
                        device=options.get("device", "cpu"), chunk_seconds=cfg.get("chunk_seconds", 10.0))
        except MediaError as exc:
            raise BitstreamError(f"corrupt encodec header: {exc}") from None
        codec._architecture_hint = arch
        return codec

    @staticmethod
    def rates(header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, float]:
        """``nominal_kbps`` (codebooks x bits x frame rate), ``coded_kbps`` (the code chunks over the duration)
        and ``bits_per_code`` of a stream; empty when its header lacks the facts."""
        cfg, meta = header.config, header.metadata
        try:
            k, size, rate = int(cfg["codebooks"]), int(cfg["codebook_size"]), int(cfg["frame_rate"])
            seconds = int(meta["frames"]) / int(meta["sample_rate"])
            frames = int(cfg["frames"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return {}
        payload = sum(c.length for c in chunks if c.kind == CHUNK_KIND)
        return {"nominal_kbps": k * math.log2(max(size, 1)) * rate / 1000,
                "coded_kbps": 8 * payload / seconds / 1000 if seconds > 0 else 0.0,
                "bits_per_code": 8 * payload / (k * frames) if k * frames > 0 else 0.0}

    def describe(self, header: bitstream.Header, chunks: list[bitstream.ChunkInfo]) -> dict[str, Any]:
        cfg, r = header.config, self.rates(header, chunks)
        if not r:
            return {}
        coding = "categorical prior per codebook" if cfg.get("coding") == "categorical" else "fixed-width codes"
        return {"model": f"{cfg.get('model')} ({cfg.get('architecture')}, {cfg.get('sample_rate')} Hz, "
                         f"{cfg.get('channels')} ch)",
                "nominal": f"{r['nominal_kbps']:.3f} kbps ({cfg.get('codebooks')} codebooks of "
                           f"{cfg.get('codebook_size')} codes at {cfg.get('frame_rate')} Hz)",
                "coded": f"{r['coded_kbps']:.3f} kbps of codes, {r['bits_per_code']:.3f} bits per code ({coding})"}

    # --------------------------------------------------------------- encode
    def write(self, media: Audio, out: BinaryIO, progress: Progress | None = None) -> None:
        audio = media
        if not isinstance(audio, Audio) or audio.frames < 1:
            raise MediaError("encodec codes audio of at least one sample")
        net = self.net
        try:
            Resampler(audio.sample_rate, net.sample_rate)  # refuses rate pairs that need huge filters
        except ValueError as exc:
            raise MediaError(f"cannot resample {audio.sample_rate} Hz to {net.sample_rate} Hz: {exc}") from None
        length = resampled_length(audio.frames, audio.sample_rate, net.sample_rate)
        codebooks = net.num_codebooks(self.bandwidth)
        tables = prior_tables(net)
        meta = {"media": "audio", "sample_rate": audio.sample_rate, "channels": audio.channels,
                "frames": audio.frames, "bit_depth": audio.bit_depth, "source": audio.source}
        plan = ChunkPlan(net, length, self.chunk_seconds)
        header = bitstream.Header(self.name, self._config(length, plan.total_frames, codebooks, tables), meta,
                                  self.model_hash())
        with bitstream.Writer(out, header) as writer:
            for chunk, codes, scales, used in self._encode(audio, plan, codebooks):
                head = _CHUNK_HEAD.pack(chunk.start, chunk.samples, chunk.frames, chunk.segments)
                vols = b"" if scales is None else np.asarray(scales, dtype="<f4").tobytes()
                writer.write_chunk(CHUNK_KIND, head + vols + _code_bytes(codes, tables))
                if progress:
                    progress.update(used)

    def _encode(self, audio: Audio, plan: ChunkPlan, codebooks: int
                ) -> Iterator[tuple[Any, Tensor, list[float] | None, int]]:
        """(chunk, codes [K, frames], volumes, input frames consumed) for each chunk of the plan."""
        net = self.net
        source = _ModelRateSource(audio, net.sample_rate, net.channels, self.device,
                                  piece=max(1, int(self.chunk_seconds * audio.sample_rate)))
        stream = streaming(net.encoder) if is_streamable(net) and len(plan) > 1 else None
        for i in range(len(plan)):
            chunk = plan[i]
            last = i == len(plan) - 1
            x = source.take(chunk.start, chunk.start + chunk.samples)
            scales: list[float] | None = None
            with torch.no_grad():
                if chunk.segments:
                    codes_list, scales = [], []
                    start = chunk.start
                    for size in plan.segment_sizes(chunk):
                        c, s = encode_segment(net, x[..., start - chunk.start:start - chunk.start + size], codebooks)
                        codes_list.append(c)
                        scales.append(float(s[0]))
                        start += plan.segment_stride or 0
                    codes = torch.cat(codes_list, dim=-1)
                elif stream is not None:
                    codes = net.quantizer.encode(stream(x, final=last), codebooks)
                else:
                    codes = net.encode(x, self.bandwidth).codes
            if codes.shape[-1] != chunk.frames:
                raise RuntimeError(f"chunk {i}: {codes.shape[-1]} frames, {chunk.frames} planned")
            source.release(plan[i + 1].start if not last else chunk.start + chunk.samples)
            yield chunk, codes[0], scales, source.consumed_since_last()

    # --------------------------------------------------------------- decode
    def _check_header(self, header: bitstream.Header) -> tuple[dict[str, Any], dict[str, Any]]:
        cfg, meta = header.config, header.metadata
        try:
            rate, channels, frames = int(meta["sample_rate"]), int(meta["channels"]), int(meta["frames"])
            depth = meta.get("bit_depth")
            depth = None if depth is None else int(depth)
            k, length = int(cfg["codebooks"]), int(cfg["length"])
            coding = str(cfg["coding"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("corrupt encodec header: missing audio metadata") from None
        if not (1 <= rate <= 10_000_000 and 1 <= channels <= 64 and 1 <= frames <= MAX_SECONDS * rate
                and (depth is None or 1 <= depth <= 32) and coding in ("fixed", "categorical")):
            raise BitstreamError("corrupt encodec header: impossible audio parameters")
        net = self.net
        for key, ours in (("sample_rate", net.sample_rate), ("channels", net.channels),
                          ("codebook_size", 1 << net.bits_per_codebook), ("frame_rate", net.frame_rate)):
            if cfg.get(key) != ours:
                raise BitstreamError(f"stream header says {key}={cfg.get(key)!r}, the model has {ours!r}")
        if not 1 <= k <= net.quantizer.num_codebooks:
            raise BitstreamError(f"corrupt encodec header: {k} codebooks (the model has {net.quantizer.num_codebooks})")
        if length != resampled_length(frames, rate, net.sample_rate):
            raise BitstreamError(f"corrupt encodec header: {length} samples at {net.sample_rate} Hz do not match "
                                 f"{frames} at {rate} Hz")
        try:
            Resampler(net.sample_rate, rate)
        except ValueError as exc:
            raise BitstreamError(f"corrupt encodec header: {exc}") from None
        tables = prior_tables(net)
        if (coding == "categorical") != (tables is not None) or cfg.get("tables") != (tables and tables.digest()):
            raise BitstreamError("the stream's entropy coding tables are not this model's")
        return {"rate": rate, "channels": channels, "frames": frames, "depth": depth, "k": k,
                "length": length}, {"tables": tables}

    def decode(self, reader: bitstream.Reader, progress: Progress | None = None) -> Audio:
        facts, extra = self._check_header(reader.header)
        net, tables = self.net, extra["tables"]
        try:
            plan = ChunkPlan(net, facts["length"], float(reader.header.config["chunk_seconds"]))
        except (TypeError, ValueError):
            raise BitstreamError("corrupt encodec header: bad chunk_seconds") from None
        sink = _OutputSink(net.sample_rate, facts["rate"], facts["frames"], facts["channels"], facts["depth"])
        stream = streaming(net.decoder) if is_streamable(net) and len(plan) > 1 else None
        ola = OverlapAdd(plan.segment_stride) if plan.segment_stride is not None else None
        i = 0
        for item in reader:
            if item.kind != CHUNK_KIND:
                continue
            if i >= len(plan):
                raise BitstreamError(f"stream holds more than the {len(plan)} chunks its header announces")
            chunk, last = plan[i], i == len(plan) - 1
            codes, scales = _parse_chunk(item.payload, chunk, facts["k"], tables)
            codes = codes.to(self.device)[None]
            with torch.no_grad():
                if ola is not None:
                    pieces, start = [], 0
                    sizes = [net.encoder.frames(n) for n in plan.segment_sizes(chunk)]
                    for j, n in enumerate(sizes):
                        seg = decode_segment(net, codes[..., start:start + n],
                                             torch.tensor([scales[j]], device=self.device))
                        pieces.append(ola.add(seg, last=last and j == len(sizes) - 1))
                        start += n
                    y = torch.cat(pieces, dim=-1)
                elif stream is not None:
                    y = stream(net.quantizer.decode(codes), final=last)
                else:
                    y = net.decode(codes, None, facts["length"])
            written = sink.add(y, final=last)
            if progress:
                progress.update(written)
            i += 1
        if i != len(plan):
            raise BitstreamError(f"stream ends after {i} of its {len(plan)} chunks")
        return sink.audio(dict(reader.header.metadata.get("source") or {}))


# ------------------------------------------------------------------ helpers
def _code_bytes(codes: Tensor, tables: CdfTables | None) -> bytes:
    """Codes ``[K, T]`` frame after frame: rANS with table k for codebook k, or fixed-width packing."""
    k, t = codes.shape
    flat = codes.detach().to("cpu", torch.int64).T.reshape(-1).numpy()
    if tables is None:
        return pack_bits(flat, 10)
    return rans.encode(flat, np.tile(np.arange(k, dtype=np.int32), t), tables)


def _parse_chunk(payload: bytes, chunk: Any, k: int, tables: CdfTables | None) -> tuple[Tensor, list[float]]:
    """Codes ``[k, frames]`` and volumes of one chunk, checked against the plan."""
    if len(payload) < _CHUNK_HEAD.size:
        raise BitstreamError("corrupt encodec chunk: shorter than its header")
    start, samples, frames, segments = _CHUNK_HEAD.unpack_from(payload)
    if (start, samples, frames, segments) != (chunk.start, chunk.samples, chunk.frames, chunk.segments):
        raise BitstreamError(f"corrupt encodec chunk {chunk.index}: it says samples {start}+{samples}, {frames} "
                             f"frames, {segments} segments; the header's plan says {chunk.start}+{chunk.samples}, "
                             f"{chunk.frames}, {chunk.segments}")
    pos = _CHUNK_HEAD.size
    if len(payload) < pos + 4 * segments:
        raise BitstreamError(f"corrupt encodec chunk {chunk.index}: volumes cut off")
    scales = np.frombuffer(payload, dtype="<f4", count=segments, offset=pos).astype(np.float64).tolist()
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise BitstreamError(f"corrupt encodec chunk {chunk.index}: invalid segment volume")
    body = memoryview(payload)[pos + 4 * segments:]
    count = k * frames
    if tables is None:
        if len(body) != packed_size(count, 10):
            raise BitstreamError(f"corrupt encodec chunk {chunk.index}: {len(body)} code bytes for {count} codes")
        flat = unpack_bits(body, 10, count)
    else:
        flat = rans.decode(body, np.tile(np.arange(k, dtype=np.int32), frames), tables).astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= 1024):
            raise BitstreamError(f"corrupt encodec chunk {chunk.index}: code outside its codebook")
    return torch.from_numpy(np.ascontiguousarray(flat.reshape(frames, k).T)), scales


class _ModelRateSource:
    """The input at the model's rate and channels, produced a piece at a time on demand."""

    def __init__(self, audio: Audio, rate: int, channels: int, device: torch.device, piece: int):
        self.audio, self.channels, self.device, self.piece = audio, channels, device, piece
        self.resampler = Resampler(audio.sample_rate, rate)
        self.buffer: Tensor | None = None
        self.base = 0          # model-rate index of buffer[..., 0]
        self.read = 0          # input frames read
        self._reported = 0

    def _more(self) -> bool:
        a = self.audio
        if self.read >= a.frames:
            return False
        block = to_float(a.samples[self.read:self.read + self.piece], a.bit_depth)
        self.read += block.shape[0]
        x = torch.from_numpy(np.ascontiguousarray(block.T))[None].to(self.device)
        y = self.resampler.process(downmix(x, self.channels), final=self.read >= a.frames)
        self.buffer = y if self.buffer is None else torch.cat([self.buffer, y], dim=-1)
        return True

    def take(self, start: int, stop: int) -> Tensor:
        """Model-rate samples ``[1, channels, stop - start]``."""
        while (self.buffer is None or self.base + self.buffer.shape[-1] < stop) and self._more():
            pass
        assert self.buffer is not None and start >= self.base
        return self.buffer[..., start - self.base:stop - self.base]

    def release(self, upto: int) -> None:
        """Samples before ``upto`` are no longer needed."""
        if self.buffer is not None and upto > self.base:
            drop = min(upto - self.base, self.buffer.shape[-1])
            self.buffer = self.buffer[..., drop:]
            self.base += drop

    def consumed_since_last(self) -> int:
        done, self._reported = self.read - self._reported, self.read
        return done


class _OutputSink:
    """Decoded model-rate samples trimmed to the signal, resampled back, laid out and converted, piece by piece."""

    def __init__(self, model_rate: int, rate: int, frames: int, channels: int, depth: int | None):
        self.length = resampled_length(frames, rate, model_rate)
        self.resampler = Resampler(model_rate, rate)
        self.frames, self.channels, self.depth, self.rate = frames, channels, depth, rate
        self.taken = 0        # model-rate samples accepted
        self.done = 0         # output frames kept
        self.parts: list[np.ndarray] = []

    def add(self, y: Tensor, final: bool) -> int:
        """Take the next decoded samples ``[1, m, n]``; returns the output frames they completed."""
        y = y[..., :max(0, self.length - self.taken)]
        self.taken += y.shape[-1]
        if final and self.taken != self.length:
            raise BitstreamError(f"decoded {self.taken} samples, the header announces {self.length}")
        out = self.resampler.process(y.float(), final=final)
        out = out[..., :self.frames - self.done]
        pcm = upmix(out, self.channels)[0].T.cpu().numpy()
        self.parts.append(from_float(pcm, self.depth))
        self.done += pcm.shape[0]
        return int(pcm.shape[0])

    def audio(self, source: dict[str, Any]) -> Audio:
        samples = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        return Audio(samples, self.rate, bit_depth=self.depth if samples.dtype.kind == "i" else None, source=source)

