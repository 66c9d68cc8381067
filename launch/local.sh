#!/usr/bin/env bash
# Runs the trainer on this machine as one process, or as NUM_PROCESSES cooperating JAX processes (the same code
# path as several TPU hosts or GPU nodes: jax.distributed over localhost).
#
# usage: [NUM_PROCESSES=N] [DEVICES_PER_PROCESS=K] [PORT=P] launch/local.sh [--dry-run] \
#            --config configs/NAME.py[:args] --workdir DIR [--config.KEY=VALUE ...]
#
#   NUM_PROCESSES        processes to start (default 1). Each gets JAX_COORDINATOR_ADDRESS=localhost:PORT,
#                        JAX_NUM_PROCESSES=N, JAX_PROCESS_ID=i, read by the trainer's jax.distributed.initialize().
#   DEVICES_PER_PROCESS  fake CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count=K,
#                        JAX_PLATFORMS=cpu); empty (default) = the machine's real devices.
#   GPUS_PER_PROCESS     give process i the GPUs i*K..i*K+K-1 (CUDA_VISIBLE_DEVICES); empty (default) = all.
#   PORT                 coordinator port on localhost (default 12355).
#   TRAIN_CMD            command to run instead of `exif-jax train` (default: exif-jax train; e.g. `python -m
#                        exif_jax.cli train`).
#   DRY_RUN=1 / --dry-run  print what would run, start nothing.
# Process i writes WORKDIR/logs/process_<i>.log; process 0 is also streamed to the terminal. If any process fails
# the others are stopped and the script exits with that status. Restarting with the same --workdir resumes.
#
# example: NUM_PROCESSES=2 DEVICES_PER_PROCESS=4 launch/local.sh --config configs/smoke.py --workdir /tmp/smoke
set -euo pipefail

die() { echo "local.sh: $*" >&2; exit 2; }

NUM_PROCESSES="${NUM_PROCESSES:-1}"
DEVICES_PER_PROCESS="${DEVICES_PER_PROCESS:-}"
GPUS_PER_PROCESS="${GPUS_PER_PROCESS:-}"
PORT="${PORT:-12355}"
DRY_RUN="${DRY_RUN:-0}"
read -r -a TRAIN <<< "${TRAIN_CMD:-exif-jax train}"

ARGS=()
WORKDIR=""
HAVE_CONFIG=0
while (($#)); do
  case "$1" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    --workdir) (($# > 1)) || die "--workdir needs a value"; WORKDIR="$2"; ARGS+=("$1" "$2"); shift ;;
    --workdir=*) WORKDIR="${1#--workdir=}"; ARGS+=("$1") ;;
    --config) (($# > 1)) || die "--config needs a value"; HAVE_CONFIG=1; ARGS+=("$1" "$2"); shift ;;
    --config=*) HAVE_CONFIG=1; ARGS+=("$1") ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done

[[ "$NUM_PROCESSES" =~ ^[1-9][0-9]*$ ]] || die "NUM_PROCESSES='$NUM_PROCESSES' must be a positive integer"
[[ -z "$DEVICES_PER_PROCESS" || "$DEVICES_PER_PROCESS" =~ ^[1-9][0-9]*$ ]] \
  || die "DEVICES_PER_PROCESS='$DEVICES_PER_PROCESS' must be a positive integer or empty"
[[ -z "$GPUS_PER_PROCESS" || "$GPUS_PER_PROCESS" =~ ^[1-9][0-9]*$ ]] \
  || die "GPUS_PER_PROCESS='$GPUS_PER_PROCESS' must be a positive integer or empty"
[[ -z "$GPUS_PER_PROCESS" || -z "$DEVICES_PER_PROCESS" ]] \
  || die "set DEVICES_PER_PROCESS (fake CPU devices) or GPUS_PER_PROCESS, not both"
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "PORT='$PORT' is not a TCP port number"
((HAVE_CONFIG)) || die "missing --config configs/NAME.py (e.g. --config configs/smoke.py)"
[[ -n "$WORKDIR" ]] || die "missing --workdir DIR (checkpoints, metrics.jsonl and logs go there; reuse it to resume)"
if [[ "$DRY_RUN" != 1 ]]; then
  command -v "${TRAIN[0]}" >/dev/null || die "'${TRAIN[0]}' not found: activate the venv (. .venv/bin/activate) or set TRAIN_CMD"
  if ((NUM_PROCESSES > 1)) && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on localhost is in use (another run?); set PORT to a free port"
  fi
fi

proc_env() {  # environment of process $1
  local env=()
  if ((NUM_PROCESSES > 1)); then
    env+=("JAX_COORDINATOR_ADDRESS=localhost:$PORT" "JAX_NUM_PROCESSES=$NUM_PROCESSES" "JAX_PROCESS_ID=$1")
  fi
  if [[ -n "$DEVICES_PER_PROCESS" ]]; then
    env+=("JAX_PLATFORMS=cpu" "XLA_FLAGS=--xla_force_host_platform_device_count=$DEVICES_PER_PROCESS")
  fi
  if [[ -n "$GPUS_PER_PROCESS" ]]; then
    local first=$(($1 * GPUS_PER_PROCESS)) ids=() g
    for ((g = first; g < first + GPUS_PER_PROCESS; g++)); do ids+=("$g"); done
    env+=("CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${ids[*]}")")
  fi
  ((${#env[@]} == 0)) || printf '%s\n' "${env[@]}"
}

quote() { local out=() a; for a in "$@"; do out+=("$(printf '%q' "$a")"); done; echo "${out[*]}"; }

LOGDIR="$WORKDIR/logs"
if [[ "$DRY_RUN" == 1 ]]; then
  echo "# local.sh dry run: $NUM_PROCESSES process(es)${DEVICES_PER_PROCESS:+ x $DEVICES_PER_PROCESS CPU devices}, logs in $LOGDIR"
  for ((i = 0; i < NUM_PROCESSES; i++)); do
    mapfile -t E < <(proc_env "$i")
    line="$(quote "${TRAIN[@]}" "${ARGS[@]}")"
    ((${#E[@]})) && line="env $(quote "${E[@]}") $line"
    ((NUM_PROCESSES > 1)) && line="$line > $(printf '%q' "$LOGDIR/process_$i.log") 2>&1 &"
    echo "$line"
  done
  exit 0
fi

if ((NUM_PROCESSES == 1)); then
  mapfile -t E < <(proc_env 0)
  exec env ${E[@]+"${E[@]}"} "${TRAIN[@]}" "${ARGS[@]}"
fi

mkdir -p "$LOGDIR"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap 'cleanup; exit 143' TERM INT
echo "local.sh: starting $NUM_PROCESSES processes (coordinator localhost:$PORT), logs in $LOGDIR" >&2
for ((i = 0; i < NUM_PROCESSES; i++)); do
  mapfile -t E < <(proc_env "$i")
  env "${E[@]}" "${TRAIN[@]}" "${ARGS[@]}" > "$LOGDIR/process_$i.log" 2>&1 &
  PIDS+=($!)
done
tail -n +1 -f "$LOGDIR/process_0.log" --pid="${PIDS[0]}" &
TAIL=$!

status=0
remaining=("${PIDS[@]}")
while ((${#remaining[@]})); do
  # wait -n -p: the first process to exit; stop the rest if it failed.
  if wait -n -p done_pid "${remaining[@]}"; then rc=0; else rc=$?; fi
  next=()
  for p in "${remaining[@]}"; do [[ "$p" != "$done_pid" ]] && next+=("$p"); done
  remaining=("${next[@]+"${next[@]}"}")
  if ((rc != 0 && status == 0)); then
    status=$rc
    for ((i = 0; i < NUM_PROCESSES; i++)); do
      [[ "${PIDS[$i]}" == "$done_pid" ]] && echo "local.sh: process $i exited with status $rc (see $LOGDIR/process_$i.log); stopping the others" >&2
    done
    for p in "${remaining[@]+"${remaining[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  fi
done
wait "$TAIL" 2>/dev/null || true
exit "$status"
