"""Train-step throughput of `paper_rn50` and `vit_b16` vs PyTorch baselines of the original training step.

    python bench/train_step.py --text-len 256 --dtypes float32,bfloat16 --towers  # CPU -> bench/results/train_step.json
    python bench/train_step.py --device gpu --batch 128 --out bench/results/train_step_gpu.json

Same run, same machine: (a) the exif-jax step (one jitted sharded step: forward, global-batch CLIP loss, backward,
optimizer) for each config on one device; (b) PyTorch: torchvision ResNet-50 (fc -> 768) + transformers
DistilBertModel (base, masked mean pooling), CLIP loss at scale 100, Adam(lr 1e-4, betas 0.9/0.98, eps 1e-6,
weight_decay 1e-4) -- once with text padded to 512 tokens as the original did, once at our text length (the
`clean` texts' bucket is 256: median 181, p95 236 tokens), and, when bf16 is benchmarked, once more at our length
under `torch.autocast(bfloat16)` so a bf16 step is compared with a bf16 step. On CPU the MFU denominator is this
machine's measured matmul peak (a 4096x768x3072 GEMM in JAX, fp32 and bf16 with an fp32 result; `cpu_matmul_ms`).
Reports samples/s, the model FLOPs per step (matmuls and convolutions of the traced step; XLA's own count too),
achieved TFLOP/s and MFU against the chip's dense bf16 peak (table below; `--peak-tflops` for others), and ratios
against both baselines. On a GPU, a PyTorch step that runs out of memory is retried at half the batch (`--no-halve`
turns that off); its record says the batch it ran at. `bench/device_check.sh` drives these jobs on one GPU.

On CPU every measurement runs in a fresh process (the JAX step never shares a process with PyTorch's OpenMP pool
or allocator) and the whole set is repeated `--rounds` times, interleaved, because a shared 2-core VM drifts by
up to 30% over minutes: the JSON keeps each round's step time and same-round ratios, the headline is the median.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Dense bf16 peak TFLOP/s per chip (MFU denominators), matched against the device name in this order (the most
# specific names first: "NVIDIA H100 PCIe" must not match the SXM part's "H100"). NVIDIA's datasheets list tensor
# rates "with sparsity"; dense is half. Sources: H100 datasheet (nvidia.com/en-us/data-center/h100: SXM BF16 1,979*,
# PCIe 1,513*, NVL 1,671* TFLOPS), H200 datasheet (nvidia.com/en-us/data-center/h200: SXM 1,979*, NVL 1,671*), A100
# datasheet (nvidia.com/en-us/data-center/a100: BF16 312 dense, 624 sparse; SXM and PCIe alike), L4 (242*), A10
# (125 dense), V100 (FP16 tensor 125); Cloud TPU system architecture pages for TPU v4/v5e/v5p/v6e.
PEAK_TFLOPS = {"H100 PCIe": 756.5, "H100 NVL": 835.5, "H200 NVL": 835.5, "GH200": 989.4, "H200": 989.4,
               "H100": 989.4, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0,
               "TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0, "TPU v6e": 918.0}
# Dense TF32 tensor peak (what XLA and cuBLAS use for float32 matmuls on Ampere/Hopper by default): half the bf16 rate.
TF32_PEAK_TFLOPS = {"H100 PCIe": 378.0, "H100 NVL": 417.5, "H200 NVL": 417.5, "GH200": 494.7, "H200": 494.7,
                    "H100": 494.7, "A100": 156.0}


def _peak(device_kind: str, override: float | None, table: dict | None = None):
    if override:
        return override
    for name, tf in (table or PEAK_TFLOPS).items():
        if name.lower() in device_kind.lower():
            return tf
    return None


def _jax_config(name: str, batch: int, text_len: int, dtype: str):
    import importlib

    cfg = importlib.import_module(f"configs.{name}").get_config()
    cfg.batch_size = batch
    cfg.data.max_text_len = text_len
    cfg.mesh.data, cfg.mesh.fsdp = 1, 1
    if dtype:
        cfg.model.dtype = dtype
    return cfg


def _timed(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


GEMM_FLOPS = 2 * 4096 * 768 * 3072  # DistilBERT's FFN matmul at batch 16 x 256 tokens


def cpu_gemm_table() -> dict:
    """Milliseconds of the FFN-shaped matmul in JAX by operand/result dtype (why bf16 helps little on XLA:CPU);
    `fp32_ms` and `bf16_to_fp32_ms` also give this CPU's matmul peak, the MFU denominator on CPU."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, dt, pref in (("fp32", jnp.float32, None), ("bf16_to_bf16", jnp.bfloat16, None),
                           ("bf16_to_fp32", jnp.bfloat16, jnp.float32)):
        a = jnp.asarray(rng.normal(size=(4096, 768)), dt)
        b = jnp.asarray(rng.normal(size=(768, 3072)), dt)
        mm = jax.jit(lambda x, y, pref=pref: jnp.dot(x, y, preferred_element_type=pref))
        out[name + "_ms"] = 1e3 * _timed(lambda: mm(a, b).block_until_ready(), 5)
    return out


def towers_jax(batch, text_len, dtype, steps) -> dict:
    """Seconds of image-tower and text-tower forward+backward alone (paper_rn50 towers, train-mode BatchNorm)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from exif_jax.models import build_model

    cfg = _jax_config("paper_rn50", batch, text_len, dtype)
    model = build_model(cfg.model, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, 124, 124, 3)), jnp.float32)
    ids = jnp.asarray(rng.integers(1000, 20000, (batch, text_len)), jnp.int32)
    mask = jnp.ones((batch, text_len), jnp.int32)
    gi = nnx.jit(lambda m: nnx.grad(lambda q: q.encode_image(x, train=True).astype(jnp.float32).sum())(m))
    gt = nnx.jit(lambda m: nnx.grad(lambda q: q.encode_text(ids, mask).astype(jnp.float32).sum())(m))
    return {"image_fwd_bwd_s": _timed(lambda: jax.block_until_ready(gi(model)), steps),
            "text_fwd_bwd_s": _timed(lambda: jax.block_until_ready(gt(model)), steps)}


def towers_torch(batch, text_len, steps) -> dict:
    import torch
    import torchvision
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    vis = torchvision.models.resnet50(num_classes=768).train()
    txt = DistilBertModel(DistilBertConfig(dropout=0.0, attention_dropout=0.0)).train()
    x = torch.randn(batch, 3, 124, 124)
    ids = torch.randint(1000, 20000, (batch, text_len))
    mask = torch.ones(batch, text_len, dtype=torch.long)

    def image():
        vis.zero_grad()
        vis(x).sum().backward()

    def text():
        txt.zero_grad()
        txt(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1).sum().backward()

    return {"image_fwd_bwd_s": _timed(image, steps), "text_fwd_bwd_s": _timed(text, steps)}


def bench_jax(name, batch, text_len, steps, device, peak, dtype=""):
    import jax
    import numpy as np

    from exif_jax.train import mesh as mesh_lib, state as state_lib, step as step_lib

    cfg = _jax_config(name, batch, text_len, dtype)
    mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(cfg, mesh)
        state = state_lib.init_state(cfg, mesh, spec)
        jitted = step_lib.jit_step(cfg, mesh, spec)
        ab = step_lib.abstract_batch(cfg, mesh, length=text_len)
        t0 = time.perf_counter()
        traced = jitted.trace(spec.abstract, ab)
        compiled = traced.lower().compile()
        compile_s = time.perf_counter() - t0
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        xla_flops = float((cost or {}).get("flops", 0.0))
        # Model FLOPs (matmuls and convolutions of the traced step, 2 per multiply-add): the MFU numerator, the
        # same on every backend (XLA's GPU count leaves out cuBLAS/cuDNN calls).
        from exif_jax.aot import jaxpr_flops

        flops = jaxpr_flops(traced.jaxpr)
        mem = compiled.memory_analysis()
        compiled_peak = int(getattr(mem, "peak_memory_in_bytes", 0) or 0) if mem is not None else 0
        rng = np.random.default_rng(0)
        C = int(cfg.data.crop)
        batch_np = {"image": rng.integers(0, 256, (batch, C, C, 3), dtype=np.uint8),
                    "input_ids": rng.integers(1000, 20000, (batch, text_len)).astype(np.int32),
                    "attention_mask": np.ones((batch, text_len), np.int32)}
        b = {k: jax.device_put(v, ab[k].sharding) for k, v in batch_np.items()}
        for _ in range(2):
            state, m = compiled(state, b)
        jax.block_until_ready(m)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = compiled(state, b)
        jax.block_until_ready(m)
        dt = (time.perf_counter() - t0) / steps
    dev = jax.devices()[0]
    out = {"config": name, "crop": C, "text_len": text_len, "dtype": str(cfg.model.dtype), "batch": batch,
           "device_kind": dev.device_kind, "peak_tflops_used": peak,
           "step_s": dt, "samples_per_s": batch / dt, "compile_s": compile_s, "flops_per_step": flops,
           "flops_definition": "model FLOPs: matmuls + convolutions of the traced step (exif_jax.aot.jaxpr_flops)",
           "xla_flops_per_step": xla_flops,
           "achieved_tflops": flops / dt / 1e12, "loss_finite": bool(np.isfinite(float(m["loss"]))),
           "compiled_peak_bytes": compiled_peak or None}
    out["mfu"] = out["achieved_tflops"] / peak if peak else None
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats:
        out["device_peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
        out["device_bytes_limit"] = stats.get("bytes_limit")
    if device == "gpu":
        out["flops_note"] = ("XLA cost_analysis on GPU leaves out library calls (cuBLAS/cuDNN custom calls); "
                             "flops_per_step and MFU use the model FLOPs of the traced step instead")
    return out


def bench_torch(batch, text_len, steps, device, crop=124, autocast_bf16=False, halve_on_oom=True):
    """The PyTorch step at `batch`; on a GPU out-of-memory (PyTorch's eager step holds more than XLA's) it frees
    everything and retries at half the batch, down to 1, when `halve_on_oom`."""
    import torch

    import gc

    tried = []
    while True:
        try:
            out = _bench_torch_once(batch, text_len, steps, device, crop, autocast_bf16)
            break
        except torch.OutOfMemoryError:
            tried.append(batch)
            if not halve_on_oom or batch <= 1:
                raise
        # Outside the except block: its traceback (holding the failed step's tensors) is gone by now.
        gc.collect()
        torch.cuda.empty_cache()
        batch //= 2
        print(f"[bench] torch out of memory at batch {tried[-1]}; retrying at {batch}", file=sys.stderr, flush=True)
    if tried:
        out["out_of_memory_at_batches"] = tried
    if device == "gpu":
        out["device_peak_bytes_allocated"] = int(torch.cuda.max_memory_allocated())
        out["device_name"] = torch.cuda.get_device_name(0)
    return out


def _bench_torch_once(batch, text_len, steps, device, crop, autocast_bf16):
    import torch
    import torch.nn.functional as F
    import torchvision
    from transformers import DistilBertConfig, DistilBertModel

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    torch.manual_seed(0)
    vis = torchvision.models.resnet50(num_classes=768).to(dev).train()
    txt = DistilBertModel(DistilBertConfig(dropout=0.0, attention_dropout=0.0)).to(dev).train()
    params = list(vis.parameters()) + list(txt.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-4)
    x = torch.randn(batch, 3, crop, crop, device=dev)
    ids = torch.randint(1000, 20000, (batch, text_len), device=dev)
    mask = torch.ones(batch, text_len, dtype=torch.long, device=dev)
    labels = torch.arange(batch, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            img = vis(x)
            h = txt(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            img = img.float()
        m = mask.unsqueeze(-1).float()
        t = (h * m).sum(1) / m.sum(1)
        logits = 100.0 * F.normalize(img, dim=-1) @ F.normalize(t, dim=-1).T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        opt.step()
        return loss

    for _ in range(1):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return {"what": f"torch {torch.__version__}: torchvision resnet50 + DistilBertModel(base), CLIP loss, Adam"
                    + (", autocast bf16" if autocast_bf16 else ""),
            "text_len": text_len, "batch": batch, "crop": crop, "step_s": dt, "samples_per_s": batch / dt,
            "loss": float(loss.detach())}


RESULT_TAG = "[bench-result] "


def _steps(a) -> int:
    return a.steps or (3 if a.device == "cpu" else 20)


def run_job(job: dict, a) -> dict:
    """One measurement: `job["kind"]` in gemm | torch | towers_jax | towers_torch | jax."""
    steps = _steps(a)
    if job["kind"] == "gemm":
        return cpu_gemm_table()
    if job["kind"] == "torch":
        L = job["text_len"]
        return bench_torch(a.batch, L, max(1, steps // 2) if L == 512 else steps, a.device,
                           autocast_bf16=job["bf16"], halve_on_oom=not a.no_halve)
    if job["kind"] == "towers_jax":
        return towers_jax(a.batch, a.text_len, job["dtype"], steps)
    if job["kind"] == "towers_torch":
        return towers_torch(a.batch, a.text_len, steps)
    if job["kind"] == "jax":
        return bench_jax(job["config"], a.batch, a.text_len, steps, a.device, job["peak"], job["dtype"])
    raise ValueError(f"unknown bench job {job!r}")


def _job_name(job: dict) -> str:
    if job["kind"] == "torch":
        return job["name"]
    if job["kind"] == "jax":
        return f"{job['config']}_{job['dtype'] or 'config'}"
    if job["kind"] == "towers_jax":
        return f"jax_{job['dtype'] or 'config'}"
    return {"towers_torch": "torch_fp32"}.get(job["kind"], job["kind"])


def _run_isolated(job: dict, argv: list) -> dict:
    """Runs `job` in a fresh Python process (same flags, same environment) and returns its result."""
    import subprocess

    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), *argv, "--job", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"bench job {_job_name(job)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--text-len", type=int, default=64, help="our text length (the 512 baseline is always run)")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 3 on CPU, 20 on GPU)")
    p.add_argument("--configs", default="paper_rn50,vit_b16")
    p.add_argument("--dtypes", default="", help="JAX compute dtypes to run, e.g. float32,bfloat16 (default: float32 "
                   "on CPU, each config's own on GPU)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--towers", action="store_true", help="also time each tower's forward+backward alone (JAX per "
                   "dtype and PyTorch, paper_rn50 towers at our length; first round only)")
    p.add_argument("--rounds", type=int, default=0, help="repeat every measurement this many times, interleaved "
                   "(JAX, PyTorch, JAX, PyTorch, ...); results are per-round medians (default: 2 on CPU, 1 on GPU)")
    p.add_argument("--in-process", action="store_true", help="run every measurement in this process. Without "
                   "it, CPU runs give each measurement a fresh process, so that neither framework inherits the "
                   "other's thread pools or allocator state; GPU runs are always in-process")
    p.add_argument("--no-halve", action="store_true", help="GPU: fail a PyTorch step that runs out of memory "
                   "instead of retrying it at half the batch")
    p.add_argument("--peak-tflops", type=float, default=None, help="chip peak for MFU when not in the table")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "train_step.json"))
    p.add_argument("--job", default="", help=argparse.SUPPRESS)  # internal: run one measurement, print its JSON
    a = p.parse_args(argv)
    if argv is None and a.device == "cpu" and not a.job:
        # The same glibc malloc settings as `exif-jax train`, for JAX and PyTorch alike (the job processes
        # inherit them): EXIF_JAX_MALLOC_TUNING=0 runs both without them.
        from exif_jax import host_malloc
        host_malloc.reexec_with_tuning([str(pathlib.Path(__file__).resolve()), *sys.argv[1:]])
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if a.device == "cpu" else "cuda")
    if (a.job or a.in_process) and a.device == "cpu":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    if a.job:
        print(RESULT_TAG + json.dumps(run_job(json.loads(a.job), a)), flush=True)
        return 0
    import jax

    isolated = not a.in_process and a.device == "cpu"
    child_argv = list(sys.argv[1:] if argv is None else argv)
    run = (lambda job: _run_isolated(job, child_argv)) if isolated else (lambda job: run_job(job, a))
    rounds = a.rounds or (2 if a.device == "cpu" else 1)
    steps = _steps(a)
    kind = "cpu" if a.device == "cpu" and isolated else jax.devices()[0].device_kind
    dtypes = [d for d in a.dtypes.split(",") if d] or (["float32"] if a.device == "cpu" else [""])
    peak = _peak(kind, a.peak_tflops)
    cpu_peaks, gemm_ms = {}, {}
    if a.device == "cpu":
        gemm_ms = run({"kind": "gemm"})
        if not a.peak_tflops:
            cpu_peaks = {"float32": GEMM_FLOPS / gemm_ms["fp32_ms"] / 1e9,
                         "bfloat16": GEMM_FLOPS / gemm_ms["bf16_to_fp32_ms"] / 1e9}
        print(f"[bench] CPU matmul (ms by dtype): {json.dumps(gemm_ms)}; peak "
              + ", ".join(f"{d} {1000 * v:.0f} GFLOP/s" for d, v in cpu_peaks.items()), flush=True)
    res = {"benchmark": "train_step", "device": a.device, "device_kind": kind, "peak_tflops": peak,
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "load_average_1_5_15": list(os.getloadavg()),
                       "glibc_tunables": os.environ.get("GLIBC_TUNABLES")},
           "batch": a.batch, "timed_steps": steps, "rounds": rounds,
           "isolation": "one fresh process per measurement" if isolated else "one process",
           "jax": jax.__version__, "jax_steps": [], "torch": {},
           "cpu_matmul_peak_tflops": cpu_peaks or None, "cpu_matmul_ms": gemm_ms or None}
    torch_jobs = [] if a.skip_torch else [
        {"kind": "torch", "name": "original_512", "text_len": 512, "bf16": False},
        {"kind": "torch", "name": "ours_len", "text_len": a.text_len, "bf16": False}]
    if not a.skip_torch and "bfloat16" in dtypes:
        torch_jobs.append({"kind": "torch", "name": "ours_len_bf16", "text_len": a.text_len, "bf16": True})
    jax_jobs = [{"kind": "jax", "config": c, "dtype": d, "peak": cpu_peaks.get(d, peak)}
                for c in a.configs.split(",") if c for d in dtypes]
    tower_jobs = [{"kind": "towers_jax", "dtype": d} for d in dtypes] if a.towers else []
    if a.towers and not a.skip_torch:
        tower_jobs.append({"kind": "towers_torch"})
    per_round = {}
    for r in range(rounds):
        # Interleaved so that a slow phase of a noisy machine hits both frameworks.
        for job in [*(tower_jobs if r == 0 else []), *torch_jobs, *jax_jobs]:
            name = _job_name(job)
            print(f"[bench] round {r + 1}/{rounds}: {job['kind']} {name} ...", flush=True)
            out = run(job)
            per_round.setdefault((job["kind"], name), []).append(out)
            if "samples_per_s" in out:
                print(f"[bench]   {out['samples_per_s']:.2f} samples/s", flush=True)
            else:
                print(f"[bench]   {json.dumps(out)}", flush=True)

    def summarise(outs):
        """First round's record with the median step time over rounds (and the rates derived from it)."""
        row = dict(outs[0])
        med = _median([o["step_s"] for o in outs])
        row.update(step_s=med, samples_per_s=row.get("batch", a.batch) / med, step_s_rounds=[o["step_s"] for o in outs])
        if "flops_per_step" in row:
            row["achieved_tflops"] = row["flops_per_step"] / med / 1e12
            row["mfu"] = row["achieved_tflops"] / row["peak_tflops_used"] if row["peak_tflops_used"] else None
        return row

    for job in torch_jobs:
        res["torch"][job["name"]] = summarise(per_round[("torch", job["name"])])
    if tower_jobs:
        res["towers"] = {_job_name(j): per_round[(j["kind"], _job_name(j))][0] for j in tower_jobs}
    for job in jax_jobs:
        outs = per_round[("jax", _job_name(job))]
        r = summarise(outs)
        for base, t in res["torch"].items():
            r[f"ratio_vs_torch_{base}"] = r["samples_per_s"] / t["samples_per_s"]
            # Same-round ratios: each pairs measurements taken minutes apart.
            r[f"ratio_vs_torch_{base}_rounds"] = [t_o["step_s"] / o["step_s"] for o, t_o in
                                                  zip(outs, per_round[("torch", base)])]
        res["jax_steps"].append(r)
        print(f"[bench] {job['config']} {job['dtype'] or '(config dtype)'}: {r['samples_per_s']:.2f} samples/s "
              f"(median of {len(outs)}), {r['achieved_tflops']:.3f} TFLOP/s"
              + (f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] else "")
              + "".join(f", {r[k]:.2f}x {k[len('ratio_vs_torch_'):]}" for k in r
                        if k.startswith("ratio_") and not k.endswith("_rounds")), flush=True)
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
