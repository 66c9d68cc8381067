"""Per-region answers: probability maps of candidate values over the patch grid, and their pictures.

Each patch of the grid gets its own softmax over the candidates (the same scale and text embeddings as the whole
photo). A cell of the splice grid (`stride` pixels) takes the mean over the patches covering it (the grid's
separable coverage), and the cell map is resized to the photo with OpenCV's bilinear filter, as the splice maps are.
Pictures: the photo, then one panel per value (the map over the photo, fixed 0..1 colour scale), and a colour bar.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exif_jax.splice import grid as grid_lib


def cell_maps(patch_probs: np.ndarray, grid: grid_lib.PatchGrid) -> np.ndarray:
    """`[N, V]` per-patch probabilities (raster order) -> `[V, Hc, Wc]`: per cell, the mean over covering patches."""
    p = np.asarray(patch_probs, np.float64).reshape(grid.hi, grid.wi, -1)
    ch, cw = grid.coverage()
    num = np.einsum("ia,ijv,jb->vab", ch, p, cw)
    den = ch.sum(0)[:, None] * cw.sum(0)[None, :]
    return num / np.maximum(den, 1e-12)[None]


def pixel_maps(cells: np.ndarray, grid: grid_lib.PatchGrid) -> np.ndarray:
    """`[V, Hc, Wc]` -> `[V, H, W]` (bilinear, as `exif_jax.splice.pipeline.resize_bilinear`)."""
    from exif_jax.splice.pipeline import resize_bilinear

    return np.stack([resize_bilinear(c, grid.height, grid.width) for c in cells])


def inside_outside(pixel_map: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean of a `[H, W]` map inside and outside a boolean mask of the same size."""
    m = np.asarray(mask, bool)
    if m.shape != pixel_map.shape:
        raise ValueError(f"mask shape {m.shape} does not match the map {pixel_map.shape}")
    inside = float(pixel_map[m].mean()) if m.any() else float("nan")
    outside = float(pixel_map[~m].mean()) if (~m).any() else float("nan")
    return inside, outside


# ---------------------------------------------------------------------------------------------------------------
# pictures


def _jet(u: np.ndarray) -> np.ndarray:
    """`[...]` in 0..1 -> uint8 RGB with OpenCV's JET colormap (blue = 0, red = 1), no rescaling."""
    import cv2

    u8 = np.clip(np.asarray(u, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_JET)[..., ::-1]


def _fit(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if w == width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def _colour_bar(height: int, label: str = "probability") -> np.ndarray:
    from PIL import Image, ImageDraw

    bar_w, pad = 18, 46
    canvas = np.full((height, bar_w + pad, 3), 255, np.uint8)
    top, bottom = 24, height - 10
    ramp = np.linspace(1.0, 0.0, max(2, bottom - top))[:, None].repeat(bar_w, 1)
    canvas[top:bottom, 4:4 + bar_w] = _jet(ramp)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = int(round(bottom - 1 - v * (bottom - top - 1)))
        draw.line([(4 + bar_w, y), (8 + bar_w, y)], fill=(0, 0, 0))
        draw.text((10 + bar_w, y - 5), f"{v:.2f}", fill=(0, 0, 0))
    draw.text((2, 4), label[:11], fill=(0, 0, 0))
    return np.asarray(img)


def panels(image: np.ndarray, maps: np.ndarray, titles: Sequence[str], heading: str = "",
           width: int = 320, alpha: float = 0.6) -> np.ndarray:
    """The photo and one overlay per map (`[K, H, W]` in 0..1, fixed scale) side by side, titled, with a colour
    bar; `uint8 [h, w, 3]`."""
    from PIL import Image, ImageDraw

    photo = _fit(np.asarray(image, np.uint8), width)
    tiles = [photo]
    for m in maps:
        heat = _fit(_jet(m), width).astype(np.float32)
        tiles.append(np.clip(alpha * heat + (1 - alpha) * photo.astype(np.float32) + 0.5, 0, 255).astype(np.uint8))
    title_h, gap = 30, 6
    h = photo.shape[0] + title_h
    bar = _colour_bar(h)
    total_w = len(tiles) * (width + gap) + bar.shape[1]
    canvas = np.full((h + (18 if heading else 0), total_w, 3), 255, np.uint8)
    y0 = 18 if heading else 0
    for i, t in enumerate(tiles):
        x = i * (width + gap)
        canvas[y0 + title_h:y0 + title_h + t.shape[0], x:x + width] = t
    canvas[y0:y0 + h, total_w - bar.shape[1]:] = bar
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    if heading:
        draw.text((4, 3), heading[:200], fill=(0, 0, 0))
    for i, t in enumerate(["photo", *titles]):
        draw.text((i * (width + gap) + 4, y0 + 8), str(t)[: width // 6], fill=(0, 0, 0))
    return np.asarray(img)
