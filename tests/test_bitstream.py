"""Tests of the ncodec container: round trips, random access, and robustness on hostile bytes."""
from __future__ import annotations

import io
import json
import mmap
import os
import struct
import tracemalloc
import zlib
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncodec.bitstream import (END_KIND, FORMAT_VERSION, INDEX_KIND, MAGIC, MAX_HEADER_BYTES, NO_INDEX, Chunk,
                              ChunkInfo, Header, Reader, Writer, check_model_hash, is_container, pack, read_header,
                              unpack)
from ncodec.errors import (BitstreamError, ChecksumError, ModelMismatchError, TruncatedError,
                           UnsupportedVersionError)

HASH_A = "a" * 64
HASH_B = "0123456789abcdef" * 4
HEADER = Header("toy", {"q": 4, "shape": [2, 3], "scale": 0.5}, {"title": "héllo"}, HASH_A)
CHUNKS = [("DATA", b"first"), ("AUDB", b""), ("DATA", bytes(range(256))), ("FRM0", b"")]
END_BYTES = 20   # kind + length + u64 + CRC


class OneWay:
    """A source or sink offering only read() or write(): no seek, tell or seekable."""

    def __init__(self, data: bytes = b"") -> None:
        self._buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)

    def write(self, data: bytes) -> int:
        return self._buf.write(data)

    def getvalue(self) -> bytes:
        return self._buf.getvalue()


def raw_chunk(kind: bytes, payload: bytes) -> bytes:
    """A chunk with a correct CRC, for hand-built streams."""
    head = kind + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def raw_preamble(header_json: bytes, version: int = 1, flags: int = 0) -> bytes:
    """A preamble with a correct CRC around arbitrary header bytes."""
    head = MAGIC + struct.pack("<BBI", version, flags, len(header_json)) + header_json
    return head + struct.pack("<I", zlib.crc32(head))


def preamble_of(header: Header) -> bytes:
    return pack(header, [], index=False)[:-END_BYTES]


def sample(index: bool = True) -> bytes:
    return pack(HEADER, CHUNKS, index=index)


def as_pairs(chunks: list[Chunk]) -> list[tuple[str, bytes]]:
    return [(c.kind, c.payload) for c in chunks]


# ---------------------------------------------------------------------------- round trips

def test_pack_unpack_round_trip_with_big_and_empty_payloads() -> None:
    big = bytes(range(256)) * (3 * 4096)   # 3 MiB
    chunks = [*CHUNKS, ("BIG!", big), ("TAIL", b"")]
    header, got = unpack(pack(HEADER, chunks))
    assert header == HEADER
    assert as_pairs(got) == chunks
    assert all(c.offset > 0 for c in got)


def test_pack_accepts_chunk_objects_and_buffers() -> None:
    data = pack(HEADER, [Chunk("DATA", b"ab"), ("MEMV", memoryview(b"xyz")), ("BARR", bytearray(b"q"))])
    assert as_pairs(unpack(data)[1]) == [("DATA", b"ab"), ("MEMV", b"xyz"), ("BARR", b"q")]


def test_writer_reader_over_bytesio_with_random_access() -> None:
    buf = io.BytesIO()
    with Writer(buf, HEADER) as writer:
        infos = [writer.write_chunk(kind, payload) for kind, payload in CHUNKS]
    buf.seek(0)
    reader = Reader(buf)
    assert reader.header == HEADER
    assert reader.chunk_table() == infos
    assert [reader.read_chunk(i).payload for i in (2, 0, 3, 1)] == [CHUNKS[i][1] for i in (2, 0, 3, 1)]
    assert reader.read_chunk(infos[2]) == Chunk("DATA", CHUNKS[2][1], infos[2].offset)
    assert reader.read_chunk(-1).kind == "FRM0"
    assert as_pairs(list(reader)) == CHUNKS
    assert as_pairs(list(reader)) == CHUNKS   # seekable sources can be iterated again


def test_writer_reader_over_real_file(tmp_path) -> None:
    big = b"\x5a" * (3 << 20)
    path = tmp_path / "s.ncdc"
    with open(path, "wb") as f, Writer(f, HEADER) as writer:
        writer.write_chunk("DATA", b"x")
        writer.write_chunk("BIG!", big)
        writer.write_chunk("NONE", b"")
    with open(path, "rb") as f:
        reader = Reader(f)
        assert [(i.kind, i.length) for i in reader.chunk_table()] == [("DATA", 1), ("BIG!", 3 << 20), ("NONE", 0)]
        assert reader.read_chunk(1).payload == big
        seen = []
        for chunk in reader:   # random access in between must not disturb iteration
            seen.append(chunk.kind)
            assert reader.read_chunk(0).payload == b"x"
        assert seen == ["DATA", "BIG!", "NONE"]


def test_stream_may_start_inside_a_file(tmp_path) -> None:
    path = tmp_path / "embedded"
    path.write_bytes(b"junk before" + sample())
    with open(path, "rb") as f:
        f.seek(len(b"junk before"))
        assert read_header(f) == HEADER
        assert f.tell() == len(b"junk before") + len(preamble_of(HEADER))
        f.seek(len(b"junk before"))
        reader = Reader(f)
        assert as_pairs([reader.read_chunk(i) for i in range(len(CHUNKS))]) == CHUNKS


def test_one_way_streams_write_and_read_once() -> None:
    sink = OneWay()
    with Writer(sink, HEADER) as writer:
        for kind, payload in CHUNKS:
            writer.write_chunk(kind, payload)
    assert sink.getvalue() == sample()
    reader = Reader(OneWay(sink.getvalue()))
    assert reader.header == HEADER
    assert as_pairs(list(reader)) == CHUNKS
    with pytest.raises(BitstreamError, match="only once"):
        iter(reader)
    with pytest.raises(BitstreamError, match="seekable"):
        reader.chunk_table()
    with pytest.raises(BitstreamError, match="seekable"):
        reader.read_chunk(0)


def test_stream_without_index_is_read_by_scanning() -> None:
    data = sample(index=False)
    assert struct.unpack("<Q", data[-12:-4])[0] == NO_INDEX
    assert b"IDX " not in data
    reader = Reader(data)
    assert [(i.kind, i.length) for i in reader.chunk_table()] == [(k, len(p)) for k, p in CHUNKS]
    assert as_pairs([reader.read_chunk(i) for i in range(len(CHUNKS))]) == CHUNKS
    assert as_pairs(unpack(data)[1]) == CHUNKS


def test_read_header_needs_only_the_preamble() -> None:
    assert read_header(preamble_of(HEADER)) == HEADER
    assert read_header(sample()).version == FORMAT_VERSION


# ---------------------------------------------------------------------------- a lying index

def build(chunks: list[tuple[bytes, bytes]], end_target: int | None = None, index: list | None = None) -> bytes:
    """Preamble + chunks + IDX (entries as given, else the true ones) + END pointing at `end_target`."""
    out = bytearray(preamble_of(HEADER))
    entries = []
    for kind, payload in chunks:
        entries.append((kind, len(out), len(payload)))
        out += raw_chunk(kind, payload)
    idx_offset = len(out)
    out += raw_chunk(b"IDX ", b"".join(struct.pack("<4sQI", *e) for e in (index or entries)))
    out += raw_chunk(b"END ", struct.pack("<Q", idx_offset if end_target is None else end_target))
    return bytes(out)


RAW = [(b"DATA", b"one"), (b"DATA", b"two!"), (b"XTRA", b"")]


def true_table() -> list[ChunkInfo]:
    return Reader(build(RAW)).chunk_table()


@pytest.mark.parametrize("target", [0, 5, NO_INDEX, 10**9])
def test_lying_end_pointer_falls_back_to_scanning(target: int) -> None:
    data = build(RAW, end_target=target)
    reader = Reader(data)
    assert reader.chunk_table() == true_table()
    assert [reader.read_chunk(i).payload for i in range(3)] == [b"one", b"two!", b""]
    with pytest.raises(BitstreamError, match="records index offset"):
        unpack(data)   # full validation is strict


def test_index_with_wrong_offsets_falls_back_to_scanning() -> None:
    entries = [(i.kind.encode(), i.offset + 1, i.length) for i in true_table()]
    data = build(RAW, index=entries)
    assert Reader(data).chunk_table() == true_table()
    with pytest.raises(BitstreamError, match="does not match"):
        unpack(data)


def test_index_with_wrong_kind_is_caught_when_the_chunk_is_read() -> None:
    entries = [(i.kind.encode(), i.offset, i.length) for i in true_table()]
    entries[1] = (b"EVIL", *entries[1][1:])
    reader = Reader(build(RAW, index=entries))
    assert reader.read_chunk(0).payload == b"one"
    with pytest.raises(BitstreamError, match="as the table says"):
        reader.read_chunk(1)


def test_corrupt_end_crc_is_reported_by_chunk_table() -> None:
    data = bytearray(sample())
    data[-8] ^= 1   # inside END's payload
    with pytest.raises(ChecksumError):
        Reader(bytes(data)).chunk_table()


def test_read_chunk_checks_crc_and_bounds() -> None:
    data = bytearray(sample())
    offset = Reader(bytes(data)).chunk_table()[2].offset
    data[offset + 8 + 10] ^= 0x40   # a payload byte of chunk 2
    reader = Reader(bytes(data))
    assert reader.read_chunk(0).payload == b"first"
    with pytest.raises(ChecksumError, match=f"offset {offset}"):
        reader.read_chunk(2)
    with pytest.raises(BitstreamError, match="out of range"):
        reader.read_chunk(len(CHUNKS))
    with pytest.raises(BitstreamError, match="outside the chunk area"):
        reader.read_chunk(ChunkInfo("DATA", 10**9, 3))


def test_chunks_after_the_index_are_rejected() -> None:
    good = build(RAW)
    end = good[-END_BYTES:]
    data = good[:-END_BYTES] + raw_chunk(b"LATE", b"") + end
    with pytest.raises(BitstreamError, match="follows the index"):
        unpack(data)


# ---------------------------------------------------------------------------- writing errors

@pytest.mark.parametrize("kind", [INDEX_KIND, END_KIND, "DAT", "DATAX", "DA\x00A", "DAÉA", b"DATA"])
def test_reserved_or_malformed_kinds_are_refused(kind) -> None:
    writer = Writer(io.BytesIO(), HEADER)
    with pytest.raises(BitstreamError, match="kind"):
        writer.write_chunk(kind, b"")


def test_payload_over_u32_is_refused(tmp_path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.truncate((1 << 32) + 1)   # sparse: no disk or memory is used
    sink = io.BytesIO()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as big:
        view = memoryview(big)
        try:
            with pytest.raises(BitstreamError, match="u32"):
                Writer(sink, HEADER).write_chunk("HUGE", view)
        finally:
            view.release()
    assert sink.getvalue() == preamble_of(HEADER)   # nothing of the chunk was written


def test_writer_lifecycle() -> None:
    buf = io.BytesIO()
    writer = Writer(buf, HEADER)
    assert buf.getvalue() == preamble_of(HEADER)   # the preamble goes out at once
    info = writer.write_chunk("DATA", b"abc")
    assert info == ChunkInfo("DATA", len(preamble_of(HEADER)), 3)
    writer.close()
    writer.close()
    assert unpack(buf.getvalue())[1] == [Chunk("DATA", b"abc", info.offset)]
    with pytest.raises(BitstreamError, match="closed"):
        writer.write_chunk("DATA", b"")


def test_writer_that_crashes_leaves_a_truncated_stream() -> None:
    buf = io.BytesIO()
    with pytest.raises(RuntimeError):
        with Writer(buf, HEADER) as writer:
            writer.write_chunk("DATA", b"abc")
            raise RuntimeError("encoder crashed")
    writer.close()   # still no END
    with pytest.raises(TruncatedError, match="without an END"):
        unpack(buf.getvalue())


@pytest.mark.parametrize("header, match", [
    (Header("toy", {"x": float("nan")}), "JSON"),
    (Header("toy", {"x": float("inf")}), "JSON"),
    (Header("toy", {"x": object()}), "JSON"),
    (Header("toy", {"x": "\ud800"}), "JSON"),
    (Header("toy", {"x": "y" * MAX_HEADER_BYTES}), "limit"),
    (Header(""), "codec"),
    (Header("toy", config=[1]), "config"),
    (Header("toy", metadata=None), "metadata"),
    (Header("toy", model_hash="A" * 64), "model_hash"),
    (Header("toy", model_hash="abc"), "model_hash"),
    (Header("toy", version=2), "version"),
])
def test_invalid_headers_are_refused_on_write(header: Header, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        pack(header, [])


# ---------------------------------------------------------------------------- reading errors

VALID_FIELDS = {"codec": "toy", "config": {}, "metadata": {}, "model_hash": None}


def header_bytes(**changes) -> bytes:
    return json.dumps({**VALID_FIELDS, **changes}).encode()


@pytest.mark.parametrize("header_json, match", [
    (b"[1, 2]", "must be an object"),
    (b"{\"codec\": \"toy\"}", "wrong keys"),
    (header_bytes(extra=1), "wrong keys"),
    (header_bytes(codec=""), "codec"),
    (header_bytes(codec=7), "codec"),
    (header_bytes(config=[]), "config"),
    (header_bytes(metadata="m"), "metadata"),
    (header_bytes(model_hash="A" * 64), "model_hash"),
    (header_bytes(model_hash=5), "model_hash"),
    (header_bytes(config={"x": 1}).replace(b"1", b"NaN"), "NaN"),
    (header_bytes(config={"x": 1}).replace(b"1", b"-Infinity"), "Infinity"),
    (header_bytes(config={"x": 1}).replace(b"1", b"1e400"), "float range"),
    (b"\xff\xfe{}", "invalid"),
    (b"{", "invalid"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid"),
    (b"1" * 5000, "invalid"),
])
def test_invalid_header_json_is_reported(header_json: bytes, match: str) -> None:
    data = raw_preamble(header_json) + raw_chunk(b"END ", struct.pack("<Q", NO_INDEX))
    with pytest.raises(BitstreamError, match=match):
        unpack(data)


def test_preamble_errors() -> None:
    good = sample()
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"RIFF" + good[4:])
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        unpack(good[:4] + b"\x02" + good[5:])
    with pytest.raises(BitstreamError, match="version 0"):
        unpack(good[:4] + b"\x00" + good[5:])
    with pytest.raises(BitstreamError, match="flags"):
        unpack(good[:5] + b"\x01" + good[6:])
    with pytest.raises(ChecksumError, match="header CRC"):
        unpack(good[:12] + bytes([good[12] ^ 1]) + good[13:])
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        unpack(MAGIC + struct.pack("<BBI", 1, 0, 0xFFFF_FFFF) + b"{}")


def test_end_and_trailing_bytes() -> None:
    good = sample()
    with pytest.raises(TruncatedError, match="without an END"):
        unpack(good[:-END_BYTES])
    with pytest.raises(BitstreamError, match="trailing"):
        unpack(good + b"\x00")
    with pytest.raises(BitstreamError, match="trailing"):
        list(Reader(OneWay(good + b"x")))
    with pytest.raises(BitstreamError, match="trailing"):
        Reader(good + b"\x00").chunk_table()


def test_is_container() -> None:
    assert is_container(sample()[:16])
    assert is_container(MAGIC)
    assert not is_container(b"NCD")
    assert not is_container(b"\x89PNG\r\n\x1a\n")


def test_check_model_hash() -> None:
    check_model_hash(Header("toy"), None)
    check_model_hash(Header("toy", model_hash=HASH_A), HASH_A)
    with pytest.raises(ModelMismatchError, match=f"{HASH_A[:12]}.*{HASH_B[:12]}"):
        check_model_hash(Header("toy", model_hash=HASH_A), HASH_B)
    with pytest.raises(ModelMismatchError, match="none"):
        check_model_hash(Header("toy"), HASH_B)
    with pytest.raises(ModelMismatchError):
        check_model_hash(Header("toy", model_hash=HASH_A), None)


# ---------------------------------------------------------------------------- hostile input

READ_PATHS = [unpack, lambda data: list(Reader(OneWay(data))), lambda data: Reader(io.BytesIO(data)).chunk_table()]


def test_every_truncation_raises_truncated_error() -> None:
    data = sample()
    for n in range(len(data)):
        prefix = data[:n]
        with pytest.raises(TruncatedError):
            unpack(prefix)
        with pytest.raises(TruncatedError):
            list(Reader(OneWay(prefix)))
        with pytest.raises(TruncatedError):
            Reader(prefix).chunk_table()


@pytest.mark.parametrize("index", [True, False])
def test_every_single_byte_flip_is_detected(index: bool) -> None:
    data = sample(index)
    originals = {(c.kind, c.payload, c.offset) for c in unpack(data)[1]}
    for pos in range(len(data)):
        for flip in (0x01, 0xFF):
            bad = bytearray(data)
            bad[pos] ^= flip
            with pytest.raises(BitstreamError):
                unpack(bytes(bad))
            assert_random_access_is_sound(bytes(bad), originals)


def assert_random_access_is_sound(data: bytes, originals: set[tuple[str, bytes, int]]) -> None:
    """Random access on damaged bytes returns original chunks or raises BitstreamError, nothing else."""
    try:
        reader = Reader(data)
        table = reader.chunk_table()
    except BitstreamError:
        return
    for info in table:
        try:
            chunk = reader.read_chunk(info)
        except BitstreamError:
            continue
        assert (chunk.kind, chunk.payload, chunk.offset) in originals


def pipe_with(data: bytes) -> BinaryIO:
    """A real, non-seekable file holding `data` (whose read(n) allocates n bytes up front)."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    return open(read_fd, "rb")


def test_huge_announced_lengths_allocate_nothing(tmp_path) -> None:
    chunk_claim = preamble_of(HEADER) + b"DATA" + struct.pack("<I", 0xFFFF_FFFF) + bytes(100)
    header_claim = MAGIC + struct.pack("<BBI", 1, 0, MAX_HEADER_BYTES) + bytes(100)

    def file_with(data: bytes) -> BinaryIO:
        path = tmp_path / "short"
        path.write_bytes(data)
        return open(path, "rb")

    sources = [lambda d: d, io.BytesIO, OneWay, pipe_with, file_with]
    tracemalloc.start()
    try:
        for data in (chunk_claim, header_claim):
            for make in sources:
                source = make(data)
                with pytest.raises(TruncatedError):
                    list(Reader(source))
                if hasattr(source, "close"):
                    source.close()
        with pytest.raises(TruncatedError):
            Reader(chunk_claim).chunk_table()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
json_object = st.dictionaries(st.text(max_size=8), json_value, max_size=5)
headers = st.builds(Header, codec=st.text(min_size=1, max_size=20), config=json_object, metadata=json_object,
                    model_hash=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64))
kinds = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=4, max_size=4).filter(
    lambda k: k not in (INDEX_KIND, END_KIND))
chunk_lists = st.lists(st.tuples(kinds, st.binary(max_size=64)), max_size=6)


@settings(deadline=None, max_examples=150)
@given(headers, chunk_lists, st.booleans())
def test_random_streams_round_trip(header: Header, chunks: list[tuple[str, bytes]], index: bool) -> None:
    buf = io.BytesIO()
    with Writer(buf, header, index=index) as writer:
        infos = [writer.write_chunk(kind, payload) for kind, payload in chunks]
    data = buf.getvalue()
    assert data == pack(header, chunks, index=index)
    got_header, got = unpack(data)
    assert got_header == header
    assert as_pairs(got) == chunks
    reader = Reader(data)
    assert reader.chunk_table() == infos
    assert [reader.read_chunk(info).payload for info in infos] == [p for _, p in chunks]


@settings(deadline=None, max_examples=150)
@given(headers, chunk_lists, st.data())
def test_random_single_byte_changes_are_detected(header: Header, chunks, data) -> None:
    stream = pack(header, chunks)
    pos = data.draw(st.integers(0, len(stream) - 1))
    bad = bytearray(stream)
    bad[pos] = data.draw(st.integers(0, 255).filter(lambda v: v != stream[pos]))
    with pytest.raises(BitstreamError):
        unpack(bytes(bad))
    originals = {(c.kind, c.payload, c.offset) for c in unpack(stream)[1]}
    assert_random_access_is_sound(bytes(bad), originals)


@settings(deadline=None, max_examples=100)
@given(chunk_lists, st.binary(min_size=1, max_size=64))
def test_appended_bytes_are_rejected(chunks, extra: bytes) -> None:
    data = pack(HEADER, chunks) + extra
    with pytest.raises(BitstreamError):
        unpack(data)
    with pytest.raises(BitstreamError):
        list(Reader(OneWay(data)))


@settings(deadline=None, max_examples=300)
@given(st.sampled_from([b"", MAGIC, MAGIC + b"\x01\x00", preamble_of(HEADER)]), st.binary(max_size=200))
def test_random_bytes_raise_only_bitstream_errors(prefix: bytes, tail: bytes) -> None:
    for read in READ_PATHS:
        with pytest.raises(BitstreamError):
            read(prefix + tail)
