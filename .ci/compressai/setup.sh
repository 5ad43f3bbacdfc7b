#!/usr/bin/env bash
# Build a separate venv with CompressAI 1.2.8 and write the reference outputs that
# tests/zoo/test_compressai_compat.py compares ncodec against.
#
#   bash .ci/compressai/setup.sh [REFS_DIR]
#
# CompressAI 1.2.8 pins numpy<2 and pulls torchvision and torch-geometric, which the main
# venv cannot take, so it lives in its own venv: $NCODEC_COMPRESSAI_VENV, by default
# .ci/compressai/.venv (ignored by git through the `.venv/` rule). CompressAI is installed
# with --no-deps plus the packages its model code really imports; torchvision and
# torch_geometric, imported only for its data-transform registry, are replaced by the
# stand-ins in stand-ins/ (see stand-ins/README.md). The venv is reused when it already
# holds this exact package set (see ../peer_venv.sh, which builds it).
#
# REFS_DIR (default: <venv>/refs) receives state dicts and reference outputs; the last
# line printed is that folder, to pass to the tests as NCODEC_COMPRESSAI_REFS.
set -euo pipefail
# shellcheck source=../peer_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../peer_venv.sh"  # HERE: this folder

# What must hold in the freshly built venv, besides its torch (which peer_setup checks).
check_venv() {
  "$1" - <<'PYEOF'
import compressai, numpy, torch, torchvision, torch_geometric
assert numpy.__version__ < "2", numpy.__version__
assert "stand-ins" in torchvision.__file__ and "stand-ins" in torch_geometric.__file__, "real torchvision/torch_geometric leaked in"
PYEOF
}

# --no-deps: its declared torchvision, torch-geometric, matplotlib and pandas stay out
PEER="compressai==1.2.8"
PACKAGES=(
  "numpy>=1.26,<2"         # what CompressAI 1.2.8 requires
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

peer_setup compressai CompressAI "${NCODEC_COMPRESSAI_VENV:-$HERE/.venv}" "$@"
