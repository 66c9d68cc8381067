"""The default zoo of simulated cameras, and rendering a folder of photos through it.

    from exif_jax.simulate import default_zoo, render_zoo
    render_zoo("photos/", "sim/", cameras=12, per_photo=4, seed=0)
    # sim/<camera id>/<photo stem>.jpg + sim/cameras.json

The zoo is a fixed table (the same cameras on every run and machine): every camera differs from the others in
several of CFA pattern, demosaicing, ISO noise, denoising, sharpening, resampling and JPEG tables/subsampling.
"""
from __future__ import annotations

import json
import pathlib
import shutil
from typing import Callable

import numpy as np

from exif_jax.simulate.camera import SOFTWARE, Camera, Look

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


class SimulateError(ValueError):
    """Bad input for the simulator; the message names the file or option."""


# id, make, model, cfa, demosaic, iso, denoise, strength, sharpen amount, radius, sensor scale, kernel,
# quality, table tilt, subsampling
_ZOO = (
    ("sim01", "Simula", "Simula S100", "RGGB", "bilinear", 100, "none", 0.0, 0.0, 1.0, 1.0, "linear", 95, 0.0, "4:4:4"),
    ("sim02", "Simula", "Simula S200", "BGGR", "vng", 400, "gaussian", 0.5, 0.6, 1.0, 1.0, "linear", 90, 0.0, "4:2:0"),
    ("sim03", "Simula", "Simula S300 Pro", "GRBG", "edge-aware", 800, "median", 0.6, 1.2, 0.8, 1.5, "area", 85, 0.0,
     "4:2:2"),
    ("sim04", "Simula", "Simula Z10", "GBRG", "bilinear", 200, "bilateral", 0.7, 0.3, 1.5, 0.8, "cubic", 92, -0.5,
     "4:2:0"),
    ("sim05", "Pixelforge", "Pixelforge PF-1", "RGGB", "vng", 1600, "gaussian", 0.8, 0.8, 1.2, 1.25, "linear", 80, 0.0,
     "4:2:0"),
    ("sim06", "Pixelforge", "Pixelforge PF-2", "BGGR", "edge-aware", 100, "none", 0.0, 1.0, 0.7, 1.0, "linear", 97,
     0.5, "4:4:4"),
    ("sim07", "Pixelforge", "Pixelforge PF-3 Mini", "GRBG", "bilinear", 400, "median", 0.4, 0.0, 1.0, 1.33, "lanczos",
     88, -0.5, "4:2:2"),
    ("sim08", "Pixelforge", "Pixelforge PF-4", "GBRG", "vng", 800, "bilateral", 0.5, 1.0, 1.0, 0.67, "linear", 75, 0.0,
     "4:2:0"),
    ("sim09", "Rawtone", "Rawtone R1", "RGGB", "edge-aware", 200, "gaussian", 0.3, 0.5, 2.0, 2.0, "area", 93, 0.3,
     "4:2:0"),
    ("sim10", "Rawtone", "Rawtone R2", "BGGR", "bilinear", 1600, "bilateral", 0.9, 0.4, 1.0, 1.0, "linear", 70, 0.0,
     "4:2:0"),
    ("sim11", "Rawtone", "Rawtone R3x", "GRBG", "vng", 100, "none", 0.0, 1.0, 0.6, 0.75, "nearest", 90, -0.3, "4:4:4"),
    ("sim12", "Rawtone", "Rawtone R4", "GBRG", "edge-aware", 400, "gaussian", 0.6, 0.8, 1.4, 1.2, "cubic", 85, 0.6,
     "4:2:2"),
)
SHOT_NOISE = 1e-4  # variance per unit linear signal at ISO 100, the same sensor technology for every camera
READ_NOISE = 5e-4  # std at ISO 100


def default_zoo() -> list[Camera]:
    """The fixed default zoo (12 cameras, 3 makes)."""
    return [Camera(id=r[0], make=r[1], model=r[2], cfa=r[3], demosaic=r[4], iso=r[5], shot_noise=SHOT_NOISE,
                   read_noise=READ_NOISE, denoise=r[6], denoise_strength=r[7], sharpen_amount=r[8],
                   sharpen_radius=r[9], sensor_scale=r[10], resample_kernel=r[11], jpeg_quality=r[12],
                   qtable_tilt=r[13], subsampling=r[14], focal_length_mm=4.0 + i * 0.5)
            for i, r in enumerate(_ZOO)]


def select_cameras(n: int | None) -> list[Camera]:
    zoo = default_zoo()
    if n is None:
        return zoo
    if not 2 <= int(n) <= len(zoo):
        raise SimulateError(f"--cameras {n}: expected 2..{len(zoo)} (the default zoo has {len(zoo)} cameras)")
    return zoo[:int(n)]


def prepare_out(out, force: bool, prog: str) -> pathlib.Path:
    """Refuses a non-empty output folder unless `force` (which clears it): never mixes two runs' files."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise SimulateError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SimulateError(f"--out {out} is not empty; pass --force to replace its contents")
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def list_photos(photos) -> list[pathlib.Path]:
    """Image files of the folders (recursive) or files given, sorted; raises SimulateError if there are none."""
    items = [photos] if isinstance(photos, (str, pathlib.Path)) else list(photos)
    out = []
    for item in items:
        p = pathlib.Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
        elif p.is_file():
            out.append(p)
        else:
            raise SimulateError(f"{p}: photo folder or file does not exist")
    if not out:
        raise SimulateError(f"{', '.join(map(str, items))}: no images found ({', '.join(IMAGE_EXTS)})")
    return out


def load_rgb(path) -> np.ndarray:
    """uint8 RGB of an image file (EXIF orientation applied); raises SimulateError naming the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise SimulateError(f"{path}: cannot read image ({' '.join(str(e).split())})") from None


def _unique_stems(paths: list[pathlib.Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out


def render_zoo(photos, out, *, cameras: int | None = None, per_photo: int | None = None, seed: int = 0,
               force: bool = False, max_side: int | None = None, log: Callable = print) -> dict:
    """Renders every photo through `per_photo` cameras (default: all) of the first `cameras` of the default zoo.

    Writes `out/<camera id>/<photo stem>.jpg` and `out/cameras.json`; returns that record. The cameras of each
    photo are drawn with `seed`; the same arguments give the same bytes. `max_side`: centre-crop larger photos
    (never resized: resizing would blur the traces). Unreadable photos are skipped and counted."""
    zoo = select_cameras(cameras)
    k = len(zoo) if per_photo is None else int(per_photo)
    if not 1 <= k <= len(zoo):
        raise SimulateError(f"--per-photo {per_photo}: expected 1..{len(zoo)} (cameras in use)")
    paths = list_photos(photos)
    out = prepare_out(out, force, "simulate")
    rng = np.random.default_rng(seed)
    record = {"software": SOFTWARE, "seed": int(seed), "per_photo": k,
              "cameras": [c.to_dict() | {"exif": _exif_summary(c)} for c in zoo], "photos": [], "skipped": []}
    for i, (path, stem) in enumerate(zip(paths, _unique_stems(paths))):
        chosen = sorted(rng.choice(len(zoo), size=k, replace=False).tolist())
        try:
            rgb = center_crop(load_rgb(path), max_side)
            if min(rgb.shape[:2]) < 16:
                raise SimulateError(f"{path}: image {rgb.shape[1]}x{rgb.shape[0]} is smaller than 16 px")
        except SimulateError as e:
            log(f"simulate: skipped {e}")
            record["skipped"].append({"source": str(path), "reason": str(e)})
            continue
        look = Look.for_photo(rgb, seed)
        for j in chosen:
            cam = zoo[j]
            rel = f"{cam.id}/{stem}.jpg"
            (out / cam.id).mkdir(exist_ok=True)
            (out / rel).write_bytes(cam.render(rgb, seed=seed, look=look))
            record["photos"].append({"file": rel, "camera": cam.id, "model": cam.model, "source": str(path),
                                     "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "look": look.to_dict()})
        log(f"simulate: [{i + 1}/{len(paths)}] {path.name} -> {', '.join(zoo[j].id for j in chosen)}")
    if not record["photos"]:
        raise SimulateError(f"{photos}: none of the {len(paths)} photos could be rendered")
    (out / "cameras.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def center_crop(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side:
        return rgb
    h, w = rgb.shape[:2]
    ch, cw = min(h, max_side), min(w, max_side)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[y:y + ch, x:x + cw])


CAMERA_TAGS = ("Make", "Model", "Software", "YCbCr Positioning", "ISO Speed Ratings", "Focal Length",
               "Digital Zoom Ratio", "Sharpness")


def _exif_summary(cam: Camera) -> dict:
    """The camera-constant EXIF tags as our reader (metadata-extractor's names) reads them back from a render;
    the per-photo tags (White Balance, Contrast, Saturation, sizes) are in each photo's look and file."""
    from exif_jax.exif.reader import read_exif

    jpeg = cam.render(np.full((32, 32, 3), 128, np.uint8), look=Look((1.0, 1.0, 1.0), "unknown", "normal", "normal"))
    return {tag: desc for _, tag, desc in read_exif(jpeg) if tag in CAMERA_TAGS}
