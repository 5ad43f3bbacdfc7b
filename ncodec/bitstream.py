"""The ncodec container: the framing every ncodec stream and file uses.

A stream is a JSON header followed by typed, CRC-checked chunks, an optional index for
random access, and an end marker. Format version 1 (all integers little-endian; "CRC" is
``zlib.crc32``, an unsigned 32-bit value):

Preamble
    ``b"NCDC"`` (4 bytes), u8 format version (= 1), u8 flags (= 0, reserved),
    u32 header length H (at most 1 MiB), H bytes of header JSON, then u32 CRC of every
    byte from the magic through the header JSON.
Header JSON
    Canonical UTF-8 JSON (sorted keys, separators ``","`` and ``":"``, non-ASCII text
    unescaped, no NaN or Infinity): an object with exactly the keys ``codec`` (non-empty
    string), ``config`` (object), ``metadata`` (object) and ``model_hash`` (64 lowercase
    hex digits of a SHA-256, or null). Readers accept any valid JSON of that shape but
    refuse non-finite numbers (including overflowing ones such as ``1e400``).
Chunk
    kind (4 printable ASCII bytes, 0x20..0x7E, e.g. ``b"DATA"``), u32 payload length N,
    N payload bytes, u32 CRC of kind + length + payload. Chunk offsets count from the
    first byte of the magic and point at the kind field.
Index chunk, kind ``b"IDX "``
    Optional; when present it is the last chunk before END. Its payload is one 16-byte
    entry per chunk before it, in order: kind (4 bytes), u64 offset, u32 payload length.
End chunk, kind ``b"END "``
    8-byte payload: u64 offset of the IDX chunk, or ``0xFFFFFFFFFFFFFFFF`` when the
    stream has no index. It is the last chunk; nothing may follow it.

Chunk kinds ``"IDX "`` and ``"END "`` are reserved for the container itself.

Reading is safe on untrusted bytes: every length is checked against the bytes present
before anything is allocated (where the source's size is unknown, payloads are read in
pieces of at most 1 MiB), and every defect raises a `BitstreamError`: `TruncatedError`
when the input ends early, `ChecksumError` on a CRC mismatch, `UnsupportedVersionError`
for a newer format. Messages name the defect and its byte offset.

`Reader` iteration and `unpack` validate everything: each CRC, that the index lists
exactly the chunks before it, that END points at the index, and that nothing trails.
`Reader.chunk_table` only locates chunks: it uses the index when the END and IDX chunks
are intact and the index entries tile the chunk area exactly, and otherwise scans the
chunk headers, seeking past payloads. `Reader.read_chunk` then checks that the chunk
header at the offset matches the table entry and verifies the chunk's CRC, so a lying
index yields an error, never wrong data.
"""
from __future__ import annotations

import io
import json
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable, Iterator

from .errors import BitstreamError, ChecksumError, ModelMismatchError, TruncatedError, UnsupportedVersionError

MAGIC: bytes = b"NCDC"
FORMAT_VERSION: int = 1
MAX_HEADER_BYTES: int = 1 << 20
INDEX_KIND: str = "IDX "
END_KIND: str = "END "
NO_INDEX: int = 0xFFFF_FFFF_FFFF_FFFF

_PREAMBLE = struct.Struct("<4sBBI")      # magic, version, flags, header length
_CHUNK_HEAD = struct.Struct("<4sI")      # kind, payload length
_INDEX_ENTRY = struct.Struct("<4sQI")    # kind, offset, payload length
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U32_MAX = 0xFFFF_FFFF
_CHUNK_OVERHEAD = _CHUNK_HEAD.size + _U32.size          # 12 bytes around every payload
_END_CHUNK_BYTES = _CHUNK_OVERHEAD + _U64.size         # 20 bytes
_PIECE = 1 << 20                                       # read step when the size is unknown
_HEADER_KEYS = frozenset({"codec", "config", "metadata", "model_hash"})
_HASH_RE = re.compile(r"[0-9a-f]{64}")


@dataclass
class Header:
    """What a stream says about itself: codec name, its configuration, free metadata."""

    codec: str
    config: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    model_hash: str | None = None
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class ChunkInfo:
    """Where a chunk lives: `offset` of its kind field from the stream start, `length` of its payload."""

    kind: str
    offset: int
    length: int


@dataclass(frozen=True)
class Chunk:
    """A chunk's kind and payload; `offset` is where it was read from (-1 when not read)."""

    kind: str
    payload: bytes
    offset: int = -1


# ---------------------------------------------------------------------------- sources

class _Source:
    """Byte access relative to the stream start that never allocates more than is present."""

    size: int | None    # bytes from the stream start to the end; None when unknown
    seekable: bool
    pos: int

    def read_upto(self, n: int) -> bytes:
        """Up to `n` bytes; fewer only at the end of the source."""
        raise NotImplementedError

    def seek(self, pos: int) -> None:
        """Move to `pos` (only when `seekable`)."""
        raise NotImplementedError

    def read(self, n: int, what: str) -> bytes:
        """Exactly `n` bytes of `what`, or `TruncatedError` (checked before reading when the size is known)."""
        start = self.pos
        if self.size is not None and n > self.size - start:
            raise _truncated(what, start, n, max(self.size - start, 0))
        data = self.read_upto(n)
        if len(data) < n:
            raise _truncated(what, start, n, len(data))
        return data

    def at_end(self) -> bool:
        """Whether no byte follows the current position (may consume one byte when it does)."""
        return not self.read_upto(1)


class _BytesSource(_Source):
    """A stream held in memory."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.size = self._view.nbytes
        self.seekable = True
        self.pos = 0

    def read_upto(self, n: int) -> bytes:
        data = bytes(self._view[self.pos:self.pos + n])
        self.pos += len(data)
        return data

    def seek(self, pos: int) -> None:
        self.pos = pos


class _FileSource(_Source):
    """A stream in a binary file object, starting at its current position; seekable or not."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.pos = 0
        self.seekable = _is_seekable(f)
        self.size = None
        if self.seekable:
            self._base = f.tell()
            self.size = max(f.seek(0, io.SEEK_END) - self._base, 0)
            f.seek(self._base)

    def read_upto(self, n: int) -> bytes:
        step = n if self.size is not None else _PIECE
        pieces: list[bytes] = []
        got = 0
        while got < n:
            piece = self._f.read(min(step, n - got))
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        self.pos += got
        return b"".join(pieces)

    def seek(self, pos: int) -> None:
        self._f.seek(self._base + pos)
        self.pos = pos


def _is_seekable(f: BinaryIO) -> bool:
    """Whether `f` claims random access (objects without `seekable()` are treated as streams)."""
    seekable = getattr(f, "seekable", None)
    return bool(seekable()) if callable(seekable) else False


def _open(source: bytes | bytearray | memoryview | BinaryIO) -> _Source:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _BytesSource(source)
    if not callable(getattr(source, "read", None)):
        raise TypeError(f"expected bytes or a binary file object, got {type(source).__name__}")
    return _FileSource(source)


def _truncated(what: str, offset: int, need: int, have: int) -> TruncatedError:
    return TruncatedError(f"stream truncated: {what} at offset {offset} needs {need} bytes, only {have} present")


# ---------------------------------------------------------------------------- header

def _validate_fields(fields: dict[str, Any], where: str) -> None:
    """Raise `BitstreamError` naming the first header field of the wrong type."""
    codec, model_hash = fields["codec"], fields["model_hash"]
    if not isinstance(codec, str) or not codec:
        raise BitstreamError(f"header{where}: 'codec' must be a non-empty string, got {codec!r}")
    for name in ("config", "metadata"):
        if not isinstance(fields[name], dict):
            raise BitstreamError(f"header{where}: {name!r} must be an object/dict, got {type(fields[name]).__name__}")
    if model_hash is not None and not (isinstance(model_hash, str) and _HASH_RE.fullmatch(model_hash)):
        raise BitstreamError(f"header{where}: 'model_hash' must be null or 64 lowercase hex digits, got {model_hash!r}")


def _encode_preamble(header: Header) -> bytes:
    """Magic, version, flags, length, canonical header JSON and CRC: the bytes a stream starts with."""
    if header.version != FORMAT_VERSION:
        raise BitstreamError(f"cannot write format version {header.version}; "
                             f"this ncodec writes version {FORMAT_VERSION}")
    fields = {"codec": header.codec, "config": header.config, "metadata": header.metadata,
              "model_hash": header.model_hash}
    _validate_fields(fields, "")
    try:
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        raw = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise BitstreamError(f"header cannot be written as canonical JSON: {exc}") from exc
    if len(raw) > MAX_HEADER_BYTES:
        raise BitstreamError(f"header JSON is {len(raw)} bytes; the limit is {MAX_HEADER_BYTES}")
    head = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(raw)) + raw
    return head + _U32.pack(zlib.crc32(head))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    """JSON numbers like 1e400 would parse as infinity, which the writer refuses; refuse them here too."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of the float range")
    return value


def _decode_header(raw: bytes, version: int, offset: int) -> Header:
    """Parse and type-check header JSON read at `offset`."""
    where = f" at offset {offset}"
    try:
        obj = json.loads(raw.decode("utf-8"), parse_float=_finite_float, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BitstreamError(f"header JSON{where} is invalid: {exc}") from exc
    if not isinstance(obj, dict):
        raise BitstreamError(f"header JSON{where} must be an object, got {type(obj).__name__}")
    if obj.keys() != _HEADER_KEYS:
        missing, extra = sorted(_HEADER_KEYS - obj.keys()), sorted(obj.keys() - _HEADER_KEYS)
        raise BitstreamError(f"header JSON{where} has the wrong keys: missing {missing}, unexpected {extra}")
    _validate_fields(obj, where)
    return Header(obj["codec"], obj["config"], obj["metadata"], obj["model_hash"], version)


def _read_preamble(src: _Source) -> Header:
    """Read and check the preamble from the current position (the stream start)."""
    fixed = src.read(_PREAMBLE.size, "preamble")
    magic, version, flags, length = _PREAMBLE.unpack(fixed)
    if magic != MAGIC:
        raise BitstreamError(f"not an ncodec stream: magic is {magic!r}, expected {MAGIC!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(f"stream format version {version} is newer than this ncodec "
                                      f"supports ({FORMAT_VERSION}); upgrade ncodec")
    if version < 1:
        raise BitstreamError(f"invalid stream format version {version} at offset 4")
    if flags:
        raise BitstreamError(f"reserved flags byte at offset 5 is {flags:#04x}, must be 0")
    if length > MAX_HEADER_BYTES:
        raise BitstreamError(f"header length {length} at offset 6 exceeds the limit of {MAX_HEADER_BYTES} bytes")
    raw = src.read(length, "header JSON")
    stored = _U32.unpack(src.read(_U32.size, "header CRC"))[0]
    computed = zlib.crc32(raw, zlib.crc32(fixed))
    if stored != computed:
        raise ChecksumError(f"header CRC mismatch at offset {_PREAMBLE.size + length}: "
                            f"stored {stored:08x}, computed {computed:08x}")
    return _decode_header(raw, version, _PREAMBLE.size)


def read_header(source: bytes | bytearray | memoryview | BinaryIO) -> Header:
    """Parse only the preamble and header, e.g. for ``ncodec info``.

    A file object is read from its current position (the stream start) and left just
    after the header CRC, i.e. at the first chunk. Chunks are not looked at.
    """
    return _read_preamble(_open(source))


def is_container(prefix: bytes) -> bool:
    """Whether `prefix` (the first bytes of a file, at least 4) starts an ncodec container."""
    return bytes(prefix[:len(MAGIC)]) == MAGIC


def check_model_hash(header: Header, expected: str | None) -> None:
    """Raise `ModelMismatchError` unless the stream's model hash equals `expected` (both None is fine)."""
    if header.model_hash == expected:
        return
    raise ModelMismatchError(f"stream was encoded with model {_short(header.model_hash)}, but the model offered "
                             f"to decode it is {_short(expected)}; load the weights the stream was made with")


def _short(model_hash: str | None) -> str:
    return "<none>" if model_hash is None else model_hash[:12]


# ---------------------------------------------------------------------------- chunks

def _check_kind(kind: str) -> bytes:
    """The 4 kind bytes for a user chunk; reserved or malformed kinds raise `BitstreamError`."""
    if not (isinstance(kind, str) and len(kind) == 4 and all(" " <= c <= "~" for c in kind)):
        raise BitstreamError(f"chunk kind must be a 4-character printable ASCII str, got {kind!r}")
    if kind in (INDEX_KIND, END_KIND):
        raise BitstreamError(f"chunk kind {kind!r} is reserved for the container")
    return kind.encode("ascii")


def _decode_kind(raw: bytes, offset: int) -> str:
    if not all(0x20 <= b <= 0x7E for b in raw):
        raise BitstreamError(f"invalid chunk kind {raw!r} at offset {offset}: not printable ASCII")
    return raw.decode("ascii")


def _byte_view(payload: bytes | bytearray | memoryview) -> memoryview:
    """A flat byte view of `payload`, which must fit a u32 length."""
    view = memoryview(payload)
    if not view.c_contiguous:
        raise BitstreamError("chunk payload must be a contiguous buffer")
    view = view.cast("B")
    if view.nbytes > _U32_MAX:
        raise BitstreamError(f"chunk payload of {view.nbytes} bytes exceeds the u32 limit of {_U32_MAX}")
    return view


def _encode_index(infos: list[ChunkInfo]) -> bytes:
    return b"".join(_INDEX_ENTRY.pack(i.kind.encode("ascii"), i.offset, i.length) for i in infos)


def _decode_index(payload: bytes, offset: int) -> list[ChunkInfo]:
    """Parse an IDX payload read at `offset`; entries must name valid, non-reserved kinds."""
    if len(payload) % _INDEX_ENTRY.size:
        raise BitstreamError(f"index chunk at offset {offset} has {len(payload)} payload bytes, "
                             f"not a multiple of {_INDEX_ENTRY.size}")
    infos = []
    for raw_kind, off, length in _INDEX_ENTRY.iter_unpack(payload):
        kind = _decode_kind(raw_kind, offset)
        if kind in (INDEX_KIND, END_KIND):
            raise BitstreamError(f"index chunk at offset {offset} lists a reserved kind {kind!r}")
        infos.append(ChunkInfo(kind, off, length))
    return infos


def _read_head(src: _Source) -> tuple[str, int]:
    """Kind and payload length of the chunk at the current position."""
    offset = src.pos
    raw = src.read_upto(_CHUNK_HEAD.size)
    if not raw:
        raise TruncatedError(f"stream truncated: it ends at offset {offset} without an END chunk")
    if len(raw) < _CHUNK_HEAD.size:
        raise _truncated("chunk header", offset, _CHUNK_HEAD.size, len(raw))
    raw_kind, length = _CHUNK_HEAD.unpack(raw)
    return _decode_kind(raw_kind, offset), length


def _read_body(src: _Source, offset: int, kind: str, length: int) -> Chunk:
    """Payload and CRC of the chunk whose header at `offset` was just read; CRC-checked."""
    payload = src.read(length, f"payload of chunk {kind!r} (chunk at offset {offset})")
    stored = _U32.unpack(src.read(_U32.size, f"CRC of chunk {kind!r} (chunk at offset {offset})"))[0]
    computed = zlib.crc32(payload, zlib.crc32(_CHUNK_HEAD.pack(kind.encode("ascii"), length)))
    if stored != computed:
        raise ChecksumError(f"CRC mismatch in chunk {kind!r} at offset {offset}: "
                            f"stored {stored:08x}, computed {computed:08x}")
    return Chunk(kind, payload, offset)


def _read_chunk(src: _Source) -> Chunk:
    """The whole chunk at the current position, CRC-checked."""
    offset = src.pos
    kind, length = _read_head(src)
    return _read_body(src, offset, kind, length)


def _end_target(chunk: Chunk) -> int:
    """The index offset an END chunk records."""
    if len(chunk.payload) != _U64.size:
        raise BitstreamError(f"END chunk at offset {chunk.offset} has {len(chunk.payload)} payload bytes, "
                             f"expected {_U64.size}")
    return _U64.unpack(chunk.payload)[0]


# ---------------------------------------------------------------------------- writing

class Writer:
    """Streaming writer: preamble at once, then chunks; `close` adds the index and END.

    The file object need not be seekable (offsets are counted here) and is not closed.
    Used as a context manager, an exception leaves the stream without END, so it reads
    as truncated rather than as a shorter valid stream.
    """

    def __init__(self, fileobj: BinaryIO, header: Header, *, index: bool = True) -> None:
        preamble = _encode_preamble(header)
        self._f = fileobj
        self._index = index
        self._infos: list[ChunkInfo] = []
        self._pos = 0
        self._closed = False
        self._write(preamble)

    def write_chunk(self, kind: str, payload: bytes | bytearray | memoryview) -> ChunkInfo:
        """Append one chunk; returns where it went."""
        if self._closed:
            raise BitstreamError("cannot write a chunk: the Writer is closed (or an earlier write failed)")
        info = self._emit(_check_kind(kind), _byte_view(payload))
        self._infos.append(info)
        return info

    def close(self) -> None:
        """Write the index (unless disabled) and the END chunk, then flush; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        index_offset = NO_INDEX
        if self._index:
            index_offset = self._pos
            self._emit(INDEX_KIND.encode("ascii"), _byte_view(_encode_index(self._infos)))
        self._emit(END_KIND.encode("ascii"), memoryview(_U64.pack(index_offset)))
        flush = getattr(self._f, "flush", None)
        if callable(flush):
            flush()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True   # abandon: no END, so readers see a truncated stream

    def _emit(self, kind: bytes, view: memoryview) -> ChunkInfo:
        info = ChunkInfo(kind.decode("ascii"), self._pos, view.nbytes)
        head = _CHUNK_HEAD.pack(kind, view.nbytes)
        crc = zlib.crc32(view, zlib.crc32(head))
        try:
            self._write(head)
            self._write(view)
            self._write(_U32.pack(crc))
        except BaseException:
            self._closed = True   # a half-written chunk cannot be continued
            raise
        return info

    def _write(self, data: bytes | memoryview) -> None:
        """Write all of `data`, looping over short writes of raw files."""
        view = memoryview(data)
        while view.nbytes:
            written = self._f.write(view)
            step = view.nbytes if written is None else written
            if step <= 0:
                raise OSError(f"{self._f!r} accepted no bytes at stream offset {self._pos}")
            self._pos += step
            view = view[step:]


def pack(header: Header, chunks: Iterable[Chunk | tuple[str, bytes]], *, index: bool = True) -> bytes:
    """The whole stream in memory: preamble, `chunks` in order, index (unless disabled) and END."""
    buf = io.BytesIO()
    with Writer(buf, header, index=index) as writer:
        for chunk in chunks:
            kind, payload = (chunk.kind, chunk.payload) if isinstance(chunk, Chunk) else chunk
            writer.write_chunk(kind, payload)
    return buf.getvalue()


# ---------------------------------------------------------------------------- reading

class Reader:
    """Streaming reader over bytes or a binary file object (seekable or not).

    A file object is read from its current position, which is taken as the stream start;
    the Reader moves the file position while it works. Iteration checks everything;
    `chunk_table` and `read_chunk` give random access on bytes or seekable files.
    """

    header: Header

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO) -> None:
        self._src = _open(source)
        self.header = _read_preamble(self._src)
        self._body = self._src.pos
        self._table: list[ChunkInfo] | None = None
        self._iterated = False

    def __iter__(self) -> Iterator[Chunk]:
        """Chunks in order (not IDX/END), each CRC-checked; the stream's end is verified last."""
        if not self._src.seekable:
            if self._iterated:
                raise BitstreamError("a non-seekable stream can be iterated only once")
            self._iterated = True
        return self._chunks()

    def _chunks(self) -> Iterator[Chunk]:
        src, pos = self._src, self._body
        seen: list[ChunkInfo] = []
        index_offset: int | None = None
        while True:
            if src.seekable:
                src.seek(pos)   # other readers of the source may have moved it
            chunk = _read_chunk(src)
            pos = src.pos
            if chunk.kind == END_KIND:
                self._check_end(chunk, index_offset, pos)
                return
            if index_offset is not None:
                raise BitstreamError(f"chunk {chunk.kind!r} at offset {chunk.offset} follows the index; "
                                     "only END may follow it")
            if chunk.kind == INDEX_KIND:
                if _decode_index(chunk.payload, chunk.offset) != seen:
                    raise BitstreamError(f"index chunk at offset {chunk.offset} does not match the chunks before it")
                index_offset = chunk.offset
            else:
                seen.append(ChunkInfo(chunk.kind, chunk.offset, len(chunk.payload)))
                yield chunk

    def _check_end(self, end: Chunk, index_offset: int | None, end_pos: int) -> None:
        """END must point at the index (or say there is none) and be the last bytes."""
        expected = NO_INDEX if index_offset is None else index_offset
        target = _end_target(end)
        if target != expected:
            raise BitstreamError(f"END chunk at offset {end.offset} records index offset {target:#x}, "
                                 f"but the index is at {expected:#x}")
        if not self._src.at_end():
            raise BitstreamError(f"trailing bytes after the END chunk, which ends at offset {end_pos}")

    def chunk_table(self) -> list[ChunkInfo]:
        """Where every chunk is (not IDX/END): from a sound index, else by scanning chunk headers."""
        self._require_random_access("chunk_table")
        if self._table is None:
            table = self._table_from_index()
            self._table = self._scan_table() if table is None else table
        return list(self._table)

    def read_chunk(self, index_or_info: int | ChunkInfo) -> Chunk:
        """One chunk by position in `chunk_table()` or by `ChunkInfo`; header-matched and CRC-checked."""
        self._require_random_access("read_chunk")
        info = index_or_info if isinstance(index_or_info, ChunkInfo) else self._info(index_or_info)
        size = self._src.size
        assert size is not None   # random access implies a known size
        if not (self._body <= info.offset and info.offset + _CHUNK_OVERHEAD + info.length <= size):
            raise BitstreamError(f"chunk {info.kind!r} at offset {info.offset} with {info.length} payload bytes "
                                 f"lies outside the chunk area [{self._body}, {size})")
        self._src.seek(info.offset)
        kind, length = _read_head(self._src)
        if (kind, length) != (info.kind, info.length):
            raise BitstreamError(f"chunk at offset {info.offset} is {kind!r} with {length} payload bytes, "
                                 f"not {info.kind!r} with {info.length} as the table says")
        return _read_body(self._src, info.offset, kind, length)

    def _info(self, index: int) -> ChunkInfo:
        table = self.chunk_table()
        if not -len(table) <= index < len(table):
            raise BitstreamError(f"chunk index {index} out of range: the stream has {len(table)} chunks")
        return table[index]

    def _require_random_access(self, what: str) -> None:
        if not self._src.seekable:
            raise BitstreamError(f"{what} needs bytes or a seekable file; this source is a one-way stream")

    def _table_from_index(self) -> list[ChunkInfo] | None:
        """The index's entries if END and IDX are intact and the entries tile the chunk area; else None."""
        src, size = self._src, self._src.size
        assert size is not None
        end_offset = size - _END_CHUNK_BYTES
        try:
            if end_offset < self._body:
                return None
            src.seek(end_offset)
            end = _read_chunk(src)
            if end.kind != END_KIND:
                return None
            index_offset = _end_target(end)
            if not self._body <= index_offset <= end_offset - _CHUNK_OVERHEAD:
                return None
            src.seek(index_offset)
            idx = _read_chunk(src)
            if idx.kind != INDEX_KIND or src.pos != end_offset:
                return None
            infos = _decode_index(idx.payload, index_offset)
        except BitstreamError:
            return None
        expected = self._body
        for info in infos:
            if info.offset != expected:
                return None
            expected += _CHUNK_OVERHEAD + info.length
        return infos if expected == index_offset else None

    def _scan_table(self) -> list[ChunkInfo]:
        """Walk chunk headers to the END chunk, seeking past payloads (whose CRCs `read_chunk` checks)."""
        src, size, pos = self._src, self._src.size, self._body
        assert size is not None
        table: list[ChunkInfo] = []
        while True:
            src.seek(pos)
            kind, length = _read_head(src)
            if kind == END_KIND:
                _end_target(_read_body(src, pos, kind, length))
                if src.pos != size:
                    raise BitstreamError(f"trailing bytes after the END chunk, which ends at offset {src.pos}")
                return table
            if length + _U32.size > size - src.pos:
                raise _truncated(f"payload and CRC of chunk {kind!r} (chunk at offset {pos})",
                                 src.pos, length + _U32.size, size - src.pos)
            if kind != INDEX_KIND:
                table.append(ChunkInfo(kind, pos, length))
            pos += _CHUNK_OVERHEAD + length


def unpack(data: bytes | bytearray | memoryview) -> tuple[Header, list[Chunk]]:
    """Header and chunks (not IDX/END) of a whole in-memory stream, fully validated."""
    reader = Reader(data)
    return reader.header, list(reader)
