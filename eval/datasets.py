"""Splice benchmark layouts: each dataset lists `Sample`s (image path, label, mask reader). See eval/README.md.

`get_dataset(name, root)` -> list[Sample]. Layout problems raise `DatasetError` naming the path; a single
unreadable image or mask is raised as `DatasetError` from `Sample.load()` so the runner can report and skip it.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


class DatasetError(ValueError):
    pass


@dataclasses.dataclass
class Sample:
    name: str  # unique within the dataset, used for output file names
    path: pathlib.Path
    label: int  # 1 manipulated, 0 authentic
    mask_path: pathlib.Path | None = None
    mask_rule: Callable[[pathlib.Path, tuple[int, int]], np.ndarray] | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 [H, W, 3] image, bool [H, W] mask or None). Authentic images get an all-False mask."""
        from exif_jax.splice.io import ImageError, load_image

        try:
            image = load_image(self.path)
        except ImageError as e:
            raise DatasetError(str(e)) from None
        h, w = image.shape[:2]
        if self.label == 0:
            return image, np.zeros((h, w), bool)
        if self.mask_path is None:
            return image, None
        if not self.mask_path.is_file():
            raise DatasetError(f"{self.mask_path}: ground-truth mask missing for {self.path}")
        return image, self.mask_rule(self.mask_path, (h, w))


def _read_mask(path: pathlib.Path, mode: str):
    import cv2

    flag = cv2.IMREAD_COLOR if mode == "color" else cv2.IMREAD_GRAYSCALE
    data = np.fromfile(str(path), np.uint8)  # np.fromfile + imdecode: non-ASCII paths work
    m = cv2.imdecode(data, flag) if data.size else None
    if m is None:
        raise DatasetError(f"{path}: cannot read mask image")
    return m


def _fit(mask: np.ndarray, shape, path) -> np.ndarray:
    import cv2

    if mask.shape[:2] != shape:
        if abs(mask.shape[0] / shape[0] - mask.shape[1] / shape[1]) > 0.02:
            raise DatasetError(f"{path}: mask {mask.shape[1]}x{mask.shape[0]} does not fit image "
                               f"{shape[1]}x{shape[0]}")
        mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask.astype(bool)


def _is_jpeg(path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def nonzero_mask(path, shape):
    """Manipulated = pixel > 0 (lossless masks; grey counts) or > 127 for JPEG masks (ringing is not a label)."""
    m = _read_mask(path, "gray")
    return _fit(m > (127 if _is_jpeg(path) else 0), shape, path)


def black_is_spliced_mask(path, shape):
    """DSO-1: the spliced area is black, the rest white."""
    m = _read_mask(path, "gray")
    return _fit(m <= (127 if _is_jpeg(path) else 0), shape, path)


def columbia_green_mask(path, shape):
    """Columbia edge masks: the spliced region is green (original: exact (0,255,0) / (0,200,0); JPEG-tolerant)."""
    bgr = _read_mask(path, "color").astype(np.int16)
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    return _fit((g >= 150) & (r < 100) & (b < 100), shape, path)


def _images(folder: pathlib.Path) -> list[pathlib.Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: expected folder is missing")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def columbia(root):
    auth, splc = root / "4cam_auth", root / "4cam_splc"
    out = [Sample(f"auth/{p.name}", p, 0) for p in _images(auth)]  # label 0 (the original gave 1 to all)
    for p in _images(splc):
        out.append(Sample(f"splc/{p.name}", p, 1, splc / "edgemask" / f"{p.stem}_edgemask.jpg", columbia_green_mask))
    return out


def dso_1(root):
    out = []
    for p in _images(root / "DSO-1"):
        cat = p.stem.split("-")[0]
        if cat not in ("normal", "splicing"):
            raise DatasetError(f"{p}: DSO-1 image names start with 'normal-' or 'splicing-'")
        label = int(cat == "splicing")
        out.append(Sample(p.name, p, label, root / "DSO-1-Fake-Images-Masks" / p.name if label else None,
                          black_is_spliced_mask))
    return out


def realistic_tampering(root):
    out = []
    cams = sorted(d for d in root.iterdir() if d.is_dir() and ((d / "pristine").is_dir()
                                                                 or (d / "tampered-realistic").is_dir()))
    if not cams:
        raise DatasetError(f"{root}: expected <camera>/pristine and <camera>/tampered-realistic folders")
    for cam in cams:
        if (cam / "pristine").is_dir():
            out += [Sample(f"{cam.name}/pristine/{p.name}", p, 0) for p in _images(cam / "pristine")]
        if (cam / "tampered-realistic").is_dir():
            for p in _images(cam / "tampered-realistic"):
                gt = cam / "ground-truth" / f"{p.stem}.PNG"
                if not gt.exists() and (cam / "ground-truth" / f"{p.stem}.png").exists():
                    gt = cam / "ground-truth" / f"{p.stem}.png"
                out.append(Sample(f"{cam.name}/tampered/{p.name}", p, 1, gt, nonzero_mask))
    return out


def in_the_wild(root):
    return [Sample(p.name, p, 1, root / "masks" / f"{p.stem}.png", nonzero_mask) for p in _images(root / "images")]


def scene_completion(root):
    out = []
    for p in _images(root):
        if p.stem.endswith("_mask"):
            continue
        mask = p.with_name(f"{p.stem}_mask{p.suffix}")
        if not mask.exists():
            mask = p.with_name(f"{p.stem}_mask.jpg")
        out.append(Sample(p.name, p, 1, mask, nonzero_mask))
    return out


def _casia(root, tp_dir, gt_dir):
    out = [Sample(f"Au/{p.name}", p, 0) for p in _images(root / "Au")]
    for p in _images(tp_dir):
        gt = gt_dir / f"{p.stem}_gt.png"
        out.append(Sample(f"Tp/{p.name}", p, 1, gt if gt_dir.is_dir() else None, nonzero_mask))
    return out


def casia_1(root):
    return _casia(root, root / "Tp" / "Sp", root / "CASIA 1.0 groundtruth" / "Sp")


def casia_2(root):
    return _casia(root, root / "Tp", root / "CASIA2.0_Groundtruth")


def folder(root):
    """`images/NAME.EXT` + `masks/NAME.png` (non-zero = manipulated). No mask file = authentic."""
    out = []
    for p in _images(root / "images"):
        mask = root / "masks" / f"{p.stem}.png"
        out.append(Sample(p.name, p, 1, mask, nonzero_mask) if mask.exists() else Sample(p.name, p, 0))
    return out


DATASETS = {
    "columbia": columbia, "dso_1": dso_1, "realistic_tampering": realistic_tampering, "in_the_wild": in_the_wild,
    "scene_completion": scene_completion, "casia_1": casia_1, "casia_2": casia_2, "folder": folder,
}


def get_dataset(name: str, root) -> list[Sample]:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data directory does not exist")
    samples = DATASETS[name](root)
    if not samples:
        raise DatasetError(f"{root}: no images found for dataset {name!r} (see eval/README.md for the layout)")
    return samples
