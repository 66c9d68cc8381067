"""The quickstart, end to end on the photos bundled with the package (no network, CPU, a few minutes).

    exif-jax quickstart --workdir /tmp/exif_quickstart            # ~7 minutes on 2 CPU cores
    exif-jax quickstart --workdir /tmp/qs --minutes 2              # shorter training

1. ingest `exif_jax/assets/quickstart/photos/` (36 real camera JPEGs, see SOURCES.md) -> WORKDIR/data
2. train `configs/smoke.py` on it for about `--minutes` minutes (or `--steps N`) -> WORKDIR/train
   (resumable: rerunning with the same WORKDIR continues the same run)
3. image->EXIF retrieval with the trained model: each photo's centre crop ranked against all EXIF texts of its
   split (held-out photos and training photos, with chance levels)
4. synthetic cross-camera splices of the bundled photos -> WORKDIR/splices, localized by patch-embedding
   consistency (mean shift) with the trained model -> heatmap PNGs and p-mAP beside a random-map baseline
5. WORKDIR/REPORT.md: what ran, the numbers, where the files are

Python: `exif_jax.commands.quickstart_run.run(workdir, minutes=6.0)` returns the numbers as a dict.
"""
from __future__ import annotations

import io
import json
import math
import os
import pathlib
import shutil
import sys
import time
from typing import Callable

PHOTOS = pathlib.Path(__file__).resolve().parents[1] / "assets" / "quickstart" / "photos"
CALIBRATION_STEPS = 10  # steps timed before the run length is fixed (inside the warmup, so the LR is unaffected)


class QuickstartError(RuntimeError):
    """A step of the quickstart failed; the message names the step and the file or cause."""


def _say(log: Callable, msg: str) -> None:
    log(f"[quickstart] {msg}")


def bundled_photos() -> list[pathlib.Path]:
    photos = sorted(p for p in PHOTOS.glob("*.jpg"))
    if len(photos) < 24:
        raise QuickstartError(f"{PHOTOS}: expected the bundled quickstart photos, found {len(photos)} "
                              "(reinstall the package or run launch/make_quickstart_data.sh)")
    return photos


def ingest(out: pathlib.Path, log=print) -> dict:
    """Step 1: `exif-jax ingest` of the bundled photos (a no-op when `out` already holds them)."""
    from exif_jax.data.ingest import IngestConfig, IngestError, run as run_ingest

    bundled_photos()
    info_path = out / "dataset_info.json"
    if info_path.is_file():
        _say(log, f"ingest: reusing {out}")
        return json.loads(info_path.read_text())
    _say(log, f"ingest: {PHOTOS} -> {out}")
    cfg = IngestConfig(images=str(PHOTOS), out=str(out), shards=2, eval_shards=2, workers=1, eval_fraction=0.3,
                       renderer="legacy", crop=124, min_tags=10, format="tfrecord", progress=False)
    try:
        return run_ingest(cfg)
    except (IngestError, OSError, ValueError) as e:
        raise QuickstartError(f"ingest of {PHOTOS} failed: {e}") from None


def smoke_config(data_path: pathlib.Path, steps: int):
    from configs import smoke

    c = smoke.get_config(f"steps={max(int(steps), 1)}")
    c.data.path = str(data_path)
    c.batch_size = 16  # ~25 training photos: keep each batch's photos mostly distinct
    c.data.eval_batch_size = 8
    c.log_every = min(int(c.log_every), 10)
    c.eval_every = max(int(steps) // 3, 10)
    c.checkpoint_every = max(int(steps) // 3, 10)
    return c


def _tower_name(model_cfg) -> str:
    from exif_jax.models.resnet import is_resnet50_layout, resnet_layout

    if model_cfg.image_tower == "resnet50" and not is_resnet50_layout(model_cfg.resnet):
        width, stages = resnet_layout(model_cfg.resnet)
        return f"`resnet50` narrowed to width {width}, stages {'-'.join(map(str, stages))}"
    return f"`{model_cfg.image_tower}`"


def _last_metrics(train_dir: pathlib.Path) -> list[dict]:
    path = train_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r]  # train rows (the trainer's untrained-control row at step 0 has none)


def train(train_dir: pathlib.Path, data_dir: pathlib.Path, *, minutes: float, steps: int | None, log=print) -> dict:
    """Step 2: the smoke config. With `steps=None` the length is chosen from a timed start so that training takes
    about `minutes`; the first `CALIBRATION_STEPS` steps lie in the LR warmup, which does not depend on the run
    length, so the calibrated run equals one started with the final step count."""
    from exif_jax.train.trainer import train as run_train

    saved = train_dir / "quickstart_steps.json"
    if steps is None and saved.is_file():
        steps = int(json.loads(saved.read_text())["steps"])  # resuming: keep the length chosen before
    t0 = time.time()
    if steps is None:
        warmup = int(smoke_config(data_dir, 1000).optim.warmup_steps)
        calib = min(CALIBRATION_STEPS, max(warmup - 1, 1))
        cfg = smoke_config(data_dir, 1000)
        cfg.log_every = max(calib // 2, 1)  # the rate of the second half excludes the first step's compile
        cfg.checkpoint_every = calib
        cfg.eval_every = 0
        _say(log, f"train: timing {calib} steps to fit the run into {minutes:g} min")
        run_train(cfg, str(train_dir), stop_after=calib)
        rows = [r for r in _last_metrics(train_dir) if "samples_per_sec" in r]
        rate = rows[-1]["samples_per_sec"] / cfg.batch_size if rows else 1.0
        left = max(minutes * 60.0 - (time.time() - t0), 0.0)
        steps = max(calib + int(0.85 * left * rate), calib + 10)  # 15% for evals and checkpoints
        _say(log, f"train: {rate:.2f} steps/s -> {steps} steps")
    train_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"steps": int(steps)}))
    cfg = smoke_config(data_dir, steps)
    _say(log, f"train: configs/smoke.py, {steps} steps of batch {cfg.batch_size} -> {train_dir}")
    last = run_train(cfg, str(train_dir))
    rows = _last_metrics(train_dir)
    evals = [r for r in rows if "eval_top5" in r]
    return {"steps": int(steps), "seconds": time.time() - t0, "config": cfg, "last": last or (rows[-1] if rows else {}),
            "first_loss": rows[0]["loss"] if rows else float("nan"), "eval": evals[-1] if evals else {}}


def _split_records(data_dir: pathlib.Path, split: str) -> list[dict]:
    from exif_jax.data.records import parse_record
    from exif_jax.data.tfrecord import CorruptRecord, read_records

    out = []
    for shard in sorted(data_dir.glob(f"{split}-*.tfrecord")):
        for i, raw in enumerate(read_records(shard)):
            if isinstance(raw, CorruptRecord):
                continue
            out.append(parse_record(raw, f"{shard}#{i}"))
    return out


def _center_crop(jpeg: bytes, size: int):
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return rgb[y:y + size, x:x + size]


def retrieval(model, data_dir: pathlib.Path, crop: int, save: pathlib.Path | None = None) -> dict:
    """Step 3: image->EXIF top-1/top-5 per split (N-way: each photo's crop against all texts of its split).

    `save`: also write the cosine similarity matrices and text groups to this `.npz` (`<split>_sim`, `<split>_group`).
    """
    import numpy as np

    out, arrays = {}, {}
    for split in ("eval", "train"):
        recs = _split_records(data_dir, split)
        if not recs:
            continue
        imgs = model.encode_images(np.stack([_center_crop(r["image"], crop) for r in recs]))
        txts = model.encode_texts([r["exif_text"] for r in recs])
        imgs /= np.maximum(np.linalg.norm(imgs, axis=1, keepdims=True), 1e-12)
        txts /= np.maximum(np.linalg.norm(txts, axis=1, keepdims=True), 1e-12)
        _, group = np.unique([r["exif_text"] for r in recs], return_inverse=True)  # identical texts count as one
        group = group.reshape(-1)
        sim = imgs @ txts.T
        order = np.argsort(-sim, axis=1, kind="stable")
        hits = group[order] == group[:, None]
        n = len(recs)
        out[split] = {"n": n, "top1": float(hits[:, :1].any(1).mean()), "top5": float(hits[:, :5].any(1).mean()),
                      "top1_chance": 1.0 / n, "top5_chance": min(5, n) / n}
        arrays[f"{split}_sim"], arrays[f"{split}_group"] = sim, group
    if save is not None:
        np.savez(save, **arrays)
    return out


def splices(out: pathlib.Path, train_dir: pathlib.Path, crop: int, n: int, log=print) -> dict:
    """Step 4: synthetic cross-camera splices of the bundled photos, localized with the trained model."""
    from eval import splice as splice_eval, synthetic

    data_root = out / "data"
    if not (data_root / "manifest.jsonl").is_file():
        _say(log, f"splices: {n} synthetic images (cross-camera, 384x384) -> {data_root}")
        synthetic.generate(data_root, n=n, photos=(PHOTOS,), size=(384, 384), authentic_fraction=0.25, seed=0,
                           log=lambda m: None)
    eval_dir = out / "localization"
    if eval_dir.exists():
        shutil.rmtree(eval_dir)
    _say(log, f"splices: localizing with {train_dir} -> {eval_dir}")
    rc = splice_eval.main(["--dataset", "folder", "--data-root", str(data_root), "--weights", str(train_dir),
                           "--out", str(eval_dir), "--patch", str(crop), "--num-per-dim", "12"])
    if rc:
        raise QuickstartError(f"splice localization failed (python -m eval.splice exited {rc}); see the output above")
    results = json.loads((eval_dir / "results.json").read_text())
    heatmaps = sorted(str(p) for p in (eval_dir / "heatmaps").rglob("*.png")) if (eval_dir / "heatmaps").is_dir() else []
    manifest = [json.loads(line) for line in (data_root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return {"results": results, "heatmaps": heatmaps, "manifest": manifest, "data_root": str(data_root),
            "eval_dir": str(eval_dir)}


def _fmt(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _rows_of(results) -> list[dict]:
    if isinstance(results, dict):
        for key in ("rows", "results", "methods"):
            if isinstance(results.get(key), list):
                return results[key]
        return [dict(name=k, **v) for k, v in results.items() if isinstance(v, dict)]
    return list(results)


def write_report(workdir: pathlib.Path, r: dict) -> pathlib.Path:
    t, ret, sp = r["train"], r["retrieval"], r["splices"]
    last, ev = t["last"], t["eval"]
    lines = [
        "# exif-jax quickstart report", "",
        f"Ran `exif-jax quickstart --workdir {workdir}` in {r['seconds'] / 60:.1f} min "
        f"(JAX {r['jax_version']}, {r['devices']}).", "",
        "## 1. Data", "",
        f"{r['ingest']['counts']['accepted']} bundled camera photos (`exif_jax/assets/quickstart/photos/`, lossless "
        f"384x384 crops, sources in `SOURCES.md`) ingested to `{workdir / 'data'}`: "
        f"{r['ingest']['splits']['train']['records']} train, {r['ingest']['splits']['eval']['records']} held out "
        f"(by photo), {r['ingest']['counts']['rejected']} rejected.", "",
        "## 2. Training", "",
        f"`configs/smoke.py` (image tower {_tower_name(t['config'].model)}, {t['config'].data.crop} px crops, "
        f"batch {t['config'].batch_size}) for {t['steps']} steps in {t['seconds'] / 60:.1f} min: loss "
        f"{_fmt(t['first_loss'])} -> {_fmt(last.get('loss'))} (chance level ln {t['config'].batch_size} = "
        f"{math.log(t['config'].batch_size):.3f}). Checkpoints, `metrics.jsonl` and TensorBoard events: "
        f"`{workdir / 'train'}`.", "",
    ]
    if ev:
        lines += [f"Trainer's held-out eval at step {ev.get('step')}: loss {_fmt(ev.get('eval_loss'))}, "
                  f"top-1 {_fmt(ev.get('eval_top1'))}, top-5 {_fmt(ev.get('eval_top5'))} per random crop, "
                  f"{_fmt(ev.get('eval_photo_top5'))} per photo (mean of its crops' embeddings); top-5 chance "
                  f"{_fmt(ev.get('eval_top5_chance'))}.", ""]
    lines += ["## 3. Image -> EXIF retrieval", "",
              "Centre crop of each photo ranked against the EXIF texts of all photos in its split:", "",
              "| split | photos | top-1 | chance | top-5 | chance |", "|---|---|---|---|---|---|"]
    ret_note = f"Similarity matrices: `{workdir / 'retrieval_similarity.npz'}`."
    for split, m in ret.items():
        lines.append(f"| {split} | {m['n']} | {_fmt(m['top1'])} | {_fmt(m['top1_chance'])} | {_fmt(m['top5'])} "
                     f"| {_fmt(m['top5_chance'])} |")
    lines += ["", ret_note, "", "Held-out photos come from cameras the model never saw (one photo per camera); a few minutes on "
              "~25 photos mostly fits the training photos. Train on your own photos for real numbers.", "",
              "## 4. Splice localization (synthetic cross-camera splices)", "",
              f"{len(sp['manifest'])} images in `{sp['data_root']}` (a region of a photo from camera B pasted into a "
              f"photo from camera A; `masks/` holds the truth), localized with `python -m eval.splice --dataset "
              f"folder` (patch {t['config'].data.crop} px). Results: `{sp['eval_dir']}/results.md`.", ""]
    results_md = pathlib.Path(sp["eval_dir"]) / "results.md"
    if results_md.is_file():  # its headings one level below ours
        lines += [("###" + ln[1:] if ln.startswith("# ") else ln) for ln in results_md.read_text().strip().splitlines()]
        lines.append("")
    lines += ["Heatmaps (PNG overlays of the mean-shift consistency map; a spliced region should stand out):", ""] + [f"- `{h}`" for h in sp["heatmaps"][:12]]
    if len(sp["heatmaps"]) > 12:
        lines.append(f"- ... {len(sp['heatmaps']) - 12} more in `{sp['eval_dir']}/heatmaps/`")
    lines += ["", "## Next", "",
              f"- localize your own image: `exif-jax splice photo.jpg --weights {workdir / 'train'} --out out/ "
              f"--patch {t['config'].data.crop}`",
              "- train on your photos: `exif-jax ingest --images DIR --out data/` then "
              "`exif-jax train --config configs/smoke.py --workdir runs/mine --config.data.path=data/`",
              "- plan a pod run: `exif-jax compile --config configs/vit_b16.py --topology v5p-128`", ""]
    path = workdir / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run(workdir, *, minutes: float = 6.0, steps: int | None = None, num_splices: int = 6, log=print) -> dict:
    """Runs the five steps in `workdir`; returns the numbers (also written to WORKDIR/quickstart.json)."""
    import jax

    t0 = time.time()
    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    info = ingest(workdir / "data", log)
    if info["splits"]["eval"]["records"] < 2 or info["splits"]["train"]["records"] < 8:
        raise QuickstartError(f"{workdir / 'data'}: too few photos after ingest ({info['splits']})")
    t = train(workdir / "train", workdir / "data", minutes=minutes, steps=steps, log=log)
    import exif_jax

    _say(log, "retrieval: encoding centre crops and EXIF texts")
    model = exif_jax.load(str(workdir / "train"))
    ret = retrieval(model, workdir / "data", int(t["config"].data.crop), save=workdir / "retrieval_similarity.npz")
    sp = splices(workdir / "splices", workdir / "train", int(t["config"].data.crop), num_splices, log)
    result = {"ingest": info, "train": t, "retrieval": ret, "splices": sp, "seconds": time.time() - t0,
              "jax_version": jax.__version__,
              "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}
    report = write_report(workdir, result)
    summary = {"report": str(report), "steps": t["steps"], "first_loss": t["first_loss"],
               "final_loss": t["last"].get("loss"), "trainer_eval": t["eval"], "retrieval": ret,
               "splice_results": sp["results"], "heatmaps": sp["heatmaps"], "seconds": result["seconds"]}
    (workdir / "quickstart.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(log, f"done in {result['seconds'] / 60:.1f} min: {report}")
    return summary
