"""`exif-jax quickstart` end to end (short): bundled + simulated photos -> ingest -> train -> camera id -> splices
(beside the untrained control) -> REPORT.md, and a rerun with changed options.

Run as a user runs it (a subprocess on one CPU device). Checked against independent computations: the photo
count on disk, the split of every ingested record against the staged plan, scikit-learn's top-k accuracy on the
saved similarity matrices, the trainer's metrics log, PNG decoding of the heatmaps, and the splices' masks.
No learning number is asserted here (4 steps); the learning targets are measured by the full quickstart.
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
    r = _quickstart(wd, "--steps", str(STEPS), "--splices", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    return wd, r


def _quickstart(wd, *args):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run([sys.executable, "-m", "exif_jax", "quickstart", "--workdir", str(wd), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_quickstart_runs_all_steps_and_reports(run):
    from exif_jax.commands.quickstart_run import _split_records

    wd, r = run
    summary = json.loads((wd / "quickstart.json").read_text())
    info = json.loads((wd / "data" / "dataset_info.json").read_text())
    plan = json.loads((wd / "photos" / "plan.json").read_text())
    n_photos = len(list(quickstart.MULTI.glob("*.jpg"))) + quickstart.SIM_PER_PHOTO * len(list(quickstart.PHOTOS.glob("*.jpg")))
    assert info["counts"]["accepted"] == n_photos == len(plan)
    # The split is by photo, as planned: every render of a source photo on one side, one photo per real camera held out.
    for split in ("train", "eval"):
        for rec in _split_records(wd / "data", split):
            assert plan[rec["photo_id"]]["split"] == split
    held = {p["source"] for p in plan.values() if p["split"] == "eval"}
    assert not held & {p["source"] for p in plan.values() if p["split"] == "train"}
    real = [p for p in plan.values() if p["group"] == "real"]
    assert sorted(p["model"] for p in real if p["split"] == "eval") == sorted({p["model"] for p in real})
    # Training: every step logged by the trainer's metrics writer, finite loss, a checkpoint at the last step.
    rows = [json.loads(line) for line in (wd / "train" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == STEPS == summary["steps"] == summary["steps_this_run"] and np.isfinite(rows[-1]["loss"])
    assert summary["final_loss"] == pytest.approx(rows[-1]["loss"])
    assert (wd / "train" / "checkpoints" / str(STEPS)).is_dir()
    for stage in ("photos:", "ingest:", "train:", "camera id:", "splices:", "done in"):
        assert f"[quickstart] {stage}" in r.stdout
    assert re.search(rf"step {STEPS}/{STEPS} .*eta", r.stdout)


def test_camera_id_and_control(run):
    wd, _ = run
    summary = json.loads((wd / "quickstart.json").read_text())
    plan = json.loads((wd / "photos" / "plan.json").read_text())
    assert summary["control"] == "untrained (seed 0)" and summary["model"] == f"smoke step {STEPS}"
    for group in ("real", "sim"):
        items = [p for p in plan.values() if p["group"] == group]
        for label in (summary["model"], summary["control"]):
            m = summary["camera_id"][group][label]
            assert m["n"] == sum(p["split"] == "eval" for p in items)
            assert m["classes"] == len({p["model"] for p in items if p["split"] == "train"})
            assert m["chance"] == pytest.approx(1 / m["classes"]) and 0 <= m["top1"] <= 1
            assert (m["top1"] * m["n"]) == pytest.approx(round(m["top1"] * m["n"]))  # a count of photos


def test_retrieval_numbers_match_sklearn(run):
    wd, _ = run
    summary = json.loads((wd / "quickstart.json").read_text())
    sims = np.load(wd / "retrieval_similarity.npz")
    info = json.loads((wd / "data" / "dataset_info.json").read_text())
    for split in ("eval", "train"):
        sim, group = sims[f"{split}_sim"], sims[f"{split}_group"]
        m = summary["retrieval"][split]
        assert m["n"] == info["splits"][split]["records"] == len(sim)
        # Top-k counting a hit when any text of the photo's group is in the top k (identical texts count as one).
        order = np.argsort(-sim, axis=1, kind="stable")
        for k in (1, 5):
            assert m[f"top{k}"] == pytest.approx(float((group[order[:, :k]] == group[:, None]).any(1).mean()))
        if len(np.unique(group)) == len(group):
            ref = top_k_accuracy_score(np.arange(len(sim)), sim, k=1, labels=np.arange(len(sim)))
            assert m["top1"] == pytest.approx(ref)
        assert m["top5_chance"] == pytest.approx(5 / m["n"]) and m["top1_chance"] == pytest.approx(1 / m["n"])


def test_splice_sets_heatmaps_and_report(run):
    wd, _ = run
    summary = json.loads((wd / "quickstart.json").read_text())
    for name, folder in (("cross_camera", "data"), ("same_content", "same_content"), ("edits", "edits")):
        manifest = [json.loads(x) for x in (wd / "splices" / folder / "manifest.jsonl").read_text().splitlines()]
        assert len(manifest) == 2 == summary["splices"][name]["images"]
        for rec in manifest:
            if rec["label"] == 1:
                assert rec["host_camera"] != rec["donor_camera"]
                mask = np.asarray(Image.open(wd / "splices" / folder / "masks" / f"{rec['id']}.png"))
                assert 0.03 < (mask > 0).mean() < 0.5
        for label in (summary["model"], summary["control"], "random map"):
            assert summary["splices"][name][label]["images"] == 2
    assert len(summary["heatmaps"]) == 2
    for h in summary["heatmaps"]:
        with Image.open(h) as im:
            im.load()
            assert im.format == "PNG" and im.size == (256, 256)
    report = (wd / "REPORT.md").read_text()
    for heading in ("## 1. Data", "## 2. Training", "## 3. Camera identification", "## 4. Splice localization"):
        assert heading in report
    assert "untrained (seed 0)" in report and "random map" in report and "p-mAP" in report
    def cell(x):
        return "n/a" if x is None else f"{x:.3f}"

    for name in ("cross_camera", "same_content", "edits"):  # the pair score's row, beside the control's
        e = summary["splices"][name]
        row = (f"| {name} | {e['images']} | det. AUC, pair score | {cell(e[summary['model']].get('pair_det_auc'))} | "
               f"{cell(e[summary['control']].get('pair_det_auc'))} |")
        assert row in report, row
    paths = [p for p in re.findall(r"`(/[^`\s]+)`", report)]
    assert paths and all(pathlib.Path(p).exists() for p in paths), [p for p in paths if not pathlib.Path(p).exists()]


def test_rerun_refuses_changed_length_and_honours_splices(run):
    wd, _ = run
    r = _quickstart(wd, "--steps", str(STEPS + 3))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    msg = [ln for ln in r.stderr.splitlines() if ln.startswith("exif-jax quickstart:")]
    assert len(msg) == 1 and f"--steps {STEPS}" in msg[0] and "--workdir" in msg[0]
    assert (wd / "train" / "checkpoints" / str(STEPS)).is_dir()  # nothing lost
    # Same length: resumes with nothing to train and says so (this run 0 steps; the whole run's time is kept).
    t = quickstart.train(wd / "train", wd / "data", minutes=6.0, steps=STEPS, log=lambda m: None)
    assert t["start_step"] == t["steps"] == STEPS and t["steps_this_run"] == 0 and t["seconds_total"] > 0
    # A changed --splices regenerates the sets.
    plan = json.loads((wd / "photos" / "plan.json").read_text())
    sets = quickstart.splice_data(wd / "splices", wd / "photos", plan, 3, log=lambda m: None)
    for root in sets.values():
        assert len((root / "manifest.jsonl").read_text().splitlines()) == 3


def test_cli_rejects_bad_arguments():
    from exif_jax.commands import quickstart as cmd

    assert cmd.main(["--workdir", "/tmp/x", "--minutes", "0"]) == 2
    assert cmd.main(["--workdir", "/tmp/x", "--steps", "0"]) == 2
