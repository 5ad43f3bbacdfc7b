"""EnCodec's ``.ecdc`` files (the variant without language model): read, write, decode.

Format (EnCodec 0.1.1's ``encodec/binary.py`` and ``encodec/compress.py``; everything after
the header is read in order, nothing else follows):

Header
    ``b"ECDC"``, u8 version (0), u32 big-endian length H of the metadata, H bytes of JSON
    written by ``json.dumps`` with its default separators: ``{"m": model name, "al": audio
    length in samples at the model's rate, "nc": codebooks, "lm": use of the language model}``.
Body
    For each segment of the model (one for ``encodec_24khz``; 1 s segments every 0.99 s for
    ``encodec_48khz``): the segment's volume as a big-endian float32 (normalising models
    only), then its ``frames x nc`` codes, frame after frame and codebook after codebook
    within a frame, packed 10 bits each, least significant bit first, into bytes filled from
    their lowest bit; the last byte of the segment is padded with zero bits. A segment of
    ``n`` samples has ``ceil(n / 320)`` frames (the frames EnCodec's encoder gives; its own
    reader recomputes them in floating point, which for some lengths is one more).

Only ``"lm": false`` files are supported: the others are entropy coded with EnCodec's
language model, whose weights are not part of the format. `decode_ecdc` / `encode_ecdc` turn
files into audio and back with an EnCodec-compatible `SEANetCodecModel` (weights from the zoo
by the file's model name, or given), decoding long files in bounded pieces.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...entropy.bitpack import pack_bits, packed_size, unpack_bits
from ...errors import BitstreamError

__all__ = ["ECDC_MODELS", "EcdcModel", "decode_ecdc", "encode_ecdc", "read_ecdc", "write_ecdc"]

MAGIC = b"ECDC"
_HEADER = struct.Struct("!4sBI")
_SCALE = struct.Struct("!f")
MAX_METADATA = 1 << 16


@dataclass(frozen=True)
class EcdcModel:
    """What the format needs to know of an EnCodec model."""

    name: str
    sample_rate: int
    hop: int
    bits: int
    codebooks: int            # most codebooks the model has
    segment: int | None       # segment length in samples (None: one segment)
    stride: int | None        # segment stride
    normalize: bool

    def segments(self, length: int) -> list[tuple[int, int]]:
        """(start, size) of the segments of a ``length``-sample signal."""
        if self.segment is None or self.stride is None:
            return [(0, length)]
        return [(s, min(self.segment, length - s)) for s in range(0, length, self.stride)]

    def frames(self, size: int) -> int:
        return -(-size // self.hop)


ECDC_MODELS = {
    "encodec_24khz": EcdcModel("encodec_24khz", 24000, 320, 10, 32, None, None, False),
    "encodec_48khz": EcdcModel("encodec_48khz", 48000, 320, 10, 16, 48000, 47520, True),
}
MAX_LENGTH = 48000 * 3600 * 24  # a day of audio


# ------------------------------------------------------------------ files
def _model(name: Any) -> EcdcModel:
    if not isinstance(name, str) or name not in ECDC_MODELS:
        raise BitstreamError(f"unsupported .ecdc model {name!r}; known: {', '.join(ECDC_MODELS)}")
    return ECDC_MODELS[name]


def read_ecdc(data: bytes | bytearray | memoryview) -> tuple[Any, dict[str, Any]]:
    """``(codes, metadata)`` of an ``.ecdc`` file: codes ``LongTensor [1, nc, frames]`` (segments one after
    another), metadata its header (``m``, ``al``, ``nc``, ``lm``) plus ``scales`` (a float per segment, or
    None). Raises `BitstreamError` on anything but a well-formed non-LM file."""
    import torch

    view = memoryview(data).cast("B")
    if len(view) < _HEADER.size or bytes(view[:4]) != MAGIC:
        raise BitstreamError("not an EnCodec .ecdc file (no ECDC magic)")
    _, version, size = _HEADER.unpack_from(view)
    if version != 0:
        raise BitstreamError(f"unsupported .ecdc version {version} (EnCodec 0.1.1 writes 0)")
    if size > MAX_METADATA or _HEADER.size + size > len(view):
        raise BitstreamError(f".ecdc metadata of {size} bytes does not fit the {len(view)}-byte file")
    try:
        meta = json.loads(bytes(view[_HEADER.size:_HEADER.size + size]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BitstreamError(f"corrupt .ecdc metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise BitstreamError("corrupt .ecdc metadata: not a JSON object")
    model = _model(meta.get("m"))
    length, nc, lm = meta.get("al"), meta.get("nc"), meta.get("lm")
    if type(length) is not int or not 1 <= length <= MAX_LENGTH:
        raise BitstreamError(f"corrupt .ecdc metadata: audio length {length!r}")
    if type(nc) is not int or not 1 <= nc <= model.codebooks:
        raise BitstreamError(f"corrupt .ecdc metadata: {nc!r} codebooks (the model has {model.codebooks})")
    if lm is not False:
        raise BitstreamError("this .ecdc file is entropy coded with EnCodec's language model (lm=true), "
                             "which ncodec does not support; re-encode it with use_lm=False")
    pos = _HEADER.size + size
    # sizes first: the file must hold every segment before any code is unpacked
    segments = model.segments(length)
    need = sum((_SCALE.size if model.normalize else 0) + packed_size(model.frames(n) * nc, model.bits)
               for _, n in segments)
    if len(view) - pos != need:
        raise BitstreamError(f".ecdc body has {len(view) - pos} bytes, {need} expected for {length} samples "
                             f"and {nc} codebooks")
    parts, scales = [], []
    for _, n in segments:
        if model.normalize:
            scale = _SCALE.unpack_from(view, pos)[0]
            if not math.isfinite(scale) or scale <= 0:
                raise BitstreamError(f"corrupt .ecdc file: segment volume {scale}")
            scales.append(scale)
            pos += _SCALE.size
        frames = model.frames(n)
        count = frames * nc
        values = unpack_bits(view[pos:], model.bits, count)
        pos += packed_size(count, model.bits)
        parts.append(values.reshape(frames, nc).T)
    codes = torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1)))[None]
    out = dict(meta)
    out["scales"] = scales if model.normalize else None
    return codes, out


def write_ecdc(codes: Any, model: str, length: int, scales: Any = None) -> bytes:
    """The ``.ecdc`` bytes EnCodec 0.1.1 writes (``use_lm=False``) for ``codes`` ``[1, nc, frames]`` or
    ``[nc, frames]`` of a ``length``-sample signal (``scales``: one volume per segment, normalising models)."""
    spec = _model(model)
    arr = np.asarray(codes.detach().cpu() if hasattr(codes, "detach") else codes, dtype=np.int64)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(".ecdc files hold one signal: codes must be [1, nc, frames]")
        arr = arr[0]
    if arr.ndim != 2 or not 1 <= arr.shape[0] <= spec.codebooks:
        raise ValueError(f"codes must be [nc <= {spec.codebooks}, frames], got {arr.shape}")
    segments = spec.segments(int(length))
    frames = [spec.frames(n) for _, n in segments]
    if sum(frames) != arr.shape[1]:
        raise ValueError(f"{length} samples make {sum(frames)} frames, the codes have {arr.shape[1]}")
    if spec.normalize:
        vols = np.asarray(scales.detach().cpu() if hasattr(scales, "detach") else scales,
                          dtype=np.float32).reshape(-1) if scales is not None else None
        if vols is None or vols.size != len(segments):
            raise ValueError(f"{model} normalises: give one volume per segment ({len(segments)})")
    meta = {"m": spec.name, "al": int(length), "nc": int(arr.shape[0]), "lm": False}
    meta_bytes = json.dumps(meta).encode("utf-8")
    out = [_HEADER.pack(MAGIC, 0, len(meta_bytes)), meta_bytes]
    start = 0
    for i, n in enumerate(frames):
        if spec.normalize:
            out.append(_SCALE.pack(float(vols[i])))
        out.append(pack_bits(arr[:, start:start + n].T, spec.bits))
        start += n
    return b"".join(out)


# ------------------------------------------------------------------ audio
DECODE_FRAMES = 750  # frames decoded at a time (10 s at 75 Hz)


def _load(name: str, model: Any) -> Any:
    """The `SEANetCodecModel` that decodes a file made with EnCodec model ``name``."""
    from ... import zoo
    from ...errors import ModelFileError
    from ...models.audio.encodec import SEANetCodecModel
    from ...zoo.audio import load_audio_model

    if isinstance(model, SEANetCodecModel):
        net = model
    else:
        if model is None:
            try:
                entry = zoo.find_audio_model(name)
            except ModelFileError as exc:
                raise ModelFileError(f"this .ecdc file was made with {name}, which is not in the local zoo "
                                     f"({exc}); pass its weights with --model / model= (EnCodec's .th "
                                     "checkpoint works)") from None
            model = entry.path
        net, facts = load_audio_model(model, name)
        if facts["architecture"] != name:
            raise ModelFileError(f"the .ecdc file needs {name}, the weights given are {facts['architecture']}")
    spec = ECDC_MODELS[name]
    if (net.sample_rate, net.encoder.hop_length, net.segment_length, net.segment_stride, net.normalize) != (
            spec.sample_rate, spec.hop, spec.segment, spec.stride, spec.normalize):
        raise ModelFileError(f"the model given does not have {name}'s rate, hop and segments")
    return net


def decode_ecdc(data: bytes | bytearray | memoryview, model: Any = None, device: str = "cpu") -> Any:
    """An ``.ecdc`` file decoded to `Audio` (float32, the model's rate and channels), ``model`` a weights
    path or a `SEANetCodecModel` (default: the zoo's model of the file's name)."""
    import torch

    from ...media.types import Audio
    from ...models.audio.streaming import OverlapAdd, StreamingSEANet, decode_segment

    codes, meta = read_ecdc(data)
    name, length = meta["m"], meta["al"]
    spec = ECDC_MODELS[name]
    net = _load(name, model).to(device).eval()
    codes = codes.to(device)
    parts = []
    with torch.no_grad():
        if spec.segment is None:  # causal: the decoder streams through the frames
            stream = StreamingSEANet(net.decoder)
            total = codes.shape[-1]
            for start in range(0, total, DECODE_FRAMES):
                piece = codes[..., start:start + DECODE_FRAMES]
                parts.append(stream(net.quantizer.decode(piece), final=start + DECODE_FRAMES >= total))
        else:
            ola, start = OverlapAdd(spec.stride or 0), 0
            segments = spec.segments(length)
            for i, ((_, size), scale) in enumerate(zip(segments, meta["scales"])):
                n = spec.frames(size)
                seg = decode_segment(net, codes[..., start:start + n], torch.tensor([scale], device=device))
                parts.append(ola.add(seg, last=i == len(segments) - 1))
                start += n
    wav = torch.cat(parts, dim=-1)[0, :, :length]
    return Audio(np.ascontiguousarray(wav.T.cpu().numpy(), dtype=np.float32), spec.sample_rate)


def encode_ecdc(wav: Any, model: Any, bandwidth: float, name: str | None = None) -> bytes:
    """``wav`` ``[C, T]`` (the model's rate and channels) as the ``.ecdc`` file EnCodec would write with
    ``use_lm=False``; ``name`` (default ``model.name``) is the EnCodec model the file names."""
    import torch

    name = name or model.name
    spec = _model(name)
    if wav.ndim != 2:
        raise ValueError("expected one waveform [channels, T]")
    with torch.no_grad():
        encoded = model.encode(wav[None], bandwidth)
    if encoded.codes.shape[-1] != sum(spec.frames(n) for _, n in spec.segments(wav.shape[-1])):
        raise ValueError(f"the model's frames do not follow {name}'s")
    scales = None if encoded.scales is None else encoded.scales[0]
    return write_ecdc(encoded.codes, name, wav.shape[-1], scales)
