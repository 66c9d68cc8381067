"""Query throughput: `exif-jax query` over 100 real photos with the smoke model on this machine.

    flock /tmp/exif_cpu.lock python bench/query.py --weights WORKDIR_OR_FILE [--photos DIR] [--n 100]

Measured in one run, on the same photos (`photos_multi`: camera JPEGs, centre crops of at most 1024x768):
- baseline: decoding the photos alone (PIL, RGB), the floor any query pays;
- `ExifModel.query` (in process, compiled): centre crop, and the 9 x <= 9 patch grid (the default);
- the command end to end (`exif-jax query DIR --tag Make --values-from ... --json --no-control`): process start,
  model load, compile, 100 photos.
Writes `bench/results/query.json` (photos/s, ratio to the decode baseline, load averages before/after).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _photos(folder: pathlib.Path, n: int) -> list[pathlib.Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    return files[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="smoke model (workdir or file); default: a random smoke model")
    ap.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "photos_multi"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "query.json"))
    args = ap.parse_args(argv)
    load_before = os.getloadavg()

    import numpy as np

    import exif_jax
    from exif_jax.splice.io import load_image

    tmp = tempfile.mkdtemp(prefix="bench_query_")
    weights = args.weights
    if weights is None:
        from flax import nnx

        from configs import smoke
        from exif_jax.convert.formats import save_safetensors
        from exif_jax.models import build_model

        cfg = smoke.get_config().model
        weights = os.path.join(tmp, "smoke_random.safetensors")
        save_safetensors(build_model(cfg, nnx.Rngs(0)), cfg, weights)
    model = exif_jax.load(weights)
    photos = _photos(pathlib.Path(args.photos), args.n)
    values = ["Canon", "NIKON CORPORATION", "SONY", "Panasonic", "OLYMPUS IMAGING CORP.", "FUJIFILM", "Apple"]
    model.query(photos[:2], {"Make": values})  # compile
    model.query(photos[:2], {"Make": values}, view="centre")

    t = time.perf_counter()
    for p in photos:
        load_image(p)
    decode = len(photos) / (time.perf_counter() - t)
    rates = {}
    for view in ("centre", "grid"):
        t = time.perf_counter()
        model.query(photos, {"Make": values}, view=view)
        rates[view] = len(photos) / (time.perf_counter() - t)

    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    folder = pathlib.Path(tmp) / "photos"
    folder.mkdir()
    for p in photos:
        (folder / p.name).symlink_to(p.resolve())
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "exif_jax", "query", str(folder), "--weights", str(weights),
                           "--tag", "Make", "--values", "|".join(values), "--json", "--no-control"],
                          env=env, capture_output=True, text=True)
    cli_s = time.perf_counter() - t
    cli_lines = sum(1 for ln in proc.stdout.splitlines() if ln.startswith("{"))

    res = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                    "load_after": os.getloadavg()},
        "model": model.label, "photos": len(photos), "photo_folder": str(args.photos),
        "mean_megapixels": float(np.mean([np.prod(load_image(p).shape[:2]) for p in photos[:20]]) / 1e6),
        "decode_only_photos_per_s": decode,
        "query_centre_photos_per_s": rates["centre"], "query_grid_photos_per_s": rates["grid"],
        "grid_vs_decode": rates["grid"] / decode, "centre_vs_decode": rates["centre"] / decode,
        "cli_end_to_end_s": cli_s, "cli_exit": proc.returncode, "cli_json_lines": cli_lines,
        "cli_photos_per_s": len(photos) / cli_s,
    }
    pathlib.Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"{len(photos)} photos ({res['mean_megapixels']:.2f} MP mean), {model.label}, load {load_before[0]:.1f}"
          f" -> {res['machine']['load_after'][0]:.1f}")
    print(f"  decode only (baseline)   {decode:7.1f} photos/s  1.00x")
    for view in ("centre", "grid"):
        print(f"  query, {view:<6} view       {rates[view]:7.1f} photos/s  {rates[view] / decode:.2f}x")
    print(f"  exif-jax query (process) {len(photos) / cli_s:7.1f} photos/s  {cli_s:.1f} s end to end, exit "
          f"{proc.returncode}, {cli_lines} JSON lines")
    return 0 if proc.returncode == 0 and cli_lines == len(photos) else 1


if __name__ == "__main__":
    sys.exit(main())
