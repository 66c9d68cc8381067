"""Device mesh (`data`, `fsdp`) from the config, and multi-process start-up."""
from __future__ import annotations

import os

import jax
import numpy as np

AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over both axes


def mesh_shape(data: int, fsdp: int, num_devices: int) -> tuple[int, int]:
    """Resolves -1 entries: `fsdp=-1` takes all devices left after `data` (data=-1 then means 1), `data=-1` takes
    the rest after `fsdp`. Raises `ValueError` when the product is not the device count."""
    if data == 0 or fsdp == 0 or data < -1 or fsdp < -1:
        raise ValueError(f"mesh.data={data}, mesh.fsdp={fsdp}: use positive sizes or -1")
    if fsdp == -1:
        data = 1 if data == -1 else data
        if num_devices % data:
            raise ValueError(f"mesh.data={data} does not divide the {num_devices} devices")
        fsdp = num_devices // data
    elif data == -1:
        if num_devices % fsdp:
            raise ValueError(f"mesh.fsdp={fsdp} does not divide the {num_devices} devices")
        data = num_devices // fsdp
    if data * fsdp != num_devices:
        raise ValueError(f"mesh data={data} x fsdp={fsdp} = {data * fsdp} but there are {num_devices} devices")
    return data, fsdp


def make_mesh(mesh_cfg, devices=None) -> jax.sharding.Mesh:
    """`jax.make_mesh` over all (or the given) devices with axes (`data`, `fsdp`) sized by `mesh_cfg`."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(int(mesh_cfg.data), int(mesh_cfg.fsdp), len(devices))
    # Auto axes: GSPMD propagates shardings through the towers; the loss is written explicitly with shard_map.
    return jax.make_mesh(shape, AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2, devices=devices)


def batch_size_per_process(global_batch: int, mesh: jax.sharding.Mesh) -> int:
    """Rows each process feeds; checks that the global batch splits evenly over processes and devices."""
    n_dev = int(np.prod([mesh.shape[a] for a in BATCH_AXES]))
    if global_batch % n_dev:
        raise ValueError(f"batch_size={global_batch} is not divisible by the {n_dev} devices of the mesh")
    n_proc = jax.process_count()
    if global_batch % n_proc:
        raise ValueError(f"batch_size={global_batch} is not divisible by the {n_proc} processes")
    return global_batch // n_proc


def maybe_initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
    """Calls `jax.distributed.initialize()` when this run is one of several processes.

    Explicit arguments win; otherwise `JAX_COORDINATOR_ADDRESS`/`JAX_NUM_PROCESSES`/`JAX_PROCESS_ID` are read, and
    SLURM (`SLURM_NTASKS>1`) and TPU pods (`TPU_WORKER_HOSTNAMES` with several hosts) are auto-detected by JAX.
    Returns True when initialized. Must run before any other JAX call touches the devices.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num_processes = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0)
    if process_id < 0:
        process_id = int(os.environ.get("JAX_PROCESS_ID", "-1") or -1)
    if coordinator_address and num_processes > 1:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=None if process_id < 0 else process_id)
        return True
    slurm = int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1
    # libtpu may leave a "WARNING: could not determine ..." sentence in this variable: count host names only.
    hosts = [h.strip() for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")]
    tpu_hosts = len([h for h in hosts if h and " " not in h]) > 1
    if slurm or tpu_hosts:
        jax.distributed.initialize()
        return True
    return False
