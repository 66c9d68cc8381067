"""Image crops per second of a train step with several crops per text (`data.views`), against one crop per text.

    python bench/views.py --config-arg text_len=256        # views 1,2,4 -> bench/results/views.json (256 tokens)
    python bench/views.py --config-arg text_len=128 --views 1,4 --out bench/results/views_textlen128.json

`data.views = V` puts V crops of one photo in each example: the text tower runs once for V image crops
(`exif_jax.train.views`). This times the jitted train step of `configs/real_cameras.py` (or `--config`) on one
device at batch B for each V, on synthetic batches of the step's own shapes (no input pipeline: this is the step's
cost), and reports ms per step, examples/s and image crops/s, with each V's crops/s as a ratio against V = 1 measured
in the same run. Every measurement runs in a fresh process, and the set is repeated `--rounds` times, interleaved
(a shared 2-core VM drifts over minutes); the headline is the median over rounds of each round's own ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _measure(config: str, arg: str, views: int, steps: int) -> dict:
    """One measurement in this process: compile, 2 warm-up steps, `steps` timed steps."""
    import jax
    import numpy as np

    from exif_jax.config_files import load as load_config
    from exif_jax.train import mesh as mesh_lib, sharding, state as state_lib, step as step_lib

    cfg = load_config(f"{config}:{arg}" if arg else config, lock=False)
    cfg.data.views = views
    if views < 2:  # one crop per text has no pair for the within-photo term (configs/real_cameras.py: consist=1)
        cfg.view_consistency = 0.0
    cfg.data.path = ""
    mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(cfg, mesh)
        state = state_lib.init_state(cfg, mesh, spec)
        step = step_lib.jit_step(cfg, mesh, spec)
        ab = step_lib.abstract_batch(cfg, mesh)
        rng = np.random.default_rng(0)
        B, L = ab["input_ids"].shape
        lens = rng.integers(L // 2, L + 1, size=B)
        mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
        batch = {"image": rng.integers(0, 256, ab["image"].shape, dtype=np.uint8),
                 "input_ids": (rng.integers(1000, 20000, (B, L)) * mask).astype(np.int32), "attention_mask": mask}
        bs = sharding.batch_sharding(mesh)
        batch = {k: jax.device_put(v, bs) for k, v in batch.items()}
        t0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m["loss"])
        compile_s = time.perf_counter() - t0
        for _ in range(2):
            state, m = step(state, batch)
        jax.block_until_ready(m["loss"])
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = step(state, batch)
        jax.block_until_ready(m["loss"])
        dt = (time.perf_counter() - t0) / steps
    return {"views": views, "batch": int(B), "text_len": int(L), "crop": int(cfg.data.crop), "ms_per_step": dt * 1e3,
            "examples_per_s": B / dt, "crops_per_s": B * views / dt, "compile_s": compile_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/views.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/real_cameras.py")
    p.add_argument("--config-arg", default="", help="config args, e.g. text_len=128")
    p.add_argument("--views", default="1,2,4", help="comma-separated V values (1 is always measured)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "views.json"))
    p.add_argument("--job", default="", help=argparse.SUPPRESS)  # internal: "V" -> one measurement as JSON
    a = p.parse_args(argv)
    if a.job:
        print(json.dumps(_measure(a.config, a.config_arg, int(a.job), a.steps)))
        return 0
    try:
        views = sorted({1, *(int(v) for v in a.views.split(",") if v.strip())})
    except ValueError:
        print(f"bench/views.py: --views {a.views!r}: expected comma-separated integers", file=sys.stderr)
        return 2
    if views[0] < 1:
        print(f"bench/views.py: --views {a.views!r}: every V must be >= 1", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    rounds = []
    for r in range(a.rounds):
        got = {}
        for v in views:
            cmd = [sys.executable, __file__, "--job", str(v), "--config", a.config, "--config-arg", a.config_arg,
                   "--steps", str(a.steps)]
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if res.returncode:
                tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"bench/views.py: views={v}: measurement failed: {tail}", file=sys.stderr)
                return 1
            got[v] = json.loads(res.stdout.strip().splitlines()[-1])
            got[v]["crops_per_s_ratio_vs_1"] = got[v]["crops_per_s"] / got[1]["crops_per_s"]
            print(f"round {r + 1}/{a.rounds}: views={v}: {got[v]['ms_per_step']:.0f} ms/step, "
                  f"{got[v]['crops_per_s']:.0f} crops/s ({got[v]['crops_per_s_ratio_vs_1']:.2f}x views=1)", flush=True)
        rounds.append(got)
    summary = []
    for v in views:
        summary.append({"views": v,
                        "ms_per_step": statistics.median(rd[v]["ms_per_step"] for rd in rounds),
                        "crops_per_s": statistics.median(rd[v]["crops_per_s"] for rd in rounds),
                        "crops_per_s_ratio_vs_1": statistics.median(rd[v]["crops_per_s_ratio_vs_1"] for rd in rounds)})
    first = rounds[0][1]
    print(f"\n{a.config}:{a.config_arg or '(defaults)'}, batch {first['batch']}, text {first['text_len']} tokens, "
          f"crop {first['crop']} px; median of {a.rounds} rounds")
    print("| views | ms / step | image crops / s | vs views=1 |\n|---|---|---|---|")
    for s in summary:
        print(f"| {s['views']} | {s['ms_per_step']:.0f} | {s['crops_per_s']:.0f} | "
              f"{s['crops_per_s_ratio_vs_1']:.2f}x |")
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "config": a.config, "config_arg": a.config_arg, "steps": a.steps, "rounds": rounds, "summary": summary,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_before": load_before, "load_after": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
