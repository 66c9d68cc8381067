#!/usr/bin/env bash
# Trains on a Cloud TPU VM slice (single host or pod slice): creates or reuses the TPU, copies this checkout to
# every worker and installs it, runs `exif-jax train` on all workers with the same gs:// workdir, streams their
# logs, and after a preemption recreates the TPU and resumes from the latest checkpoint in the workdir.
#
# usage: TPU_NAME=... ZONE=... ACCELERATOR_TYPE=v5p-128 CONFIG=configs/NAME.py[:args] WORKDIR=gs://bucket/run \
#            launch/tpu_pod.sh [--dry-run] [run|create|install|train|logs|check|delete] [--config.KEY=VALUE ...]
#
#   run (default)   create/reuse + install + train, recreating and resuming after preemption (MAX_RESTARTS)
#   create          create the TPU VM if it does not exist (SPOT=1 for spot capacity)
#   install         copy `git archive HEAD` of this checkout to all workers, install it with Python 3.11 (uv)
#   train           run the trainer on all workers (foreground; logs also in ~/exif-jax-train.log on each worker)
#   logs            follow ~/exif-jax-train.log of all workers
#   check           compile the config for ACCELERATOR_TYPE here first (`exif-jax compile`): memory fits?
#   delete          delete the TPU VM
# env: PROJECT (default: gcloud's), RUNTIME_VERSION (default per generation), SPOT=1, MAX_RESTARTS (default 20),
#      RETRY_ON_FAILURE=1 (also retry when the trainer fails on a healthy TPU), DRY_RUN=1 / --dry-run: print the
#      gcloud commands instead of running them (gcloud not needed).
#
# example: TPU_NAME=exif ZONE=us-east5-a ACCELERATOR_TYPE=v5p-128 CONFIG=configs/vit_b16.py \
#          WORKDIR=gs://my-bucket/exif/vit_b16 launch/tpu_pod.sh run --config.data.path=gs://my-bucket/yfcc
set -euo pipefail

die() { echo "tpu_pod.sh: $*" >&2; exit 2; }
log() { echo "tpu_pod.sh: $*" >&2; }
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DRY_RUN="${DRY_RUN:-0}"
ACTION=""
EXTRA=()
for a in "$@"; do
  case "$a" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    run|create|install|train|logs|check|delete)
      [[ -z "$ACTION" ]] || die "two actions given ('$ACTION' and '$a')"; ACTION="$a" ;;
    --config.*) EXTRA+=("$a") ;;
    *) die "unknown argument '$a' (actions: run create install train logs check delete; trainer overrides: --config.KEY=VALUE)" ;;
  esac
done
ACTION="${ACTION:-run}"

# ---------------------------------------------------------------------------------------------- input checks
for v in TPU_NAME ZONE ACCELERATOR_TYPE; do
  [[ -n "${!v:-}" ]] || die "$v is not set (e.g. TPU_NAME=exif ZONE=us-east5-a ACCELERATOR_TYPE=v5p-128)"
done
if [[ "$ACTION" =~ ^(run|train|check)$ ]]; then
  [[ -n "${CONFIG:-}" ]] || die "CONFIG is not set (e.g. CONFIG=configs/vit_b16.py)"
  [[ -f "$REPO/${CONFIG%%:*}" ]] || die "config file '${CONFIG%%:*}' not found in $REPO"
  [[ -n "${WORKDIR:-}" ]] || die "WORKDIR is not set (a gs:// path all workers share; restarts resume from it)"
fi

if [[ ! "$ACCELERATOR_TYPE" =~ ^(v4|v5p|v5litepod|v5e|v6e)-([0-9]+)$ ]]; then
  die "ACCELERATOR_TYPE='$ACCELERATOR_TYPE' is not a TPU slice name like v4-32, v5p-128, v5litepod-16, v6e-16"
fi
GEN="${BASH_REMATCH[1]}"
SIZE="${BASH_REMATCH[2]}"
case "$GEN" in
  v4|v5p)
    [[ " 8 16 32 64 128 256 512 1024 2048 4096 8192 " == *" $SIZE "* ]] \
      || die "wrong topology: $GEN-$SIZE does not exist ($GEN sizes count TensorCores: 8, 16, 32, ... 8192)"
    CHIPS=$((SIZE / 2)); HOSTS=$((CHIPS / 4)) ;;
  v5litepod|v5e|v6e)
    [[ " 1 4 8 16 32 64 128 256 " == *" $SIZE "* ]] \
      || die "wrong topology: $GEN-$SIZE does not exist (sizes count chips: 1, 4, 8, 16, 32, 64, 128, 256)"
    CHIPS=$SIZE; HOSTS=$(( SIZE <= 8 ? 1 : SIZE / 4 )) ;;
esac
if [[ "$GEN" == v5e ]]; then ACCELERATOR_TYPE="v5litepod-$SIZE"; GEN=v5litepod; fi
case "$GEN" in
  v4) DEFAULT_RUNTIME=tpu-ubuntu2204-base ;;
  v5p) DEFAULT_RUNTIME=v2-alpha-tpuv5 ;;
  v5litepod) DEFAULT_RUNTIME=v2-alpha-tpuv5-lite ;;
  v6e) DEFAULT_RUNTIME=v2-alpha-tpuv6e ;;
esac
RUNTIME_VERSION="${RUNTIME_VERSION:-$DEFAULT_RUNTIME}"
MAX_RESTARTS="${MAX_RESTARTS:-20}"
[[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || die "MAX_RESTARTS='$MAX_RESTARTS' must be a non-negative integer"
if [[ "$ACTION" =~ ^(run|train)$ ]] && ((HOSTS > 1)) && [[ "$WORKDIR" != gs://* ]]; then
  die "WORKDIR=$WORKDIR: $ACCELERATOR_TYPE has $HOSTS hosts; use a gs:// workdir every host (and a restart) can see"
fi
if [[ "$DRY_RUN" != 1 ]]; then
  command -v gcloud >/dev/null || die "gcloud not found: install the Google Cloud CLI (or DRY_RUN=1 to print the commands)"
fi

GC=(gcloud compute tpus tpu-vm)
LOC=(--zone "$ZONE")
[[ -n "${PROJECT:-}" ]] && LOC+=(--project "$PROJECT")
quote() { local out=() a; for a in "$@"; do out+=("$(printf '%q' "$a")"); done; echo "${out[*]}"; }
run() {  # run a command, or print it in a dry run
  if [[ "$DRY_RUN" == 1 ]]; then echo "+ $(quote "$@")"; else "$@"; fi
}

tpu_state() {  # READY, CREATING, PREEMPTED, ... or NOT_FOUND
  if [[ "$DRY_RUN" == 1 ]]; then echo "${DRY_RUN_STATE:-NOT_FOUND}"; return; fi
  "${GC[@]}" describe "$TPU_NAME" "${LOC[@]}" --format='value(state)' 2>/dev/null || echo NOT_FOUND
}

create() {
  local state
  state="$(tpu_state)"
  case "$state" in
    READY) log "reusing TPU $TPU_NAME ($ACCELERATOR_TYPE, READY)"; return 0 ;;
    NOT_FOUND) ;;
    PREEMPTED|TERMINATED|STOPPED|FAILED)
      log "TPU $TPU_NAME is $state: deleting and recreating it"
      run "${GC[@]}" delete "$TPU_NAME" "${LOC[@]}" --quiet ;;
    *) log "TPU $TPU_NAME is $state: waiting for it"; sleep 30; create; return ;;
  esac
  local spot=()
  [[ "${SPOT:-0}" == 1 ]] && spot=(--spot)
  log "creating TPU $TPU_NAME: $ACCELERATOR_TYPE ($CHIPS chips, $HOSTS hosts), runtime $RUNTIME_VERSION"
  run "${GC[@]}" create "$TPU_NAME" "${LOC[@]}" --accelerator-type "$ACCELERATOR_TYPE" \
    --version "$RUNTIME_VERSION" "${spot[@]+"${spot[@]}"}"
  INSTALLED=0
}

INSTALLED=0
install() {
  local tarball="${TMPDIR:-/tmp}/exif-jax-src.tar.gz"
  log "copying $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') to all $HOSTS workers and installing"
  run git -C "$REPO" archive --format=tar.gz --prefix=exif-jax/ -o "$tarball" HEAD
  run "${GC[@]}" scp "$tarball" "$TPU_NAME:/tmp/exif-jax-src.tar.gz" "${LOC[@]}" --worker=all
  local remote='set -e; rm -rf ~/exif-jax && tar -xzf /tmp/exif-jax-src.tar.gz -C ~ && '
  remote+='(command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh) && export PATH=$HOME/.local/bin:$PATH && '
  remote+='uv venv -q --allow-existing --python 3.11 ~/exif-jax-venv && '
  remote+='VIRTUAL_ENV=$HOME/exif-jax-venv uv pip install -q -e "$HOME/exif-jax[tpu]" "jax[tpu]==0.10.2"'
  run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=all --command "$remote"
  INSTALLED=1
}

train() {
  local args
  args="$(quote --config "$CONFIG" --workdir "$WORKDIR" "${EXTRA[@]+"${EXTRA[@]}"}")"
  local remote="cd ~/exif-jax && . ~/exif-jax-venv/bin/activate && "
  remote+="set -o pipefail && exif-jax train $args 2>&1 | tee -a ~/exif-jax-train.log | sed -u \"s/^/[\$(hostname)] /\""
  log "training on all $HOSTS workers, workdir $WORKDIR (the trainer resumes from its latest checkpoint there)"
  run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=all --command "$remote"
}

case "$ACTION" in
  create) create ;;
  install) install ;;
  train) train ;;
  delete) run "${GC[@]}" delete "$TPU_NAME" "${LOC[@]}" --quiet ;;
  logs) run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=all --command 'tail -n 50 -F ~/exif-jax-train.log | sed -u "s/^/[$(hostname)] /"' ;;
  check)
    read -r -a COMPILE <<< "${COMPILE_CMD:-exif-jax compile}"
    run "${COMPILE[@]}" --config "$REPO/$CONFIG" --topology "$ACCELERATOR_TYPE" "${EXTRA[@]+"${EXTRA[@]}"}" ;;
  run)
    attempt=0
    while :; do
      create
      [[ "$INSTALLED" == 1 ]] || install
      if train; then log "training finished"; exit 0; else rc=$?; fi
      state="$(tpu_state)"
      if [[ "$state" == READY && "${RETRY_ON_FAILURE:-0}" != 1 ]]; then
        die "the trainer failed (status $rc) on a healthy TPU; see the log above (RETRY_ON_FAILURE=1 retries anyway)"
      fi
      attempt=$((attempt + 1))
      ((attempt <= MAX_RESTARTS)) || die "giving up after $MAX_RESTARTS restarts (TPU state $state)"
      log "TPU state $state after status $rc: restart $attempt/$MAX_RESTARTS, resuming from $WORKDIR"
      [[ "$state" == READY ]] || INSTALLED=0
    done ;;
esac
