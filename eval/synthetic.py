"""Synthetic cross-camera splices as a `folder` dataset (`python -m eval.synthetic --out DIR`).

Each manipulated image: a crop of a photo from camera A (the host) in which a region -- rectangle, ellipse,
random polygon or blob of circles, 8-30% of the area -- is replaced by the pixels at the same-sized crop of a photo
from camera B (EXIF Make+Model differ). Pixels are copied, never resampled; the result is saved as lossless PNG so
both cameras' traces survive. Authentic images are plain crops of one photo. Layout written:

    DIR/images/<id>.png   DIR/masks/<id>.png (255 = spliced; authentic images have none)   DIR/manifest.jsonl

A non-empty DIR is refused (stale images and masks would be mixed in) unless `--force`, which clears it first.
Photos default to the bundled quickstart photos (`exif_jax/assets/quickstart/photos`, 36 cameras, 384x384).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

import numpy as np

DEFAULT_PHOTOS = (pathlib.Path(__file__).resolve().parents[1] / "exif_jax" / "assets" / "quickstart" / "photos",)
SHAPES = ("rectangle", "ellipse", "polygon", "blob")


def camera_of(path) -> str | None:
    """'Make / Model' from EXIF, or None when either is missing or the file has no readable EXIF."""
    from exif_jax.exif.reader import read_exif_file

    try:
        items = read_exif_file(path)
    except (ValueError, OSError):
        return None
    tags = {tag: desc.strip() for directory, tag, desc in items if directory == "Exif IFD0"}
    make, model = tags.get("Make", ""), tags.get("Model", "")
    return f"{make} / {model}" if make and model else None


def collect_photos(roots, min_side: int) -> list[tuple[pathlib.Path, str, tuple[int, int]]]:
    from PIL import Image

    out = []
    for root in roots:
        root = pathlib.Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: photo folder does not exist")
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in (".jpg", ".jpeg") or not p.is_file():
                continue
            cam = camera_of(p)
            if cam is None:
                continue
            try:
                with Image.open(p) as im:
                    w, h = im.size
            except OSError:
                continue
            if min(w, h) >= min_side:
                out.append((p, cam, (h, w)))
    return out


def make_mask(shape: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    area = rng.uniform(0.08, 0.30) * h * w
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    if shape == "rectangle":
        aspect = rng.uniform(0.5, 2.0)
        rh, rw = min(h - 2, np.sqrt(area / aspect)), min(w - 2, np.sqrt(area * aspect))
        y0, x0 = int(np.clip(cy - rh / 2, 0, h - rh)), int(np.clip(cx - rw / 2, 0, w - rw))
        m[y0:y0 + int(rh), x0:x0 + int(rw)] = 255
    elif shape == "ellipse":
        aspect = rng.uniform(0.5, 2.0)
        a, b = np.sqrt(area / np.pi * aspect), np.sqrt(area / np.pi / aspect)
        cv2.ellipse(m, (int(cx), int(cy)), (int(a), int(b)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif shape == "polygon":
        k = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = np.sqrt(area / np.pi) * rng.uniform(0.6, 1.4, k)
        pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).round().astype(np.int32)
        cv2.fillPoly(m, [pts], 255)
    else:  # blob: union of circles around a random walk
        r0 = np.sqrt(area / np.pi / 3)
        y, x = cy, cx
        for _ in range(int(rng.integers(3, 7))):
            cv2.circle(m, (int(x), int(y)), int(r0 * rng.uniform(0.6, 1.2)), 255, -1)
            y = np.clip(y + rng.normal(0, r0), 0, h - 1)
            x = np.clip(x + rng.normal(0, r0), 0, w - 1)
    return m


def _crop(photo, size, rng):
    from exif_jax.splice.io import load_image

    img = load_image(photo)
    h, w = size
    y = int(rng.integers(0, img.shape[0] - h + 1))
    x = int(rng.integers(0, img.shape[1] - w + 1))
    return img[y:y + h, x:x + w]


def prepare_out(out, force: bool) -> pathlib.Path:
    """Refuse a non-empty `out` unless `force` (which clears it); a file there is always refused."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out}: folder is not empty (stale images would mix in); use --force to clear "
                                  "it or choose another --out")
        shutil.rmtree(out)
    return out


def generate(out, n: int = 20, *, photos=DEFAULT_PHOTOS, size=(568, 757), authentic_fraction: float = 0.25,
             seed: int = 0, log=print, force: bool = False) -> pathlib.Path:
    """Write `n` images (about `authentic_fraction` of them authentic) to `out` as a `folder` dataset.

    Raises `FileExistsError` for a non-empty `out` unless `force` (which clears it first)."""
    from exif_jax.splice.io import write_png

    rng = np.random.default_rng(seed)
    pool = collect_photos(photos, min_side=200)
    if len({cam for _, cam, _ in pool}) < 2:
        raise ValueError(f"need photos from at least two cameras in {', '.join(map(str, photos))}")
    out = prepare_out(out, force)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as man:
        for i in range(n):
            host, host_cam, (hh, hw) = pool[int(rng.integers(len(pool)))]
            donors = [d for d in pool if d[1] != host_cam]
            donor, donor_cam, (dh, dw) = donors[int(rng.integers(len(donors)))]
            h, w = min(size[0], hh, dh), min(size[1], hw, dw)
            name = f"syn_{i:04d}"
            img = _crop(host, (h, w), rng).copy()
            rec = {"id": name, "host": str(host), "host_camera": host_cam, "width": w, "height": h}
            if rng.random() < authentic_fraction:
                rec["label"] = 0
            else:
                shape = SHAPES[i % len(SHAPES)]
                mask = make_mask(shape, h, w, rng)
                patch = _crop(donor, (h, w), rng)
                img[mask > 0] = patch[mask > 0]
                write_png(out / "masks" / f"{name}.png", mask)
                rec.update(label=1, donor=str(donor), donor_camera=donor_cam, shape=shape,
                           spliced_fraction=float((mask > 0).mean()))
            write_png(out / "images" / f"{name}.png", img)
            man.write(json.dumps(rec) + "\n")
            log(f"[{i + 1}/{n}] {name}: {rec['host_camera']}" + (f" <- {rec['donor_camera']} ({rec['shape']})"
                                                                 if rec["label"] else " (authentic)"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--photos", nargs="+", default=[str(x) for x in DEFAULT_PHOTOS],
                   help="folders of camera JPEGs with EXIF Make/Model (searched recursively; default: the bundled "
                        "quickstart photos)")
    p.add_argument("--force", action="store_true", help="clear a non-empty --out first")
    p.add_argument("--height", type=int, default=568)
    p.add_argument("--width", type=int, default=757)
    p.add_argument("--authentic-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        generate(args.out, args.n, photos=args.photos, size=(args.height, args.width),
                 authentic_fraction=args.authentic_fraction, seed=args.seed, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"eval.synthetic: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
