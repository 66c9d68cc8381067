"""`exif-jax splice IMAGE... --weights W --out DIR`: zero-shot splice localization and detection.

Writes per image `<stem>.heatmap.png` (overlay), `<stem>.panel.png` (image | heatmap + colour bar | ncuts),
`<stem>.heatmap_cells.npy` (the `(Hc, Wc)` mean-shift map before resizing), `<stem>.embeddings.npy` with
`--save-embeddings`, `<stem>.ncuts.png` + `<stem>.ncuts_cells.npy` with `--ncuts`, a line per image in
`DIR/scores.jsonl` (score: higher = more likely spliced; pair_score: the 99th percentile of patch-pair 1 - cos,
more sensitive to small regions, exif_jax.splice.pair_score; the untrained control's two scores beside them;
weights, step, patch, grid and mean-shift mode) and `DIR/index.html` (open it in a browser). A rerun into the same
folder replaces an image's line and files, never duplicates them. Folders given as IMAGE are searched for images (not recursive).
A bad or too-small image is reported in one line and skipped (exit status 1); Ctrl-C stops after the current
encoder batch and keeps every finished image (exit 130).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

PROG = "exif-jax splice"


def _parser() -> argparse.ArgumentParser:
    from exif_jax.splice.grid import MAX_CELLS, NUM_PER_DIM

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files (JPEG/PNG/TIFF) or folders of them")
    p.add_argument("--weights", required=True, help="trainer workdir, exported .safetensors, or original .pth")
    p.add_argument("--step", type=int, default=None, help="checkpoint step of a trainer workdir (default: latest)")
    p.add_argument("--out", required=True, help="output folder (created; a rerun replaces its images' results)")
    p.add_argument("--save-embeddings", action="store_true", help="write <stem>.embeddings.npy")
    p.add_argument("--legacy-invert", action="store_true",
                   help="feed (256 - v) mod 256 patches, reproducing the original evaluator's input quirk")
    p.add_argument("--ncuts", action="store_true", help="also write the two-cluster normalized-cuts map")
    p.add_argument("--no-control", action="store_true",
                   help="skip the untrained control (same config, random init, seed 0) scored beside the model")
    p.add_argument("--ms-mode", choices=("sequential", "parallel"), default="sequential",
                   help="sequential = the original's mean shift (default); parallel = faster, different")
    p.add_argument("--ms-dtype", choices=("auto", "float64", "float32"), default="auto",
                   help="auto = float64 (exact neighbour tests) except on TPU, which has no float64")
    p.add_argument("--ms-neighbours", choices=("initial", "current"), default=None,
                   help="initial (default) = what the released code computes and its published numbers "
                        "(its float32 maps make cKDTree search the initial rows); current = in-place variant")
    p.add_argument("--batch-size", type=int, default=64, help="patches per encoder call (fixed, last padded)")
    p.add_argument("--patch", type=int, default=None,
                   help="patch size (default: the model's training crop, config.image_size; 124 for the paper model)")
    p.add_argument("--num-per-dim", type=int, default=NUM_PER_DIM, help="patch steps along the long side")
    p.add_argument("--max-cells", type=int, default=MAX_CELLS,
                   help="at most this many map cells per side (a minimum stride: bounded time and memory on "
                        "small images; the default leaves the paper's 757x568 grid unchanged)")
    p.add_argument("--seed", type=int, default=0, help="seed of the normalized-cuts clustering")
    return p


def expand_inputs(items) -> list[pathlib.Path]:
    from exif_jax.splice.io import IMAGE_EXTS

    out = []
    for item in items:
        path = pathlib.Path(item)
        if path.is_dir():
            out.extend(sorted(q for q in path.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS))
        else:
            out.append(path)
    return out


def unique_stems(paths) -> list[str]:
    seen, stems = {}, []
    for path in paths:
        stem = path.stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        stems.append(stem if n == 0 else f"{stem}__{n}")
    return stems


def usage_problem(args) -> str | None:
    """One line for a bad option value, or None."""
    for name in ("batch_size", "num_per_dim", "max_cells", "patch"):
        v = getattr(args, name)
        if v is not None and v < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {v}"
    if args.step is not None and args.step < 0:
        return f"--step must be >= 0, got {args.step}"
    return None


def prepare_out(out: pathlib.Path) -> str | None:
    """Create the output folder; one line naming it when that is impossible."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"--out {out}: cannot create the folder ({e.strerror or e})"
    return None


def read_scores(path: pathlib.Path) -> dict[str, dict]:
    """Existing `scores.jsonl` lines by stem (a rerun replaces them); unreadable lines are dropped."""
    recs = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                recs[str(rec["stem"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return recs


def write_scores(path: pathlib.Path, recs: dict[str, dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in recs.values()), encoding="utf-8")
    tmp.replace(path)


def write_report(out: pathlib.Path, recs: dict[str, dict], provenance: dict) -> pathlib.Path:
    from exif_jax.splice import figures, report

    rows = list(recs.values())
    series = {"model": np.array([r["score"] for r in rows])}
    if rows and all("control_score" in r for r in rows):
        series["untrained control"] = np.array([r["control_score"] for r in rows])
    summary = {}
    for name, s in series.items():
        summary[name] = {"images": len(s), "mean": float(np.mean(s)) if len(s) else None,
                         "median": float(np.median(s)) if len(s) else None,
                         "max": float(np.max(s)) if len(s) else None}
    plots = None
    if rows:
        figures.score_plots(out / "score_plots.png", series)
        plots = "score_plots.png"
    has_ncuts = any(r.get("outputs", {}).get("ncuts") for r in rows)
    table = []
    for r in rows:
        o = r.get("outputs", {})
        table.append({"name": pathlib.Path(r["file"]).name, "input": o.get("input_thumb"),
                      "heat": o.get("heat_thumb"), "ncuts": o.get("ncuts"), "score": r["score"],
                      "control_score": r.get("control_score"),
                      "margin": r["score"] - r["control_score"] if "control_score" in r else None,
                      "pair_score": r.get("pair_score"), "control_pair_score": r.get("control_pair_score"),
                      "patches": r.get("patches"), "seconds": r.get("seconds", {}).get("total_s")})
    image_cols = [("input", "input"), ("heat", "heatmap")] + ([("ncuts", "ncuts")] if has_ncuts else [])
    value_cols = [("score", "score"), ("control_score", "untrained score"), ("margin", "score - untrained"),
                  ("pair_score", "pair score"), ("control_pair_score", "untrained pair score"),
                  ("patches", "patches"), ("seconds", "seconds")]
    return report.write_index(
        out, title="exif-jax splice", provenance=provenance, rows=table, image_columns=image_cols,
        value_columns=value_cols, summary=summary,
        summary_columns=[("images", "images"), ("mean", "mean score"), ("median", "median score"),
                         ("max", "max score")], plots=plots,
        notes=["Score = mean of the consistency volume (mean 1 - cos between patch embeddings); higher = more "
               "likely spliced. It has no calibrated threshold: compare with the untrained control (the same "
               "network with random weights, which already separates regions whose content differs) and with "
               "known authentic photos.",
               "Pair score = 99th percentile of 1 - cos over all patch pairs: a small pasted region moves the mean "
               "score little but the top 1% of pairs a lot. Same caveats; it is shown beside the score, not "
               "instead of it."])


def process(image, stem, out, model_embed, control_embed, args, patch):
    """Localize one image and write its files; returns the `scores.jsonl` record's outputs and numbers."""
    from exif_jax.splice import figures
    from exif_jax.splice import io as sio
    from exif_jax.splice.pipeline import localize
    from exif_jax.splice.pair_score import pair_score
    from exif_jax.splice.voting import consistency_volume, detection_score

    t0 = time.perf_counter()
    res = localize(image, model_embed, patch=patch, num_per_dim=args.num_per_dim, max_cells=args.max_cells,
                   source=stem, ms_mode=args.ms_mode, ms_dtype=args.ms_dtype, ms_neighbours=args.ms_neighbours,
                   ncuts=args.ncuts, seed=args.seed)
    extra = {}
    if control_embed is not None:
        from exif_jax.splice.grid import extract_patches

        feats = np.asarray(control_embed(extract_patches(image, res.grid)), np.float32)
        extra["control_score"] = detection_score(consistency_volume(feats, res.grid))
        extra["control_pair_score"] = pair_score(feats)
    outputs = {"heatmap": f"{stem}.heatmap.png", "panel": f"{stem}.panel.png",
               "cells": f"{stem}.heatmap_cells.npy", "input_thumb": f"report/{stem}.input.jpg",
               "heat_thumb": f"report/{stem}.heat.png"}
    (out / "report").mkdir(exist_ok=True)
    sio.write_png(out / outputs["heatmap"], figures.overlay(image, res.cells))
    np.save(out / outputs["cells"], res.cells)
    figures.panel(out / outputs["panel"], image, res.cells, ncuts_cells=res.ncuts_cells, title=stem)
    from PIL import Image

    Image.fromarray(figures.thumbnail(image)).save(out / outputs["input_thumb"], quality=90)
    figures.heat_figure(out / outputs["heat_thumb"], image.shape, res.cells)
    if args.save_embeddings:
        outputs["embeddings"] = f"{stem}.embeddings.npy"
        np.save(out / outputs["embeddings"], res.embeddings.astype(np.float32))
    if res.ncuts_cells is not None:
        outputs["ncuts"] = f"{stem}.ncuts.png"
        outputs["ncuts_cells"] = f"{stem}.ncuts_cells.npy"
        h, w = figures._fit_side(image.shape[0], image.shape[1], figures.DISPLAY_SIDE)
        nc = figures.resize(figures.display_cells(res.ncuts_cells), h, w, nearest=True)  # minority white
        sio.write_png(out / outputs["ncuts"], figures.mask_rgb(nc > 0.5))
        np.save(out / outputs["ncuts_cells"], res.ncuts_cells)
    timings = dict(res.timings, total_s=time.perf_counter() - t0)
    return res, extra, outputs, timings


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    problem = usage_problem(args)
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.images)
    if not paths:
        print(f"{PROG}: no images found in the given paths", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    problem = prepare_out(out)
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2

    from exif_jax.splice import io as sio
    from exif_jax.splice.embed import load_model_or_report, model_embed_fn, model_patch_size
    from exif_jax.splice.grid import GridError

    model = load_model_or_report(args.weights, PROG, step=args.step)
    if model is None:
        return 2
    embed = model_embed_fn(model, batch_size=args.batch_size, invert=args.legacy_invert)
    control_embed = control_label = None
    if not args.no_control:
        if hasattr(model, "untrained"):
            control = model.untrained(0)
            control_label = getattr(control, "label", "untrained (seed 0)")
            control_embed = model_embed_fn(control, batch_size=args.batch_size, invert=args.legacy_invert)
        else:
            print(f"{PROG}: this model has no untrained control; scores are shown alone", file=sys.stderr)
    patch = args.patch or model_patch_size(model)
    neighbours = args.ms_neighbours or ("initial" if args.ms_mode == "sequential" else "current")
    label = getattr(model, "label", None) or str(args.weights)
    provenance = {"model": label, "weights": str(args.weights), "step": getattr(model, "step", None),
                  "untrained control": control_label or "off", "patch": patch,
                  "grid": f"stride (max(H, W) - {patch}) // {args.num_per_dim}, at most {args.max_cells} cells per side",
                  "mean shift": f"{args.ms_mode}, neighbours {neighbours}, dtype {args.ms_dtype}",
                  "legacy_invert": args.legacy_invert}

    scores_path = out / "scores.jsonl"
    recs = read_scores(scores_path)
    failed = done = 0
    interrupted = False
    t_start = time.perf_counter()
    try:
        for k, (path, stem) in enumerate(zip(paths, unique_stems(paths)), 1):
            try:
                image = sio.load_image(path)
                res, extra, outputs, timings = process(image, stem, out, embed, control_embed, args, patch)
            except (sio.ImageError, GridError) as e:
                failed += 1
                msg = str(e).replace(f"{stem}: ", f"{path}: ", 1) if str(e).startswith(f"{stem}: ") else str(e)
                print(f"[{k}/{len(paths)}] skipped: {msg}", file=sys.stderr, flush=True)
                continue
            g = res.grid
            recs[stem] = {"file": str(path), "stem": stem, "score": res.score, "pair_score": res.pair_score,
                          **extra, "model": label,
                          "weights": str(args.weights), "step": getattr(model, "step", None),
                          "control": control_label, "patch": g.patch, "stride": g.stride,
                          "grid": {"patches": [g.hi, g.wi], "cells": [g.hc, g.wc], "num_per_dim": args.num_per_dim,
                                   "max_cells": args.max_cells},
                          "width": g.width, "height": g.height, "patches": g.num_patches, "cells": [g.hc, g.wc],
                          "mean_shift": {"mode": args.ms_mode, "neighbours": neighbours, "dtype": args.ms_dtype},
                          "legacy_invert": args.legacy_invert, "outputs": outputs,
                          "seconds": {k2: round(v, 4) for k2, v in timings.items()}}
            write_scores(scores_path, recs)
            done += 1
            rate = k / (time.perf_counter() - t_start)
            ctrl = f" untrained={extra['control_score']:.4f}" if "control_score" in extra else ""
            print(f"[{k}/{len(paths)}] {path.name}: score={res.score:.4f}{ctrl} pair={res.pair_score:.4f} "
                  f"{g.width}x{g.height} "
                  f"{g.num_patches} patches, {g.hc}x{g.wc} cells {timings['total_s']:.2f}s "
                  f"(ETA {(len(paths) - k) / rate:.0f}s)", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\n{PROG}: interrupted; {done} finished image(s) kept in {out}", file=sys.stderr, flush=True)
    try:
        page = write_report(out, recs, provenance)
    except KeyboardInterrupt:
        page = None
    print(f"wrote {done} result(s) to {out}" + (f"; {failed} image(s) skipped" if failed else "")
          + (f"; open {page}" if page else ""), flush=True)
    if interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
