#!/usr/bin/env bash
# The prepared device check (docs/benchmarks.md, "GPU"): run in the repository root with carry [".whl"].
mkdir -p "${OUT:=gpu_check_out}" && set -o pipefail && python benchmarks/gpu_check.py --out="$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
