"""One-GPU check of issue 18 (driver of `bench/device_check.sh`): train-step throughput and MFU, PyTorch baselines
and the splice pipeline on the attached accelerator, in one run of at most `--budget-s` seconds.

    bench/device_check.sh                      # on one H100/H200 -> bench/results/device_<gpu>.json
    bench/device_check.sh --dry-run            # on any CPU: every measurement at a tiny size (~4 min on 2 cores)
    bench/device_check.sh --only jax_vit_b16_bf16,splice --budget-s 300

Measurements, most important first (each in its own process, with its own timeout):
  jax_paper_rn50_bf16   exif-jax step, `paper_rn50` bf16, largest batch that fits (table BATCHES)
  torch_ours_len_bf16   the PyTorch original (torchvision ResNet-50 + DistilBERT) under bf16 autocast, same
                        batch, our text length
  jax_vit_b16_bf16      exif-jax step, `vit_b16` bf16, largest batch
  splice                bench/splice_pipeline.py: whole image and after the embeddings vs the original evaluator
  jax_paper_rn50_fp32   exif-jax step, `paper_rn50` float32, largest batch
  torch_ours_len        PyTorch fp32 at our text length, same batch as the fp32 step
  torch_original_512    PyTorch fp32 with text padded to 512 tokens as the original did, same batch
PyTorch steps that run out of memory retry at half the batch (their record says the batch they ran at); an
exif-jax step that runs out of memory reruns at the next batch of its ladder when the budget allows.

Every measurement failure is one line and the run goes on; a measurement that would not fit the remaining budget
is skipped and listed as such; the JSON (device name, versions, each measurement, ratios and target checks) is
rewritten after every measurement, and mirrored to `$OUT` when set, so a killed run keeps what it measured.
Exit status: 0 all measured, 1 some measurement failed or was skipped, 2 usage error.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.train_step import PEAK_TFLOPS, TF32_PEAK_TFLOPS, RESULT_TAG, _peak  # noqa: E402

# Largest one-GPU batch per card, config and dtype at 64 tokens: the largest multiple of 128 whose compiled peak
# memory stays under 85% of the card's memory, found on the CPU without a GPU by
#     flock /tmp/exif_cpu.lock python bench/gpu_batch_sizes.py      (-> bench/results/gpu_batch_sizes.json)
# (compiles the real train step for an h100x1 / h200x1 target; see that file for the fit and each point's peak).
# Each list is a ladder: an out-of-memory at runtime reruns the step at the next entry.
# Compiled peaks (GiB of the 79.1 / 140.4 of exif_jax.aot.CHIPS): H100 rn50 bf16 2304: 60.2, fp32 1152: 60.1, vit
# 2176: 63.1; H200 rn50 bf16 4224: 106.5, fp32 2176: 106.9, vit 4096: 108.0. One point by hand, e.g.
#     exif-jax compile --config configs/vit_b16.py --topology h100x1 --config.batch_size=2176
BATCHES = {
    "h100": {"paper_rn50_bf16": [2304, 1152], "vit_b16_bf16": [2176, 1088], "paper_rn50_fp32": [1152, 576]},
    "h200": {"paper_rn50_bf16": [4224, 2112], "vit_b16_bf16": [4096, 2048], "paper_rn50_fp32": [2176, 1088]},
}
BATCHES["a100"] = BATCHES["h100"]  # 80 GB like the H100 (a 40 GB A100 falls back down the ladder)
DRY_BATCH = 2

# Targets of issue 18 (per GPU), checked in the JSON.
BASELINE_RN50_FP32_SAMPLES_PER_S = 4724.0  # paper_rn50 fp32, H200, batch 256, before the 1x1-as-matmul change

# Seconds each kind of measurement is expected to take on a GPU before the first one of its kind has run (then the
# measured time of the last one of that kind is used); the budget check skips a measurement that would not fit.
FIRST_ESTIMATE_S = {"jax": 120.0, "torch": 45.0, "splice": 75.0}
MIN_TIMEOUT_S = 20.0


def gpu_key(device_name: str) -> str:
    n = device_name.lower()
    for key in ("h200", "h100", "a100"):
        if key in n:
            return key
    return "h100"


def slug(device_name: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> `h100_80gb_hbm3`; file-name-safe."""
    s = re.sub(r"^nvidia\s+", "", device_name.strip().lower())
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_") or "unknown"


def _smi(fields: str) -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = out.stdout.strip().splitlines()
    return [p.strip() for p in lines[0].split(",")] + [str(len(lines))] if out.returncode == 0 and lines else []


def gpu_info(python: str) -> dict:
    """Name, memory and driver of GPU 0 from nvidia-smi (extras when this nvidia-smi knows them), else from torch."""
    base = _smi("name,memory.total,driver_version")
    if len(base) == 4:
        info = {"name": base[0], "memory_total": base[1], "driver": base[2], "count": int(base[3]), "source": "nvidia-smi"}
        extra = _smi("clocks.max.sm,power.limit")
        if len(extra) == 3:
            info.update(max_sm_clock=extra[0], power_limit=extra[1])
        return info
    try:  # no nvidia-smi in this container: ask PyTorch (which the baselines need anyway)
        proc = subprocess.run([python, "-c", "import torch; assert torch.cuda.is_available(); "
                               "print(torch.cuda.get_device_name(0)); print(torch.cuda.device_count())"],
                              capture_output=True, text=True, timeout=120)
        name, count = proc.stdout.strip().splitlines()[-2:]
        return {"name": name, "count": int(count), "source": "torch.cuda"} if proc.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}


def versions(python: str) -> dict:
    """Versions of the stack the measurements run with (of `python`, without importing JAX or torch)."""
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for p in ('jax', 'jaxlib', 'jax-cuda12-plugin', 'jax-cuda13-plugin', 'flax', 'optax', 'torch',\n"
            "          'torchvision', 'transformers', 'numpy'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {"error": f"could not run {python}"}


def plan(a, key: str) -> list[dict]:
    """The measurements, most important first."""
    L = a.text_len
    ladders = {k: ([DRY_BATCH] if a.dry_run else v) for k, v in BATCHES[key].items()}
    jobs = [
        {"name": "jax_paper_rn50_bf16", "kind": "jax", "config": "paper_rn50", "dtype": "bfloat16",
         "batches": ladders["paper_rn50_bf16"]},
        {"name": "torch_ours_len_bf16", "kind": "torch", "text_len": L, "bf16": True, "batch_of": "jax_paper_rn50_bf16",
         "batches": ladders["paper_rn50_bf16"][:1]},
        {"name": "jax_vit_b16_bf16", "kind": "jax", "config": "vit_b16", "dtype": "bfloat16",
         "batches": ladders["vit_b16_bf16"]},
        {"name": "splice", "kind": "splice"},
        {"name": "jax_paper_rn50_fp32", "kind": "jax", "config": "paper_rn50", "dtype": "float32",
         "batches": ladders["paper_rn50_fp32"]},
        {"name": "torch_ours_len", "kind": "torch", "text_len": L, "bf16": False, "batch_of": "jax_paper_rn50_fp32",
         "batches": ladders["paper_rn50_fp32"][:1]},
        {"name": "torch_original_512", "kind": "torch", "text_len": 512, "bf16": False,
         "batch_of": "jax_paper_rn50_fp32", "batches": ladders["paper_rn50_fp32"][:1]},
    ]
    if a.only:
        wanted = [n for n in a.only.split(",") if n]
        unknown = [n for n in wanted if n not in {j["name"] for j in jobs}]
        if unknown:
            raise SystemExit(f"device_check: unknown measurement {unknown[0]!r}; known: "
                             + ", ".join(j["name"] for j in jobs))
        jobs = [j for j in jobs if j["name"] in wanted]
    return jobs


def command(job: dict, batch: int, a, peak, out_path: pathlib.Path) -> list[str]:
    py = [a.python]
    if job["kind"] == "splice":
        cmd = [*py, str(REPO / "bench" / "splice_pipeline.py"), "--out", str(out_path)]
        if a.dry_run:
            cmd += ["--size", "300x130", "--repeats", "1"]
        return cmd
    device = "cpu" if a.dry_run else "gpu"
    steps = a.steps or (1 if a.dry_run else 10)
    if job["kind"] == "jax":
        spec = {"kind": "jax", "config": job["config"], "dtype": job["dtype"], "peak": peak}
    else:
        spec = {"kind": "torch", "name": job["name"], "text_len": job["text_len"], "bf16": job["bf16"]}
    text_len = a.text_len if job["kind"] == "jax" else job["text_len"]
    return [*py, str(REPO / "bench" / "train_step.py"), "--device", device, "--batch", str(batch),
            "--text-len", str(text_len), "--steps", str(steps), "--job", json.dumps(spec)]


def _why(stderr: str, rc) -> str:
    """One line: the most telling line of a failed measurement's stderr."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for pat in ("RESOURCE_EXHAUSTED", "OutOfMemoryError", "out of memory", "Error:", "Error", "error"):
        hits = [ln for ln in lines if pat in ln]
        if hits:
            return hits[-1][:300]
    return (lines[-1][:300] if lines else f"exit status {rc}")


def _is_oom(text: str) -> bool:
    return any(p in text for p in ("RESOURCE_EXHAUSTED", "OutOfMemoryError", "out of memory", "Out of memory"))


class Run:
    """Budget, progress and the JSON that is rewritten after every measurement."""

    def __init__(self, a, result: dict, out: pathlib.Path, mirror: pathlib.Path | None, logs: pathlib.Path):
        self.a, self.result, self.out, self.mirror, self.logs = a, result, out, mirror, logs
        self.t0 = time.monotonic()
        self.last_s: dict = {}

    def left(self) -> float:
        return self.a.budget_s - (time.monotonic() - self.t0)

    def save(self) -> None:
        self.result["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        text = json.dumps(self.result, indent=1) + "\n"
        for path in [self.out] + ([self.mirror / self.out.name] if self.mirror else []):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)  # atomic: a kill mid-write leaves the previous complete file

    def log(self, msg: str) -> None:
        print(f"[device-check {time.monotonic() - self.t0:5.0f}s, {max(self.left(), 0):4.0f}s left] {msg}",
              flush=True)

    def estimate(self, kind: str) -> float:
        if self.a.dry_run:
            return 5.0
        return self.last_s.get(kind, FIRST_ESTIMATE_S[kind])

    def attempt(self, job: dict, batch: int | None, peak) -> tuple[dict | None, str]:
        """Runs one process; returns (record, "") or (None, one-line reason)."""
        tag = job["name"] + (f"_b{batch}" if batch else "")
        splice_out = self.logs / f"{tag}.json"
        cmd = command(job, batch or 0, self.a, peak, splice_out)
        timeout = max(self.left(), MIN_TIMEOUT_S)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        except subprocess.TimeoutExpired as e:
            (self.logs / f"{tag}.log").write_text(_text(e.stdout) + "\n--- stderr ---\n" + _text(e.stderr))
            return None, f"timed out after {timeout:.0f} s (the budget ran out)"
        except OSError as e:
            return None, f"cannot start {cmd[0]}: {e}"
        finally:
            self.last_s[job["kind"]] = time.monotonic() - t0
        (self.logs / f"{tag}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        if proc.returncode != 0:
            return None, ("out of memory: " if _is_oom(proc.stderr) else "") + _why(proc.stderr, proc.returncode)
        if job["kind"] == "splice":
            try:
                rec = json.loads(splice_out.read_text())
            except (OSError, ValueError) as e:
                return None, f"no result file {splice_out}: {e}"
        else:
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
            if not lines:
                return None, "no result line: " + _why(proc.stderr, proc.returncode)
            rec = json.loads(lines[-1][len(RESULT_TAG):])
        rec["wall_s"] = round(time.monotonic() - t0, 1)
        return rec, ""


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def summary_line(name: str, rec: dict) -> str:
    if "samples_per_s" in rec:
        s = f"{rec['samples_per_s']:.1f} samples/s, step {1e3 * rec['step_s']:.1f} ms at batch {rec['batch']}"
        if rec.get("mfu") is not None:
            s += f", {rec['achieved_tflops']:.1f} TFLOP/s, MFU {100 * rec['mfu']:.1f}%"
        if rec.get("compile_s") is not None:
            s += f", compile {rec['compile_s']:.0f} s"
        return s
    if "speedup" in rec:
        sp = rec["speedup"]
        return f"whole image {sp['whole_image']:.1f}x, after the embeddings {sp['post_embedding']:.1f}x the original"
    return json.dumps(rec)[:200]


def derive(result: dict) -> None:
    """Ratios and target checks from what has been measured so far (recomputed after every measurement)."""
    m = result["measurements"]

    def rate(name):
        rec = m.get(name, {})
        return rec.get("samples_per_s") if rec.get("status") == "ok" else None

    ratios = {}
    for jax_name, torch_names in (("jax_paper_rn50_bf16", ("torch_ours_len_bf16", "torch_ours_len",
                                                           "torch_original_512")),
                                  ("jax_paper_rn50_fp32", ("torch_ours_len", "torch_original_512"))):
        for t in torch_names:
            if rate(jax_name) and rate(t):
                ratios[f"{jax_name}_vs_{t}"] = rate(jax_name) / rate(t)
    if rate("jax_paper_rn50_bf16"):
        ratios["jax_paper_rn50_bf16_vs_previous_4724"] = rate("jax_paper_rn50_bf16") / BASELINE_RN50_FP32_SAMPLES_PER_S
    result["ratios"] = ratios
    vit = m.get("jax_vit_b16_bf16", {})
    splice = m.get("splice", {})
    targets = {
        "vit_b16 bf16 MFU >= 45%": (vit.get("mfu") >= 0.45) if vit.get("status") == "ok" and vit.get("mfu") else None,
        "paper_rn50 bf16 >= 3x 4,724 samples/s": (ratios["jax_paper_rn50_bf16_vs_previous_4724"] >= 3)
        if "jax_paper_rn50_bf16_vs_previous_4724" in ratios else None,
        "paper_rn50 bf16 >= 2x PyTorch bf16 autocast at equal text length":
            (ratios["jax_paper_rn50_bf16_vs_torch_ours_len_bf16"] >= 2)
            if "jax_paper_rn50_bf16_vs_torch_ours_len_bf16" in ratios else None,
        "splice whole image >= 150x the original evaluator": (splice["speedup"]["whole_image"] >= 150)
        if splice.get("status") == "ok" else None,
    }
    if result.get("dry_run"):  # tiny CPU sizes check the script; they say nothing about the GPU targets
        result["targets"] = {k: "dry run: not a measurement" for k in targets}
        return
    result["targets"] = {k: ("not measured" if v is None else bool(v)) for k, v in targets.items()}


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage first)
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv=None) -> int:
    p = _OneLineParser(prog="bench/device_check.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", default=os.environ.get("DEVICE_CHECK_DRY", "") not in ("", "0"),
                   help="CPU, batch 2, 1 step, a 300x130 splice image: checks the script, measures nothing "
                        "(also DEVICE_CHECK_DRY=1)")
    p.add_argument("--budget-s", type=float, default=450.0, help="overall time budget in seconds (default 450: "
                   "7.5 min, inside the 8 minutes of a device check)")
    p.add_argument("--only", default="", help="comma-separated measurement names (default: all, in the order above)")
    p.add_argument("--text-len", type=int, default=64, help="our text length (64: the earlier GPU number's)")
    p.add_argument("--steps", type=int, default=0, help="timed steps per measurement (default 10; dry run 1)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the measurements (default: this one)")
    p.add_argument("--out", default="", help="JSON path (default bench/results/device_<gpu>.json; dry run: "
                   "/tmp/exif_device_check/device_cpu_dry_run.json)")
    p.add_argument("--mirror-dir", default=os.environ.get("OUT", ""),
                   help="also keep the JSON and the logs here (default: $OUT, the device tool's output folder)")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if a.budget_s <= 0 or a.text_len < 1 or a.steps < 0:
        print("device_check: --budget-s, --text-len must be positive and --steps >= 0", file=sys.stderr)
        return 2
    smi = {} if a.dry_run else gpu_info(a.python)
    if not a.dry_run and not smi:
        print("device_check: no NVIDIA GPU found (nvidia-smi, torch.cuda); run on the GPU machine or use --dry-run",
              file=sys.stderr)
        return 2
    device_name = smi.get("name", "cpu (dry run)")
    key = "h100" if a.dry_run else gpu_key(device_name)
    try:
        jobs = plan(a, key)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    name_slug = "cpu_dry_run" if a.dry_run else slug(device_name)
    out = pathlib.Path(a.out) if a.out else (
        pathlib.Path("/tmp/exif_device_check") / f"device_{name_slug}.json" if a.dry_run
        else REPO / "bench" / "results" / f"device_{name_slug}.json")
    mirror = pathlib.Path(a.mirror_dir) if a.mirror_dir else None
    logs = (mirror or out.parent) / f"device_{name_slug}_logs"
    logs.mkdir(parents=True, exist_ok=True)
    peak = None if a.dry_run else _peak(device_name, None)
    tf32 = None if a.dry_run else _peak(device_name, None, TF32_PEAK_TFLOPS)
    result = {
        "benchmark": "device_check (issue 18)",
        "command": "bench/device_check.sh " + " ".join(sys.argv[1:] if argv is None else argv),
        "dry_run": a.dry_run,
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": {"name": device_name, "gpu_info": smi or None, "batch_table": key,
                   "peak_bf16_dense_tflops": peak, "peak_tf32_dense_tflops": tf32,
                   "peak_source": "NVIDIA datasheets (sparse rates halved), see PEAK_TFLOPS in bench/train_step.py"},
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load_average_1_5_15":
                 list(os.getloadavg())},
        "versions": versions(a.python),
        "text_len": a.text_len, "budget_s": a.budget_s,
        "env": {k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_FLAGS",
                                                "JAX_COMPILATION_CACHE_DIR") if os.environ.get(k)},
        "measurements": {j["name"]: {"status": "pending"} for j in jobs},
    }
    derive(result)
    run = Run(a, result, out, mirror, logs)
    run.save()
    run.log(f"{device_name}: {len(jobs)} measurements, budget {a.budget_s:.0f} s, writing {out}"
            + (f" (and {mirror})" if mirror else ""))
    failed = skipped = 0
    for i, job in enumerate(jobs, 1):
        name, rec_out = job["name"], None
        m = result["measurements"]
        ladder = list(job.get("batches") or [None])
        if "batch_of" in job and m.get(job["batch_of"], {}).get("status") == "ok":
            ladder = [m[job["batch_of"]]["batch"]]  # the batch the exif-jax step actually ran at
        errors = []
        for batch in ladder:
            need = run.estimate(job["kind"])
            if run.left() < need:
                errors.append(f"skipped: needs ~{need:.0f} s, {max(run.left(), 0):.0f} s of the budget left")
                break
            run.log(f"{i}/{len(jobs)} {name}" + (f" batch {batch}" if batch else "") + " ...")
            rec, why = run.attempt(job, batch, peak)
            if rec is not None:
                rec_out = rec
                break
            errors.append(f"batch {batch}: {why}" if batch else why)
            run.log(f"{i}/{len(jobs)} {name} FAILED: {errors[-1]}")
            if not why.startswith("out of memory"):
                break
        if rec_out is not None:
            rec_out["status"] = "ok"
            if errors:
                rec_out["earlier_attempts"] = errors
            if job["kind"] == "jax" and job["dtype"] == "float32" and tf32 and rec_out.get("achieved_tflops"):
                rec_out["mfu_vs_tf32_dense"] = rec_out["achieved_tflops"] / tf32
            m[name] = rec_out
            run.log(f"{i}/{len(jobs)} {name}: {summary_line(name, rec_out)}")
        else:
            is_skip = errors and errors[-1].startswith("skipped")
            m[name] = {"status": "skipped" if is_skip else "failed", "errors": errors}
            skipped += bool(is_skip)
            failed += not is_skip
            if is_skip:
                run.log(f"{i}/{len(jobs)} {name} {errors[-1]}")
        derive(result)
        run.save()
    result["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result["host"]["load_average_1_5_15_end"] = list(os.getloadavg())
    run.save()
    run.log(f"done: {len(jobs) - failed - skipped} measured, {failed} failed, {skipped} skipped; targets: "
            + json.dumps(result["targets"]))
    run.log(f"wrote {out}")
    return 0 if not (failed or skipped) else 1


if __name__ == "__main__":
    sys.exit(main())
