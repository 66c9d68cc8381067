"""Splice benchmark evaluation: `python -m eval.splice --dataset NAME --data-root DIR --weights W --out DIR`.

Per image: the zero-shot pipeline (`exif_jax.splice.localize`), the detection scores (the original's mean of the
consistency volume, and beside it the pair score of `exif_jax.splice.pair_score`), localization metrics against
the ground-truth mask, the same for the untrained control (`ExifModel.untrained(0)`, evaluated identically) and a
random map, and pictures (`heatmaps/<name>.heatmap.png` overlay, `panels/<name>.panel.png` image | heatmap |
ground truth). Summary: `results.json`, `results.md` (rows: the model by its label, the untrained control, the
random map, margins trained - untrained), `per_image.jsonl` and `index.html` (sortable, with curves). One
unreadable image or mask is reported and skipped; Ctrl-C writes the summary of the finished images.
Python API: `evaluate(samples, embed_fn, out_dir, control_embed_fn=...)`.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from eval import datasets, metrics


def _safe(name: str) -> str:
    return name.replace("/", "__").replace("\\", "__")


def random_map_record(mask, grid, seed: int) -> dict:
    """Metrics of a uniformly random cell map at the model's resolution, resized like the model's map."""
    from exif_jax.splice.pipeline import resize_bilinear

    rng = np.random.default_rng(seed)
    cells = rng.random((grid.hc, grid.wc)).astype(np.float32)
    return metrics.localization_metrics(mask, resize_bilinear(cells, grid.height, grid.width))


def _control_record(mask, label, image, grid, control_embed_fn, splice_kwargs) -> dict:
    """The untrained control on the same image and grid, evaluated identically (score and localization)."""
    from exif_jax.splice.grid import extract_patches
    from exif_jax.splice.pipeline import localize_embeddings

    keep = {k: v for k, v in splice_kwargs.items() if k in ("window", "iters", "ms_mode", "ms_dtype", "ms_neighbours")}
    feats = np.asarray(control_embed_fn(extract_patches(image, grid)), np.float32)
    res = localize_embeddings(feats, grid, **keep)
    rec = {"score": res.score, "pair_score": res.pair_score}
    if label == 1 and mask is not None and mask.any():
        rec.update(metrics.localization_metrics(mask, res.heatmap))
    return rec


def _write_pictures(out_dir, stem, image, mask, res) -> dict:
    from PIL import Image

    from exif_jax.splice import figures
    from exif_jax.splice import io as sio

    files = {"heatmap": f"heatmaps/{stem}.heatmap.png", "panel": f"panels/{stem}.panel.png",
             "input_thumb": f"report/{stem}.input.jpg", "heat_thumb": f"report/{stem}.heat.png"}
    sio.write_png(out_dir / files["heatmap"], figures.overlay(image, res.cells))
    show_mask = mask if (mask is not None and mask.any()) else None
    figures.panel(out_dir / files["panel"], image, res.cells, mask=show_mask, title=stem)
    Image.fromarray(figures.thumbnail(image)).save(out_dir / files["input_thumb"], quality=90)
    figures.heat_figure(out_dir / files["heat_thumb"], image.shape, res.cells)
    if show_mask is not None:
        files["mask_thumb"] = f"report/{stem}.mask.png"
        sio.write_png(out_dir / files["mask_thumb"], figures.thumbnail(figures.mask_rgb(show_mask), nearest=True))
    return files


def evaluate(samples, embed_fn, out_dir=None, *, heatmaps: bool = True, seed: int = 0, log=print,
             control_embed_fn=None, **splice_kwargs) -> dict:
    """Run the pipeline over `samples`.

    Returns `{"model", "untrained" (None without `control_embed_fn`), "random", "records", "skipped",
    "interrupted"}` (summaries from `metrics.summarize`). The control runs on the same patches and grid, evaluated
    identically; its numbers are kept in each record under `untrained`. Ctrl-C stops the loop and returns what
    is finished (`interrupted` = True).
    """
    from exif_jax.splice.grid import GridError
    from exif_jax.splice.pipeline import localize

    out_dir = pathlib.Path(out_dir) if out_dir else None
    if out_dir and heatmaps:
        (out_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
        (out_dir / "report").mkdir(parents=True, exist_ok=True)
        (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    records, control_records, random_records, skipped = [], [], [], []
    t_start = time.perf_counter()
    per_image = open(out_dir / "per_image.jsonl", "w", encoding="utf-8") if out_dir else None
    rng = np.random.default_rng(seed)
    interrupted = False
    try:
        for k, s in enumerate(samples, 1):
            try:
                image, mask = s.load()
                res = localize(image, embed_fn, source=str(s.path), **splice_kwargs)
            except (datasets.DatasetError, GridError) as e:
                skipped.append({"name": s.name, "error": str(e)})
                log(f"[{k}/{len(samples)}] skipped: {e}")
                continue
            rec = {"name": s.name, "file": str(s.path), "label": s.label, "score": res.score,
                   "pair_score": res.pair_score,
                   "width": image.shape[1], "height": image.shape[0], "stride": res.grid.stride,
                   "cells": [res.grid.hc, res.grid.wc]}
            rnd = {"name": s.name, "label": s.label, "score": float(rng.random())}
            if s.label == 1 and mask is not None and mask.any():
                rec.update(metrics.localization_metrics(mask, res.heatmap))
                rnd.update(random_map_record(mask, res.grid, seed + k))
            elif s.label == 1:
                rec["note"] = "no mask or empty mask: detection only"
            if control_embed_fn is not None:
                ctrl = _control_record(mask, s.label, image, res.grid, control_embed_fn, splice_kwargs)
                control_records.append({"name": s.name, "label": s.label, **ctrl})
                rec["untrained"] = ctrl
            rec["random_map"] = {k2: v for k2, v in rnd.items() if k2 not in ("name", "label")}
            if out_dir and heatmaps:
                rec["outputs"] = _write_pictures(out_dir, _safe(str(pathlib.PurePath(s.name).with_suffix(""))),
                                                 image, mask, res)
            records.append(rec)
            random_records.append(rnd)
            if per_image:
                per_image.write(json.dumps(rec) + "\n")
                per_image.flush()
            rate = k / (time.perf_counter() - t_start)
            extra = f" p-mAP={rec['pmap']:.3f}" if "pmap" in rec else ""
            if "untrained" in rec:
                extra += f" (untrained score={rec['untrained']['score']:.4f}" + (
                    f" p-mAP={rec['untrained']['pmap']:.3f})" if "pmap" in rec["untrained"] else ")")
            log(f"[{k}/{len(samples)}] {s.name} label={s.label} score={res.score:.4f}{extra} "
                f"({rate:.2f} img/s, ETA {(len(samples) - k) / rate:.0f}s)")
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted: {len(records)} finished image(s) kept")
    finally:
        if per_image:
            per_image.close()
    return {"model": metrics.summarize(records),
            "untrained": metrics.summarize(control_records) if control_embed_fn is not None else None,
            "random": metrics.summarize(random_records), "records": records, "skipped": skipped,
            "interrupted": interrupted}


def margins(model: dict, control: dict) -> dict:
    """trained - untrained for every metric both summaries have (what training did)."""
    return {k: model[k] - control[k] for k in model
            if k not in ("images", "manipulated_with_mask") and isinstance(model.get(k), float)
            and isinstance(control.get(k), float)}


def write_index(out_dir, res: dict, provenance: dict, rows_summary: dict) -> pathlib.Path:
    """`index.html` of an evaluation: summary table, curves and histograms, a sortable row per image."""
    from exif_jax.splice import figures, report

    out_dir = pathlib.Path(out_dir)
    recs = res["records"]
    plots = None
    if recs:
        labels = np.array([r["label"] for r in recs])
        series = {"model": np.array([r["score"] for r in recs])}
        if res.get("untrained") is not None:
            series["untrained"] = np.array([r["untrained"]["score"] for r in recs])
        series["random map"] = np.array([r["random_map"]["score"] for r in recs])
        figures.score_plots(out_dir / "score_plots.png", series, labels)
        plots = "score_plots.png"
    rows = []
    for r in recs:
        o = r.get("outputs", {})
        u = r.get("untrained", {})
        row = {"name": r["name"], "input": o.get("input_thumb"), "heat": o.get("heat_thumb"),
               "mask": o.get("mask_thumb"), "label": r["label"], "score": r["score"],
               "u_score": u.get("score"), "pair_score": r.get("pair_score"), "u_pair_score": u.get("pair_score"),
               "pmap": r.get("pmap"), "u_pmap": u.get("pmap"),
               "rnd_pmap": r["random_map"].get("pmap"), "ciou": r.get("ciou"), "f1": r.get("f1"),
               "mcc": r.get("mcc")}
        row["margin_pmap"] = (row["pmap"] - row["u_pmap"]) if row["pmap"] is not None and row["u_pmap"] is not None else None
        rows.append(row)
    value_cols = [("label", "label (1 = manipulated)"), ("score", "score"), ("u_score", "untrained score"),
                  ("pair_score", "pair score"), ("u_pair_score", "untrained pair score"),
                  ("pmap", "p-mAP"), ("u_pmap", "untrained p-mAP"), ("margin_pmap", "p-mAP - untrained"),
                  ("rnd_pmap", "random-map p-mAP"), ("ciou", "cIoU"), ("f1", "F1"), ("mcc", "MCC")]
    return report.write_index(out_dir, title=f"eval.splice: {provenance.get('dataset', '')}", provenance=provenance,
                              rows=rows, image_columns=[("input", "input"), ("heat", "heatmap"),
                                                        ("mask", "ground truth")],
                              value_columns=value_cols, summary=rows_summary, summary_columns=COLUMNS, plots=plots)


def synthetic_localization(weights, out_dir, *, n: int = 12, seed: int = 0, photos=None, size=(568, 757),
                           log=print, control: bool = True, **splice_kwargs) -> dict:
    """Generate `n` synthetic cross-camera splices (eval.synthetic) and evaluate `weights` on them.

    `weights`: anything `exif_jax.load` takes, or an already loaded `ExifModel`. Returns
    `{"pmap": model p-mAP, "untrained_pmap": the untrained control's (None with control=False), "random_pmap":
    random-map p-mAP, "model", "untrained", "random": summaries}`.
    """
    import exif_jax
    from eval import synthetic
    from exif_jax.splice.embed import model_embed_fn, model_patch_size

    out_dir = pathlib.Path(out_dir)
    data = synthetic.generate(out_dir / "synthetic_data", n, photos=photos or synthetic.DEFAULT_PHOTOS, size=size,
                              seed=seed, log=lambda m: None, force=True)
    model = exif_jax.load(weights) if isinstance(weights, (str, pathlib.Path)) else weights
    splice_kwargs.setdefault("patch", model_patch_size(model))
    ctrl = model_embed_fn(model.untrained(0)) if control and hasattr(model, "untrained") else None
    res = evaluate(datasets.get_dataset("folder", data), model_embed_fn(model), out_dir, seed=seed, log=log,
                   control_embed_fn=ctrl, **splice_kwargs)
    return {"pmap": res["model"]["pmap"], "random_pmap": res["random"]["pmap"],
            "untrained_pmap": res["untrained"]["pmap"] if res["untrained"] else None, "model": res["model"],
            "untrained": res["untrained"], "random": res["random"], "skipped": res["skipped"]}


COLUMNS = [("images", "images"), ("pmap", "p-mAP"), ("ciou", "cIoU"), ("mcc", "MCC"), ("f1", "F1"),
           ("mcc@0.5", "MCC@0.5"), ("f1@0.5", "F1@0.5"), ("det_ap", "det AP"), ("det_auc", "det AUC"),
           ("pair_det_ap", "det AP, pair score"), ("pair_det_auc", "det AUC, pair score")]


def markdown_table(rows: dict[str, dict]) -> str:
    lines = ["| method | " + " | ".join(c for _, c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, summ in rows.items():
        cells = []
        for key, _ in COLUMNS:
            v = summ.get(key, float("nan"))
            cells.append(str(int(v)) if key == "images" else ("-" if v != v else f"{v:.3f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from exif_jax.commands.splice import prepare_out
    from exif_jax.splice.grid import MAX_CELLS

    p = argparse.ArgumentParser(prog="python -m eval.splice", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=sorted(datasets.DATASETS) + ["synthetic"],
                   help="'synthetic' generates cross-camera splices into OUT/synthetic_data first")
    p.add_argument("--data-root", help="dataset root (for 'synthetic': photo folder, default the bundled "
                                       "quickstart photos)")
    p.add_argument("--synthetic-n", type=int, default=12, help="images to generate for --dataset synthetic")
    p.add_argument("--weights", required=True, help="trainer workdir, exported .safetensors, or original .pth")
    p.add_argument("--step", type=int, default=None, help="checkpoint step of a trainer workdir (default: latest)")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (0 = all)")
    p.add_argument("--no-control", action="store_true",
                   help="skip the untrained control (same config, random init, seed 0, evaluated identically)")
    p.add_argument("--legacy-invert", action="store_true", help="the original evaluator's inverted-input quirk")
    p.add_argument("--ms-mode", choices=("sequential", "parallel"), default="sequential")
    p.add_argument("--ms-neighbours", choices=("initial", "current"), default=None,
                   help="initial (default) = the released code's effective mean shift, which gave the published "
                        "numbers; current = in-place variant (see exif_jax.splice.meanshift)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-heatmaps", action="store_true", help="no pictures (and an index.html without them)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-map baseline")
    p.add_argument("--patch", type=int, default=None, help="patch size (default: the model's config.image_size)")
    p.add_argument("--num-per-dim", type=int, default=30, help="patch steps along the long side")
    p.add_argument("--max-cells", type=int, default=MAX_CELLS, help="at most this many map cells per side")
    args = p.parse_args(argv)
    for name in ("batch_size", "num_per_dim", "max_cells", "patch", "synthetic_n"):
        v = getattr(args, name)
        if v is not None and v < 1:
            print(f"eval.splice: --{name.replace('_', '-')} must be >= 1, got {v}", file=sys.stderr)
            return 2
    out = pathlib.Path(args.out)
    problem = prepare_out(out)
    if problem:
        print(f"eval.splice: {problem}", file=sys.stderr)
        return 2
    try:
        if args.dataset == "synthetic":
            from eval import synthetic

            root = synthetic.generate(out / "synthetic_data", args.synthetic_n,
                                      photos=[args.data_root] if args.data_root else synthetic.DEFAULT_PHOTOS,
                                      seed=args.seed, log=lambda m: None, force=True)
            samples = datasets.get_dataset("folder", root)
        elif not args.data_root:
            raise datasets.DatasetError(f"--data-root is required for --dataset {args.dataset}")
        else:
            samples = datasets.get_dataset(args.dataset, args.data_root)
    except (datasets.DatasetError, FileNotFoundError, ValueError) as e:
        print(f"eval.splice: {e}", file=sys.stderr)
        return 2
    if args.limit:
        samples = samples[: args.limit]

    from exif_jax.splice.embed import load_model_or_report, model_embed_fn, model_patch_size

    model = load_model_or_report(args.weights, "eval.splice", step=args.step)
    if model is None:
        return 2
    control = None
    if not args.no_control and hasattr(model, "untrained"):
        control = model.untrained(0)
    label = getattr(model, "label", None) or (pathlib.Path(args.weights).name or "model")
    control_label = getattr(control, "label", "untrained (seed 0)") if control is not None else None
    neighbours = args.ms_neighbours or ("initial" if args.ms_mode == "sequential" else "current")
    patch = args.patch or model_patch_size(model)
    print(f"{args.dataset}: {len(samples)} images "
          f"({sum(s.label for s in samples)} manipulated) from {args.data_root}; model {label}"
          + (f", control {control_label}" if control_label else ", no control"), flush=True)
    res = evaluate(samples, model_embed_fn(model, args.batch_size, invert=args.legacy_invert), out,
                   heatmaps=not args.no_heatmaps, seed=args.seed, ms_mode=args.ms_mode,
                   ms_neighbours=args.ms_neighbours, patch=patch, num_per_dim=args.num_per_dim,
                   max_cells=args.max_cells, log=lambda m: print(m, flush=True),
                   control_embed_fn=(model_embed_fn(control, args.batch_size, invert=args.legacy_invert)
                                     if control is not None else None))
    summary = {"dataset": args.dataset, "data_root": str(args.data_root), "weights": str(args.weights),
               "model_label": label, "step": getattr(model, "step", None), "control_label": control_label,
               "patch": patch, "num_per_dim": args.num_per_dim, "max_cells": args.max_cells,
               "legacy_invert": args.legacy_invert, "ms_mode": args.ms_mode, "ms_neighbours": neighbours,
               "model": res["model"], "untrained": res["untrained"], "random_map": res["random"],
               "margin": margins(res["model"], res["untrained"]) if res["untrained"] else None,
               "skipped": res["skipped"], "interrupted": res["interrupted"]}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = {label: res["model"]}
    if res["untrained"]:
        rows[control_label] = res["untrained"]
    rows["random map"] = res["random"]
    if res["untrained"]:
        rows["margin (trained - untrained)"] = dict(margins(res["model"], res["untrained"]),
                                                    images=res["model"]["images"])
    table = markdown_table(rows)
    (out / "results.md").write_text(f"# {args.dataset}\n\n{table}")
    data_root = str(out / "synthetic_data") if args.dataset == "synthetic" else str(args.data_root)
    provenance = {"dataset": args.dataset, "data root": data_root, "model": label,
                  "weights": str(args.weights), "step": getattr(model, "step", None),
                  "untrained control": control_label or "off", "patch": patch,
                  "grid": f"stride (max(H, W) - {patch}) // {args.num_per_dim}, at most {args.max_cells} cells per side",
                  "mean shift": f"{args.ms_mode}, neighbours {neighbours}", "legacy_invert": args.legacy_invert,
                  "skipped images": len(res["skipped"])}
    page = write_index(out, res, provenance, rows)
    print(table)
    if res["skipped"]:
        print(f"{len(res['skipped'])} image(s) skipped (see results.json)")
    print(f"open {page}")
    return 130 if res["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
