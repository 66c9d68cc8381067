"""XLA compile time of the train-state initialisation and of the train step, for `vit_b16` and `paper_rn50`.

    python bench/compile_time.py                          # CPU -> bench/results/compile_time.json
    python bench/compile_time.py --configs vit_b16 --skip-step --out /tmp/ct.json
    python bench/compile_time.py --threefry-unrolled --skip-step --out bench/results/compile_time_unrolled.json

Same run, same machine, one device: `jax.jit(init, out_shardings=...).lower().compile()` of
`exif_jax.train.state.init_state`'s program, with the repeated transformer layers built (a) one by one, the old
inline program (`exif_jax.models.layers.SCAN_INIT = False`) and (b) under one `lax.scan` (the default); both give
bitwise the same arrays (checked here on the parameter count and checksums of the first run). Then the compile of the
train step (`exif_jax.train.step.jit_step(...).lower(...).compile()`). Init does not depend on the batch size, the
step is compiled at `--batch`. Reports seconds (best of `--repeat`) and the before/after ratio, plus the init
program's HLO size. On CPU JAX lowers each Threefry call to a rolled loop; on GPU/TPU to 20 unrolled rounds, which
is what makes a big init program slow there: `--threefry-unrolled` lowers it the GPU/TPU way on CPU too.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _config(name: str, batch: int, device: str):
    cfg = importlib.import_module(f"configs.{name}").get_config()
    cfg.batch_size = batch
    cfg.mesh.data, cfg.mesh.fsdp = 1, 1
    if device == "cpu":
        cfg.model.dtype = "float32"
    return cfg


def _unrolled_threefry_on_cpu():
    """Lower `threefry2x32` on CPU as JAX does for GPU/TPU (unrolled rounds; same numbers)."""
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32 as tf

    mlir.register_lowering(tf.threefry2x32_p, tf._threefry2x32_lowering_rule, platform="cpu", inline=False)


def _init_compile(cfg, mesh, spec, scan_init: bool, run: bool, repeat: int = 1):
    best, checksum = None, None
    for i in range(repeat):
        r, c = _init_compile_once(cfg, mesh, spec, scan_init, run and i == 0)
        checksum = c if i == 0 else checksum
        best = r if best is None or r["compile_s"] < best["compile_s"] else best
    return best, checksum


def _init_compile_once(cfg, mesh, spec, scan_init: bool, run: bool):
    import jax
    import numpy as np
    from flax import nnx

    from exif_jax.models import layers
    from exif_jax.train import state as state_lib

    layers.SCAN_INIT = scan_init
    try:
        def init():
            model = state_lib.default_build_model(cfg.model, nnx.Rngs(int(cfg.seed)))
            return nnx.state((model, nnx.Optimizer(model, spec.tx, wrt=nnx.Param)))

        with jax.set_mesh(mesh):
            t0 = time.perf_counter()
            lowered = jax.jit(init, out_shardings=spec.shardings).lower()
            t1 = time.perf_counter()
            compiled = lowered.compile()
            t2 = time.perf_counter()
            checksum = None
            if run:
                leaves = [x for x in jax.tree.leaves(compiled()) if not jax.dtypes.issubdtype(x.dtype,
                                                                                             jax.dtypes.prng_key)]
                checksum = [float(np.asarray(x, np.float64).sum()) for x in leaves]
    finally:
        layers.SCAN_INIT = True
    return {"lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
            "hlo_chars": len(compiled.as_text())}, checksum


def bench(name, batch, device, skip_step, repeat=1):
    import jax

    from exif_jax.train import mesh as mesh_lib, state as state_lib, step as step_lib

    cfg = _config(name, batch, device)
    mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(cfg, mesh)
    out = {}
    out["init_before"], sum_before = _init_compile(cfg, mesh, spec, scan_init=False, run=True, repeat=repeat)
    print(f"{name}: init compile, layers inline : {out['init_before']}", flush=True)
    out["init_after"], sum_after = _init_compile(cfg, mesh, spec, scan_init=True, run=True, repeat=repeat)
    print(f"{name}: init compile, layers scanned: {out['init_after']}", flush=True)
    out["init_same_arrays"] = sum_before == sum_after
    out["init_compile_speedup"] = round(out["init_before"]["compile_s"] / max(out["init_after"]["compile_s"], 1e-9), 2)
    if not skip_step:
        with jax.set_mesh(mesh):
            jitted = step_lib.jit_step(cfg, mesh, spec)
            ab = step_lib.abstract_batch(cfg, mesh)
            t0 = time.perf_counter()
            lowered = jitted.lower(spec.abstract, ab)
            t1 = time.perf_counter()
            lowered.compile()
            t2 = time.perf_counter()
        out["step"] = {"lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2), "batch": batch}
        print(f"{name}: step compile: {out['step']}", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="vit_b16,paper_rn50")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "tpu"])
    p.add_argument("--skip-step", action="store_true", help="only the init compile")
    p.add_argument("--repeat", type=int, default=1, help="compile each init program N times, keep the fastest")
    p.add_argument("--threefry-unrolled", action="store_true", help="CPU: lower Threefry as on GPU/TPU")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "compile_time.json"))
    a = p.parse_args(argv)
    if a.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    if a.threefry_unrolled:
        _unrolled_threefry_on_cpu()
    results = {"device": str(jax.devices()[0].device_kind), "platform": platform.platform(),
               "jax": jax.__version__, "threefry_unrolled": a.threefry_unrolled, "repeat": a.repeat, "configs": {}}
    for name in a.configs.split(","):
        results["configs"][name] = bench(name, a.batch, a.device, a.skip_step, a.repeat)
    for name, r in results["configs"].items():
        print(f"{name:12s} init compile {r['init_before']['compile_s']:7.1f}s -> {r['init_after']['compile_s']:6.1f}s "
              f"(x{r['init_compile_speedup']}, same arrays: {r['init_same_arrays']})"
              + (f"  step compile {r['step']['compile_s']:.1f}s" if "step" in r else ""))
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
