"""Input pipeline throughput: crops/s per CPU core on the shared multi-megapixel camera JPEGs.

    python bench/input_pipeline.py                 # ~1-2 min on 2 cores; writes bench/results/input_pipeline.json
    python bench/input_pipeline.py --seconds 20 --workers 2

Baseline (same run, same JPEG bytes, one core): the plain per-sample loader a PyTorch/torchvision script uses:
`Image.open(bytes).convert("RGB")` + one random `crop` + `np.asarray`, i.e. one full decode per crop.
Pipeline: `exif_jax.data.pipeline.make_dataset` over the ingested TFRecord shards with `num_workers=0` (so it is
one core too), including CRC checks, record parsing, tokenization and batching, for several `crops_per_image`.
Reports crops/s/core, the ratio to the baseline, and the cores needed to feed 10k crops/s per host (a ResNet-50
124 px step on a TPU/GPU host). With `--workers N` it also measures the multi-process pipeline end to end.
With `--cache-mb N` it measures `data.decode_cache_mb=N` (decoded photos kept in memory) against no cache, both
after one warm epoch, at the largest `crops_per_image`: the steady state of a run that reads a small dataset for
many epochs.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "photos_dev"
TARGET = 10_000  # crops/s per host


def _photos(min_mp: float) -> list[pathlib.Path]:
    from PIL import Image

    out = []
    for d in (SHARED / "metadata_extractor" / "images", SHARED / "digicam_cc0"):
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg"):
                with Image.open(p) as im:
                    if im.size[0] * im.size[1] >= min_mp * 1e6:
                        out.append(p)
    return out


def _baseline(jpegs: list[tuple[bytes, int, int]], crop: int, seconds: float, seed: int = 0) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    n, pixels, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        data, w, h = jpegs[n % len(jpegs)]
        img = Image.open(io.BytesIO(data)).convert("RGB")
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        c = np.asarray(img.crop((left, top, left + crop, top + crop)))
        assert c.shape == (crop, crop, 3)
        n += 1
        pixels += w * h
    dt = time.perf_counter() - t0
    return {"crops": n, "seconds": round(dt, 3), "crops_per_s": round(n / dt, 2), "mpix_decoded_per_s": round(pixels / dt / 1e6, 1)}


def _pipeline(path: str, crop: int, batch: int, k: int, seconds: float, workers: int = 0, cache_mb: int = 0,
              warm_batches: int = 1) -> dict:
    from exif_jax.data.pipeline import make_dataset

    ds = make_dataset({"path": path, "shuffle_window": 64, "num_workers": workers, "prefetch": 2,
                       "decode_cache_mb": cache_mb},
                      global_batch_size=batch, process_index=0, process_count=1, seed=0, split="train",
                      crop_size=crop, crops_per_image=k)
    it = iter(ds)
    for _ in range(warm_batches):  # warm-up: tokenizer load, worker start, first groups (and the cache's epoch)
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = next(it)
        n += b["image"].shape[0]
    dt = time.perf_counter() - t0
    it.close()
    return {"crops_per_image": k, "workers": workers, "decode_cache_mb": cache_mb, "crops": n,
            "seconds": round(dt, 3), "crops_per_s": round(n / dt, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-mp", type=float, default=2.0, help="use shared photos of at least this many megapixels")
    ap.add_argument("--crop", type=int, default=124)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crops", default="1,4,8,16", help="crops_per_image values to measure")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement time per configuration")
    ap.add_argument("--workers", type=int, default=0, help="also measure mp_prefetch with this many processes")
    ap.add_argument("--cache-mb", type=int, default=0,
                    help="also measure data.decode_cache_mb=N after one warm epoch, against no cache after the same")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "input_pipeline.json"))
    args = ap.parse_args(argv)

    from exif_jax.data.ingest import IngestConfig, run

    photos = _photos(args.min_mp)
    if not photos:
        print(f"no shared photos of >= {args.min_mp} MP under {SHARED}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "photos"
        src.mkdir()
        for i, p in enumerate(photos):
            os.symlink(p, src / f"{i:03d}_{p.name}")
        out = pathlib.Path(tmp) / "ds"
        t = time.perf_counter()
        info = run(IngestConfig(images=str(src), out=str(out), shards=4, workers=min(2, os.cpu_count() or 1),
                                eval_fraction=0.0, crop=args.crop, progress=False))
        ingest_s = time.perf_counter() - t
        from exif_jax.data import records, tfrecord

        jpegs = []
        for name in info["splits"]["train"]["shards"]:
            for rec in tfrecord.read_records(out / name):
                r = records.parse_record(rec)
                jpegs.append((r["image"], r["width"], r["height"]))
        mp = [w * h / 1e6 for _, w, h in jpegs]
        print(f"{len(jpegs)} photos, {np.mean(mp):.1f} MP mean ({min(mp):.1f}-{max(mp):.1f}); ingest {ingest_s:.1f} s",
              file=sys.stderr)

        base = _baseline(jpegs, args.crop, args.seconds)
        print(f"baseline (PIL decode + crop per sample): {base['crops_per_s']:.1f} crops/s/core", file=sys.stderr)
        rows = []
        for k in [int(x) for x in args.crops.split(",")]:
            r = _pipeline(str(out), args.crop, args.batch, k, args.seconds)
            r["ratio_vs_baseline"] = round(r["crops_per_s"] / base["crops_per_s"], 2)
            r["cores_for_10k_crops_per_s"] = round(TARGET / r["crops_per_s"], 1)
            rows.append(r)
            print(f"pipeline crops_per_image={k}: {r['crops_per_s']:.1f} crops/s/core, x{r['ratio_vs_baseline']} "
                  f"baseline, {r['cores_for_10k_crops_per_s']} cores for 10k crops/s", file=sys.stderr)
        multi = None
        if args.workers > 0:
            k = max(int(x) for x in args.crops.split(","))
            multi = _pipeline(str(out), args.crop, args.batch, k, args.seconds, workers=args.workers)
            multi["crops_per_s_per_worker"] = round(multi["crops_per_s"] / args.workers, 2)
            print(f"pipeline crops_per_image={k}, {args.workers} worker processes: {multi['crops_per_s']:.1f} crops/s",
                  file=sys.stderr)
        cached = None
        if args.cache_mb > 0:  # steady state of a many-epoch run: both measured after the same warm epoch
            k = max(int(x) for x in args.crops.split(","))
            warm = -(-len(jpegs) * k // args.batch) + 1
            plain = _pipeline(str(out), args.crop, args.batch, k, args.seconds, warm_batches=warm)
            with_cache = _pipeline(str(out), args.crop, args.batch, k, args.seconds, cache_mb=args.cache_mb,
                                   warm_batches=warm)
            cached = {"warm_batches": warm, "no_cache": plain, "cache": with_cache,
                      "ratio_cache_vs_no_cache": round(with_cache["crops_per_s"] / plain["crops_per_s"], 2)}
            print(f"pipeline crops_per_image={k} after a warm epoch: {plain['crops_per_s']:.1f} crops/s/core without "
                  f"the cache, {with_cache['crops_per_s']:.1f} with {args.cache_mb} MiB "
                  f"(x{cached['ratio_cache_vs_no_cache']})", file=sys.stderr)

    result = {
        "benchmark": "input_pipeline",
        "machine": {"cpu_count": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
                    "note": "shared VM; other jobs may run concurrently (see load average): ratios are same-run"},
        "photos": {"count": len(jpegs), "mean_mp": round(float(np.mean(mp)), 2), "min_mp": round(min(mp), 2),
                   "max_mp": round(max(mp), 2), "source": "shared/data/photos_dev (metadata_extractor + digicam_cc0)"},
        "crop": args.crop,
        "batch": args.batch,
        "baseline": {"what": "per sample: PIL Image.open(bytes).convert('RGB') + random crop, one core", **base,
                     "cores_for_10k_crops_per_s": round(TARGET / base["crops_per_s"], 1)},
        "pipeline_one_core": rows,
        "pipeline_multiprocess": multi,
        "decode_cache": cached,
        "target_crops_per_s_per_host": TARGET,
        "command": "python bench/input_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.exit(main())
