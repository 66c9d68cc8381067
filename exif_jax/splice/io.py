"""Image reading (JPEG/PNG/TIFF, 8 or 16 bit) and PNG writing (pictures of maps: `exif_jax.splice.figures`)."""
from __future__ import annotations

import pathlib

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class ImageError(ValueError):
    """An image file is missing, unreadable or not an image; the message names the file."""


def load_image(path) -> np.ndarray:
    """`path` -> `uint8 [H, W, 3]` RGB, pixels as stored (no EXIF rotation: masks refer to stored pixels)."""
    from PIL import Image, UnidentifiedImageError

    path = pathlib.Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.float64)
                scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
                arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        arr = _read_with_opencv(path)  # e.g. 48-bit RGB TIFF, which Pillow does not decode
        if arr is None:
            raise ImageError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageError(f"{path}: unexpected decoded layout {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


def _read_with_opencv(path: pathlib.Path):
    import cv2

    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if img is None:
        return None
    if img.dtype == np.uint16:
        img = np.clip(np.rint(img.astype(np.float64) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1]) if img.shape[2] == 3 else None


def write_png(path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, np.uint8)).save(str(path), format="PNG")
