"""`bench/device_check.sh` (issue 18's one-GPU check) on the CPU: usage errors, the budget, per-measurement
failures, a real measurement in dry-run mode, and the JSON surviving a kill mid-run. Peaks are the NVIDIA
datasheets' tensor rates "with sparsity" halved (H100 SXM BF16 1,979 -> 989.4; PCIe 1,513 -> 756.5; A100 312 dense)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import device_check as dc
from bench.train_step import TF32_PEAK_TFLOPS, _peak

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "device_check.sh"
ENV = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "OUT": ""}


def _sh(*args, timeout=60):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.mark.parametrize("name, bf16, tf32, key, slug", [
    ("NVIDIA H100 80GB HBM3", 989.4, 494.7, "h100", "h100_80gb_hbm3"),
    ("NVIDIA H100 PCIe", 756.5, 378.0, "h100", "h100_pcie"),
    ("NVIDIA H200", 989.4, 494.7, "h200", "h200"),
    ("NVIDIA H200 NVL", 835.5, 417.5, "h200", "h200_nvl"),
    ("NVIDIA A100-SXM4-80GB", 312.0, 156.0, "a100", "a100_sxm4_80gb"),
])
def test_peaks_batch_table_and_file_name_from_the_device_name(name, bf16, tf32, key, slug):
    assert _peak(name, None) == bf16 and _peak(name, None, TF32_PEAK_TFLOPS) == tf32
    assert dc.gpu_key(name) == key and dc.slug(name) == slug
    assert set(dc.BATCHES[key]) == {"paper_rn50_bf16", "vit_b16_bf16", "paper_rn50_fp32"}


@pytest.mark.parametrize("args, needle", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--dry-run", "--only", "nope"], "unknown measurement 'nope'"),
    (["--budget-s", "0"], "must be positive"),
    pytest.param([], "no NVIDIA GPU found", marks=pytest.mark.skipif(  # else it would start the 8-minute check
        shutil.which("nvidia-smi") is not None, reason="a GPU machine: a plain run measures")),
])
def test_usage_errors_are_one_line_exit_2(args, needle):
    r = _sh(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr


def test_out_of_budget_measurements_are_skipped_and_listed(tmp_path):
    out, mirror = tmp_path / "d.json", tmp_path / "mirror"
    r = _sh("--dry-run", "--budget-s", "1", "--out", str(out), "--mirror-dir", str(mirror))
    assert r.returncode == 1, r.stderr
    d = json.loads(out.read_text())
    assert json.loads((mirror / "d.json").read_text())["measurements"] == d["measurements"]
    assert list(d["measurements"]) == [j["name"] for j in dc.plan(dc_args(), "h100")]
    assert all(m["status"] == "skipped" and "budget" in m["errors"][0] for m in d["measurements"].values())
    assert set(d["targets"].values()) == {"dry run: not a measurement"}
    assert d["versions"]["jax"] and d["device"]["name"] == "cpu (dry run)"


def dc_args():
    class A:
        dry_run, text_len, only = True, 64, ""
    return A()


def test_a_failing_measurement_is_one_line_and_the_run_goes_on(tmp_path):
    out = tmp_path / "d.json"
    r = _sh("--dry-run", "--python", "/bin/false", "--only", "splice,torch_ours_len", "--out", str(out))
    assert r.returncode == 1
    failed = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    assert len(failed) == 2 and "splice" in failed[0] and "torch_ours_len" in failed[1]
    d = json.loads(out.read_text())
    assert {n: m["status"] for n, m in d["measurements"].items()} == {"splice": "failed", "torch_ours_len": "failed"}


def test_ratios_and_targets_from_measurements():
    res = {"measurements": {
        "jax_paper_rn50_bf16": {"status": "ok", "samples_per_s": 15000.0},
        "torch_ours_len_bf16": {"status": "ok", "samples_per_s": 6000.0},
        "jax_vit_b16_bf16": {"status": "ok", "mfu": 0.40},
        "splice": {"status": "failed"}}}
    dc.derive(res)
    assert res["ratios"]["jax_paper_rn50_bf16_vs_torch_ours_len_bf16"] == pytest.approx(2.5)
    assert res["ratios"]["jax_paper_rn50_bf16_vs_previous_4724"] == pytest.approx(15000 / 4724)
    assert res["targets"] == {"vit_b16 bf16 MFU >= 45%": False, "paper_rn50 bf16 >= 3x 4,724 samples/s": True,
                              "paper_rn50 bf16 >= 2x PyTorch bf16 autocast at equal text length": True,
                              "splice whole image >= 150x the original evaluator": "not measured"}


def test_dry_run_measures_and_a_kill_keeps_what_was_measured(tmp_path):
    """A real (tiny) PyTorch step in dry-run mode; killing the run during the next measurement keeps the first."""
    out = tmp_path / "d.json"
    proc = subprocess.Popen(["bash", str(SCRIPT), "--dry-run", "--only", "torch_ours_len_bf16,torch_original_512",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        first = {}
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_file():
                first = json.loads(out.read_text())["measurements"]["torch_ours_len_bf16"]
                if first["status"] != "pending":
                    break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert first.get("status") == "ok", (first, proc.stdout.read())
    assert first["batch"] == 2 and first["text_len"] == 64 and first["samples_per_s"] > 0 and first["step_s"] > 0
    d = json.loads(out.read_text())  # still a whole JSON after the kill
    assert d["measurements"]["torch_ours_len_bf16"]["status"] == "ok"
    assert d["measurements"]["torch_original_512"]["status"] in ("pending", "ok")
