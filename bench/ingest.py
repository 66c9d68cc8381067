"""Ingest throughput: photos/s per core for the local process pool and the Apache Beam runner (DirectRunner, same
worker count, one machine), and what that means for 1.5M photos (the paper's YFCC subset) and 100M (all YFCC100M).

    flock /tmp/exif_cpu.lock python bench/ingest.py [--photos DIR] [--workers 2] [--rounds 2]

Each round ingests the same photos into a fresh folder (nothing cached) with each runner; the best round counts.
Cores for N photos in H hours = N / (photos/s per core x 3600 H). Beam's overhead = its seconds per photo over
the pool's in the same run. Writes bench/results/ingest.json. Needs the [beam] extra (requirements-scale.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(photos: str, runner: str, workers: int) -> tuple[float, dict]:
    from exif_jax.data.ingest import IngestConfig, run

    out = tempfile.mkdtemp(prefix=f"bench_ingest_{runner}_")
    try:
        t = time.perf_counter()
        info = run(IngestConfig(images=photos, out=out, shards=8, workers=workers, progress=False, runner=runner,
                                eval_fraction=0.05))
        return time.perf_counter() - t, info
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", default=str(REPO.parent / "shared/data/photos_dev/metadata_extractor/images"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "bench/results/ingest.json"))
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    results = {}
    for runner in ("local", "beam"):
        times, info = [], None
        for _ in range(args.rounds):
            dt, info = one_run(args.photos, runner, args.workers)
            times.append(dt)
        n = info["counts"]["inputs"]
        best = min(times)
        per_core = n / best / args.workers
        results[runner] = {
            "inputs": n, "accepted": info["counts"]["accepted"], "image_mb": round(sum(
                info["splits"][s]["image_bytes"] for s in ("train", "eval")) / 1e6, 1),
            "seconds": [round(t, 2) for t in times], "photos_per_s": round(n / best, 2),
            "photos_per_s_per_core": round(per_core, 2),
            "core_hours_1.5M": round(1.5e6 / per_core / 3600, 1), "core_hours_100M": round(100e6 / per_core / 3600),
            "cores_for_1.5M_in_1h": round(1.5e6 / per_core / 3600), "cores_for_100M_in_24h": round(
                100e6 / per_core / 3600 / 24),
        }
    results["beam_over_local_per_photo"] = round(results["beam"]["photos_per_s"] and
                                                 results["local"]["photos_per_s"] / results["beam"]["photos_per_s"], 3)
    results.update(workers=args.workers, photos=args.photos, load_before=[round(x, 2) for x in load_before],
                   load_after=[round(x, 2) for x in os.getloadavg()], cpu_count=os.cpu_count())
    print(f"{'runner':<8}{'photos/s':>10}{'per core':>10}{'core-h 1.5M':>13}{'core-h 100M':>13}  rounds (s)")
    for r in ("local", "beam"):
        x = results[r]
        print(f"{r:<8}{x['photos_per_s']:>10}{x['photos_per_s_per_core']:>10}{x['core_hours_1.5M']:>13}"
              f"{x['core_hours_100M']:>13}  {x['seconds']}")
    print(f"Beam / process pool, seconds per photo on one machine ({args.workers} workers): "
          f"{results['beam_over_local_per_photo']}x (target <= 1.5x); load {results['load_before']} -> "
          f"{results['load_after']}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
