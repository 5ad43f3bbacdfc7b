#!/usr/bin/env bash
# Build a separate venv with descript-audio-codec (DAC) 1.0.0 and write the reference outputs
# that tests/zoo/test_dac_compat.py compares ncodec against.
#
#   bash .ci/dac/setup.sh [REFS_DIR]
#
# The venv is $NCODEC_DAC_VENV, by default .ci/dac/.venv (ignored by git through the `.venv/`
# rule). DAC is installed with --no-deps plus the packages its model code really imports
# (numpy, einops, tqdm, argbind); descript-audiotools, which it imports only for audio I/O,
# its AudioSignal wrapper, losses and training, is replaced by the stand-in in stand-ins/
# (see stand-ins/README.md). soundfile reads samples/speech.flac and safetensors writes the
# state dicts. The venv is reused when it already holds this exact package set (see
# ../peer_venv.sh, which builds it).
#
# REFS_DIR (default: <venv>/refs) receives state dicts and reference outputs; the last line
# printed is that folder, to pass to the tests as NCODEC_DAC_REFS.
set -euo pipefail
# shellcheck source=../peer_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../peer_venv.sh"  # HERE: this folder

# What must hold in the freshly built venv, besides its torch (which peer_setup checks).
check_venv() {
  "$1" - <<'PYEOF'
import importlib.metadata as md
import audiotools, dac, numpy, torch
assert dac.__version__ == "1.0.0", dac.__version__
assert md.version("descript-audio-codec") == "1.0.0"
assert "stand-ins" in audiotools.__file__, "a real audiotools leaked in"
for name in ("torchaudio", "julius"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise AssertionError(f"{name} is installed: DAC's reference venv should not have it")
PYEOF
}

# --no-deps: its declared descript-audiotools and torchaudio stay out
PEER="descript-audio-codec==1.0.0"
PACKAGES=(
  "numpy>=1.24"            # dac.model.dac, dac.nn.quantize
  "einops>=0.6"            # dac.nn.layers, dac.nn.quantize
  "tqdm>=4"                # dac.model.base (imported with the model)
  "argbind==0.3.9"         # dac.utils (imported by dac/__init__.py)
  "soundfile>=0.12"        # reading samples/speech.flac
  "safetensors>=0.4"       # writing the references without pickle
)

peer_setup dac DAC "${NCODEC_DAC_VENV:-$HERE/.venv}" "$@"
