"""Same-content splices: one photo rendered through two simulated cameras, a region of one pasted pixel-aligned
into the other, so only the cameras' local traces tell the region apart (content, colour and brightness agree).

    python -m eval.same_content --out /tmp/same --n 40                       # bundled photos, default zoo
    python -m eval.splice --dataset folder --data-root /tmp/same --weights W --out /tmp/same_eval
    python -m eval.same_content --out /tmp/edits --n 40 --family edits       # chains NOT in the zoo

`--family zoo` (default): host and donor are two cameras of the default zoo (`exif_jax.simulate`); both renders
share the photo's look and per-channel mean/std. `--family edits`: host and donor are two of a fixed list of
plain post-processing chains the zoo does not contain (re-compression, resampling, noise, sharpening, blur), a
held-out check of what a model learnt. Authentic images (`--authentic-fraction`) are one chain's render.
Layout (the `folder` dataset of eval.splice): OUT/images/<id>.png (lossless, so both traces survive),
OUT/masks/<id>.png (255 = pasted; none for authentic), OUT/manifest.jsonl (photo, host and donor chains, shape,
region bounding box and fraction), OUT/cameras.json (the chains used).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import pathlib
import sys
import zlib

import numpy as np

DEFAULT_PHOTOS = pathlib.Path(__file__).resolve().parents[1] / "exif_jax" / "assets" / "quickstart" / "photos"
SHAPES = ("rectangle", "ellipse", "polygon", "blob")


@dataclasses.dataclass(frozen=True)
class Edit:
    """A plain processing chain outside the zoo: optional resampling (down then back up), Gaussian noise,
    sharpening or blur, then a JPEG re-compression; decoded to pixels."""
    id: str
    resample: float = 1.0  # down-scale factor, then back to the original size (both bilinear)
    noise: float = 0.0  # Gaussian noise std in 8-bit levels
    sharpen: float = 0.0  # unsharp-mask amount, radius 1
    blur: float = 0.0  # Gaussian sigma
    quality: int = 0  # JPEG re-compression quality (0: none)
    subsampling: int = 2

    def apply(self, rgb: np.ndarray, seed: int) -> np.ndarray:
        import cv2
        from PIL import Image

        x = rgb.astype(np.float32)
        h, w = x.shape[:2]
        if self.resample != 1.0:
            small = cv2.resize(x, (max(int(w * self.resample), 8), max(int(h * self.resample), 8)),
                               interpolation=cv2.INTER_LINEAR)
            x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.blur:
            x = cv2.GaussianBlur(x, (0, 0), self.blur)
        if self.sharpen:
            x = x + self.sharpen * (x - cv2.GaussianBlur(x, (0, 0), 1.0))
        if self.noise:
            rng = np.random.default_rng([seed, zlib.crc32(self.id.encode()), zlib.crc32(rgb.tobytes())])
            x = x + rng.normal(0.0, self.noise, x.shape)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if self.quality:
            buf = io.BytesIO()
            Image.fromarray(out).save(buf, "JPEG", quality=self.quality, subsampling=self.subsampling)
            with Image.open(buf) as im:
                out = np.asarray(im.convert("RGB"))
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


EDITS = (
    Edit("jpeg-q60", quality=60),
    Edit("jpeg-q95-444", quality=95, subsampling=0),
    Edit("resample-0.6", resample=0.6, quality=90),
    Edit("noise-4", noise=4.0, quality=92),
    Edit("noise-1.5", noise=1.5),
    Edit("sharpen-1.5", sharpen=1.5, quality=90),
    Edit("blur-0.8", blur=0.8, quality=85),
    Edit("untouched"),
)


def _renderers(family: str, seed: int):
    """(chain id -> function rgb -> uint8 rgb, record of the chains)."""
    if family == "edits":
        return {e.id: (lambda rgb, e=e: e.apply(rgb, seed)) for e in EDITS}, [e.to_dict() for e in EDITS]
    from PIL import Image

    from exif_jax.simulate import Look, default_zoo

    def render(cam):
        def f(rgb):
            jpeg = cam.render(rgb, seed=seed, look=Look.for_photo(rgb, seed))  # the photo's look, not the camera's
            with Image.open(io.BytesIO(jpeg)) as im:
                return np.asarray(im.convert("RGB"))
        return f

    zoo = default_zoo()
    return {c.id: render(c) for c in zoo}, [c.to_dict() for c in zoo]


def generate(out, n: int = 40, *, photos=(DEFAULT_PHOTOS,), family: str = "zoo", authentic_fraction: float = 0.25,
             max_side: int | None = 384, seed: int = 0, force: bool = False, log=print) -> pathlib.Path:
    """Writes `n` images (about `authentic_fraction` authentic) to `out` as a `folder` dataset; returns `out`."""
    from eval.synthetic import make_mask
    from exif_jax.simulate.zoo import center_crop, list_photos, load_rgb, prepare_out
    from exif_jax.splice.io import write_png

    if family not in ("zoo", "edits"):
        raise ValueError(f"--family {family!r}: expected zoo or edits")
    if n < 1:
        raise ValueError(f"--n {n}: expected at least 1")
    paths = list_photos(photos)
    out = prepare_out(out, force, "eval.same_content")
    chains, chain_record = _renderers(family, seed)
    ids = sorted(chains)
    rng = np.random.default_rng(seed)
    (out / "images").mkdir()
    (out / "masks").mkdir()
    (out / "cameras.json").write_text(json.dumps({"family": family, "seed": seed, "chains": chain_record}, indent=1))
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as man:
        for i in range(n):
            path = paths[int(rng.integers(len(paths)))]
            rgb = center_crop(load_rgb(path), max_side)
            h, w = rgb.shape[:2]
            host, donor = (ids[j] for j in rng.choice(len(ids), size=2, replace=False))
            name = f"same_{i:04d}"
            img = chains[host](rgb).copy()
            rec = {"id": name, "photo": str(path), "host_camera": host, "width": w, "height": h, "family": family}
            if rng.random() < authentic_fraction:
                rec["label"] = 0
            else:
                shape = SHAPES[i % len(SHAPES)]
                mask = make_mask(shape, h, w, rng)
                pasted = chains[donor](rgb)
                img[mask > 0] = pasted[mask > 0]
                ys, xs = np.nonzero(mask)
                write_png(out / "masks" / f"{name}.png", mask)
                rec.update(label=1, donor_camera=donor, shape=shape, spliced_fraction=float((mask > 0).mean()),
                           region_bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
            write_png(out / "images" / f"{name}.png", img)
            man.write(json.dumps(rec) + "\n")
            log(f"[{i + 1}/{n}] {name}: {path.name} {host}" + (f" <- {donor} ({rec['shape']})" if rec["label"]
                                                              else " (authentic)"))
    return out


def main(argv=None) -> int:
    intro, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(prog="python -m eval.same_content", description=" ".join(intro.split()),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=rest)
    p.add_argument("--out", required=True, help="output folder (must be empty or missing, unless --force)")
    p.add_argument("--photos", nargs="+", default=[str(DEFAULT_PHOTOS)],
                   help="photo folders or files (default: the bundled quickstart photos)")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--family", choices=("zoo", "edits"), default="zoo")
    p.add_argument("--authentic-fraction", type=float, default=0.25)
    p.add_argument("--max-side", type=int, default=384, help="centre-crop photos to at most this side (0: whole)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="clear a non-empty --out first")
    args = p.parse_args(argv)
    from exif_jax.simulate import SimulateError

    try:
        generate(args.out, args.n, photos=args.photos, family=args.family, authentic_fraction=args.authentic_fraction,
                 max_side=args.max_side or None, seed=args.seed, force=args.force)
    except (SimulateError, ValueError) as e:
        print(f"eval.same_content: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
