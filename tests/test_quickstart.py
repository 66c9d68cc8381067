"""`exif-jax quickstart` end to end (short): bundled photos -> ingest -> train -> retrieval -> splices -> REPORT.md.

Run as a user runs it (a subprocess on one CPU device). Checked against independent computations: the photo
count on disk, scikit-learn's top-k accuracy on the saved similarity matrices, the trainer's metrics log, PNG
decoding of the heatmaps, and the synthetic splices' masks.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import top_k_accuracy_score

from exif_jax.commands import quickstart_run as quickstart

STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("qs")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    r = subprocess.run([sys.executable, "-m", "exif_jax", "quickstart", "--workdir", str(wd), "--steps", str(STEPS),
                        "--splices", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return wd, r


def test_quickstart_runs_all_steps_and_reports(run):
    wd, r = run
    summary = json.loads((wd / "quickstart.json").read_text())
    info = json.loads((wd / "data" / "dataset_info.json").read_text())
    n_photos = len(list(quickstart.PHOTOS.glob("*.jpg")))
    assert info["counts"]["accepted"] == n_photos
    assert info["splits"]["train"]["records"] + info["splits"]["eval"]["records"] == n_photos
    # Training: every step logged by the trainer's metrics writer, finite loss, a checkpoint at the last step.
    rows = [json.loads(line) for line in (wd / "train" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == STEPS == summary["steps"] and np.isfinite(rows[-1]["loss"])
    assert summary["final_loss"] == pytest.approx(rows[-1]["loss"])
    assert (wd / "train" / "checkpoints" / str(STEPS)).is_dir()
    # Progress output of each stage.
    for stage in ("ingest:", "train:", "retrieval:", "splices:", "done in"):
        assert f"[quickstart] {stage}" in r.stdout
    assert re.search(rf"step {STEPS}/{STEPS} .*eta", r.stdout)


def test_retrieval_numbers_match_sklearn(run):
    wd, _ = run
    summary = json.loads((wd / "quickstart.json").read_text())
    sims = np.load(wd / "retrieval_similarity.npz")
    info = json.loads((wd / "data" / "dataset_info.json").read_text())
    for split in ("eval", "train"):
        sim, group = sims[f"{split}_sim"], sims[f"{split}_group"]
        m = summary["retrieval"][split]
        assert m["n"] == info["splits"][split]["records"] == len(sim)
        if len(np.unique(group)) == len(group):  # every text distinct: plain N-way classification
            for k in (1, 5):
                ref = top_k_accuracy_score(np.arange(len(sim)), sim, k=k, labels=np.arange(len(sim)))
                assert m[f"top{k}"] == pytest.approx(ref)
        assert m["top5_chance"] == pytest.approx(5 / m["n"]) and m["top1_chance"] == pytest.approx(1 / m["n"])


def test_splice_heatmaps_and_report(run):
    wd, _ = run
    summary = json.loads((wd / "quickstart.json").read_text())
    manifest = [json.loads(x) for x in (wd / "splices" / "data" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 2
    for rec in manifest:
        if rec["label"] == 1:
            assert rec["host_camera"] != rec["donor_camera"]
            mask = np.asarray(Image.open(wd / "splices" / "data" / "masks" / f"{rec['id']}.png"))
            assert 0.05 < (mask > 0).mean() < 0.5
    assert len(summary["heatmaps"]) == 2
    for h in summary["heatmaps"]:
        with Image.open(h) as im:
            im.load()
            assert im.format == "PNG" and im.size == (384, 384)
    report = (wd / "REPORT.md").read_text()
    for heading in ("## 1. Data", "## 2. Training", "## 3. Image -> EXIF retrieval", "## 4. Splice localization"):
        assert heading in report
    assert "| random map |" in report and "p-mAP" in report
    # Every absolute path the report names exists.
    paths = [p for p in re.findall(r"`(/[^`\s]+)`", report)]
    assert paths and all(pathlib.Path(p).exists() for p in paths), [p for p in paths if not pathlib.Path(p).exists()]


def test_cli_rejects_bad_arguments():
    from exif_jax.commands import quickstart as cmd

    assert cmd.main(["--workdir", "/tmp/x", "--minutes", "0"]) == 2
    assert cmd.main(["--workdir", "/tmp/x", "--steps", "0"]) == 2
