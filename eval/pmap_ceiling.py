"""The evaluator's localization ceiling: `python -m eval.pmap_ceiling --dataset NAME --data-root DIR [--patch 64]
[--num-per-dim 16] [--out FILE.json]`.

Patch embeddings that know where each patch's pixels came from (read from the ground-truth mask) go through the
same voting, mean shift, resize and metrics as a model's (`exif_jax.splice.localize_embeddings`,
`eval.metrics.localization_metrics`). What they score is the most any image tower can reach with this patch size and
grid on these splices: a model's p-mAP below it is what better embeddings can still gain, and a splice the ceiling
misses (a region under half a patch) no tower can find on this grid. Two oracles:
- `hard`: each patch labelled by its majority source (an ideal classifier of whole patches);
- `soft`: each patch embedded as its (spliced, authentic) pixel shares (an ideal embedding of mixed patches).
A fixed-seed 1e-3 jitter keeps the mean-shift radius (a percentile of pairwise distances) above zero. Authentic
images and spliced images without a mask are not scored (no mask: nothing to localize). Prints one line per oracle
(p-mAP and cIoU overall and by the pasted region's share of the image) beside a random map at the same resolution.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from eval import datasets, metrics

ORACLES = ("hard", "soft")
JITTER = 1e-3


def patch_shares(mask: np.ndarray, grid) -> np.ndarray:
    """`[N]` spliced share of each patch of `grid` (raster order), from a bool `[H, W]` mask."""
    integral = np.pad(np.cumsum(np.cumsum(mask.astype(np.float64), 0), 1), ((1, 0), (1, 0)))
    y, x = grid.origins().T
    p = grid.patch
    inside = integral[y + p, x + p] - integral[y, x + p] - integral[y + p, x] + integral[y, x]
    return inside / (p * p)


def oracle_features(shares: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """`[N, 2]` float32 embeddings of patches with spliced `shares`: `hard` one-hot of the majority source, `soft`
    the (spliced, authentic) shares."""
    if kind == "hard":
        f = np.stack([shares > 0.5, shares <= 0.5], 1).astype(np.float64)
    elif kind == "soft":
        f = np.stack([shares, 1.0 - shares], 1)
    else:
        raise ValueError(f"unknown oracle {kind!r}: expected one of {', '.join(ORACLES)}")
    return (f + JITTER * np.random.default_rng(seed).normal(size=f.shape)).astype(np.float32)


def ceiling(samples, *, patch: int, num_per_dim: int, seed: int = 0, log=print) -> dict:
    """Scores both oracles and a random map on every spliced sample with a mask -> `{"images", "skipped",
    "summary": {name: {"pmap", "ciou", "by_region": [...]}}, "records": [...]}`."""
    from eval.splice import random_map_record
    from exif_jax.splice.grid import GridError, patch_grid
    from exif_jax.splice.pipeline import localize_embeddings

    records, skipped = [], []
    for k, s in enumerate(samples, 1):
        if s.label != 1:
            continue
        try:
            image, mask = s.load()
            if mask is None or not mask.any():
                continue
            g = patch_grid(image.shape[0], image.shape[1], patch, num_per_dim, source=str(s.path))
        except (datasets.DatasetError, GridError) as e:
            skipped.append({"name": s.name, "error": str(e)})
            log(f"skipped: {e}")
            continue
        shares = patch_shares(mask, g)
        rec = {"name": s.name, "region": float(mask.mean()), "stride": g.stride}
        for kind in ORACLES:
            res = localize_embeddings(oracle_features(shares, kind, seed), g)
            m = metrics.localization_metrics(mask, res.heatmap)
            rec[kind] = {"pmap": m["pmap"], "ciou": m["ciou"]}
        m = random_map_record(mask, g, seed + k)
        rec["random_map"] = {"pmap": m["pmap"], "ciou": m["ciou"]}
        records.append(rec)
    bands = [[r for r in records if metrics.in_band(r["region"], i)] for i in range(len(metrics.REGION_BANDS))]
    mean = lambda recs, name, key: float(np.mean([r[name][key] for r in recs])) if recs else None  # noqa: E731
    summary = {name: {"pmap": mean(records, name, "pmap"), "ciou": mean(records, name, "ciou"),
                      "by_region": [{"from": lo, "to": hi, "images": len(recs), "pmap": mean(recs, name, "pmap")}
                                    for (lo, hi), recs in zip(metrics.REGION_BANDS, bands)]}
               for name in ORACLES + ("random_map",)}
    return {"images": len(records), "skipped": skipped, "summary": summary, "records": records}


def _line(name: str, s: dict) -> str:
    bands = ", ".join(f"{b['from']:.0%}-{b['to']:.0%}: {b['pmap']:.3f} ({b['images']})" for b in s["by_region"]
                      if b["pmap"] is not None)
    return f"{name}: p-mAP {s['pmap']:.3f}, cIoU {s['ciou']:.3f}; by region {bands}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.pmap_ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=sorted(datasets.DATASETS))
    p.add_argument("--data-root", required=True)
    p.add_argument("--patch", type=int, default=64, help="patch size of the tower (default 64, eval.learning's)")
    p.add_argument("--num-per-dim", type=int, default=16,
                   help="patch steps along the long side (16: eval.learning; 30: the original evaluator)")
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter and of the random map")
    p.add_argument("--out", help="write the summary and per-image records here as JSON")
    args = p.parse_args(argv)
    for name in ("patch", "num_per_dim"):
        if getattr(args, name) < 1:
            print(f"eval.pmap_ceiling: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}",
                  file=sys.stderr)
            return 2
    try:
        samples = datasets.get_dataset(args.dataset, args.data_root)
    except (datasets.DatasetError, FileNotFoundError, ValueError) as e:
        print(f"eval.pmap_ceiling: {e}", file=sys.stderr)
        return 2
    res = ceiling(samples, patch=args.patch, num_per_dim=args.num_per_dim, seed=args.seed,
                  log=lambda m: print(m, file=sys.stderr))
    if not res["images"]:
        print(f"eval.pmap_ceiling: {args.data_root}: no spliced image with a mask to score", file=sys.stderr)
        return 2
    print(f"{res['images']} spliced images with masks, patch {args.patch}, {args.num_per_dim} per side"
          + (f", {len(res['skipped'])} skipped" if res["skipped"] else ""))
    for name in ORACLES + ("random_map",):
        print(_line(name, res["summary"][name]))
    if args.out:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"patch": args.patch, "num_per_dim": args.num_per_dim, **res}, indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
