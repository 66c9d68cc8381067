"""Per-image zero-shot splice localization and detection.

`localize(image, embed_fn)` = patch grid -> embeddings -> consistency volume -> detection score (and beside it the
pair score, `pair_score`), mean-shift map (and optionally the normalized-cuts map), resized to the image with OpenCV
`INTER_LINEAR`. `embed_fn` maps
`uint8 [N, P, P, 3]` patches to `[N, D]` embeddings: `embed.model_embed_fn(exif_jax.load(W))` or any function.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from exif_jax.splice import grid as grid_lib
from exif_jax.splice.meanshift import ITERS, WINDOW, mean_shift
from exif_jax.splice.pair_score import pair_score
from exif_jax.splice.voting import consistency_volume, detection_score


@dataclasses.dataclass
class SpliceResult:
    score: float  # detection score, mean of the consistency volume
    cells: np.ndarray  # (Hc, Wc) mean-shift map before resizing
    heatmap: np.ndarray  # (H, W) mean-shift map resized to the image
    grid: grid_lib.PatchGrid
    embeddings: np.ndarray | None = None  # (N, D) raw patch embeddings, raster order
    ncuts: np.ndarray | None = None  # (H, W) two-cluster map, if asked for
    ncuts_cells: np.ndarray | None = None  # (Hc, Wc) two-cluster labels {0, 1}, if asked for
    timings: dict = dataclasses.field(default_factory=dict)
    pair_score: float | None = None  # 99th percentile of patch-pair 1 - cos (exif_jax.splice.pair_score)


def resize_bilinear(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV `INTER_LINEAR` resize of a float map to `(height, width)` (what the original evaluator used)."""
    import cv2

    return cv2.resize(np.asarray(cells, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def localize_embeddings(features: np.ndarray, grid: grid_lib.PatchGrid, *, window: float = WINDOW,
                        iters: int = ITERS, ms_mode: str = "sequential", ms_dtype: str = "auto",
                        ms_neighbours: str | None = None, ncuts: bool = False, seed: int = 0) -> SpliceResult:
    """The post-embedding part: volume, score, mean-shift cells + heatmap, optional ncuts."""
    t0 = time.perf_counter()
    volume = consistency_volume(features, grid)
    score = detection_score(volume)
    pair = pair_score(features)
    t1 = time.perf_counter()
    cells = mean_shift(volume, grid.hc, grid.wc, window=window, iters=iters, mode=ms_mode, dtype=ms_dtype,
                       neighbours=ms_neighbours)
    heat = resize_bilinear(cells, grid.height, grid.width)
    t2 = time.perf_counter()
    timings = {"voting_s": t1 - t0, "mean_shift_s": t2 - t1}
    nc = nc_cells = None
    if ncuts:
        from exif_jax.splice.ncuts import normalized_cut

        nc_cells = normalized_cut(np.asarray(volume), grid.hc, grid.wc, seed=seed)
        nc = resize_bilinear(nc_cells, grid.height, grid.width)
        timings["ncuts_s"] = time.perf_counter() - t2
    return SpliceResult(score=score, cells=cells, heatmap=heat, grid=grid, embeddings=np.asarray(features),
                        ncuts=nc, ncuts_cells=nc_cells, timings=timings, pair_score=pair)


def localize(image: np.ndarray, embed_fn, *, patch: int = grid_lib.PATCH, num_per_dim: int = grid_lib.NUM_PER_DIM,
             max_cells: int | None = grid_lib.MAX_CELLS, source: str = "image", **kwargs) -> SpliceResult:
    """`uint8 [H, W, 3]` image -> `SpliceResult`. Raises `grid.GridError` (naming `source`) if too small.

    `max_cells` bounds the cell grid per side (a minimum stride, see `grid.patch_grid`): time and memory stay
    bounded for any image size."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{source}: expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    g = grid_lib.patch_grid(image.shape[0], image.shape[1], patch, num_per_dim, source=source, max_cells=max_cells)
    t0 = time.perf_counter()
    patches = grid_lib.extract_patches(image, g)
    feats = np.asarray(embed_fn(patches), np.float32)
    if feats.shape[0] != g.num_patches:
        raise ValueError(f"{source}: embed_fn returned {feats.shape[0]} rows for {g.num_patches} patches")
    t_embed = time.perf_counter() - t0
    res = localize_embeddings(feats, g, **kwargs)
    res.timings["embed_s"] = t_embed
    return res
