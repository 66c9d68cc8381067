"""`exif-jax splice IMAGE... --weights W --out DIR`: zero-shot splice localization and detection.

Writes per image `<stem>.heatmap.png` (mean-shift map over the photo), `<stem>.heatmap_cells.npy` (the `(Hc, Wc)`
map before resizing), `<stem>.embeddings.npy` with `--save-embeddings` (`(N, D)` raw patch embeddings, raster
order), `<stem>.ncuts.png` with `--ncuts`, and one JSON line per image in `DIR/scores.jsonl`
(`file`, `score`: higher = more likely spliced). Folders given as IMAGE are searched for images (not recursive).
A bad or too-small image is reported and skipped; the exit status is 1 if any image failed.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exif-jax splice", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files (JPEG/PNG/TIFF) or folders of them")
    p.add_argument("--weights", required=True, help="trainer workdir, exported .safetensors, or original .pth")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--save-embeddings", action="store_true", help="write <stem>.embeddings.npy")
    p.add_argument("--legacy-invert", action="store_true",
                   help="feed (256 - v) mod 256 patches, reproducing the original evaluator's input quirk")
    p.add_argument("--ncuts", action="store_true", help="also write the two-cluster normalized-cuts map")
    p.add_argument("--ms-mode", choices=("sequential", "parallel"), default="sequential",
                   help="sequential = the original's in-place mean shift (default); parallel = faster, different")
    p.add_argument("--ms-dtype", choices=("auto", "float64", "float32"), default="auto",
                   help="auto = float64 (exact neighbour tests) except on TPU, which has no float64")
    p.add_argument("--ms-neighbours", choices=("current", "initial"), default="current",
                   help="initial = what the released PyTorch code computes (its float32 maps make cKDTree copy "
                        "the rows, so neighbours come from the initial rows)")
    p.add_argument("--batch-size", type=int, default=64, help="patches per encoder call (fixed, last padded)")
    p.add_argument("--patch", type=int, default=None,
                   help="patch size (default: the model's training crop, config.image_size; 124 for the paper model)")
    p.add_argument("--num-per-dim", type=int, default=30)
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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    paths = expand_inputs(args.images)
    if not paths:
        print("exif-jax splice: no images found in the given paths", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from exif_jax.splice import io as sio
    from exif_jax.splice.embed import load_model_or_report, model_embed_fn, model_patch_size
    from exif_jax.splice.grid import GridError
    from exif_jax.splice.pipeline import localize

    model = load_model_or_report(args.weights, "exif-jax splice")
    if model is None:
        return 2
    embed = model_embed_fn(model, batch_size=args.batch_size, invert=args.legacy_invert)
    patch = args.patch or model_patch_size(model)

    failed = 0
    t_start = time.perf_counter()
    with open(out / "scores.jsonl", "a", encoding="utf-8") as scores:
        for k, (path, stem) in enumerate(zip(paths, unique_stems(paths)), 1):
            t0 = time.perf_counter()
            try:
                image = sio.load_image(path)
                res = localize(image, embed, patch=patch, num_per_dim=args.num_per_dim, source=str(path),
                               ms_mode=args.ms_mode, ms_dtype=args.ms_dtype,
                               ms_neighbours=args.ms_neighbours, ncuts=args.ncuts, seed=args.seed)
            except (sio.ImageError, GridError) as e:
                failed += 1
                print(f"[{k}/{len(paths)}] skipped: {e}", file=sys.stderr)
                continue
            sio.write_png(out / f"{stem}.heatmap.png", sio.overlay(image, res.heatmap))
            np.save(out / f"{stem}.heatmap_cells.npy", res.cells)
            if args.save_embeddings:
                np.save(out / f"{stem}.embeddings.npy", res.embeddings.astype(np.float32))
            if res.ncuts is not None:
                sio.write_png(out / f"{stem}.ncuts.png", sio.overlay(image, res.ncuts))
            g = res.grid
            rec = {"file": str(path), "score": res.score, "stem": stem, "width": g.width, "height": g.height,
                   "patches": g.num_patches, "cells": [g.hc, g.wc], "legacy_invert": args.legacy_invert,
                   "seconds": {k2: round(v, 4) for k2, v in res.timings.items()}}
            scores.write(json.dumps(rec) + "\n")
            scores.flush()
            dt = time.perf_counter() - t0
            rate = k / (time.perf_counter() - t_start)
            eta = (len(paths) - k) / rate
            print(f"[{k}/{len(paths)}] {path.name}: score={res.score:.4f} {g.width}x{g.height} "
                  f"{g.num_patches} patches {dt:.2f}s ({rate:.2f} img/s, ETA {eta:.0f}s)", flush=True)
    print(f"wrote {len(paths) - failed} result(s) to {out}" + (f"; {failed} image(s) skipped" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
