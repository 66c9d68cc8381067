"""launch/*.sh: dry runs, input checks, and real runs against stand-ins for the cluster tools.

gcloud, srun and nvidia-smi do not exist here: dry runs must not need them, and the control flow (preemption
restart, SLURM wrapper, process failure) is exercised with small fake executables on PATH that record their calls.
The local multi-process launch runs real `jax.distributed` processes through the trainer's initialisation code.
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import textwrap
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"


def _env(**kw):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "TPU_"))}
    env.pop("XLA_FLAGS", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update({k: str(v) for k, v in kw.items()})
    return env


def _run(script, *args, env=None, timeout=60, path_prefix=None):
    env = dict(env or _env())
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(LAUNCH / script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake(dirpath: pathlib.Path, name: str, body: str) -> None:
    p = dirpath / name
    p.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    p.chmod(0o755)


# ------------------------------------------------------------------------------------------------ local.sh

def test_local_dry_run_prints_one_command_per_process():
    r = _run("local.sh", "--dry-run", "--config", "configs/smoke.py", "--workdir", "/tmp/w", "--config.total_steps=3",
             env=_env(NUM_PROCESSES=2, DEVICES_PER_PROCESS=4, PORT=23001))
    assert r.returncode == 0, r.stderr
    cmds = [shlex.split(line.rstrip(" &")) for line in r.stdout.splitlines() if not line.startswith("#")]
    assert len(cmds) == 2
    for i, cmd in enumerate(cmds):
        env = dict(a.split("=", 1) for a in cmd[1:] if "=" in a and not a.startswith("-"))
        assert env["JAX_COORDINATOR_ADDRESS"] == "localhost:23001"
        assert env["JAX_NUM_PROCESSES"] == "2" and env["JAX_PROCESS_ID"] == str(i)
        assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4" and env["JAX_PLATFORMS"] == "cpu"
        assert cmd[cmd.index("exif-jax"):cmd.index("exif-jax") + 2] == ["exif-jax", "train"]
        assert "--config.total_steps=3" in cmd and f"/tmp/w/logs/process_{i}.log" in cmd


@pytest.mark.parametrize("env, args, needle", [
    ({}, ["--config", "configs/smoke.py"], "missing --workdir"),
    ({}, ["--workdir", "/tmp/w"], "missing --config"),
    ({"NUM_PROCESSES": "two"}, ["--config", "c", "--workdir", "w"], "NUM_PROCESSES='two'"),
    ({"DEVICES_PER_PROCESS": "0"}, ["--config", "c", "--workdir", "w"], "DEVICES_PER_PROCESS='0'"),
    ({"DEVICES_PER_PROCESS": "2", "GPUS_PER_PROCESS": "1"}, ["--config", "c", "--workdir", "w"], "not both"),
    ({"PORT": "70000"}, ["--config", "c", "--workdir", "w"], "PORT='70000'"),
])
def test_local_input_checks(env, args, needle):
    r = _run("local.sh", "--dry-run", *args, env=_env(**env))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("local.sh: ") and needle in lines[0], r.stderr


WORKER = """
import json, sys
import numpy as np
from exif_jax.train.mesh import maybe_initialize_distributed
assert maybe_initialize_distributed(), "not initialised"
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
mesh = jax.make_mesh((jax.device_count(),), ("data",))
pid = jax.process_index()
local = np.arange(4, dtype=np.float32) + 10 * pid  # this process's rows
glob = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local, (8,))
total = float(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(glob))
print(json.dumps({"pid": pid, "count": jax.process_count(), "devices": jax.device_count(),
                  "local": jax.local_device_count(), "total": total, "argv": sys.argv[1:]}))
"""


def test_local_two_processes_form_one_jax_system(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    wd = tmp_path / "wd"
    r = _run("local.sh", "--config", "configs/smoke.py", "--workdir", str(wd), timeout=120,
             env=_env(NUM_PROCESSES=2, DEVICES_PER_PROCESS=4, PORT=_free_port(),
                      TRAIN_CMD=f"{sys.executable} {worker}"))
    assert r.returncode == 0, r.stderr + r.stdout
    outs = []
    for i in range(2):
        lines = [ln for ln in (wd / "logs" / f"process_{i}.log").read_text().splitlines() if ln.startswith("{")]
        outs.append(json.loads(lines[-1]))
    assert [o["pid"] for o in outs] == [0, 1]
    # 2 processes x 4 fake devices = one 8-device system; the sum crosses processes: (0+1+2+3) + (10+...+13).
    for o in outs:
        assert (o["count"], o["devices"], o["local"]) == (2, 8, 4)
        assert o["total"] == sum(range(4)) + sum(range(10, 14))
        assert o["argv"] == ["--config", "configs/smoke.py", "--workdir", str(wd)]
    assert '"pid": 0' in r.stdout  # process 0 is streamed to the terminal


def test_local_failure_of_one_process_stops_the_others(tmp_path):
    worker = tmp_path / "w.sh"
    worker.write_text('if [[ "$JAX_PROCESS_ID" == 1 ]]; then echo boom; exit 3; fi; sleep 60\n')
    t0 = time.time()
    r = _run("local.sh", "--config", "c", "--workdir", str(tmp_path / "wd"), timeout=50,
             env=_env(NUM_PROCESSES=2, PORT=_free_port(), TRAIN_CMD=f"bash {worker}"))
    assert r.returncode == 3
    assert time.time() - t0 < 30
    assert "process 1 exited with status 3" in r.stderr
    assert (tmp_path / "wd" / "logs" / "process_1.log").read_text().strip() == "boom"


# --------------------------------------------------------------------------------------- gpu_single_host.sh

def test_gpu_single_host_dry_runs():
    r = _run("gpu_single_host.sh", "-n", "--config", "c", "--workdir", "w", env=_env(NUM_GPUS=4))
    assert r.returncode == 0, r.stderr
    cmd = [ln for ln in r.stdout.splitlines() if not ln.startswith("#")]
    assert len(cmd) == 1
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in cmd[0] and cmd[0].endswith("exif-jax train --config c --workdir w")
    r = _run("gpu_single_host.sh", "-n", "--config", "c", "--workdir", "w", env=_env(NUM_GPUS=2, PROCESS_PER_GPU=1))
    assert r.returncode == 0, r.stderr
    cmds = [ln for ln in r.stdout.splitlines() if not ln.startswith("#")]
    assert len(cmds) == 2
    assert "JAX_PROCESS_ID=0" in cmds[0] and "CUDA_VISIBLE_DEVICES=0 " in cmds[0]
    assert "JAX_PROCESS_ID=1" in cmds[1] and "CUDA_VISIBLE_DEVICES=1 " in cmds[1]


def test_gpu_single_host_checks(tmp_path):
    r = _run("gpu_single_host.sh", "-n", "--config", "c", "--workdir", "w")
    assert r.returncode == 2 and "set NUM_GPUS=N for a dry run" in r.stderr
    _fake(tmp_path, "nvidia-smi", 'echo "GPU 0: NVIDIA H100 (UUID: a)"; echo "GPU 1: NVIDIA H100 (UUID: b)"\n')
    r = _run("gpu_single_host.sh", "-n", "--config", "c", "--workdir", "w", env=_env(NUM_GPUS=4),
             path_prefix=tmp_path)
    assert r.returncode == 2 and "NUM_GPUS=4 but nvidia-smi lists only 2 GPUs" in r.stderr
    r = _run("gpu_single_host.sh", "-n", "--config", "c", "--workdir", "w", path_prefix=tmp_path)
    assert r.returncode == 0 and "CUDA_VISIBLE_DEVICES=0,1 " in r.stdout


# ----------------------------------------------------------------------------------------- slurm_gpu.sbatch

def test_slurm_dry_run_modes(tmp_path):
    cfg = "configs/paper_rn50.py:runlocal"
    r = _run("slurm_gpu.sbatch", "--config.batch_size=64", env=_env(DRY_RUN=1, CONFIG=cfg, WORKDIR="/shared/run"))
    assert r.returncode == 0, r.stderr
    assert "2 nodes x 8 GPUs = 16 GPUs, 16 processes (per-gpu)" in r.stderr
    cmd = shlex.split(r.stdout.strip())
    assert cmd[:3] == ["srun", "--kill-on-bad-exit=1", "--ntasks=16"] and "--ntasks-per-node=8" in cmd
    assert cmd[-7:] == ["exif-jax", "train", "--config", cfg, "--workdir", "/shared/run", "--config.batch_size=64"]
    r = _run("slurm_gpu.sbatch", env=_env(DRY_RUN=1, CONFIG=cfg, WORKDIR="/shared/run", NODES=4, TASKS_PER_NODE=1))
    assert r.returncode == 0 and "4 nodes x 8 GPUs = 32 GPUs, 4 processes (per-node)" in r.stderr


@pytest.mark.parametrize("env, needle", [
    ({"WORKDIR": "/shared/r"}, "CONFIG is not set"),
    ({"CONFIG": "configs/smoke.py"}, "WORKDIR is not set"),
    ({"CONFIG": "configs/nope.py", "WORKDIR": "/shared/r"}, "config file 'configs/nope.py' not found"),
    ({"CONFIG": "configs/smoke.py", "WORKDIR": "/tmp/r"}, "is node-local"),
    ({"CONFIG": "configs/smoke.py", "WORKDIR": "/shared/r", "TASKS_PER_NODE": 3}, "wrong topology: 3 tasks per node"),
    ({"CONFIG": "configs/smoke.py", "WORKDIR": "/shared/r", "DRY_RUN": 0}, "not inside a SLURM job"),
])
def test_slurm_input_checks(env, needle):
    r = _run("slurm_gpu.sbatch", env=_env(**{"DRY_RUN": 1, **env}))
    assert r.returncode == 2 and needle in r.stderr, r.stderr


PROBE = """
import json, os, sys
from jax._src.clusters.slurm_cluster import SlurmCluster
keys = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_LOCALID")
print(json.dumps({"env": {k: os.environ.get(k) for k in keys}, "slurm_detected": SlurmCluster.is_env_present(),
                  "argv": sys.argv[1:]}))
"""


@pytest.mark.parametrize("tasks_per_node", [8, 1])
def test_slurm_job_runs_srun_and_task_wrapper(tmp_path, tasks_per_node):
    """Inside a (simulated) job: srun is called with the task wrapper; the fake srun runs task 0 of it, and
    jax's own SLURM detection decides which GPUs a task sees (all of them in per-node mode)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    _fake(bindir, "srun", f"""
        echo "$@" > {tmp_path}/srun_args
        while [[ "$1" != bash ]]; do shift; done
        SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_STEP_NODELIST="$SLURM_JOB_NODELIST" SLURM_STEP_NUM_NODES=2 exec "$@"
    """)
    _fake(bindir, "scontrol", 'echo node007; echo node008\n')
    ntasks = 2 * tasks_per_node
    env = _env(CONFIG="configs/smoke.py", WORKDIR=str(tmp_path / "shared_run"), TRAIN_CMD=f"{sys.executable} {probe}",
               SLURM_JOB_ID=4242, SLURM_JOB_NUM_NODES=2, SLURM_NTASKS=ntasks, SLURM_NTASKS_PER_NODE=tasks_per_node,
               SLURM_GPUS_ON_NODE=8, SLURM_JOB_NODELIST="node[007-008]", SLURM_SUBMIT_DIR=str(REPO),
               LOCAL_WORKDIR_OK=1)
    r = _run("slurm_gpu.sbatch", "--config.total_steps=5", env=env, path_prefix=bindir, timeout=60)
    assert r.returncode == 0, r.stderr
    srun_args = (tmp_path / "srun_args").read_text()
    assert f"--ntasks={ntasks} --ntasks-per-node={tasks_per_node}" in srun_args
    out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    assert out["argv"] == ["--config", "configs/smoke.py", "--workdir", str(tmp_path / "shared_run"),
                           "--config.total_steps=5"]
    if tasks_per_node == 8:  # per GPU: jax detects SLURM and pins the task to GPU SLURM_LOCALID
        assert out["slurm_detected"] and out["env"]["JAX_COORDINATOR_ADDRESS"] is None
    else:  # per node: explicit coordinator (first node, jax's port rule), SLURM detection off -> all GPUs visible
        assert not out["slurm_detected"]
        assert out["env"] == {"JAX_COORDINATOR_ADDRESS": f"node007:{4242 % 4096 + 61440}", "JAX_NUM_PROCESSES": "2",
                              "JAX_PROCESS_ID": "0", "SLURM_LOCALID": None}


# -------------------------------------------------------------------------------------------------- tpu_pod.sh

TPU = dict(TPU_NAME="exif", ZONE="us-east5-a", ACCELERATOR_TYPE="v5p-128", CONFIG="configs/vit_b16.py",
           WORKDIR="gs://bucket/run")


def test_tpu_pod_dry_run_prints_the_gcloud_sequence():
    r = _run("tpu_pod.sh", "--dry-run", "run", "--config.batch_size=2048", env=_env(**TPU))
    assert r.returncode == 0, r.stderr
    cmds = [shlex.split(ln[2:]) for ln in r.stdout.splitlines() if ln.startswith("+ ")]
    verbs = [c[4] if c[0] == "gcloud" else c[0] for c in cmds]
    assert verbs == ["create", "git", "scp", "ssh", "ssh"]
    create = cmds[0]
    assert create[create.index("--accelerator-type") + 1] == "v5p-128" and "--zone" in create
    train = cmds[-1][cmds[-1].index("--command") + 1]
    assert "--worker=all" in cmds[-1]
    assert "exif-jax train --config configs/vit_b16.py --workdir gs://bucket/run --config.batch_size=2048" in train
    assert "64 chips, 16 hosts" in r.stderr


def test_tpu_pod_multi_slice_dry_run_uses_a_queued_resource():
    r = _run("tpu_pod.sh", "--dry-run", "run", "--config.batch_size=4096", env=_env(**TPU, NUM_SLICES=2))
    assert r.returncode == 0, r.stderr
    cmds = [shlex.split(ln[2:]) for ln in r.stdout.splitlines() if ln.startswith("+ ")]
    assert [c[3:5] if c[0] == "gcloud" else c[:1] for c in cmds] == [
        ["queued-resources", "create"], ["git"], ["queued-resources", "scp"], ["queued-resources", "ssh"],
        ["queued-resources", "ssh"]]
    create = cmds[0]
    assert create[5] == "exif" and create[create.index("--node-count") + 1] == "2"
    assert create[create.index("--node-prefix") + 1] == "exif"  # slices exif-0, exif-1
    assert create[create.index("--accelerator-type") + 1] == "v5p-128"
    assert create[create.index("--runtime-version") + 1] == "v2-alpha-tpuv5"
    for c in cmds[2:]:
        assert "--node=all" in c and "--worker=all" in c
    train = cmds[-1][cmds[-1].index("--command") + 1]
    assert "exif-jax train --config configs/vit_b16.py --workdir gs://bucket/run --config.batch_size=4096 " \
           "--config.mesh.dcn_data=2" in train
    assert "2 slices exif-0..1: 2 x v5p-128 (128 chips, 32 hosts)" in r.stderr
    r = _run("tpu_pod.sh", "-n", "check", env=_env(**TPU, NUM_SLICES=2))
    cmd = shlex.split(r.stdout.strip()[2:])
    assert r.returncode == 0 and cmd[cmd.index("--topology") + 1] == "2xv5p-128", r.stderr
    r = _run("tpu_pod.sh", "-n", "delete", env=_env(**TPU, NUM_SLICES=2))
    assert shlex.split(r.stdout.strip()[2:])[3:6] == ["queued-resources", "delete", "exif"] and "--force" in r.stdout


@pytest.mark.parametrize("env, needle", [
    ({"ACCELERATOR_TYPE": "v5p-100"}, "wrong topology: v5p-100 does not exist"),
    ({"NUM_SLICES": "0"}, "NUM_SLICES='0' must be a positive integer"),
    ({"ACCELERATOR_TYPE": "v6e-12"}, "wrong topology: v6e-12 does not exist"),
    ({"ACCELERATOR_TYPE": "tpu-big"}, "is not a TPU slice name"),
    ({"ZONE": ""}, "ZONE is not set"),
    ({"WORKDIR": ""}, "WORKDIR is not set"),
    ({"WORKDIR": "/home/me/run"}, "has 16 hosts; use a gs:// workdir"),
    ({"CONFIG": "configs/missing.py"}, "config file 'configs/missing.py' not found"),
])
def test_tpu_pod_input_checks(env, needle):
    r = _run("tpu_pod.sh", "-n", env=_env(**{**TPU, **env}))
    assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_tpu_pod_single_host_accepts_local_workdir_and_v5e_alias():
    r = _run("tpu_pod.sh", "-n", "train", env=_env(**{**TPU, "ACCELERATOR_TYPE": "v5e-8", "WORKDIR": "/home/me/r"}))
    assert r.returncode == 0, r.stderr
    r = _run("tpu_pod.sh", "-n", "create", env=_env(**{**TPU, "ACCELERATOR_TYPE": "v5e-16"}))
    assert "--accelerator-type v5litepod-16 --version v2-alpha-tpuv5-lite" in r.stdout


FAKE_GCLOUD = """
state_file={d}/state
echo "$*" >> {d}/calls
case "$4" in
  describe) cat "$state_file" 2>/dev/null || exit 1 ;;
  create) echo READY > "$state_file" ;;
  delete) rm -f "$state_file" ;;
  scp) ;;
  ssh)
    if [[ "$*" == *"exif-jax train"* ]]; then
      n=$(( $(cat {d}/trains 2>/dev/null || echo 0) + 1 )); echo $n > {d}/trains
      if ((n == 1)); then echo "step 10"; echo PREEMPTED > "$state_file"; exit 255; fi
      if [[ "{fail_again}" == 1 ]]; then exit 1; fi
      echo "step 20 done"
    fi ;;
esac
"""


def test_tpu_pod_recreates_and_resumes_after_preemption(tmp_path):
    _fake(tmp_path, "gcloud", FAKE_GCLOUD.format(d=tmp_path, fail_again=0))
    r = _run("tpu_pod.sh", "run", env=_env(**TPU, TMPDIR=tmp_path), path_prefix=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    verbs = [ln.split()[3] + (" train" if "exif-jax train" in ln else "")
             for ln in (tmp_path / "calls").read_text().splitlines()]
    assert verbs == ["describe", "create", "scp", "ssh", "ssh train",  # first attempt, preempted at step 10
                     "describe", "describe", "delete", "create", "scp", "ssh", "ssh train"]  # recreate + resume
    assert "restart 1/20, resuming from gs://bucket/run" in r.stderr and "step 20 done" in r.stdout
    import tarfile  # what was copied to the workers: this checkout's committed tree
    with tarfile.open(tmp_path / "exif-jax-src.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"exif-jax/setup.py", "exif-jax/launch/tpu_pod.sh", "exif-jax/configs/vit_b16.py"} <= names


def test_tpu_pod_does_not_loop_on_a_trainer_failure(tmp_path):
    _fake(tmp_path, "gcloud", FAKE_GCLOUD.format(d=tmp_path, fail_again=1))
    (tmp_path / "state").write_text("READY\n")
    (tmp_path / "trains").write_text("1\n")  # the first train call of this run already fails normally
    r = _run("tpu_pod.sh", "run", env=_env(**TPU, TMPDIR=tmp_path), path_prefix=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "the trainer failed (status 1) on a healthy TPU" in r.stderr
    assert "reusing TPU exif" in r.stderr


# ------------------------------------------------------------------------------------ make_quickstart_data.sh

def test_make_quickstart_data_dry_run(shared_data):
    r = _run("make_quickstart_data.sh", "--dry-run", env=_env(SHARED_DATA=shared_data))
    assert r.returncode == 0, r.stderr
    cmds = [shlex.split(ln) for ln in r.stdout.splitlines() if ln.startswith("jpegtran")]
    assert len(cmds) == 36
    for c in cmds:
        assert c[1:5] == ["-crop", c[2], "-copy", "all"] and c[2].startswith("384x384+")
        assert "/exif_samples_small/" not in c[-1]
    r = _run("make_quickstart_data.sh", env=_env(SHARED_DATA="/nonexistent"))
    assert r.returncode == 1 and "/nonexistent/photos_dev not found" in r.stderr


def test_tpu_pod_check_compiles_for_the_slice_first():
    r = _run("tpu_pod.sh", "-n", "check", "--config.batch_size=4096", env=_env(**TPU))
    assert r.returncode == 0, r.stderr
    cmd = shlex.split(r.stdout.strip()[2:])
    assert cmd[:2] == ["exif-jax", "compile"]
    assert cmd[cmd.index("--topology") + 1] == "v5p-128" and cmd[-1] == "--config.batch_size=4096"
    assert cmd[cmd.index("--config") + 1] == str(REPO / "configs/vit_b16.py")
