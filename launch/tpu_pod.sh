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
#      gcloud commands instead of running them (gcloud not needed), NUM_SLICES=N (multi-slice: N slices of
#      ACCELERATOR_TYPE as one queued resource TPU_NAME with nodes TPU_NAME-0..N-1, joined over the data-centre
#      network; the trainer gets --config.mesh.dcn_data=N and `check` compiles for Nx$ACCELERATOR_TYPE).
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
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
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
NUM_SLICES="${NUM_SLICES:-1}"
[[ "$NUM_SLICES" =~ ^[1-9][0-9]*$ ]] || die "NUM_SLICES='$NUM_SLICES' must be a positive integer (slices of $ACCELERATOR_TYPE)"
CHIPS=$((CHIPS * NUM_SLICES)); HOSTS=$((HOSTS * NUM_SLICES))
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
ALL=(--worker=all)
STATE_FIELD='value(state)'
if ((NUM_SLICES > 1)); then  # multi-slice: one queued resource, its nodes are the slices
  GC=(gcloud compute tpus queued-resources)
  ALL=(--node=all --worker=all)
  STATE_FIELD='value(state.state)'
  EXTRA+=("--config.mesh.dcn_data=$NUM_SLICES")
fi
quote() { local out=() a; for a in "$@"; do out+=("$(printf '%q' "$a")"); done; echo "${out[*]}"; }
run() {  # run a command, or print it in a dry run
  if [[ "$DRY_RUN" == 1 ]]; then echo "+ $(quote "$@")"; else "$@"; fi
}

tpu_state() {  # READY, CREATING, PREEMPTED, ... or NOT_FOUND
  if [[ "$DRY_RUN" == 1 ]]; then echo "${DRY_RUN_STATE:-NOT_FOUND}"; return; fi
  "${GC[@]}" describe "$TPU_NAME" "${LOC[@]}" --format="$STATE_FIELD" 2>/dev/null || echo NOT_FOUND
}
is_ready() { [[ "$1" == READY || "$1" == ACTIVE ]]; }  # a TPU VM / a queued resource
delete_tpu() {
  if ((NUM_SLICES > 1)); then run "${GC[@]}" delete "$TPU_NAME" "${LOC[@]}" --force --quiet
  else run "${GC[@]}" delete "$TPU_NAME" "${LOC[@]}" --quiet; fi
}

create() {
  local state
  state="$(tpu_state)"
  case "$state" in
    READY|ACTIVE) log "reusing TPU $TPU_NAME ($ACCELERATOR_TYPE, $state)"; return 0 ;;
    NOT_FOUND) ;;
    PREEMPTED|TERMINATED|STOPPED|FAILED|SUSPENDED)
      log "TPU $TPU_NAME is $state: deleting and recreating it"
      delete_tpu ;;
    *) log "TPU $TPU_NAME is $state: waiting for it"; sleep 30; create; return ;;
  esac
  local spot=()
  [[ "${SPOT:-0}" == 1 ]] && spot=(--spot)
  if ((NUM_SLICES > 1)); then
    log "creating $NUM_SLICES slices $TPU_NAME-0..$((NUM_SLICES - 1)): $NUM_SLICES x $ACCELERATOR_TYPE ($CHIPS chips, $HOSTS hosts), runtime $RUNTIME_VERSION"
    run "${GC[@]}" create "$TPU_NAME" "${LOC[@]}" --node-count "$NUM_SLICES" --node-prefix "$TPU_NAME" \
      --accelerator-type "$ACCELERATOR_TYPE" --runtime-version "$RUNTIME_VERSION" "${spot[@]+"${spot[@]}"}"
  else
    log "creating TPU $TPU_NAME: $ACCELERATOR_TYPE ($CHIPS chips, $HOSTS hosts), runtime $RUNTIME_VERSION"
    run "${GC[@]}" create "$TPU_NAME" "${LOC[@]}" --accelerator-type "$ACCELERATOR_TYPE" \
      --version "$RUNTIME_VERSION" "${spot[@]+"${spot[@]}"}"
  fi
  INSTALLED=0
}

INSTALLED=0
install() {
  local tarball="${TMPDIR:-/tmp}/exif-jax-src.tar.gz"
  log "copying $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') to all $HOSTS workers and installing"
  run git -C "$REPO" archive --format=tar.gz --prefix=exif-jax/ -o "$tarball" HEAD
  run "${GC[@]}" scp "$tarball" "$TPU_NAME:/tmp/exif-jax-src.tar.gz" "${LOC[@]}" "${ALL[@]}"
  local remote='set -e; rm -rf ~/exif-jax && tar -xzf /tmp/exif-jax-src.tar.gz -C ~ && '
  remote+='(command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh) && export PATH=$HOME/.local/bin:$PATH && '
  remote+='uv venv -q --allow-existing --python 3.11 ~/exif-jax-venv && '
  remote+='VIRTUAL_ENV=$HOME/exif-jax-venv uv pip install -q -e "$HOME/exif-jax[tpu]" "jax[tpu]==0.10.2"'
  run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" "${ALL[@]}" --command "$remote"
  INSTALLED=1
}

train() {
  local args
  args="$(quote --config "$CONFIG" --workdir "$WORKDIR" "${EXTRA[@]+"${EXTRA[@]}"}")"
  local remote="cd ~/exif-jax && . ~/exif-jax-venv/bin/activate && "
  remote+="set -o pipefail && exif-jax train $args 2>&1 | tee -a ~/exif-jax-train.log | sed -u \"s/^/[\$(hostname)] /\""
  log "training on all $HOSTS workers, workdir $WORKDIR (the trainer resumes from its latest checkpoint there)"
  run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" "${ALL[@]}" --command "$remote"
}

case "$ACTION" in
  create) create ;;
  install) install ;;
  train) train ;;
  delete) delete_tpu ;;
  logs) run "${GC[@]}" ssh "$TPU_NAME" "${LOC[@]}" "${ALL[@]}" --command 'tail -n 50 -F ~/exif-jax-train.log | sed -u "s/^/[$(hostname)] /"' ;;
  check)
    read -r -a COMPILE <<< "${COMPILE_CMD:-exif-jax compile}"
    TOPOLOGY="$ACCELERATOR_TYPE"
    ((NUM_SLICES > 1)) && TOPOLOGY="${NUM_SLICES}x$ACCELERATOR_TYPE"
    run "${COMPILE[@]}" --config "$REPO/$CONFIG" --topology "$TOPOLOGY" "${EXTRA[@]+"${EXTRA[@]}"}" ;;
  run)
    attempt=0
    while :; do
      create
      [[ "$INSTALLED" == 1 ]] || install
      if train; then log "training finished"; exit 0; else rc=$?; fi
      state="$(tpu_state)"
      if is_ready "$state" && [[ "${RETRY_ON_FAILURE:-0}" != 1 ]]; then
        die "the trainer failed (status $rc) on a healthy TPU; see the log above (RETRY_ON_FAILURE=1 retries anyway)"
      fi
      attempt=$((attempt + 1))
      ((attempt <= MAX_RESTARTS)) || die "giving up after $MAX_RESTARTS restarts (TPU state $state)"
      log "TPU state $state after status $rc: restart $attempt/$MAX_RESTARTS, resuming from $WORKDIR"
      is_ready "$state" || INSTALLED=0
    done ;;
esac
