#!/usr/bin/env bash
# The GPU rANS benchmark: Triton kernels vs the CPU coder, constriction and a device-to-device copy,
# gauss64 case (8-bit alphabet, 64 tables) at N = 1M, 16M, 256M, as JSON lines.
# Needs an NVIDIA GPU with a CUDA build of torch (it ships triton) and constriction:
#   pip install -e '.[bench,gpu]'
# Usage: bash scripts/bench_rans_gpu.sh [output.jsonl] [more options of `ncodec bench entropy`]
# e.g.   bash scripts/bench_rans_gpu.sh docs/results/rans_gpu_h100.jsonl --block 64
# The 256M case spends most of its ~3 minutes in the CPU peers (constriction decodes at a few
# M symbols/s); add --no-peers to skip constriction.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/results/rans_gpu.jsonl}"
shift || true
mkdir -p "$(dirname "$out")"
python -m ncodec bench entropy --device cuda --json --sizes "${SIZES:-1m,16m,256m}" "$@" | tee "$out"
