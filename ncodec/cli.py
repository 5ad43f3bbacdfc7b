"""The ``ncodec`` command: compress, decompress, info, list, eval, tokenize, bench.

Exit status: 0 on success; 1 on a failure (unreadable or corrupt input, an input that is no
ncodec stream, a model that cannot be loaded); 2 on a command line that cannot be carried out
as given (unknown options, a codec for another media, an output that is the input or a format
that would lose data); 130 when interrupted; 141 when the reader of standard output went away
(``ncodec info x | head``). Errors are one line on standard error (``--debug`` adds the
traceback).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from . import api
from .errors import Error, UsageError
from .media.formats import LOSSLESS_AUDIO_SUFFIXES, lossless_output_format, media_files
from .media.io import (atomic_output, audio_format_for, detect_media, video_format_for, write_audio, write_image,
                       write_video_lossless)
from .media.types import Audio, Image, Video
from .progress import Progress

STREAM_SUFFIX = ".ncd"


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise Error(f"cannot read {path}: {e.strerror}") from None


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``--option key=value`` pairs, values parsed as JSON where they parse (else strings)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option takes key=value, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def _refuse_overwriting_input(src: str, out: str) -> None:
    """UsageError when ``out`` is the input file itself: the same path, a hard link or a symlink to it."""
    if src == "-" or out == "-":
        return
    try:
        same = os.path.samefile(src, out)
    except OSError:  # the output does not exist yet (or the input vanished): not the same file
        same = False
    if same or Path(src).resolve() == Path(out).resolve():
        raise UsageError(f"{out} is the input file; refusing to write over it (--force does not change this)")


def _batch(args: argparse.Namespace, files: list[Path], target: Callable[[Path], Path],
           one: Callable[[argparse.Namespace], None], verb: str) -> None:
    """Run ``one`` on every file of a folder into a mirrored tree; outputs that exist are kept (a rerun resumes),
    a failed file is reported and the rest go on; Error at the end if any failed."""
    failed: list[str] = []
    done = skipped = 0
    for src in files:
        out = target(src)
        if out.exists() and not args.force:
            skipped += 1
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            one(argparse.Namespace(**{**vars(args), "input": str(src), "output": str(out), "quiet": True}))
            done += 1
        except (Error, OSError) as e:
            msg = str(e) if isinstance(e, Error) else (e.strerror or str(e))
            failed.append(f"{src}: {_one_line(msg)}")
            print(f"ncodec: {src}: {_one_line(msg)}", file=sys.stderr)
    _say(args, f"{verb} {done} files, kept {skipped} done before, {len(failed)} failed")
    if failed:
        raise Error(f"{len(failed)} of {len(files)} files failed (listed above)")


def _output_folder(root: Path, output: str) -> Path:
    """The output folder of a folder command; UsageError when it is the input folder or lies inside it."""
    out_root = Path(output)
    if out_root.resolve() == root.resolve() or root.resolve() in out_root.resolve().parents:
        raise UsageError(f"the output folder {out_root} must lie outside the input folder {root}")
    return out_root


def _compress_folder(args: argparse.Namespace) -> None:
    """``ncodec compress DIR [OUT]``: every image, audio and video file of the tree to ``OUT/<path>.ncd``."""
    root = Path(args.input)
    out_root = _output_folder(root, args.output or f"{root.as_posix().rstrip('/')}.ncd")
    if args.engine == "ray":
        from .corpus.ray_engine import compress_corpus

        summary = compress_corpus(root, out_root, args.codec, _compress_options(args), address=args.address,
                                  workers=args.workers, force=args.force, suffix=STREAM_SUFFIX)
        for item, error in sorted(summary.failed.items()):
            print(f"ncodec: {item}: {_one_line(error)}", file=sys.stderr)
        _say(args, f"compressed {summary.new} files, kept {summary.kept} done before, {len(summary.failed)} failed "
                   f"(Ray, {summary.wall:.1f} s)")
        if summary.failed:
            raise Error(f"{len(summary.failed)} of {summary.items} files failed (listed above)")
        return
    files = sorted({*media_files(root, "image", recursive=True), *media_files(root, "audio", recursive=True),
                    *media_files(root, "video", recursive=True)})
    _batch(args, files, lambda src: out_root / (src.relative_to(root).as_posix() + STREAM_SUFFIX),
           cmd_compress, "compressed")


def _decompress_folder(args: argparse.Namespace) -> None:
    """``ncodec decompress DIR [OUT]``: every ``.ncd`` stream of the tree back to ``OUT/<path>`` (its source's
    name where that suffix holds the media exactly, else with the media's lossless suffix added)."""
    root = Path(args.input)
    out_root = _output_folder(root, args.output or f"{root.as_posix().rstrip('/').removesuffix(STREAM_SUFFIX)}.decoded")
    files = sorted(p for p in root.rglob(f"*{STREAM_SUFFIX}") if p.is_file() and not p.name.startswith("."))

    def target(src: Path) -> Path:
        plain = out_root / src.relative_to(root).as_posix().removesuffix(STREAM_SUFFIX)
        try:
            with open(src, "rb") as f:
                kind = api.stream_media(f)  # the header only
        except (Error, OSError):
            return plain  # decompress reports what is wrong with it
        try:
            lossless_output_format(kind or "", plain)
            return plain
        except (KeyError, ValueError):
            return plain.with_name(plain.name + _LOSSLESS_SUFFIX.get(kind or "", ".bin"))

    _batch(args, files, target, cmd_decompress, "decompressed")


_LOSSLESS_SUFFIX = {"image": ".png", "audio": ".wav", "video": ".mkv"}


def cmd_compress(args: argparse.Namespace) -> None:
    if args.input != "-" and Path(args.input).is_dir():
        return _compress_folder(args)
    if args.output:
        _refuse_overwriting_input(args.input, args.output)
    out = args.output or ("-" if args.input == "-" else str(Path(args.input).with_suffix(STREAM_SUFFIX)))
    source: str | bytes = _read_input("-") if args.input == "-" else args.input
    with Progress(1, "compress", enabled=False if args.quiet else None) as progress:
        media, in_bytes, written, _ = api.compress_file(source, out, args.codec, args.force, progress,
                                                       **_compress_options(args))
    if written is not None:
        _say(args, _summary(media, in_bytes, written, out))


def _compress_options(args: argparse.Namespace) -> dict[str, Any]:
    """The codec options of ``ncodec compress``: ``--option`` pairs and the named shortcuts."""
    options = _parse_options(args.option)
    for key, value in (("quality", args.quality), ("bpp", args.bpp), ("bandwidth", args.kbps), ("model", args.model)):
        if value is not None:
            options[key] = value
    return options


def _summary(media: Image | Audio | Video, in_bytes: int, out_bytes: int, out: str) -> str:
    if isinstance(media, Image):
        rate = f"{8 * out_bytes / media.num_pixels:.3f} bpp"
    elif isinstance(media, Video):
        pixels = media.num_frames * media.height * media.width
        rate = f"{8 * out_bytes / pixels:.4f} bpp, {8 * out_bytes / media.duration / 1000:.1f} kbps"
    else:
        rate = f"{8 * out_bytes / max(media.duration, 1e-9) / 1000:.1f} kbps"
    return f"{out}: {in_bytes} -> {out_bytes} bytes ({out_bytes / max(in_bytes, 1):.1%}), {rate}"


def _default_output(args: argparse.Namespace, media: Image | Audio | Video) -> str:
    if args.input == "-":
        return "-"
    src = Path(args.input)
    suffix = media.source.get("suffix") if isinstance(media.source, dict) else None
    if isinstance(media, Image):
        suffix = ".png"
    elif isinstance(media, Video):
        suffix = ".mkv"   # FFV1, lossless: the file holds exactly the decoded frames
    elif suffix not in LOSSLESS_AUDIO_SUFFIXES:
        suffix = ".wav"
    stem = src.with_suffix("") if src.suffix == STREAM_SUFFIX else src
    target = stem.with_suffix(suffix) if src.suffix == STREAM_SUFFIX else Path(str(src) + suffix)
    if target.exists() and not args.force:  # never clobber; decode beside it instead
        target = target.with_name(target.stem + ".decoded" + suffix)
    return str(target)


def _decompress_ecdc(args: argparse.Namespace, data: bytes) -> None:
    """EnCodec's .ecdc files, written as 16-bit PCM as EnCodec's own command does."""
    out = args.output or ("-" if args.input == "-" else str(Path(args.input).with_suffix(".wav")))
    fmt = "WAV" if out == "-" else _output_format("audio", out)
    _refuse_overwriting_input(args.input, out)
    audio = api.decode_ecdc(data, model=args.model)
    with atomic_output(out, args.force) as f:
        write_audio(f, audio, fmt)
    if out != "-":
        _say(args, f"{out}: decoded EnCodec .ecdc file ({len(data)} bytes)")


def cmd_decompress(args: argparse.Namespace) -> None:
    if args.input != "-" and Path(args.input).is_dir():
        return _decompress_folder(args)
    data = _read_input(args.input)
    if api.is_ecdc(data):
        return _decompress_ecdc(args, data)
    if detect_media(data[:8]) != "ncodec":
        raise Error(f"{args.input} is not an ncodec stream (compress it first)")
    kind = api.stream_media(data)
    if args.output and args.output != "-":  # refuse before decoding, which may take long
        _output_format(kind, args.output)
        _refuse_overwriting_input(args.input, args.output)
    with Progress(1.0, "decompress", enabled=False if args.quiet else None) as progress:
        media = api.decode_media(data, progress, **({"model": args.model} if args.model else {}))
    out = args.output or _default_output(args, media)
    _refuse_overwriting_input(args.input, out)
    with atomic_output(out, args.force) as f:
        if isinstance(media, Image):
            write_image(f, media, "PNG" if out == "-" else _output_format("image", out))
        elif isinstance(media, Video):
            buf = io.BytesIO()   # the muxer seeks back; stdout cannot
            write_video_lossless(buf, media, "matroska" if out == "-" else video_format_for(out))
            f.write(buf.getvalue())
        else:
            write_audio(f, media, "WAV" if out == "-" else audio_format_for(out))
    if out != "-":
        _say(args, f"{out}: decoded {api.info(data)['codec']} stream ({len(data)} bytes)")


def _output_format(kind: str | None, out: str) -> str:
    """The format an output suffix names for decoded ``kind`` media; UsageError where it would lose data."""
    if kind not in ("image", "audio", "video"):
        raise Error(f"the stream does not say what media it holds ({kind!r})")
    try:
        return lossless_output_format(kind, out)
    except ValueError as e:
        raise UsageError(f"{out}: {e}") from None


def _format_info(d: dict[str, Any]) -> str:
    lines = [f"codec:    {d['codec']} (container v{d['format_version']})",
             f"model:    {d['model_hash'] or '-'}",
             f"size:     {d['bytes']} bytes"]
    meta = d["metadata"]
    if meta.get("media") == "image":
        lines.append(f"image:    {meta.get('width')}x{meta.get('height')}x{meta.get('channels')}, "
                     f"{meta.get('bit_depth')}-bit; {d.get('bpp', float('nan')):.4f} bpp")
    elif meta.get("media") == "audio":
        lines.append(f"audio:    {meta.get('channels')} ch, {meta.get('sample_rate')} Hz, {meta.get('bit_depth')}-bit, "
                     f"{d.get('duration_s', 0):.2f} s; {d.get('kbps', float('nan')):.1f} kbps")
    elif meta.get("media") == "video":
        lines.append(f"video:    {meta.get('frames')} frames, {meta.get('width')}x{meta.get('height')}, "
                     f"{meta.get('fps')} fps, {d.get('duration_s', 0):.2f} s; {d.get('bpp', float('nan')):.4f} bpp, "
                     f"{d.get('kbps', float('nan')):.1f} kbps")
    for key, value in d.items():
        if key not in ("codec", "format_version", "model_hash", "bytes", "metadata", "chunks", "config", "bpp",
                       "kbps", "duration_s", "verified"):
            lines.append(f"{key + ':':<10}{value}")
    lines.append("checked:  every chunk's CRC, the index and the end marker" if d.get("verified")
                 else "checked:  header and chunk table only (--no-verify)")
    lines.append(f"config:   {json.dumps(d['config'], sort_keys=True)}")
    lines.append(f"chunks:   {len(d['chunks'])}")
    for c in d["chunks"][:20]:
        lines.append(f"  {c['kind']!r:8} @{c['offset']:>10}  {c['length']:>10} bytes")
    if len(d["chunks"]) > 20:
        lines.append(f"  ... {len(d['chunks']) - 20} more")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> None:
    source: Any = args.file if args.file != "-" else _read_input("-")
    d = api.info(source, verify=not args.no_verify)
    print(json.dumps(d, sort_keys=True) if args.json else _format_info(d))


def cmd_list(args: argparse.Namespace) -> None:
    for c in api.codecs():
        options = api.codec_options(c.name) if args.options else None
        if args.json:
            row = {"name": c.name, "media": c.media, "pretrained": c.pretrained, "lossless": c.lossless,
                   "default": c.default, "description": c.description, "quality_scale": c.quality_scale or None}
            if options is not None:
                row["options"] = {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                                  for k, v in options.items()}
            print(json.dumps(row))
        else:
            flags = ", ".join(f for f, on in (("default", c.default), ("lossless", c.lossless),
                                              ("pretrained", c.pretrained)) if on)
            print(f"{c.name:<20} {c.media:<6} {flags:<28} {c.description}")
            if c.quality_scale:
                print(" " * 22 + c.quality_scale)
            if options:
                print(" " * 22 + "options: " + ", ".join(f"{k}={'auto' if v is None else v}"
                                                           for k, v in options.items()))
    models, audio, folders = api.models()
    if models and not args.json:
        print("\nmodels (--model NAME --quality Q; folders: " + ", ".join(map(str, folders)) + "):")
    for m in models:
        if args.json:
            print(json.dumps({"model": m.name, "quality": m.quality, "architecture": m.architecture, "N": m.N,
                              "M": m.M, "path": str(m.path)}))
        else:
            quality = f"q{m.quality}" if m.quality is not None else "q1-8"
            print(f"  {m.name:<24} {quality:<4} {m.architecture} (N={m.N}, M={m.M})  {m.path}")
    if audio and not args.json:
        print("\naudio models (--codec encodec --model NAME):")
    for a in audio:
        if args.json:
            print(json.dumps({"model": a.name, "architecture": a.architecture, "media": "audio", "path": str(a.path),
                              "pretrained": a.pretrained, "steps": a.steps, "default": a.name == api.DEFAULT_AUDIO_MODEL}))
        else:
            facts = ", ".join(f for f in ("default" if a.name == api.DEFAULT_AUDIO_MODEL else "",
                                          f"{a.steps} steps" if a.steps else "",
                                          "pretrained" if a.pretrained else "untrained") if f)
            print(f"  {a.name:<28} {a.architecture:<14} {facts:<32} {a.path}")
    restoration = api.restoration_models()
    if restoration and not args.json:
        print("\nimage restoration networks (--codec learned-wavelet --model NAME):")
    for r in restoration:
        default = r.name == api.DEFAULT_RESTORATION_MODEL
        if args.json:
            print(json.dumps({"model": r.name, "architecture": "restoration", "media": "image", "path": str(r.path),
                              "pretrained": bool(r.steps), "steps": r.steps, "default": default}))
        else:
            facts = ", ".join(f for f in ("default" if default else "", f"{r.steps} steps" if r.steps else "") if f)
            print(f"  {r.name:<28} {'restoration':<14} {facts:<32} {r.path}")


    if args.json:
        for entry, path in api.catalogue():
            print(json.dumps({"catalogue": entry.name, "media": entry.media, "model": entry.model_name,
                              "quality": entry.quality, "architecture": entry.architecture,
                              "publisher": entry.publisher, "url": entry.url, "sha256": entry.sha256,
                              "size": entry.size, "licence": entry.licence, "cached": path is not None,
                              "path": None if path is None else str(path)}))
        return
    print("\ncatalogue (ncodec fetch NAME; a CompressAI architecture name fetches its 8 qualities):")
    groups: dict[str, list[Any]] = {}
    for entry, path in api.catalogue():
        groups.setdefault(entry.architecture if entry.quality is not None else entry.name, []).append((entry, path))
    for name, rows in groups.items():
        entry = rows[0][0]
        cached = sum(path is not None for _, path in rows)
        status = (f"{cached}/{len(rows)} cached" if len(rows) > 1 else "cached" if cached else "not fetched")
        qualities = f"q{rows[0][0].quality}-{rows[-1][0].quality}" if entry.quality is not None else ""
        pin = "" if all(e.sha256 for e, _ in rows) else ", unpinned"
        print(f"  {name:<24} {qualities:<5} {entry.media:<6} {status:<14} {entry.publisher}, {entry.licence}{pin}")


def cmd_fetch(args: argparse.Namespace) -> None:
    paths = api.fetch(args.name, force=args.force, allow_unpinned=args.allow_unpinned, sha256=args.sha256,
                      timeout=args.timeout, progress=not args.quiet)
    for path in paths:
        source = api.fetched_source(path)
        _say(args, f"{source.get('catalogue')}: {source.get('source_url')} (sha256 {source.get('source_sha256')}, "
                   f"licence {source.get('licence')})")
        print(path)


def cmd_eval(args: argparse.Namespace) -> None:
    from .eval.harness import curves, format_table, run_eval, to_json

    try:
        targets = [float(t) for t in args.targets.split(",")] if args.targets else None
    except ValueError:
        raise UsageError(f"--targets takes comma-separated numbers, got {args.targets!r}") from None
    cache = None if args.no_cache else Path(args.cache).expanduser()
    result = run_eval(args.media, [c.strip() for c in args.codec.split(",") if c.strip()], Path(args.data),
                      targets, cache, args.max_files, args.max_seconds, args.max_frames,
                      progress=False if args.quiet else None, jobs=args.jobs)
    print(format_table(result))
    if args.json:
        with atomic_output(args.json, force=True) as f:
            f.write(to_json(result).encode())
    if args.plot:
        from .eval.plot import rd_plot

        ylabel = {"image": "PSNR (dB)", "audio": "mel distance", "video": "PSNR (dB)"}[args.media]
        rd_plot(curves(result), xlabel=result["rate"], ylabel=ylabel, path=args.plot)


def cmd_tokenize(args: argparse.Namespace) -> None:
    from .tokenizers.folder import tokenize_folder
    from .tokenizers.tokenizer import open_tokenizer

    if args.engine == "ray":
        from .corpus.ray_engine import tokenize_corpus

        def report(entry: dict[str, Any]) -> None:
            for item, error in entry["failed"].items():
                _say(args, f"{item}: skipped ({_one_line(error)})")

        summary = tokenize_corpus(args.folder, args.out, args.model, args.bandwidth, address=args.address,
                                  workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                                  items_per_shard=args.items_per_shard, force=args.force, on_shard=report)
        _say(args, f"{args.out}: {summary.items} files ({summary.new} new in {summary.shards} shards, {summary.kept} "
                   f"done before), {summary.seconds:.1f} s of audio in {summary.wall:.1f} s on Ray"
                   + (f"; {len(summary.failed)} unreadable files recorded" if summary.failed else ""))
        return

    tokenizer, name, model_hash = open_tokenizer(args.model, args.bandwidth, args.device)
    with Progress(1.0, f"tokenize {name}", enabled=None if not args.quiet else False) as progress:
        summary = tokenize_folder(args.folder, args.out, tokenizer, name, model_hash,
                                  batch_size=args.batch_size, batch_seconds=args.batch_seconds, force=args.force,
                                  progress=progress, warn=lambda m: _say(args, m))
    seconds = summary.frames / tokenizer.frame_rate
    _say(args, f"{args.out}: {summary.files} files ({summary.new} new), {summary.frames} frames = {seconds:.1f} s of "
               f"{tokenizer.num_codebooks} codebooks at {tokenizer.frame_rate} Hz ({tokenizer.bandwidth:g} kbps, "
               f"model {name})" + (f"; {len(summary.failed)} unreadable files skipped"
                                                   if summary.failed else ""))


def cmd_detokenize(args: argparse.Namespace) -> None:
    from .tokenizers.folder import detokenize_file, read_token_settings
    from .tokenizers.tokenizer import open_tokenizer

    from .corpus.shards import corpus_settings, detokenize_corpus, is_corpus

    corpus = is_corpus(args.tokens)
    settings = corpus_settings(args.tokens) if corpus else read_token_settings(args.tokens)
    tokenizer, name, model_hash = open_tokenizer(args.model or settings.get("model"), settings.get("bandwidth"),
                                                 args.device)
    with Progress(1.0, f"detokenize {name}", enabled=False if args.quiet else None) as progress:
        run = detokenize_corpus if corpus else detokenize_file
        summary = run(args.tokens, args.out, tokenizer, model_hash, force=args.force, progress=progress)
    _say(args, f"{args.out}: {summary.files} files written ({summary.seconds:.1f} s of audio), "
               f"{summary.kept} kept from before; model {name}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(args.what, args.rest)


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    """--engine / --address / --workers of the folder commands."""
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (this process; the default) or ray (a Ray Data pipeline: pip install 'ncodec[ray]')")
    p.add_argument("--address", help="Ray engine: the cluster to join (auto, or HOST:PORT; default: start a local one)")
    p.add_argument("--workers", type=int, help="Ray engine: actors (default: one per CPU of the cluster)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncodec", description="Compress and decompress images, audio and video with ncodec.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compress", help="encode an image, audio or video file into an ncodec stream")
    c.add_argument("input", help="image, audio or video file (video needs PyAV), a folder (every media file "
                   "of its tree), or - for stdin")
    c.add_argument("output", nargs="?", help="output stream (default: INPUT with .ncd; - for stdout); for a "
                   "folder, the output folder (default: FOLDER.ncd; files done before are kept, so a rerun resumes)")
    c.add_argument("--codec", help="codec name (see `ncodec list`; default: the media's default codec)")
    c.add_argument("--quality", type=float, help="quality of a lossy codec (see `ncodec list --options`; wavelet: "
                   "1-100, default 75)")
    c.add_argument("--bpp", type=float, help="target bits per pixel, for image codecs that reach a rate (wavelet)")
    c.add_argument("--kbps", type=float, help="target bitrate, for audio codecs that take one (encodec: its "
                   "bandwidth)")
    c.add_argument("--model", help="model name for learned codecs")
    c.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="codec option (repeatable)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    _engine_arguments(c)
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="decode an ncodec stream (or an EnCodec .ecdc file) into PNG / WAV / FLAC / "
                       "lossless FFV1 video (.mkv, also .avi / .mp4)")
    d.add_argument("input", help="ncodec stream or .ecdc file, a folder of streams, or - for stdin")
    d.add_argument("output", nargs="?", help="output file (default: beside the input; - for stdout); for a folder, "
                   "the output folder (default: FOLDER.decoded)")
    d.add_argument("--model", help="weights the stream was made with, when they are not in the zoo")
    d.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="show a stream's codec, media, bitrate and chunk table")
    i.add_argument("file", help="ncodec stream, or - for stdin")
    i.add_argument("--json", action="store_true", help="one JSON object")
    i.add_argument("--no-verify", action="store_true",
                   help="read only the header and chunk table (default: check every chunk's CRC too)")
    i.set_defaults(func=cmd_info)

    ls = sub.add_parser("list", help="list the available codecs and models")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.add_argument("--options", action="store_true",
                    help="each codec's options (--quality, --model, --option KEY=VALUE) and their defaults")
    ls.set_defaults(func=cmd_list)

    f = sub.add_parser("fetch", help="download a published checkpoint by name (ncodec list shows the catalogue), "
                       "verify it, convert it to safetensors and cache it; only this command downloads")
    f.add_argument("name", help="catalogue name (e.g. mbt2018-mean-q3, encodec_24khz, dac_44khz) or a CompressAI "
                   "architecture (all 8 qualities)")
    f.add_argument("-f", "--force", action="store_true", help="download again even when cached")
    f.add_argument("--sha256", help="hash pin (8-64 hex digits) for an entry the publisher left unpinned")
    f.add_argument("--allow-unpinned", action="store_true",
                   help="accept an unpinned entry's bytes as served (its SHA-256 is recorded in the converted file)")
    f.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up (default 30)")
    f.set_defaults(func=cmd_fetch)

    e = sub.add_parser("eval", help="rate-distortion evaluation of codecs (ncodec's and classical peers) on a folder")
    e.add_argument("media", choices=["image", "audio", "video"])
    e.add_argument("--codec", required=True, help="comma-separated codec names (ncodec list, and peers: jpeg, "
                   "jpeg444, webp, avif, jxl, j2k, png, webp-lossless, jxl-lossless, opus, flac, x264, x265, svtav1)")
    e.add_argument("--data", required=True, help="folder of media files")
    e.add_argument("--json", help="write the results as JSON here")
    e.add_argument("--plot", help="write a rate-distortion plot (PNG) here")
    e.add_argument("--targets", help="comma-separated target rates (bpp for images, kbps for audio)")
    e.add_argument("--cache", default="~/.cache/ncodec/eval", help="result cache folder (~/.cache/ncodec/eval)")
    e.add_argument("--no-cache", action="store_true", help="recompute everything, keep nothing")
    e.add_argument("--max-files", type=int, help="only the first N files")
    e.add_argument("--jobs", type=int, default=1, help="files evaluated at once, in worker processes (default 1)")
    e.add_argument("--max-seconds", type=float, help="audio: only the first S seconds of each file")
    e.add_argument("--max-frames", type=int, help="video: only the first N frames of each clip")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("tokenize", help="tokenize a folder of audio files (WAV / FLAC / OGG / Opus) with a neural "
                       "codec into one safetensors file of codes; resumes after interruption")
    t.add_argument("folder", help="folder searched recursively for audio files (Ray engine: also a .txt / .parquet "
                   "listing of paths, or a WebDataset .tar shard)")
    t.add_argument("--out", required=True, help="output .safetensors file (codes/<path> int16 [K, T] per file); "
                   "Ray engine: a folder of Parquet shards with a manifest")
    t.add_argument("--model", help="audio model: zoo name or weights path (default: ncodec_24khz, bundled)")
    t.add_argument("--bandwidth", type=float, help="kbps, one of the model's (default: 6 where it has it)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    t.add_argument("--batch-size", type=int, default=16, help="files coded together (default: 16)")
    t.add_argument("--batch-seconds", type=float, default=600.0, help="most audio in one batch (default: 600 s)")
    t.add_argument("-f", "--force", action="store_true", help="start over: ignore earlier and partial results")
    _engine_arguments(t)
    t.add_argument("--items-per-shard", type=int, default=64, help="Ray engine: files per Parquet shard (default 64)")
    t.add_argument("--gpus-per-worker", type=float, default=0.0, help="Ray engine: GPUs per tokenizing actor "
                   "(default 0: CPU actors)")
    t.set_defaults(func=cmd_tokenize)

    dt = sub.add_parser("detokenize", help="tokens back to audio: every file of a tokens file (ncodec tokenize's "
                        "output) as 16-bit WAV at its source's rate, in a folder tree; resumes")
    dt.add_argument("tokens", help="tokens .safetensors file, or a tokens folder (ncodec tokenize --engine ray)")
    dt.add_argument("--out", required=True, help="output folder (<path>.wav per file)")
    dt.add_argument("--model", help="audio model (default: the one the tokens file names; its hash must match)")
    dt.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    dt.add_argument("-f", "--force", action="store_true", help="overwrite files written before")
    dt.set_defaults(func=cmd_detokenize)

    b = sub.add_parser("bench", help="benchmarks: entropy (the rANS core vs constriction), lossless-audio (vs FLAC)")
    b.add_argument("what", choices=["entropy", "lossless-audio"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark (see --help after it)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return 0
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except UsageError as e:
        if args.debug:
            traceback.print_exc()
        print(f"ncodec: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except (Error, OSError) as e:
        if args.debug:
            traceback.print_exc()
        msg = str(e) if isinstance(e, Error) else f"{getattr(e, 'filename', '') or ''} {e.strerror or e}".strip()
        print(f"ncodec: error: {_one_line(msg)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ncodec: interrupted", file=sys.stderr)
        return 130


def _one_line(message: str, limit: int = 400) -> str:
    """An error message as one line: its first line, cut at ``limit`` characters (``--debug`` shows all)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or ["(no message)"]
    first = lines[0]
    more = len(lines) > 1 or len(first) > limit
    return (first[:limit] + (" [...] (--debug for the rest)" if more else "")).strip()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
