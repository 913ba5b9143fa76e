#!/usr/bin/env bash
# The GPU check in one call (see bench/gpu_check.py): DNABERT-3 base fp32 against bf16 + SDPA, the
# paper recipe's DNABERT from scratch on PUM2 (5 folds), the biLSTM on CUDA. The core of rbp only:
# no install, no MLflow, no papermill, no network. Writes gpu_check.json and gpu_check.md to $OUT
# (or --out DIR).
#   bash bench/gpu_check.sh --data bench/.data/pum2     # on the GPU machine
#   bash bench/gpu_check.sh --tiny --out /tmp/check     # anywhere: toy sizes, checks that it works
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
args=("$@")
if [[ " $* " != *" --out "* ]]; then
  args+=(--out "${OUT:-outputs/gpu_check}")
fi
exec env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 \
  "$PYTHON" bench/gpu_check.py "${args[@]}"
