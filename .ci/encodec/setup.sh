#!/usr/bin/env bash
# Build a separate venv with EnCodec 0.1.1 and write the reference outputs that
# tests/test_encodec_compat.py compares ncodec against.
#
#   bash .ci/encodec/setup.sh [REFS_DIR]
#
# The venv is $NCODEC_ENCODEC_VENV, by default .ci/encodec/.venv (ignored by git through the
# `.venv/` rule). EnCodec is installed with --no-deps plus the packages its model code
# really imports (numpy, einops); torchaudio, which it imports only for audio I/O and
# resampling, is replaced by the stand-in in stand-ins/ (see stand-ins/README.md).
# soundfile reads samples/speech.flac and safetensors writes the state dicts. The venv is
# reused when it already holds this exact package set.
#
# REFS_DIR (default: <venv>/refs) receives state dicts, reference outputs and .ecdc files
# written by EnCodec's own compress (use_lm=False); the last line printed is that folder, to
# pass to the tests (test_encodec_compat.py, test_ecdc.py) as NCODEC_ENCODEC_REFS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${NCODEC_ENCODEC_VENV:-$HERE/.venv}"
REFS="${1:-$VENV/refs}"
PY="${PYTHON:-python3}"

# torch comes first and alone (a CPU build from local disk on the project's machines).
TORCH="torch==2.13.0"
ENCODEC="encodec==0.1.1"
PACKAGES=(
  "numpy>=1.24"            # encodec.model, encodec.modules.seanet
  "einops>=0.6"            # encodec.quantization.core_vq, encodec.modules.norm
  "soundfile>=0.12"        # reading samples/speech.flac
  "safetensors>=0.4"       # writing the references without pickle
)
STAMP="$VENV/.ncodec-encodec-stamp"
WANT="$TORCH $ENCODEC ${PACKAGES[*]} $(find "$HERE/stand-ins" -name '*.py' | LC_ALL=C sort | xargs cat | cksum)"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "+ building the EnCodec venv in $VENV" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "$TORCH"
  # torch stays pinned while the rest resolves; encodec goes in with --no-deps (an sdist:
  # its declared torchaudio stays out).
  "$VENV/bin/python" -m pip install -q "$TORCH" "${PACKAGES[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps "$ENCODEC"
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$VENV/stand-ins"
  cp -r "$HERE/stand-ins" "$VENV/stand-ins"
  echo "$VENV/stand-ins" > "$SITE/ncodec-encodec-stand-ins.pth"
  "$VENV/bin/python" - >&2 <<'PYEOF'
import encodec, numpy, torch, torchaudio
assert encodec.__version__ == "0.1.1", encodec.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "stand-ins" in torchaudio.__file__, "a real torchaudio leaked in"
print("encodec", encodec.__version__, "torch", torch.__version__, "numpy", numpy.__version__)
PYEOF
  echo "$WANT" > "$STAMP"
fi

"$VENV/bin/python" "$ROOT/scripts/encodec_reference.py" --out "$REFS" >&2
echo "$REFS"
