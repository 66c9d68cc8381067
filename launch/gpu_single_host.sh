#!/usr/bin/env bash
# Trains on all GPUs of one machine: by default one process drives every visible GPU (the mesh spans them);
# with PROCESS_PER_GPU=1 it starts one process per GPU through launch/local.sh (jax.distributed over localhost).
#
# usage: [NUM_GPUS=N] [PROCESS_PER_GPU=0|1] launch/gpu_single_host.sh [--dry-run] \
#            --config configs/NAME.py[:args] --workdir DIR [--config.KEY=VALUE ...]
#
#   NUM_GPUS          GPUs to use (default: all that `nvidia-smi -L` lists; required for a dry run without one).
#   PROCESS_PER_GPU   1: one process per GPU (CUDA_VISIBLE_DEVICES=i each); 0 (default): one process.
#   XLA_PYTHON_CLIENT_MEM_FRACTION  share of GPU memory JAX preallocates (default here 0.90).
#   TRAIN_CMD         command instead of `exif-jax train`.  DRY_RUN=1 / --dry-run: print, start nothing.
# The global batch (config batch_size) must be divisible by NUM_GPUS. Re-running with the same --workdir resumes.
#
# example: launch/gpu_single_host.sh --config configs/paper_rn50.py --workdir runs/rn50 --config.data.path=data/yfcc
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
die() { echo "gpu_single_host.sh: $*" >&2; exit 2; }

DRY_RUN="${DRY_RUN:-0}"
PROCESS_PER_GPU="${PROCESS_PER_GPU:-0}"
ARGS=()
for a in "$@"; do
  case "$a" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) ARGS+=("$a") ;;
  esac
done
[[ "$PROCESS_PER_GPU" == 0 || "$PROCESS_PER_GPU" == 1 ]] || die "PROCESS_PER_GPU='$PROCESS_PER_GPU' must be 0 or 1"

DETECTED=""
if command -v nvidia-smi >/dev/null 2>&1; then
  DETECTED="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
fi
if [[ -z "${NUM_GPUS:-}" ]]; then
  if [[ -z "$DETECTED" || "$DETECTED" == 0 ]]; then
    if [[ "$DRY_RUN" == 1 ]]; then
      die "NUM_GPUS is unset and nvidia-smi finds no GPU here: set NUM_GPUS=N for a dry run"
    fi
    die "no GPU found (nvidia-smi missing or lists none); use launch/local.sh on CPU"
  fi
  NUM_GPUS="$DETECTED"
fi
[[ "$NUM_GPUS" =~ ^[1-9][0-9]*$ ]] || die "NUM_GPUS='$NUM_GPUS' must be a positive integer"
if [[ -n "$DETECTED" && "$DETECTED" != 0 ]] && ((NUM_GPUS > DETECTED)); then
  die "NUM_GPUS=$NUM_GPUS but nvidia-smi lists only $DETECTED GPUs on this machine"
fi

export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"
if [[ "$PROCESS_PER_GPU" == 1 ]]; then
  export NUM_PROCESSES="$NUM_GPUS" GPUS_PER_PROCESS=1 DRY_RUN
  exec "$HERE/local.sh" "${ARGS[@]}"
fi

# One process: restrict it to the first NUM_GPUS GPUs unless the caller already chose them.
if [[ -z "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  CUDA_VISIBLE_DEVICES="$(seq -s, 0 $((NUM_GPUS - 1)))"
fi
export CUDA_VISIBLE_DEVICES
if [[ "$DRY_RUN" == 1 ]]; then
  out="$(DRY_RUN=1 NUM_PROCESSES=1 "$HERE/local.sh" "${ARGS[@]}")"
  echo "# gpu_single_host.sh dry run: 1 process x $NUM_GPUS GPUs"
  echo "env CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES XLA_PYTHON_CLIENT_MEM_FRACTION=$XLA_PYTHON_CLIENT_MEM_FRACTION $(grep -v '^#' <<< "$out")"
  exit 0
fi
NUM_PROCESSES=1 exec "$HERE/local.sh" "${ARGS[@]}"
