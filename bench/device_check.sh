#!/usr/bin/env bash
# One-GPU check of issue 18, at most 8 minutes on one H100/H200 including compiles: the train step of paper_rn50
# (bf16, fp32) and vit_b16 (bf16) at the largest batch that fits (samples/s, step time, MFU against the card's
# dense bf16 peak), the PyTorch original's step at the same batch (512 tokens) and at our text length (fp32 and
# bf16 autocast), and the splice pipeline vs the original evaluator. Writes bench/results/device_<gpu>.json (device
# name, versions, every measurement, ratios, target checks) after every measurement, and a copy plus per-measurement
# logs to $OUT when set. A failed measurement is one line and the run goes on; one that would not fit the budget
# is skipped and listed.
#
#   bench/device_check.sh                              # on the GPU machine (its python3; PYTHON=... to choose)
#   bench/device_check.sh --budget-s 420 --only jax_vit_b16_bf16,splice
#   DEVICE_CHECK_DRY=1 bench/device_check.sh           # or --dry-run: any CPU, tiny sizes, checks the script only
#   bench/device_check.sh --help                       # measurements, batch table, options (bench/device_check.py)
#
# The batch sizes come from compiling the train step for h100x1/h200x1 on a CPU: bench/gpu_batch_sizes.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "device_check.sh: no Python interpreter '$PY' (set PYTHON=/path/to/python)" >&2
  exit 2
fi
# JAX takes 95% of the card (default 75%): the batch table was sized for 85% of it at compile time.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
# Compiled steps are kept between runs on a machine that stays up: a rerun skips its compiles.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/exif_jax_compile_cache}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$PY" bench/device_check.py --python "$PY" "$@"
