#!/usr/bin/env bash
# Build a separate venv with EnCodec 0.1.1 and write the reference outputs that
# tests/zoo/test_encodec_compat.py compares ncodec against.
#
#   bash .ci/encodec/setup.sh [REFS_DIR]
#
# The venv is $NCODEC_ENCODEC_VENV, by default .ci/encodec/.venv (ignored by git through the
# `.venv/` rule). EnCodec is installed with --no-deps plus the packages its model code
# really imports (numpy, einops); torchaudio, which it imports only for audio I/O and
# resampling, is replaced by the stand-in in stand-ins/ (see stand-ins/README.md).
# soundfile reads samples/speech.flac and safetensors writes the state dicts. The venv is
# reused when it already holds this exact package set (see ../peer_venv.sh, which builds it).
#
# REFS_DIR (default: <venv>/refs) receives state dicts, reference outputs and .ecdc files
# written by EnCodec's own compress (use_lm=False); the last line printed is that folder, to
# pass to the tests (test_encodec_compat.py, test_ecdc.py) as NCODEC_ENCODEC_REFS.
set -euo pipefail
# shellcheck source=../peer_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../peer_venv.sh"  # HERE: this folder

# What must hold in the freshly built venv, besides its torch (which peer_setup checks).
check_venv() {
  "$1" - <<'PYEOF'
import encodec, numpy, torch, torchaudio
assert encodec.__version__ == "0.1.1", encodec.__version__
assert "stand-ins" in torchaudio.__file__, "a real torchaudio leaked in"
PYEOF
}

# --no-deps (an sdist): its declared torchaudio stays out
PEER="encodec==0.1.1"
PACKAGES=(
  "numpy>=1.24"            # encodec.model, encodec.modules.seanet
  "einops>=0.6"            # encodec.quantization.core_vq, encodec.modules.norm
  "soundfile>=0.12"        # reading samples/speech.flac
  "safetensors>=0.4"       # writing the references without pickle
)

peer_setup encodec EnCodec "${NCODEC_ENCODEC_VENV:-$HERE/.venv}" "$@"
