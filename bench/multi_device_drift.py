"""What is exact and what drifts when the same training runs on 8 devices instead of 1 (README, "Train").

    python bench/multi_device_drift.py [--steps 10]      # 8 fake CPU devices; writes bench/results/multi_device_drift.json

For each image tower (the smoke config's narrow ResNet with BatchNorm, and a tiny ViT), the same 10 steps at the
same global batch run on a 1-device mesh and on 8 devices (`mesh.data=8`). Reported per step: the loss difference
8-vs-1, and, as the yardstick, the difference between two 1-device runs whose initial parameters differ by a
relative 1e-7 (float32 roundoff size). When 8-vs-1 is no larger than that, the sharded run is as exact as float32
allows and the rest is the model's own sensitivity to roundoff (BatchNorm amplifies it; a ViT does not).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8 " + os.environ.get("XLA_FLAGS", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs.common import base_config, with_model  # noqa: E402
from exif_jax.models import tiny_model_config  # noqa: E402
from exif_jax.train import mesh as mesh_lib, sharding, state as state_lib, step as step_lib  # noqa: E402

B, L = 16, 16


def config(tower: str, data: int, steps: int):
    c = base_config()
    if tower == "resnet":  # the smoke config's narrow ResNet (BatchNorm), 32 px crops
        with_model(c, tiny_model_config("resnet50", **{"resnet.width": 16, "resnet.stages": (1, 1, 1, 1)}))
        c.data.crop = 32
    else:
        with_model(c, tiny_model_config("vit"))
        c.data.crop = int(c.model.image_size)
    c.batch_size, c.total_steps, c.data.max_text_len = B, steps, L
    c.mesh.data, c.mesh.fsdp = data, 1
    c.optim.lr, c.optim.warmup_steps = 3e-4, 3
    return c


def batches(crop: int, steps: int):
    rng = np.random.default_rng(1234)
    out = []
    for _ in range(4):
        lens = rng.integers(4, L + 1, size=B)
        mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
        out.append({"image": rng.integers(0, 256, (B, crop, crop, 3), dtype=np.uint8),
                    "input_ids": (rng.integers(1000, 5000, (B, L)) * mask).astype(np.int32),
                    "attention_mask": mask})
    return [out[i % 4] for i in range(steps)]


def run(c, devices, perturb: float = 0.0) -> np.ndarray:
    mesh = mesh_lib.make_mesh(c.mesh, devices=devices)
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(c, mesh)
        state = state_lib.init_state(c, mesh, spec)
        if perturb:
            keys = iter(jax.random.split(jax.random.key(7), len(jax.tree.leaves(state))))
            state = jax.tree.map(lambda x: x * (1 + perturb * jax.random.normal(next(keys), x.shape, x.dtype))
                                 if jax.numpy.issubdtype(x.dtype, jax.numpy.floating) else x, state)
        step = step_lib.jit_step(c, mesh, spec)
        bs = sharding.batch_sharding(mesh)
        losses = []
        for b in batches(int(c.data.crop), int(c.total_steps)):
            state, m = step(state, {k: jax.device_put(v, bs) for k, v in b.items()})
            losses.append(float(m["loss"]))
    return np.asarray(losses)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "multi_device_drift.json"))
    args = ap.parse_args()
    results = {}
    for tower in ("resnet", "vit"):
        one = run(config(tower, 1, args.steps), jax.devices()[:1])
        eight = run(config(tower, 8, args.steps), jax.devices())
        nudged = run(config(tower, 1, args.steps), jax.devices()[:1], perturb=1e-7)
        d8, dp = np.abs(eight - one), np.abs(nudged - one)
        results[tower] = {"loss_1dev": one.tolist(), "loss_8dev": eight.tolist(), "loss_1dev_perturbed": nudged.tolist(),
                          "max_abs_diff_8_vs_1": float(d8.max()), "step1_abs_diff_8_vs_1": float(d8[0]),
                          "max_abs_diff_perturbed_1e-7": float(dp.max())}
        print(f"{tower:>6}: |loss 8 dev - 1 dev| step 1 {d8[0]:.1e}, max over {args.steps} steps {d8.max():.1e}; "
              f"1 dev with params x (1 + 1e-7 noise): max {dp.max():.1e}", flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"steps": args.steps, "batch": B, **results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
