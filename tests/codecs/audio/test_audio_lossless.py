"""audio-lossless: bit-exact round trips, size against FLAC, and bad input."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from ncodec import api, bitstream
from ncodec.codecs.audio import lpc
from ncodec.codecs.audio.lossless import LosslessAudioCodec
from ncodec.errors import BitstreamError, MediaError
from ncodec.media.io import read_audio
from ncodec.media.types import Audio


@pytest.fixture(scope="module")
def speech(samples) -> Audio:
    return read_audio(samples / "speech.flac")


def roundtrip(audio: Audio, codec: LosslessAudioCodec | None = None) -> tuple[bytes, Audio]:
    data = (codec or LosslessAudioCodec()).encode(audio)
    return data, api.decode_media(data)


def flac_size(audio: Audio) -> int:
    buf = io.BytesIO()
    depth = audio.bit_depth or 16
    data = audio.samples if depth <= 16 else audio.samples.astype(np.int32) << 8
    sf.write(buf, data, audio.sample_rate, format="FLAC", subtype="PCM_16" if depth <= 16 else "PCM_24",
             compression_level=1.0)
    return len(buf.getvalue())


def test_speech_sample_is_exact_and_not_bigger_than_flac(speech):
    data, back = roundtrip(speech)
    assert back.samples.dtype == np.int16 and np.array_equal(back.samples, speech.samples)
    assert back.sample_rate == speech.sample_rate and back.bit_depth == 16
    assert len(data) <= 1.05 * flac_size(speech)


def test_stereo_music_is_smaller_than_flac(shared_data):
    music = read_audio(shared_data / "audio" / "music" / "dev" / "wesnoth_traveling_minstrels.flac")
    excerpt = Audio(music.samples[: 6 * music.sample_rate], music.sample_rate, music.bit_depth)
    data, back = roundtrip(excerpt)
    assert np.array_equal(back.samples, excerpt.samples)
    assert len(data) < flac_size(excerpt)


def test_stereo_modes_and_chunk_boundaries(speech):
    mono = speech.samples[:, 0].astype(np.int32)
    delayed = np.concatenate([np.zeros(7, np.int32), mono[:-7]])
    stereo = np.stack([mono, (7 * delayed) // 10 + mono // 5], axis=1).astype(np.int16)
    codec = LosslessAudioCodec(block=512, blocks_per_chunk=3)
    data, back = roundtrip(Audio(stereo, speech.sample_rate), codec)
    assert np.array_equal(back.samples, stereo)
    assert sum(1 for c in bitstream.unpack(data)[1]) == -(-stereo.shape[0] // codec.chunk_frames)
    # identical channels cost about one channel: the side signal is all zeros
    same = np.stack([mono, mono], axis=1).astype(np.int16)
    both, _ = roundtrip(Audio(same, speech.sample_rate))
    one, _ = roundtrip(Audio(mono.astype(np.int16), speech.sample_rate))
    assert len(both) < 1.02 * len(one)


@pytest.mark.parametrize("frames", [0, 1, 2, 33, 4095, 4096, 4097])
def test_any_length(speech, frames):
    audio = Audio(speech.samples[:frames], speech.sample_rate)
    _, back = roundtrip(audio)
    assert back.frames == frames and np.array_equal(back.samples, audio.samples)


def test_24_bit_and_wasted_bits(speech):
    wide = speech.samples.astype(np.int32) << 8  # 16-bit content in a 24-bit container
    data24, back = roundtrip(Audio(wide, speech.sample_rate, bit_depth=24))
    assert back.bit_depth == 24 and back.samples.dtype == np.int32 and np.array_equal(back.samples, wide)
    data16, _ = roundtrip(speech)
    assert len(data24) < len(data16) * 1.01  # the 8 zero bits cost nothing
    dithered = wide + np.random.default_rng(0).integers(-128, 128, wide.shape)
    _, back = roundtrip(Audio(dithered.astype(np.int32), speech.sample_rate, bit_depth=24))
    assert np.array_equal(back.samples, dithered)


def test_extremes_and_many_channels():
    rng = np.random.default_rng(1)
    square = np.where(np.arange(5000) % 40 < 20, 32767, -32768).astype(np.int16)
    noise = rng.integers(-32768, 32768, 5000).astype(np.int16)
    silence = np.zeros(5000, np.int16)
    x = np.stack([square, noise, silence], axis=1)
    _, back = roundtrip(Audio(x, 8000))
    assert np.array_equal(back.samples, x)


def test_lpc_filters_are_inverse():
    rng = np.random.default_rng(2)
    x = rng.integers(-2**23, 2**23, 1000).astype(np.int32)
    hist = rng.integers(-2**23, 2**23, 8).astype(np.int32)
    coefs, shift = lpc.quantize(np.array([1.8, -1.1, 0.3, 0.05, -0.02, 0.01, 0.0, 0.001]), 15)
    res = lpc.residual(x, hist, coefs, shift)
    assert np.array_equal(lpc.restore(res, hist, coefs, shift), x)


def test_rejects_float_and_32_bit_audio(speech):
    with pytest.raises(MediaError, match="integer PCM"):
        LosslessAudioCodec().encode(Audio(speech.samples.astype(np.float32) / 32768, speech.sample_rate))
    with pytest.raises(MediaError, match="24 bits"):
        LosslessAudioCodec().encode(Audio(speech.samples.astype(np.int32) << 16, speech.sample_rate, bit_depth=32))


def _repack(data: bytes, edit) -> bytes:
    header, chunks = bitstream.unpack(data)
    header, chunks = edit(header, [(c.kind, bytearray(c.payload)) for c in chunks])
    return bitstream.pack(header, [(k, bytes(p)) for k, p in chunks])


def test_corrupt_payload_with_valid_crc_is_caught(speech):
    data = LosslessAudioCodec().encode(Audio(speech.samples[:20000], speech.sample_rate))

    def flip(pos):
        def edit(header, chunks):
            chunks[0][1][pos] ^= 0x5A
            return header, chunks
        return edit

    payload_len = len(bitstream.unpack(data)[1][0].payload)
    for pos in range(0, payload_len, max(1, payload_len // 97)):
        with pytest.raises(BitstreamError):
            api.decode_media(_repack(data, flip(pos)))


def test_header_that_lies_about_length_is_caught(speech):
    data = LosslessAudioCodec().encode(Audio(speech.samples[:5000], speech.sample_rate))

    def more_frames(header, chunks):
        header.metadata["frames"] = 10**12
        return header, chunks

    def bad_block(header, chunks):
        header.config["block"] = 0
        return header, chunks

    for edit in (more_frames, bad_block):
        with pytest.raises(BitstreamError):
            api.decode_media(_repack(data, edit))
