"""`exif-jax simulate`: render photos through the default zoo of simulated cameras, as JPEGs with EXIF.

    exif-jax simulate --out /tmp/sim                                   # the bundled quickstart photos, all cameras
    exif-jax simulate --photos my_photos/ --out /tmp/sim --cameras 8 --per-photo 3 --seed 1

Each camera is a fixed chain (CFA mosaic + demosaicing, shot/read noise by ISO, denoising, sharpening, resampling,
JPEG quantization tables + chroma subsampling); its JPEGs carry EXIF describing it (Make, Model, ISO Speed Ratings,
Sharpness, Contrast, Saturation, White Balance, Exif Image Width/Height, Software, ...), so `exif-jax ingest` and
training treat them as any photo. White balance, tone and saturation vary per photo, never per camera, and every
render keeps the per-channel mean/std of a camera-independent reference: cameras differ only in local traces.
Output: OUT/<camera id>/<photo>.jpg and OUT/cameras.json (every camera's chain and EXIF; each file's camera and
source photo). The same arguments give the same bytes.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

DEFAULT_PHOTOS = pathlib.Path(__file__).resolve().parents[1] / "assets" / "quickstart" / "photos"


def build_parser() -> argparse.ArgumentParser:
    intro, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(prog="exif-jax simulate", description=" ".join(intro.split()),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=rest)
    p.add_argument("--photos", nargs="+", default=[str(DEFAULT_PHOTOS)],
                   help="photo folders (searched recursively) or files (default: the bundled quickstart photos)")
    p.add_argument("--out", help="output folder (must be empty or missing, unless --force); required")
    p.add_argument("--cameras", type=int, default=None, help="use the first N cameras of the default zoo (default all 12)")
    p.add_argument("--per-photo", type=int, default=None, help="cameras each photo is rendered by (default: all in use)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-photo looks, noise and camera choice")
    p.add_argument("--max-side", type=int, default=None, help="centre-crop photos larger than this (never resized)")
    p.add_argument("--force", action="store_true", help="clear a non-empty --out first")
    p.add_argument("--list", action="store_true", help="print the default zoo and exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from exif_jax.simulate import SimulateError, default_zoo, render_zoo

    if args.list:
        for c in default_zoo():
            print(f"{c.id}  {c.model:<22} CFA {c.cfa} {c.demosaic:<10} ISO {c.iso:<5} denoise {c.denoise} "
                  f"{c.denoise_strength:g}  sharpen {c.sharpen_amount:g}@{c.sharpen_radius:g}  sensor x{c.sensor_scale:g} "
                  f"{c.resample_kernel}  JPEG q{c.jpeg_quality} tilt {c.qtable_tilt:+g} {c.subsampling}")
        return 0
    if not args.out:
        print("exif-jax simulate: --out is required (an empty or new folder)", file=sys.stderr)
        return 2
    if args.max_side is not None and args.max_side < 16:
        print("exif-jax simulate: --max-side must be at least 16", file=sys.stderr)
        return 2
    try:
        rec = render_zoo(args.photos, args.out, cameras=args.cameras, per_photo=args.per_photo, seed=args.seed,
                         force=args.force, max_side=args.max_side, log=lambda m: print(m, flush=True))
    except SimulateError as e:
        print(f"exif-jax simulate: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"exif-jax simulate: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"simulate: {len(rec['photos'])} JPEGs of {len(rec['cameras'])} cameras -> {args.out} "
          f"({len(rec['skipped'])} photos skipped); cameras.json records every camera")
    return 0
