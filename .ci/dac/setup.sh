#!/usr/bin/env bash
# Build a separate venv with descript-audio-codec (DAC) 1.0.0 and write the reference outputs
# that tests/test_dac_compat.py compares ncodec against.
#
#   bash .ci/dac/setup.sh [REFS_DIR]
#
# The venv is $NCODEC_DAC_VENV, by default .ci/dac/.venv (ignored by git through the `.venv/`
# rule). DAC is installed with --no-deps plus the packages its model code really imports
# (numpy, einops, tqdm, argbind); descript-audiotools, which it imports only for audio I/O,
# its AudioSignal wrapper, losses and training, is replaced by the stand-in in stand-ins/
# (see stand-ins/README.md). soundfile reads samples/speech.flac and safetensors writes the
# state dicts. The venv is reused when it already holds this exact package set.
#
# REFS_DIR (default: <venv>/refs) receives state dicts and reference outputs; the last line
# printed is that folder, to pass to the tests as NCODEC_DAC_REFS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${NCODEC_DAC_VENV:-$HERE/.venv}"
REFS="${1:-$VENV/refs}"
PY="${PYTHON:-python3}"

# torch comes first and alone (a CPU build from local disk on the project's machines).
TORCH="torch==2.13.0"
DAC="descript-audio-codec==1.0.0"
PACKAGES=(
  "numpy>=1.24"            # dac.model.dac, dac.nn.quantize
  "einops>=0.6"            # dac.nn.layers, dac.nn.quantize
  "tqdm>=4"                # dac.model.base (imported with the model)
  "argbind==0.3.9"         # dac.utils (imported by dac/__init__.py)
  "soundfile>=0.12"        # reading samples/speech.flac
  "safetensors>=0.4"       # writing the references without pickle
)
STAMP="$VENV/.ncodec-dac-stamp"
WANT="$TORCH $DAC ${PACKAGES[*]} $(find "$HERE/stand-ins" -name '*.py' | LC_ALL=C sort | xargs cat | cksum)"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "+ building the DAC venv in $VENV" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "$TORCH"
  # torch stays pinned while the rest resolves; DAC goes in with --no-deps (its declared
  # descript-audiotools and torchaudio stay out).
  "$VENV/bin/python" -m pip install -q "$TORCH" "${PACKAGES[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps "$DAC"
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$VENV/stand-ins"
  cp -r "$HERE/stand-ins" "$VENV/stand-ins"
  echo "$VENV/stand-ins" > "$SITE/ncodec-dac-stand-ins.pth"
  "$VENV/bin/python" - >&2 <<'PYEOF'
import importlib.metadata as md
import audiotools, dac, numpy, torch
assert dac.__version__ == "1.0.0", dac.__version__
assert md.version("descript-audio-codec") == "1.0.0"
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "stand-ins" in audiotools.__file__, "a real audiotools leaked in"
for name in ("torchaudio", "julius"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise AssertionError(f"{name} is installed: DAC's reference venv should not have it")
print("descript-audio-codec", dac.__version__, "torch", torch.__version__, "numpy", numpy.__version__)
PYEOF
  echo "$WANT" > "$STAMP"
fi

"$VENV/bin/python" "$ROOT/scripts/dac_reference.py" --out "$REFS" >&2
echo "$REFS"
