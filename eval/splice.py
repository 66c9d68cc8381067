"""Splice benchmark evaluation: `python -m eval.splice --dataset NAME --data-root DIR --weights W --out DIR`.

Per image: the zero-shot pipeline (`exif_jax.splice.localize`), the detection score, localization metrics against
the ground-truth mask, and a heatmap overlay PNG. Summary: `results.json`, `results.md` (a markdown table with a
random-map baseline row beside the model), `per_image.jsonl`, `heatmaps/`. One unreadable image or mask is reported
and skipped; the run finishes. Python API: `evaluate(samples, embed_fn, out_dir)`.
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


def evaluate(samples, embed_fn, out_dir=None, *, heatmaps: bool = True, seed: int = 0, log=print,
             **splice_kwargs) -> dict:
    """Run the pipeline over `samples`; returns `{"model": summary, "random": summary, "records", "skipped"}`."""
    from exif_jax.splice import io as sio
    from exif_jax.splice.grid import GridError
    from exif_jax.splice.pipeline import localize

    out_dir = pathlib.Path(out_dir) if out_dir else None
    if out_dir and heatmaps:
        (out_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
    records, random_records, skipped = [], [], []
    t_start = time.perf_counter()
    per_image = open(out_dir / "per_image.jsonl", "w", encoding="utf-8") if out_dir else None
    rng = np.random.default_rng(seed)
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
                   "width": image.shape[1], "height": image.shape[0]}
            rnd = {"name": s.name, "label": s.label, "score": float(rng.random())}
            if s.label == 1 and mask is not None and mask.any():
                rec.update(metrics.localization_metrics(mask, res.heatmap))
                rnd.update(random_map_record(mask, res.grid, seed + k))
            elif s.label == 1:
                rec["note"] = "no mask or empty mask: detection only"
            records.append(rec)
            random_records.append(rnd)
            if per_image:
                per_image.write(json.dumps(rec) + "\n")
                per_image.flush()
            if out_dir and heatmaps:
                sio.write_png(out_dir / "heatmaps" / f"{_safe(str(pathlib.PurePath(s.name).with_suffix('')))}.heatmap.png",
                              sio.overlay(image, res.heatmap))
            rate = k / (time.perf_counter() - t_start)
            extra = f" p-mAP={rec['pmap']:.3f}" if "pmap" in rec else ""
            log(f"[{k}/{len(samples)}] {s.name} label={s.label} score={res.score:.4f}{extra} "
                f"({rate:.2f} img/s, ETA {(len(samples) - k) / rate:.0f}s)")
    finally:
        if per_image:
            per_image.close()
    return {"model": metrics.summarize(records), "random": metrics.summarize(random_records),
            "records": records, "skipped": skipped}


def synthetic_localization(weights, out_dir, *, n: int = 12, seed: int = 0, photos=None, size=(568, 757),
                           log=print, **splice_kwargs) -> dict:
    """Generate `n` synthetic cross-camera splices (eval.synthetic) and evaluate `weights` on them.

    `weights`: anything `exif_jax.load` takes, or an already loaded `ExifModel`. Returns
    `{"pmap": model p-mAP, "random_pmap": random-map p-mAP, "model": summary, "random": summary}`.
    """
    import exif_jax
    from eval import synthetic
    from exif_jax.splice.embed import model_embed_fn, model_patch_size

    out_dir = pathlib.Path(out_dir)
    data = synthetic.generate(out_dir / "synthetic_data", n, photos=photos or synthetic.DEFAULT_PHOTOS, size=size,
                              seed=seed, log=lambda m: None)
    model = exif_jax.load(weights) if isinstance(weights, (str, pathlib.Path)) else weights
    splice_kwargs.setdefault("patch", model_patch_size(model))
    res = evaluate(datasets.get_dataset("folder", data), model_embed_fn(model), out_dir, seed=seed, log=log,
                   **splice_kwargs)
    return {"pmap": res["model"]["pmap"], "random_pmap": res["random"]["pmap"], "model": res["model"],
            "random": res["random"], "skipped": res["skipped"]}


COLUMNS = [("images", "images"), ("pmap", "p-mAP"), ("ciou", "cIoU"), ("mcc", "MCC"), ("f1", "F1"),
           ("mcc@0.5", "MCC@0.5"), ("f1@0.5", "F1@0.5"), ("det_ap", "det AP"), ("det_auc", "det AUC")]


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
    p = argparse.ArgumentParser(prog="python -m eval.splice", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=sorted(datasets.DATASETS) + ["synthetic"],
                   help="'synthetic' generates cross-camera splices into OUT/synthetic_data first")
    p.add_argument("--data-root", help="dataset root (for 'synthetic': photo folder, default ../shared/data/photos_dev)")
    p.add_argument("--synthetic-n", type=int, default=12, help="images to generate for --dataset synthetic")
    p.add_argument("--weights", required=True, help="trainer workdir, exported .safetensors, or original .pth")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (0 = all)")
    p.add_argument("--legacy-invert", action="store_true", help="the original evaluator's inverted-input quirk")
    p.add_argument("--ms-mode", choices=("sequential", "parallel"), default="sequential")
    p.add_argument("--ms-neighbours", choices=("current", "initial"), default="current",
                   help="initial = the released PyTorch code's effective mean shift (see exif_jax.splice.meanshift)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-heatmaps", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-map baseline")
    p.add_argument("--patch", type=int, default=None, help="patch size (default: the model's config.image_size)")
    p.add_argument("--num-per-dim", type=int, default=30, help="patch steps along the long side")
    args = p.parse_args(argv)
    try:
        if args.dataset == "synthetic":
            from eval import synthetic

            root = synthetic.generate(pathlib.Path(args.out) / "synthetic_data", args.synthetic_n,
                                      photos=[args.data_root] if args.data_root else synthetic.DEFAULT_PHOTOS,
                                      seed=args.seed, log=lambda m: None)
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

    model = load_model_or_report(args.weights, "eval.splice")
    if model is None:
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.dataset}: {len(samples)} images "
          f"({sum(s.label for s in samples)} manipulated) from {args.data_root}", flush=True)
    res = evaluate(samples, model_embed_fn(model, args.batch_size, invert=args.legacy_invert), out,
                   heatmaps=not args.no_heatmaps, seed=args.seed, ms_mode=args.ms_mode,
                   ms_neighbours=args.ms_neighbours,
                   patch=args.patch or model_patch_size(model), num_per_dim=args.num_per_dim,
                   log=lambda m: print(m, flush=True))
    summary = {"dataset": args.dataset, "data_root": str(args.data_root), "weights": str(args.weights),
               "legacy_invert": args.legacy_invert, "ms_mode": args.ms_mode, "ms_neighbours": args.ms_neighbours,
               "model": res["model"], "random_map": res["random"], "skipped": res["skipped"]}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown_table({pathlib.Path(args.weights).name or "model": res["model"], "random map": res["random"]})
    (out / "results.md").write_text(f"# {args.dataset}\n\n{table}")
    print(table)
    if res["skipped"]:
        print(f"{len(res['skipped'])} image(s) skipped (see results.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
