"""2 processes x 4 CPU devices on localhost (`jax.distributed.initialize`) train exactly like 1 process x 8
devices: same global batches (each process feeds its slice), same logged losses, same final parameters, and the
multi-process orbax checkpoint restores in a single process.

Run as a script (`python tests/test_train_multiprocess.py WORKDIR PROCESS_ID NUM_PROCESSES PORT`) it is one worker.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS, B, L, CROP = 6, 16, 16, 32


class SyntheticData:
    """Test double for the pipeline: global batch i is fixed by i; this process feeds rows of its slice."""

    text_len = L

    def __init__(self, process_index, process_count):
        self.pi, self.pc = process_index, process_count

    def train_iterator(self):
        return _Iter(self.pi, self.pc)

    def eval_batches(self):
        return iter(())


class _Iter:
    def __init__(self, pi, pc):
        self.pi, self.pc, self.i = pi, pc, 0

    def __iter__(self):
        return self

    def __next__(self):
        rng = np.random.default_rng(1000 + self.i % 3)  # 3 distinct batches, so the loss can fall
        self.i += 1
        lens = rng.integers(4, L + 1, size=B)
        mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
        glob = {"image": rng.integers(0, 256, (B, CROP, CROP, 3), dtype=np.uint8),
                "input_ids": (rng.integers(1000, 5000, (B, L)) * mask).astype(np.int32), "attention_mask": mask}
        n = B // self.pc
        return {k: v[self.pi * n:(self.pi + 1) * n] for k, v in glob.items()}

    def get_state(self):
        return json.dumps({"i": self.i}).encode()

    def set_state(self, state):
        self.i = json.loads(state)["i"]

    def start_prefetch(self):
        pass


def _worker(workdir, pid, nproc, port):
    from exif_jax.train import mesh as mesh_lib

    if nproc > 1:
        assert mesh_lib.maybe_initialize_distributed(f"localhost:{port}", nproc, pid)
    import jax

    from configs.common import base_config, with_model
    from exif_jax.models import test_model_config as tiny
    from exif_jax.train.trainer import train

    assert jax.process_count() == nproc and jax.device_count() == 8
    c = base_config()
    with_model(c, tiny("vit"))
    c.batch_size, c.total_steps, c.log_every, c.eval_every, c.checkpoint_every = B, STEPS, 1, 0, 3
    c.data.crop, c.data.max_text_len = CROP, L
    c.mesh.data, c.mesh.fsdp = 2, 4  # FSDP axis inside a process, data axis across them
    c.optim.lr, c.optim.warmup_steps = 3e-4, 2
    train(c, workdir, data=SyntheticData(jax.process_index(), jax.process_count()))


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, nproc, devices):
    flags = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"  # fast compile
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu",
               PYTHONPATH=str(REPO))
    port = _free_port()
    return [subprocess.Popen([sys.executable, __file__, str(workdir), str(i), str(nproc), str(port)], env=env,
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(nproc)]


def test_two_processes_equal_one(tmp_path):
    procs = _launch(tmp_path / "one", 1, 8) + _launch(tmp_path / "two", 2, 4)
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    rows = {name: [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("one", "two")}
    assert [r["step"] for r in rows["two"]] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([r["loss"] for r in rows["two"]], [r["loss"] for r in rows["one"]], rtol=1e-5)
    assert rows["one"][-1]["loss"] < rows["one"][0]["loss"]

    from flax import nnx

    from exif_jax.train.checkpointing import restore_model

    flat = {}
    for name in ("one", "two"):
        _, model = restore_model(tmp_path / name)
        flat[name] = {k: np.asarray(v[...]) for k, v in nnx.to_flat_state(nnx.state(model))}
    keys = [k for k in flat["one"] if np.issubdtype(flat["one"][k].dtype, np.floating)]
    a = np.concatenate([flat["one"][k].ravel() for k in keys])
    b = np.concatenate([flat["two"][k].ravel() for k in keys])
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-5


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
