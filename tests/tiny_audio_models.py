"""Configurations of tiny SEANet codecs (`SEANetCodecModel.build` keywords) shared by the audio tests."""
from __future__ import annotations

# EnCodec 24 kHz layout (mono, causal, LSTM), shrunk to run in milliseconds
CAUSAL = dict(target_bandwidths=[1.5, 3.0, 6.0], sample_rate=24000, channels=1, causal=True, n_filters=4,
              dimension=16, lstm=1, name="tiny24")
# EnCodec 48 kHz layout (stereo, non-causal, normalised segments with overlap-add), shrunk
SEGMENTED = dict(target_bandwidths=[3.0, 6.0], sample_rate=48000, channels=2, causal=False, norm="time_group_norm",
                 normalize=True, segment=0.25, n_filters=4, dimension=16, lstm=1, name="tiny48")
# the frame-rate pair (STFT encoder, Vocos decoder), causal, shrunk
FRAME = dict(target_bandwidths=[1.5, 3.0, 6.0], sample_rate=24000, channels=1, causal=True, dimension=16,
             encoder={"type": "stft", "width": 16, "blocks": 1}, decoder={"type": "vocos", "width": 16, "blocks": 1},
             name="tinyframe")
