"""The Python API: `encode`, `decode` and `info`.

``encode`` takes an image (``HxWxC`` uint8/uint16 array, ``CxHxW`` tensor), audio
(``(samples, sample_rate)``), an `Image` / `Audio` / `Video`, or a file path (video files need
PyAV); ``decode`` hands back
the same kind of object it was given (the stream records which), and ``info`` reads a
stream's header and chunk table without decoding.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import bitstream
from .codecs.audio import ecdc
from .codecs.audio.neural import DEFAULT_MODEL as NEURAL_AUDIO_DEFAULT
from .codecs.image.learned_wavelet import DEFAULT_MODEL as RESTORATION_DEFAULT
from .codecs.registry import CodecInfo, codec_class, default_codec, get_codec, list_codecs
from .errors import BitstreamError, CodecMediaError, Error, MediaError, UsageError
from .media.io import read_media
from .media.pcm import from_float
from .media.types import Audio, Image, Video
from .progress import Progress
from .zoo import AudioZooModel, ZooModel, audio_zoo_models, model_dirs, read_metadata, zoo_models
from .zoo.restoration import RestorationModel, restoration_models as _restoration_models
from .zoo.catalogue import CatalogueEntry
from .zoo.catalogue import catalogue as zoo_catalogue
from .zoo.fetch import cached_path
from .zoo.fetch import fetch as fetch_models


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_media(x: Any, name: str | None = None) -> Image | Audio | Video:
    """Wrap user input as `Image` / `Audio` / `Video`, noting in ``source`` how to hand it back.

    File bytes may come with the file's ``name``: its suffix and name are recorded, so that
    decoding writes the same format. Media this function made from a file keep that record.
    """
    if isinstance(x, (Image, Audio, Video)):
        if not (isinstance(x.source, dict) and x.source.get("type") == "file"):
            x.source = {"type": "media"}
        return x
    if isinstance(x, (str, Path)):
        media = read_media(x)
        media.source = {"type": "file", "suffix": Path(x).suffix.lower()[:16]}
        return media
    if isinstance(x, (bytes, bytearray)):
        media = read_media(bytes(x))
        media.source = {"type": "file"}
        if name is not None:
            media.source.update(suffix=Path(name).suffix.lower()[:16], name=Path(name).name[:255])
        return media
    if isinstance(x, tuple) and len(x) == 2:
        return _to_audio(*x)
    if _is_tensor(x):
        return _tensor_to_image(x)
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.uint8, np.uint16) or x.ndim not in (2, 3):
            raise MediaError(f"an image array must be HxW or HxWxC uint8/uint16, got {x.dtype} {x.shape}; "
                             "pass audio as (samples, sample_rate)")
        return Image(x, 16 if x.dtype == np.uint16 else 8, {"type": "numpy", "layout": "HWC" if x.ndim == 3 else "HW"})
    raise MediaError(f"cannot encode a {type(x).__name__}: give an image array/tensor, (samples, rate) or a path")


def _tensor_to_image(t: Any) -> Image:
    if t.ndim not in (2, 3):
        raise MediaError(f"an image tensor must be CxHxW or HxW, got shape {tuple(t.shape)}")
    import torch

    arr = t.detach().cpu()
    dtype = str(arr.dtype).replace("torch.", "")
    if arr.is_floating_point():
        arr = (arr.clamp(0, 1) * 255).round().to(dtype=torch.uint8)
    a = arr.numpy()
    if a.dtype not in (np.uint8,):
        raise MediaError(f"image tensors must be uint8 or float in [0, 1], got {dtype}")
    layout = "CHW" if a.ndim == 3 else "HW"
    pixels = np.moveaxis(a, 0, -1) if a.ndim == 3 else a
    return Image(pixels, 8, {"type": "torch", "layout": layout, "dtype": dtype})


def _to_audio(samples: Any, rate: Any) -> Audio:
    src: dict[str, Any] = {"type": "numpy"}
    if _is_tensor(samples):
        t = samples.detach().cpu()
        src = {"type": "torch", "dtype": str(t.dtype).replace("torch.", "")}
        arr = t.numpy()
        arr = arr.T if arr.ndim == 2 else arr  # torch audio is [channels, frames]
    else:
        arr = np.asarray(samples)
        src["dtype"] = str(arr.dtype)
    src["layout"] = "T" if arr.ndim == 1 else ("CT" if src["type"] == "torch" else "TC")
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise MediaError(f"the sample rate must be an integer, got {rate!r}") from None
    return Audio(arr, rate, source=src)


def media_kind(media: Image | Audio | Video) -> str:
    """The media kind ("image", "audio" or "video") a codec must take to code ``media``."""
    return "image" if isinstance(media, Image) else "video" if isinstance(media, Video) else "audio"


def from_media(media: Image | Audio | Video) -> Any:
    """Hand decoded media back in the form recorded at encode time (numpy when unknown; video as `Video`)."""
    src = media.source if isinstance(media.source, dict) else {}
    kind = src.get("type")
    if kind == "media" or isinstance(media, Video):
        return media
    if isinstance(media, Image):
        px = media.pixels
        if kind == "torch":
            import torch

            t = torch.from_numpy(np.ascontiguousarray(px[:, :, 0] if src.get("layout") == "HW" else np.moveaxis(px, -1, 0)))
            return t.float() / 255 if src.get("dtype") in ("float32", "float64", "float16", "bfloat16") else t
        return px[:, :, 0] if src.get("layout") == "HW" else px
    samples = media.samples
    if kind == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(samples[:, 0] if src.get("layout") == "T" else samples.T))
        return t, media.sample_rate
    return (samples[:, 0] if src.get("layout") == "T" else samples), media.sample_rate


def codec_for(media: Image | Audio | Video, codec: str | None = None, **options: Any) -> Any:
    """The codec that codes ``media``: the named one (the media's default if None) with ``options``.

    `UsageError` when the codec does not take the options, `CodecMediaError` when it codes
    another kind of media.
    """
    kind = media_kind(media)
    name = codec or default_codec(kind, media)
    try:
        impl = get_codec(name, **options)
    except Error:
        raise
    except TypeError as e:
        raise UsageError(f"codec {name!r} does not take these options: {e}") from None
    except (ValueError, OverflowError) as e:  # a codec's own float()/int() of an option
        raise UsageError(f"codec {name!r}: bad option value ({e})") from None
    if impl.media != kind:
        raise CodecMediaError(f"codec {name!r} takes {impl.media}, but this input is {kind}")
    return impl


def encode(x: Any, codec: str | None = None, progress: Progress | None = None, **options: Any) -> bytes:
    """Encode media into an ncodec stream with the named codec (the media's default if None)."""
    media = to_media(x)
    return codec_for(media, codec, **options).encode(media, progress)


def encode_to(x: Any, out: BinaryIO, codec: str | None = None, progress: Progress | None = None,
              **options: Any) -> str:
    """Encode media into a stream written to the binary file ``out`` as it is made (long audio is coded
    chunk by chunk, never held whole); returns the codec's name."""
    media = to_media(x)
    impl = codec_for(media, codec, **options)
    impl.write(media, out, progress)
    return str(impl.name)


def compress_file(source: str | Path | bytes, out: str | Path, codec: str | None = None, force: bool = False,
                  progress: Progress | None = None, codecs: dict[str, Any] | None = None,
                  **options: Any) -> tuple[Image | Audio | Video, int, int | None, str]:
    """Compress one media file (a path, or the file's bytes) into the stream file ``out`` (``-``: stdout),
    atomically, as ``ncodec compress`` does: the media, the input's size, the stream's size (None on
    stdout) and the codec's name.

    ``codecs`` caches codec instances by name across calls (a batch loads each model once). Refuses an
    input that is already a stream (`UsageError`) and, unless ``force``, an existing ``out``.
    """
    from .media.io import atomic_output, detect_media

    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), None
    else:
        try:
            data, name = Path(source).read_bytes(), str(source)
        except OSError as e:
            raise Error(f"cannot read {source}: {e.strerror}") from None
    if detect_media(data[:64]) == "ncodec":
        raise UsageError(f"{name or 'the input'} is already an ncodec stream; use `ncodec decompress`")
    media = to_media(data, name)
    kind = media_kind(media)
    codec_name = codec or default_codec(kind, media)
    impl = codecs.get(codec_name) if codecs is not None else None
    if impl is None:
        impl = codec_for(media, codec_name, **options)
        if codecs is not None:
            codecs[codec_name] = impl
    elif impl.media != kind:
        raise CodecMediaError(f"codec {codec_name!r} takes {impl.media}, but {name or 'the input'} is {kind}")
    if progress is not None:
        progress.total = media.frames if isinstance(media, Audio) else 1
        progress.label = f"compress {impl.name}"
    with atomic_output(str(out), force) as f:
        impl.write(media, f, progress)
        written = None if str(out) == "-" else f.tell()
    return media, len(data), written, str(impl.name)


def _reader(data: Any) -> bitstream.Reader:
    if isinstance(data, (str, Path)):
        try:
            data = Path(data).read_bytes()
        except OSError as e:
            raise Error(f"cannot read {data}: {e.strerror}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)) and not hasattr(data, "read"):
        raise BitstreamError(f"expected stream bytes, a path or a binary file, got {type(data).__name__}")
    return bitstream.Reader(data)


def decode_media(data: Any, progress: Progress | None = None, **options: Any) -> Image | Audio | Video:
    """Decode a stream into `Image` / `Audio` / `Video` (what the CLI writes to files); ``options`` such as
    ``model`` (a weights file) reach the codec. A ``progress`` counts the stream's frames (its total is set
    from the header)."""
    reader = _reader(data)
    codec = codec_class(reader.header.codec).from_header(reader.header, **options)
    bitstream.check_model_hash(reader.header, codec.model_hash())
    frames = reader.header.metadata.get("frames")
    if progress is not None:
        progress.total = float(frames) if isinstance(frames, int) and frames > 0 else 1.0
    return codec.decode(reader, progress)


def is_ecdc(data: bytes) -> bool:
    """Whether ``data`` starts like an EnCodec ``.ecdc`` file."""
    return bytes(data[:4]) == ecdc.MAGIC


def decode_ecdc(data: bytes, model: Any = None) -> Audio:
    """An EnCodec ``.ecdc`` file decoded to 16-bit PCM `Audio`, as EnCodec's own command writes it; ``model``
    is a weights path (default: the zoo's model of the file's name)."""
    audio = ecdc.decode_ecdc(data, model=model)
    return Audio(from_float(audio.samples, 16), audio.sample_rate, bit_depth=16)


def codecs() -> list[CodecInfo]:
    """Every codec ncodec has (what ``ncodec list`` shows)."""
    return list_codecs()


def codec_options(name: str) -> dict[str, Any]:
    """The options a codec takes (``--quality``, ``--model``, ``--option KEY=VALUE``) and their defaults, read
    from its constructor's signature (None where the codec chooses)."""
    import inspect

    signature = inspect.signature(codec_class(name).__init__)
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


#: the audio model the ``encodec`` codec and the tokenizer use when none is named
DEFAULT_AUDIO_MODEL = NEURAL_AUDIO_DEFAULT
#: the restoration network the ``learned-wavelet`` codec uses when none is named
DEFAULT_RESTORATION_MODEL = RESTORATION_DEFAULT


def models() -> tuple[list[ZooModel], list[AudioZooModel], list[Path]]:
    """The model files found: image models, audio models, and the folders searched (in order)."""
    return zoo_models(), audio_zoo_models(), model_dirs()


def restoration_models() -> list[RestorationModel]:
    """The restoration networks found (for ``learned-wavelet``; the first is the default's name when present)."""
    return _restoration_models()


def catalogue() -> list[tuple[CatalogueEntry, Path | None]]:
    """The published checkpoints ncodec can fetch (`ncodec.zoo.catalogue`), each with its converted file
    when it is already cached (else None)."""
    return [(entry, cached_path(entry)) for entry in zoo_catalogue().values()]


def fetch(name: str, *, force: bool = False, allow_unpinned: bool = False, sha256: str | None = None,
          timeout: float = 30.0, progress: bool = True) -> list[Path]:
    """Download, verify, convert and cache a catalogue entry (or every quality of a CompressAI
    architecture); the converted files (`ncodec.zoo.fetch.fetch`)."""
    return fetch_models(name, force=force, allow_unpinned=allow_unpinned, sha256=sha256, timeout=timeout,
                        progress=progress)


def fetched_source(path: Path) -> dict[str, str]:
    """Where a fetched model came from: the metadata `fetch` recorded (source_url, source_sha256, licence, ...)."""
    keys = ("catalogue", "source_url", "source_sha256", "licence", "publisher")
    return {k: v for k, v in read_metadata(path).items() if k in keys}


def decode(data: Any, progress: Progress | None = None, **options: Any) -> Any:
    """Decode a stream (bytes, path or binary file) into the kind of object it was made from."""
    return from_media(decode_media(data, progress, **options))


def stream_media(data: Any) -> str | None:
    """The kind of media a stream holds ("image", "audio" or "video"), from its header alone."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    media = _reader(data).header.metadata.get("media")
    return media if isinstance(media, str) else None


def info(data: Any, verify: bool = True) -> dict[str, Any]:
    """Header, chunk table and bitrate of a stream, without decoding it.

    With ``verify`` (the default) every chunk's CRC, the index and the end marker are checked
    too (`ChecksumError` / `BitstreamError` on a corrupt stream) and ``"verified"`` is True;
    without, only the header and the chunk table are read and ``"verified"`` is False.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    reader = _reader(data)
    h = reader.header
    table = reader.chunk_table()
    if verify:
        for _ in reader:  # reads every payload: CRCs, the index's agreement, the end marker
            pass
    size = _stream_size(data)
    out: dict[str, Any] = {"codec": h.codec, "format_version": h.version, "model_hash": h.model_hash,
                           "config": h.config, "metadata": h.metadata, "bytes": size,
                           "chunks": [{"kind": c.kind, "offset": c.offset, "length": c.length} for c in table],
                           "verified": bool(verify)}
    meta = h.metadata
    try:
        if meta.get("media") == "image":
            out["bpp"] = 8 * size / (int(meta["width"]) * int(meta["height"]))
        elif meta.get("media") == "audio":
            seconds = int(meta["frames"]) / int(meta["sample_rate"])
            out["duration_s"] = seconds
            out["kbps"] = 8 * size / seconds / 1000 if seconds > 0 else 0.0
        elif meta.get("media") == "video":
            frames, fps = int(meta["frames"]), float(meta["fps"])
            out["bpp"] = 8 * size / (frames * int(meta["width"]) * int(meta["height"]))
            out["duration_s"] = frames / fps
            out["kbps"] = 8 * size / out["duration_s"] / 1000
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        pass
    try:
        codec = codec_class(h.codec).from_header(h)
        out.update(codec.describe(h, table))
    except Error:
        pass
    return out


def _stream_size(data: Any) -> int:
    if isinstance(data, (str, Path)):
        return Path(data).stat().st_size
    pos = data.tell()
    end = data.seek(0, io.SEEK_END)
    data.seek(pos)
    return int(end)
