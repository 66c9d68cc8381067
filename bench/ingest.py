"""Ingest throughput: photos/s per core for the local process pool and the Apache Beam runner (its local
FnApiRunner, same worker count, one machine), Beam's overhead per photo, and what that means for 1.5M photos (the
paper's YFCC subset) and 100M (all of YFCC100M).

    exif-jax simulate --photos ../shared/data/photos_multi --out /tmp/corpus --per-photo 6   # 1236 JPEGs
    flock /tmp/exif_cpu.lock python bench/ingest.py --photos /tmp/corpus [--workers 2] [--small 60] [--rounds 3]

Each runner ingests, into a fresh folder (nothing cached), the first `--small` photos and then all of them, so its
time splits into a fixed start-up cost and a cost per photo: t(n) = start-up + n x per-photo (two sizes, solved
exactly; the best of `--rounds` interleaved rounds at each size). Beam's overhead = its seconds per photo over the
pool's, both measured in this run, plus both start-ups in seconds; the same split of CPU seconds (the ingest's whole
process tree, measured in a child process) gives a per-photo ratio that other jobs' load does not move. Photos/s per
core = 1 / (per-photo seconds x workers); cores for N photos in H hours = N x per-photo x workers / 3600 H (start-up
is paid once per job, not per core). `--beam-modes` compares the local runner's running modes (multi_processing,
multi_threading, in_memory).
Writes bench/results/ingest.json. Needs the [beam] extra (requirements-scale.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(photos: str, runner: str, workers: int, beam_options: str = "") -> tuple[float, float, dict]:
    """(wall seconds of the ingest, CPU seconds of the whole child process tree, dataset_info) of one ingest into a
    fresh folder, run in a child process so that its CPU time (workers and Beam's SDK harnesses included: they are
    waited for) is measured apart from this process; the child's interpreter start is the same for both runners."""
    out = tempfile.mkdtemp(prefix=f"bench_ingest_{runner}_")
    code = ("import json, sys, time\nfrom exif_jax.data.ingest import IngestConfig, run\n"
            "if __name__ == '__main__':\n"
            "    a = json.loads(sys.argv[1]); t = time.perf_counter(); info = run(IngestConfig(**a))\n"
            "    print(json.dumps({'wall': time.perf_counter() - t, 'counts': info['counts']}))\n")
    cfg = dict(images=photos, out=out, shards=8, workers=workers, progress=False, runner=runner, eval_fraction=0.05,
               beam_options=beam_options)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=3600)
        if r.returncode:
            raise SystemExit(f"{runner} ingest of {photos} failed:\n{r.stderr[-3000:]}")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    return res["wall"], cpu, {"counts": res["counts"]}


def _subset(photos: pathlib.Path, n: int, into: pathlib.Path) -> pathlib.Path:
    """The first n JPEGs of `photos` (sorted paths), linked into a flat folder."""
    jpegs = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())[:n]
    into.mkdir(parents=True)
    for i, p in enumerate(jpegs):
        (into / f"{i:06d}_{p.name}").symlink_to(p.resolve())
    return into


def _corpus(photos: pathlib.Path) -> dict:
    """How big the photos are (the cost per photo grows with bytes and pixels: say what was measured)."""
    from PIL import Image

    sizes, pixels = [], []
    for p in photos.rglob("*"):
        if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file():
            sizes.append(p.stat().st_size)
            with Image.open(p) as im:
                pixels.append(im.size[0] * im.size[1])
    return {"jpegs": len(sizes), "mean_kb": round(sum(sizes) / len(sizes) / 1e3, 1),
            "mean_megapixels": round(sum(pixels) / len(pixels) / 1e6, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", default=str(REPO.parent / "shared/data/photos_dev/metadata_extractor/images"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--small", type=int, default=60, help="photos in the start-up probe")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--beam-modes", default="multi_processing",
                   help="comma-separated running modes of the local runner (--direct_running_mode) to measure")
    p.add_argument("--out", default=str(REPO / "bench/results/ingest.json"))
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_ingest_small_"))
    small = str(_subset(pathlib.Path(args.photos), args.small, tmp / "small"))
    runners = [("local", "local", "")] + [(f"beam {m}", "beam", f"--direct_running_mode={m}")
                                          for m in args.beam_modes.split(",")]
    results = {}
    runs = {(name, size): [] for name, _, _ in runners for size in ("small", "full")}
    try:  # rounds interleave the runners, so a change of load from other jobs falls on both
        for _ in range(args.rounds):
            for name, runner, opts in runners:
                for size, folder in (("small", small), ("full", args.photos)):
                    runs[name, size].append(one_run(folder, runner, args.workers, opts))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, _, _ in runners:
        row = {}
        for size in ("small", "full"):
            walls, cpus = [w for w, _, _ in runs[name, size]], [c for _, c, _ in runs[name, size]]
            counts = runs[name, size][-1][2]["counts"]
            row[size] = {"inputs": counts["inputs"], "accepted": counts["accepted"],
                         "seconds": [round(t, 2) for t in walls], "cpu_seconds": [round(c, 2) for c in cpus],
                         "best": min(walls), "best_cpu": min(cpus)}
        n0, n1 = row["small"]["inputs"], row["full"]["inputs"]
        per_photo = (row["full"]["best"] - row["small"]["best"]) / (n1 - n0)
        cpu_per_photo = (row["full"]["best_cpu"] - row["small"]["best_cpu"]) / (n1 - n0)
        startup = row["small"]["best"] - n0 * per_photo
        per_core = 1 / (per_photo * args.workers)
        core_h = {n: n * per_photo * args.workers / 3600 for n in (1.5e6, 100e6)}
        results[name] = {
            **row, "startup_s": round(startup, 2), "per_photo_ms": round(1e3 * per_photo, 3),
            "cpu_per_photo_ms": round(1e3 * cpu_per_photo, 3),
            "startup_cpu_s": round(row["small"]["best_cpu"] - n0 * cpu_per_photo, 2),
            "photos_per_s": round(n1 / row["full"]["best"], 2), "photos_per_s_marginal": round(1 / per_photo, 2),
            "photos_per_s_per_core": round(per_core, 2),
            "core_hours_1.5M": round(core_h[1.5e6], 1), "core_hours_100M": round(core_h[100e6]),
            "cores_for_1.5M_in_1h": round(core_h[1.5e6]), "cores_for_100M_in_24h": round(core_h[100e6] / 24),
        }
    base = results["local"]
    for name, _, _ in runners[1:]:
        results[name]["over_local_per_photo"] = round(results[name]["per_photo_ms"] / base["per_photo_ms"], 3)
        results[name]["over_local_whole_run"] = round(results[name]["full"]["best"] / base["full"]["best"], 3)
        results[name]["over_local_cpu_per_photo"] = round(results[name]["cpu_per_photo_ms"] / base["cpu_per_photo_ms"],
                                                          3)
    results.update(workers=args.workers, photos=args.photos, corpus=_corpus(pathlib.Path(args.photos)),
                   small=args.small,
                   load_before=[round(x, 2) for x in load_before], load_after=[round(x, 2) for x in os.getloadavg()],
                   cpu_count=os.cpu_count())
    n = base["full"]["inputs"]
    c = results["corpus"]
    print(f"{args.photos}: {n} inputs ({base['full']['accepted']} accepted; JPEGs of {c['mean_kb']} kB, "
          f"{c['mean_megapixels']} MP on average), start-up probe {args.small} photos, {args.workers} workers")
    print(f"{'runner':<24}{'start-up s':>11}{'ms/photo':>9}{'vs pool':>8}{'CPU ms/photo':>13}{'vs pool':>8}"
          f"{'photos/s/core':>14}{'core-h 1.5M':>12}{'core-h 100M':>12}  whole runs (s)")
    for name, _, _ in runners:
        x = results[name]
        print(f"{name:<24}{x['startup_s']:>11}{x['per_photo_ms']:>9}{x.get('over_local_per_photo', 1.0):>7}x"
              f"{x['cpu_per_photo_ms']:>13}{x.get('over_local_cpu_per_photo', 1.0):>7}x{x['photos_per_s_per_core']:>14}"
              f"{x['core_hours_1.5M']:>12}{x['core_hours_100M']:>12}  {x['full']['seconds']}")
    print(f"target: Beam <= 1.5x the pool per photo; load {results['load_before']} -> {results['load_after']}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
