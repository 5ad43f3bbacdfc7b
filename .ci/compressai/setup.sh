#!/usr/bin/env bash
# Build a separate venv with CompressAI 1.2.8 and write the reference outputs that
# tests/test_compressai_compat.py compares ncodec against.
#
#   bash .ci/compressai/setup.sh [REFS_DIR]
#
# CompressAI 1.2.8 pins numpy<2 and pulls torchvision and torch-geometric, which the main
# venv cannot take, so it lives in its own venv: $NCODEC_COMPRESSAI_VENV, by default
# .ci/compressai/.venv (ignored by git through the `.venv/` rule). CompressAI is installed
# with --no-deps plus the packages its model code really imports; torchvision and
# torch_geometric, imported only for its data-transform registry, are replaced by the
# stand-ins in stand-ins/ (see stand-ins/README.md). The venv is reused when it already
# holds this exact package set.
#
# REFS_DIR (default: <venv>/refs) receives state dicts and reference outputs; the last
# line printed is that folder, to pass to the tests as NCODEC_COMPRESSAI_REFS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${NCODEC_COMPRESSAI_VENV:-$HERE/.venv}"
REFS="${1:-$VENV/refs}"
PY="${PYTHON:-python3}"

# torch comes first and alone (a CPU build from local disk on the project's machines);
# numpy<2 is what CompressAI 1.2.8 requires.
TORCH="torch==2.13.0"
COMPRESSAI="compressai==1.2.8"
PACKAGES=(
  "numpy>=1.26,<2"
  "scipy>=1.11,<1.16"      # compressai.entropy_models (scipy.stats)
  "einops>=0.7"            # compressai.layers.pointcloud, imported by compressai.layers
  "pytorch-msssim>=1.0"    # compressai.losses
  "tqdm>=4.60"             # compressai.datasets
  "requests>=2.28"         # compressai.datasets.utils
  "pandas>=2.0,<2.3"       # compressai.datasets.pointcloud.shapenet (numpy<2 builds)
  "pillow>=10"             # compressai.datasets, and reading samples/garden.png
  "typing-extensions>=4.0"
  "safetensors>=0.4"       # writing the references without pickle
)
STAMP="$VENV/.ncodec-compressai-stamp"
WANT="$TORCH $COMPRESSAI ${PACKAGES[*]} $(find "$HERE/stand-ins" -name '*.py' | LC_ALL=C sort | xargs cat | cksum)"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "+ building the CompressAI venv in $VENV" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "$TORCH"
  # torch stays pinned while the rest resolves; compressai itself goes in with --no-deps
  # (its declared torchvision, torch-geometric, matplotlib and pandas stay out).
  "$VENV/bin/python" -m pip install -q "$TORCH" "${PACKAGES[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps "$COMPRESSAI"
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$VENV/stand-ins"
  cp -r "$HERE/stand-ins" "$VENV/stand-ins"
  echo "$VENV/stand-ins" > "$SITE/ncodec-compressai-stand-ins.pth"
  "$VENV/bin/python" - >&2 <<'EOF'
import compressai, numpy, torch, torchvision, torch_geometric
assert numpy.__version__ < "2", numpy.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "stand-ins" in torchvision.__file__ and "stand-ins" in torch_geometric.__file__, "real torchvision/torch_geometric leaked in"
print("compressai", compressai.__version__, "torch", torch.__version__, "numpy", numpy.__version__)
EOF
  echo "$WANT" > "$STAMP"
fi

"$VENV/bin/python" "$ROOT/scripts/compressai_reference.py" --out "$REFS" >&2
echo "$REFS"
