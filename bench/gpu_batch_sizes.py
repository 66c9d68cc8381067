"""Largest train batch per GPU, found by compiling the real train step for the GPU on this CPU (no GPU needed).

    flock /tmp/exif_cpu.lock python bench/gpu_batch_sizes.py            # -> bench/results/gpu_batch_sizes.json
    python bench/gpu_batch_sizes.py --combos paper_rn50:bfloat16 --chips h200 --points 1024,2048

For each config/dtype: compiles the one-GPU train step (`exif_jax.aot`, the program the trainer runs, for an
`h100x1` target description) at two batch sizes, fits peak memory per device = fixed + per-sample x batch, predicts
the largest batch (a multiple of `--multiple`) whose peak stays under `--headroom` of each chip's memory, and
verifies that prediction with one more compile per chip (stepping down by `--multiple` while the verified peak is
over). The headroom leaves room for what the compile does not count: the CUDA context, cuDNN/cuBLAS workspaces,
autotuning buffers and allocator fragmentation (`bench/device_check.sh` runs with XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
and falls back to half the batch on an out-of-memory). Text length 64 tokens (the earlier GPU number's).
Every compile takes ~40-70 s on the 2-core development machine; the JSON keeps every point.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exif_jax import aot  # noqa: E402

COMBOS = ("paper_rn50:float32", "paper_rn50:bfloat16", "vit_b16:bfloat16")
DEFAULT_POINTS = {"paper_rn50:float32": (512, 1024), "paper_rn50:bfloat16": (1024, 2048),
                  "vit_b16:bfloat16": (1024, 2048)}


def _config(name: str, dtype: str, batch: int, text_len: int):
    cfg = importlib.import_module(f"configs.{name}").get_config()
    cfg.batch_size = batch
    cfg.data.max_text_len = text_len
    cfg.mesh.data, cfg.mesh.fsdp = 1, 1
    cfg.model.dtype = dtype
    return cfg


def peak_bytes(name: str, dtype: str, batch: int, chip: str, text_len: int) -> dict:
    """Compiles for `<chip>x1` and returns the memory report, whether or not it fits (our check is lifted: the
    compiler still sees the card's real memory size in its target description)."""
    target = aot.parse_topology(f"{chip}x1")
    unlimited = dataclasses.replace(target, chip=dataclasses.replace(target.chip, hbm_bytes=1 << 60))
    t0 = time.perf_counter()
    r = aot.compile_for_target(_config(name, dtype, batch, text_len), unlimited, config_name=f"configs/{name}.py")
    m = r["memory_per_device"]
    out = {"chip": chip, "batch": batch, "peak": m["peak"], "temporaries": m["temporaries"],
           "arguments": m["arguments"], "hbm": target.chip.hbm_bytes, "peak_fraction": m["peak"] / target.chip.hbm_bytes,
           "flops_per_step": r["flops_per_step"], "compile_s": round(time.perf_counter() - t0, 1)}
    print(f"[sizes] {name} {dtype} {chip} batch {batch}: peak {m['peak'] / aot.GiB:.2f} GiB "
          f"({100 * out['peak_fraction']:.1f}% of {target.chip.hbm_bytes / aot.GiB:.1f} GiB), "
          f"compile {out['compile_s']} s", flush=True)
    return out


def _save(out: pathlib.Path, res: dict) -> None:
    """After every compile: nothing computed is lost if the run is stopped."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--combos", default=",".join(COMBOS), help="config:dtype list")
    p.add_argument("--chips", default="h100,h200")
    p.add_argument("--points", default="", help="two batch sizes for the line fit (default per combo)")
    p.add_argument("--text-len", type=int, default=64)
    p.add_argument("--headroom", type=float, default=0.85, help="fraction of the card's memory the peak may use")
    p.add_argument("--multiple", type=int, default=128)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu_batch_sizes.json"))
    a = p.parse_args(argv)
    aot.prepare_env()  # compile-only: JAX on the host CPU, devices from the topology
    out = pathlib.Path(a.out)
    res = json.loads(out.read_text()) if out.is_file() else {}
    res.update({"what": "largest one-GPU train batch by compiling for the GPU on the CPU (bench/gpu_batch_sizes.py)",
                "command": "python bench/gpu_batch_sizes.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "text_len": a.text_len, "headroom": a.headroom, "multiple": a.multiple})
    res.setdefault("combos", {})
    for combo in [c for c in a.combos.split(",") if c]:
        name, dtype = combo.split(":")
        pts = tuple(int(x) for x in a.points.split(",")) if a.points else DEFAULT_POINTS[combo]
        first = a.chips.split(",")[0]
        fit_points = []
        res["combos"][combo] = {"fit_points": fit_points, "chips": {}}
        for b in pts:
            fit_points.append(peak_bytes(name, dtype, b, first, a.text_len))
            _save(out, res)
        (b1, p1), (b2, p2) = [(q["batch"], q["peak"]) for q in fit_points]
        per_sample = (p2 - p1) / (b2 - b1)
        fixed = p1 - per_sample * b1
        entry = {"command": res["command"], "fit_points": fit_points, "per_sample_bytes": per_sample,
                 "fixed_bytes": fixed, "chips": {}}
        res["combos"][combo] = entry
        for chip in a.chips.split(","):
            hbm = aot.CHIPS[chip].hbm_bytes
            limit = a.headroom * hbm
            b = int((limit - fixed) / per_sample) // a.multiple * a.multiple
            checks = []
            entry["chips"][chip] = {"max_batch": None, "predicted_from_fit": b, "verified": checks}
            while b >= a.multiple:
                q = peak_bytes(name, dtype, b, chip, a.text_len)
                checks.append(q)
                _save(out, res)
                if q["peak"] <= limit:
                    break
                # Over: XLA's memory is not linear in the batch everywhere, so refit through the two largest
                # batches compiled so far (the over point among them) rather than stepping down one multiple.
                pts = sorted({(x["batch"], x["peak"]) for x in fit_points + checks})[-2:]
                (c1, q1), (c2, q2) = pts
                slope = (q2 - q1) / (c2 - c1) if c2 != c1 else per_sample
                nxt = int(c2 - (q2 - limit) / max(slope, 1.0)) // a.multiple * a.multiple
                b = min(nxt, b - a.multiple)
            entry["chips"][chip]["max_batch"] = b
            print(f"[sizes] {name} {dtype} {chip}: largest batch {b} (peak "
                  f"{checks[-1]['peak'] / aot.GiB:.2f} GiB of {hbm / aot.GiB:.1f})", flush=True)
        _save(out, res)
    print(json.dumps({c: {k: v["max_batch"] for k, v in e["chips"].items()} for c, e in res["combos"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
