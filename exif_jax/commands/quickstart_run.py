"""The quickstart, end to end on the photos bundled with the package (no network, CPU, about 8.5 minutes).

    exif-jax quickstart --workdir /tmp/exif_quickstart            # ~8.5 minutes on 2 CPU cores
    exif-jax quickstart --workdir /tmp/qs --minutes 2              # shorter training

1. photos -> WORKDIR/photos: the bundled several-photos-per-camera set (`exif_jax/assets/quickstart/multi/`, 12
   real cameras x 4 photos, SOURCES_multi.md) and the bundled single photos rendered through the default zoo of
   simulated cameras (`exif_jax.simulate`); split by photo (one photo of each real camera and a quarter of the
   source photos, with all their renders, are held out: held-out photos are of seen cameras); ingest -> WORKDIR/data
2. train `configs/smoke.py` on both for about `--minutes` minutes (or `--steps N`) -> WORKDIR/train
   (resumable: rerunning with the same WORKDIR continues the same run; a changed --steps/--minutes is refused)
3. camera identification of held-out photos (zero-shot image -> EXIF text over the camera Model values)
4. splices of held-out photos: cross-camera, same-content through two simulated cameras, and same-content through
   two plain edit chains outside the zoo; localized by patch-embedding consistency (mean shift)
5. WORKDIR/REPORT.md + quickstart.json: every number beside the untrained control (`ExifModel.untrained(0)`,
   evaluated identically; `--no-control` drops it), chance and a random map

Python: `exif_jax.commands.quickstart_run.run(workdir, minutes=7.0)` returns the numbers as a dict.
"""
from __future__ import annotations

import io
import json
import math
import pathlib
import shutil
import time
from typing import Callable

from exif_jax.commands.quickstart_eval import camera_id, splice_sets
from exif_jax.train.budget import steps_for_minutes

PHOTOS = pathlib.Path(__file__).resolve().parents[1] / "assets" / "quickstart" / "photos"
MULTI = PHOTOS.parent / "multi"  # several photos per real camera
SIM_PER_PHOTO = 4  # zoo cameras each bundled photo is rendered by
EVAL_FRACTION = 0.3  # ingest's hash split; staged file names are chosen so that it gives the planned split
CONTROL_SEED = 0
CALIBRATION_STEPS = 20  # steps timed before the run length is fixed (inside the warmup, so the LR is unaffected)


class QuickstartError(RuntimeError):
    """A step of the quickstart failed; the message names the step and the file or cause."""


class QuickstartUsageError(QuickstartError):
    """The options contradict what the workdir already holds (exit 2)."""


def _say(log: Callable, msg: str) -> None:
    log(f"[quickstart] {msg}")


def bundled_photos() -> list[pathlib.Path]:
    photos = sorted(p for p in PHOTOS.glob("*.jpg"))
    if len(photos) < 24:
        raise QuickstartError(f"{PHOTOS}: expected the bundled quickstart photos, found {len(photos)} "
                              "(reinstall the package or run launch/make_quickstart_data.sh)")
    return photos


def _staged_name(rel: str, want: str) -> str:
    """`rel`, or `rel` with a `~k` suffix, such that ingest's hash split (`split_of`) puts it in `want`."""
    from exif_jax.data.ingest import split_of

    stem, ext = rel.rsplit(".", 1)
    for k in range(1000):
        name = rel if k == 0 else f"{stem}~{k}.{ext}"
        if split_of(name, EVAL_FRACTION) == want:
            return name
    raise QuickstartError(f"no file name for {rel} falls in the {want} split")  # 1000 misses: p < 1e-150


def stage_photos(photos_dir: pathlib.Path, seed: int = 0, log=print) -> dict:
    """Step 1a: WORKDIR/photos/{real,sim}/... + plan.json (file -> split, group, camera Model, source photo).

    Real: per camera of the multi set, one photo held out. Simulated: a quarter of the bundled photos held out with
    all their renders; the others rendered by `SIM_PER_PHOTO` zoo cameras each."""
    import numpy as np

    from exif_jax.simulate import render_zoo

    plan_path = photos_dir / "plan.json"
    if plan_path.is_file():
        _say(log, f"photos: reusing {photos_dir}")
        return json.loads(plan_path.read_text())
    if photos_dir.exists():
        shutil.rmtree(photos_dir)
    rng = np.random.default_rng(seed)
    plan: dict[str, dict] = {}
    multi = sorted(MULTI.glob("*.jpg"))
    if len(multi) < 8:
        raise QuickstartError(f"{MULTI}: expected the bundled multi-photo set, found {len(multi)} photos "
                              "(reinstall the package or run launch/make_quickstart_data.sh)")
    from exif_jax.exif.reader import read_exif_file

    by_model: dict[str, list[pathlib.Path]] = {}
    for p in multi:
        tags = {t: d.strip() for _, t, d in read_exif_file(p)}
        by_model.setdefault(tags.get("Model", "?"), []).append(p)
    (photos_dir / "real").mkdir(parents=True)
    for model, files in sorted(by_model.items()):
        held = int(rng.integers(len(files)))
        for i, p in enumerate(files):
            split = "eval" if i == held else "train"
            name = _staged_name(f"real/{p.stem}.jpg", split)
            shutil.copyfile(p, photos_dir / name)
            plan[name] = {"split": split, "group": "real", "model": model, "source": str(p)}
    _say(log, f"photos: rendering {len(bundled_photos())} bundled photos through {SIM_PER_PHOTO} simulated cameras each")
    sim_tmp = photos_dir.parent / "sim_render"
    rec = render_zoo(PHOTOS, sim_tmp, per_photo=SIM_PER_PHOTO, seed=seed, force=True, log=lambda m: None)
    sources = sorted({r["source"] for r in rec["photos"]})
    held_sources = set(rng.choice(sources, size=max(len(sources) // 4, 2), replace=False).tolist())
    (photos_dir / "sim").mkdir()
    for r in rec["photos"]:
        split = "eval" if r["source"] in held_sources else "train"
        name = _staged_name(f"sim/{r['camera']}_{pathlib.Path(r['file']).stem}.jpg", split)
        shutil.move(sim_tmp / r["file"], photos_dir / name)
        plan[name] = {"split": split, "group": "sim", "model": r["model"], "source": r["source"]}
    shutil.copyfile(sim_tmp / "cameras.json", photos_dir / "cameras.json")
    shutil.rmtree(sim_tmp)
    plan_path.write_text(json.dumps(plan, indent=1))
    return plan


def ingest(out: pathlib.Path, photos_dir: pathlib.Path, log=print) -> dict:
    """Step 1b: `exif-jax ingest` of the staged photos with the `clean` renderer (texts carry Make and Model)."""
    from exif_jax.data.ingest import IngestConfig, IngestError, run as run_ingest

    info_path = out / "dataset_info.json"
    if info_path.is_file():
        _say(log, f"ingest: reusing {out}")
        return json.loads(info_path.read_text())
    _say(log, f"ingest: {photos_dir} -> {out}")
    cfg = IngestConfig(images=str(photos_dir), out=str(out), shards=2, eval_shards=2, workers=1,
                       eval_fraction=EVAL_FRACTION, renderer="clean", crop=64, min_tags=10, format="tfrecord",
                       progress=False)
    try:
        return run_ingest(cfg)
    except (IngestError, OSError, ValueError) as e:
        raise QuickstartError(f"ingest of {photos_dir} failed: {e}") from None


def smoke_config(data_path: pathlib.Path, steps: int):
    from configs import smoke

    c = smoke.get_config(f"steps={max(int(steps), 1)}")
    c.data.path = str(data_path)
    c.batch_size = 32
    c.data.eval_batch_size = 32
    c.log_every = min(int(c.log_every), 10)
    c.eval_every = max(int(steps) // 3, 10)
    c.checkpoint_every = max(int(steps) // 3, 10)
    return c


def _tower_name(model_cfg) -> str:
    from exif_jax.models.resnet import is_resnet50_layout, resnet_layout

    filt = model_cfg.get("image_filter", "none")
    seen = "" if filt == "none" else f", seeing each crop through the `{filt}` input filter (docs/TRACES.md)"
    if model_cfg.image_tower == "resnet50" and not is_resnet50_layout(model_cfg.resnet):
        width, stages = resnet_layout(model_cfg.resnet)
        return f"`resnet50` narrowed to width {width}, stages {'-'.join(map(str, stages))}{seen}"
    return f"`{model_cfg.image_tower}`{seen}"


def _last_metrics(train_dir: pathlib.Path) -> list[dict]:
    path = train_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r]  # train rows (the trainer's untrained-control row at step 0 has none)


def _checkpoint_step(train_dir: pathlib.Path) -> int:
    from exif_jax.train.workdir import checkpoint_steps

    return max(checkpoint_steps(train_dir), default=0)


def train(train_dir: pathlib.Path, data_dir: pathlib.Path, *, minutes: float, steps: int | None, log=print) -> dict:
    """Step 2: the smoke config. With `steps=None` the length is chosen from a timed start so that training takes
    about `minutes`; the first `CALIBRATION_STEPS` steps lie in the LR warmup, which does not depend on the run
    length, so the calibrated run equals one started with the final step count.

    Rerunning resumes the same run: its length was fixed by the first run, so a different --steps or --minutes is
    refused (one line) rather than silently ignored; the result says what this run and the whole run did."""
    from exif_jax.train.trainer import train as run_train

    saved_path = train_dir / "quickstart_steps.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
    if saved is not None:
        asked = {"steps": steps} if steps is not None else {"minutes": minutes}
        first = {"steps": saved.get("requested_steps")} if saved.get("requested_steps") else \
            {"minutes": saved.get("minutes")}
        if asked != first:
            def show(d):
                return " ".join(f"--{k} {v:g}" for k, v in d.items())
            raise QuickstartUsageError(
                f"{train_dir} was trained with {show(first)} ({saved['steps']} steps); rerun with {show(first)} to "
                f"resume it, or use a new --workdir for {show(asked)}")
    start_step = _checkpoint_step(train_dir)
    t0 = time.time()
    requested = steps
    if saved is not None:
        steps = int(saved["steps"])
    if steps is None:
        warmup = int(smoke_config(data_dir, 1000).optim.warmup_steps)
        calib = min(CALIBRATION_STEPS, max(warmup - 1, 1))
        _say(log, f"train: timing {calib} steps to fit the run into {minutes:g} min")
        # 20% of the time left for evals, checkpoints and a busy machine
        steps, rate = steps_for_minutes(smoke_config(data_dir, 1000), train_dir, minutes, calib_steps=calib,
                                        use_fraction=0.8)
        _say(log, f"train: {rate:.2f} steps/s -> {steps} steps")
    train_dir.mkdir(parents=True, exist_ok=True)
    record = {"steps": int(steps), "minutes": float(minutes), "requested_steps": requested,
              "train_seconds": float((saved or {}).get("train_seconds", 0.0))}
    saved_path.write_text(json.dumps(record))
    cfg = smoke_config(data_dir, steps)
    if start_step >= steps:
        _say(log, f"train: {train_dir} already holds all {steps} steps; nothing to train")
    else:
        _say(log, f"train: configs/smoke.py, steps {start_step} -> {steps} of batch {cfg.batch_size} -> {train_dir}")
    last = run_train(cfg, str(train_dir)) if start_step < steps else None
    seconds = time.time() - t0
    record["train_seconds"] += seconds
    saved_path.write_text(json.dumps(record))
    rows = _last_metrics(train_dir)
    evals = [r for r in rows if "eval_top5" in r]
    return {"steps": int(steps), "seconds": seconds, "start_step": start_step,
            "steps_this_run": max(int(steps) - start_step, 0), "seconds_total": record["train_seconds"],
            "config": cfg, "last": last or (rows[-1] if rows else {}),
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


def splice_data(out: pathlib.Path, photos_dir: pathlib.Path, plan: dict, n: int, seed: int = 0, log=print) -> dict:
    """Step 4a: three `folder` datasets of held-out photos under `out` (regenerated when `n` changed):
    `cross_camera` (eval.synthetic over held-out real and simulated photos), `same_content` (eval.same_content
    through two zoo cameras) and `edits` (same content through two plain edit chains outside the zoo)."""
    from eval import same_content, synthetic

    sets = {"cross_camera": out / "data", "same_content": out / "same_content", "edits": out / "edits"}
    stamp = out / "sets.json"
    want = {"n": int(n), "seed": int(seed), "photos": sorted(plan)}
    if stamp.is_file() and json.loads(stamp.read_text()) == want and all(p.is_dir() for p in sets.values()):
        _say(log, f"splices: reusing the {n}-image sets in {out}")
        return sets
    if out.exists():
        shutil.rmtree(out)
    held = out / "heldout_photos"
    for name, p in plan.items():
        if p["split"] == "eval":
            (held / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photos_dir / name, held / name)
    sources = sorted({p["source"] for p in plan.values() if p["split"] == "eval" and p["group"] == "sim"})
    _say(log, f"splices: {n} cross-camera, {n} same-content (zoo) and {n} same-content (edits) images of held-out "
              f"photos -> {out}")
    synthetic.generate(sets["cross_camera"], n=n, photos=(held,), size=(256, 256), authentic_fraction=0.25,
                       seed=seed, log=lambda m: None)
    for family in ("same_content", "edits"):
        same_content.generate(sets[family], n, photos=sources, family="zoo" if family == "same_content" else "edits",
                              authentic_fraction=0.25, max_side=256, seed=seed, force=True, log=lambda m: None)
    stamp.write_text(json.dumps(want))
    return sets


def _fmt(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _rows_of(results) -> list[dict]:
    if isinstance(results, dict):
        for key in ("rows", "results", "methods"):
            if isinstance(results.get(key), list):
                return results[key]
        return [dict(name=k, **v) for k, v in results.items() if isinstance(v, dict)]
    return list(results)


SET_TITLES = {"cross_camera": "cross-camera splices of held-out photos (real and simulated cameras)",
              "same_content": "same-content splices: one held-out photo through two simulated cameras",
              "edits": "same-content splices through two edit chains NOT in the zoo (re-compression, resampling, "
                       "noise, sharpening, blur)"}


def _margin(a, b):
    return None if a is None or b is None or a != a or b != b else a - b


def write_report(workdir: pathlib.Path, r: dict) -> pathlib.Path:
    t, cam, sp, labels = r["train"], r["camera_id"], r["splices"], r["labels"]
    trained = labels[0]
    control = labels[1] if len(labels) > 1 else None
    last, ev, info = t["last"], t["eval"], r["ingest"]
    groups = r["groups"]
    lines = [
        "# exif-jax quickstart report", "",
        f"Ran `exif-jax quickstart --workdir {workdir}` in {r['seconds'] / 60:.1f} min "
        f"(JAX {r['jax_version']}, {r['devices']}). Every number stands beside the untrained control "
        f"(`{control or 'off (--no-control)'}`: the same config, randomly initialised, evaluated identically): "
        "the margin is what training did.", "",
        "## 1. Data", "",
        f"{groups['real']['train'] + groups['real']['eval']} real photos of {groups['real']['cameras']} cameras "
        f"(`exif_jax/assets/quickstart/multi/`, lossless crops, `SOURCES_multi.md`) and "
        f"{groups['sim']['train'] + groups['sim']['eval']} renders of the bundled photos through "
        f"{groups['sim']['cameras']} simulated cameras (`exif-jax simulate`, `{workdir / 'photos' / 'cameras.json'}`), "
        f"ingested with the `clean` renderer to `{workdir / 'data'}`: {info['splits']['train']['records']} train, "
        f"{info['splits']['eval']['records']} held out, split by photo (one photo of every real camera; a quarter of "
        "the bundled photos with all their renders), so held-out photos are new photos of seen cameras.", "",
        "## 2. Training", "",
        f"`configs/smoke.py` (image tower {_tower_name(t['config'].model)}, {t['config'].data.crop} px crops, "
        f"batch {t['config'].batch_size}): {t['steps']} steps, loss {_fmt(t['first_loss'])} -> "
        f"{_fmt(last.get('loss'))} (chance level ln {t['config'].batch_size} = {math.log(t['config'].batch_size):.3f}). "
        f"This run trained steps {t['start_step']} -> {t['steps']} in {t['seconds'] / 60:.1f} min; the whole run "
        f"(all invocations on this workdir) {t['seconds_total'] / 60:.1f} min. Checkpoints, `metrics.jsonl` and "
        f"TensorBoard events: `{workdir / 'train'}`.", ""]
    if ev:
        lines += [f"Trainer's held-out eval at step {ev.get('step')}: loss {_fmt(ev.get('eval_loss'))}, "
                  f"top-5 {_fmt(ev.get('eval_top5'))} per crop, {_fmt(ev.get('eval_photo_top5'))} per photo; "
                  f"chance {_fmt(ev.get('eval_top5_chance'))}.", ""]
    lines += ["## 3. Camera identification of held-out photos", "",
              "Zero-shot: each held-out photo (mean embedding of its non-overlapping crops) ranked against one EXIF "
              "text per camera Model (mean embedding of that Model's training texts).", "",
              "| cameras | photos | classes | chance | " + trained + " | " +
              (f"{control} | margin | x chance | x untrained |" if control else "x chance |"),
              "|---|---|---|---|---|" + ("---|---|---|---|" if control else "---|")]
    for group in ("real", "sim", "all"):
        if group not in cam:
            continue
        m = cam[group][trained]
        row = f"| {group} | {m['n']} | {m['classes']} | {_fmt(m['chance'])} | {_fmt(m['top1'])} | "
        if control:
            c = cam[group][control]["top1"]
            row += (f"{_fmt(c)} | {_fmt(_margin(m['top1'], c))} | {m['top1'] / m['chance']:.1f}x | "
                    + (f"{m['top1'] / c:.1f}x |" if c > 0 else "inf |"))
        else:
            row += f"{m['top1'] / m['chance']:.1f}x |"
        lines.append(row)
    lines += ["", "## 4. Splice localization of held-out photos", "",
              f"Localized with `eval.splice.evaluate` (patch {t['config'].data.crop} px, mean shift over the patch "
              "grid); p-mAP is the per-image average precision of the heatmap against the mask, detection AUC "
              "separates spliced from authentic images by the score (the original's mean of the consistency "
              "volume) and by the pair score (99th percentile of patch-pair 1 - cos, which small pasted regions "
              "move more).", "",
              "| set | images | metric | " + trained + " | " + (f"{control} | margin | " if control else "")
              + "random map |", "|---|---|---|---|" + ("---|---|" if control else "") + "---|"]
    for name, e in sp.items():
        for key, title in (("pmap", "p-mAP"), ("det_auc", "det. AUC"), ("pair_det_auc", "det. AUC, pair score")):
            v, rnd = e[trained].get(key), e["random map"].get(key)
            row = f"| {name} | {e['images']} | {title} | {_fmt(v)} | "
            if control:
                c = e[control].get(key)
                row += f"{_fmt(c)} | {_fmt(_margin(v, c))} | "
            lines.append(row + f"{_fmt(rnd)} |")
    lines.append("")
    for name, e in sp.items():
        lines.append(f"- `{name}`: {SET_TITLES[name]}; data `{e['data_root']}`, per-image results and heatmaps "
                     f"`{e['eval_dir']}`.")
    lines += ["", "## 5. Image -> EXIF retrieval (every photo's text)", "",
              "Centre crop of each photo ranked against the EXIF texts of all photos of its split:", "",
              "| split | model | photos | top-1 | chance | top-5 | chance |", "|---|---|---|---|---|---|---|"]
    for label, ret in r["retrieval"].items():
        for split, m in ret.items():
            lines.append(f"| {split} | {label} | {m['n']} | {_fmt(m['top1'])} | {_fmt(m['top1_chance'])} | "
                         f"{_fmt(m['top5'])} | {_fmt(m['top5_chance'])} |")
    heat = sp.get("cross_camera", {}).get("heatmaps", [])
    lines += ["", f"Similarity matrices: `{workdir / 'retrieval_similarity.npz'}`.", "",
              "Heatmaps of the cross-camera set (overlays of the mean-shift consistency map):", ""]
    lines += [f"- `{h}`" for h in heat[:8]]
    if len(heat) > 8:
        lines.append(f"- ... {len(heat) - 8} more")
    lines += ["", "## Next", "",
              f"- localize your own image: `exif-jax splice photo.jpg --weights {workdir / 'train'} --out out/ "
              f"--patch {t['config'].data.crop}`",
              "- simulated cameras for your photos: `exif-jax simulate --photos DIR --out sim/`",
              "- train on your photos: `exif-jax ingest --images DIR --out data/ --renderer clean` then "
              "`exif-jax train --config configs/smoke.py --workdir runs/mine --config.data.path=data/`", ""]
    path = workdir / "REPORT.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _held_out_records(data_dir: pathlib.Path, plan: dict) -> tuple[list[dict], list[dict]]:
    out = {}
    for split in ("train", "eval"):
        recs = []
        for rec in _split_records(data_dir, split):
            p = plan.get(rec["photo_id"])
            if p is None:
                continue
            rec.update(group=p["group"], model=p["model"])
            recs.append(rec)
        out[split] = recs
    return out["train"], out["eval"]


def run(workdir, *, minutes: float = 7.0, steps: int | None = None, num_splices: int = 24, control: bool = True,
        log=print) -> dict:
    """Runs the five steps in `workdir`; returns the numbers (also written to WORKDIR/quickstart.json)."""
    import jax

    t0 = time.time()
    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    plan = stage_photos(workdir / "photos", log=log)
    info = ingest(workdir / "data", workdir / "photos", log)
    if info["splits"]["eval"]["records"] < 2 or info["splits"]["train"]["records"] < 8:
        raise QuickstartError(f"{workdir / 'data'}: too few photos after ingest ({info['splits']})")
    t = train(workdir / "train", workdir / "data", minutes=minutes, steps=steps, log=log)
    import exif_jax

    model = exif_jax.load(str(workdir / "train"))
    models = {model.label: model}
    if control:
        untrained = model.untrained(CONTROL_SEED)
        models[untrained.label] = untrained
    crop = int(t["config"].data.crop)
    train_recs, held = _held_out_records(workdir / "data", plan)
    _say(log, f"camera id: {len(held)} held-out photos, {len(models)} model(s)")
    cam = camera_id(models, train_recs, held, crop)
    sets = splice_data(workdir / "splices", workdir / "photos", plan, num_splices, log=log)
    sp = splice_sets(models, sets, workdir / "localization", crop, log)
    ret = {label: retrieval(m, workdir / "data", crop, save=workdir / "retrieval_similarity.npz" if i == 0 else None)
           for i, (label, m) in enumerate(models.items())}
    groups = {}
    for g in ("real", "sim"):
        items = [p for p in plan.values() if p["group"] == g]
        groups[g] = {"train": sum(p["split"] == "train" for p in items), "eval": sum(p["split"] == "eval" for p in items),
                     "cameras": len({p["model"] for p in items})}
    labels = list(models)
    result = {"ingest": info, "train": t, "camera_id": cam, "splices": sp, "retrieval": ret, "labels": labels,
              "groups": groups, "seconds": time.time() - t0, "jax_version": jax.__version__,
              "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}
    report = write_report(workdir, result)
    summary = {"report": str(report), "model": labels[0], "control": labels[1] if control else None,
               "steps": t["steps"], "steps_this_run": t["steps_this_run"], "train_seconds_this_run": t["seconds"],
               "train_seconds_total": t["seconds_total"], "first_loss": t["first_loss"],
               "final_loss": t["last"].get("loss"), "trainer_eval": t["eval"], "groups": groups,
               "camera_id": cam, "splices": sp, "retrieval": ret[labels[0]],
               "retrieval_control": ret[labels[1]] if control else None,
               "heatmaps": sp["cross_camera"]["heatmaps"], "seconds": result["seconds"]}
    (workdir / "quickstart.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(log, f"done in {result['seconds'] / 60:.1f} min: {report}")
    return summary
