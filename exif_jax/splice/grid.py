"""Patch grid of the zero-shot splice detector (the original evaluator's `PatchedImage`).

Patches of `patch` x `patch` pixels are taken every `stride = (max(H, W) - patch) // num_per_dim` pixels in raster
order (row by row). Each patch votes on a grid of `stride`-sized cells: it covers `spread = max(1, patch // stride)`
cells per axis, so the cell grid is `(Hc, Wc) = (Hi + spread - 1, Wi + spread - 1)` for a patch grid `(Hi, Wi)`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

PATCH = 124
NUM_PER_DIM = 30


class GridError(ValueError):
    """The image cannot hold the patch grid (too small)."""


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    height: int
    width: int
    patch: int
    stride: int
    hi: int  # patches along height
    wi: int  # patches along width

    @property
    def spread(self) -> int:
        return max(1, self.patch // self.stride)

    @property
    def hc(self) -> int:
        return self.hi + self.spread - 1

    @property
    def wc(self) -> int:
        return self.wi + self.spread - 1

    @property
    def num_patches(self) -> int:
        return self.hi * self.wi

    @property
    def num_cells(self) -> int:
        return self.hc * self.wc

    def origins(self) -> np.ndarray:
        """`[N, 2]` (y, x) top-left pixel of each patch, raster order."""
        ys, xs = np.meshgrid(np.arange(self.hi) * self.stride, np.arange(self.wi) * self.stride, indexing="ij")
        return np.stack([ys.ravel(), xs.ravel()], axis=1)

    def coverage(self) -> tuple[np.ndarray, np.ndarray]:
        """Separable patch->cell coverage: `ch [Hi, Hc]`, `cw [Wi, Wc]` (1 where patch row/col covers the cell)."""
        def cov(n_patch, n_cell):
            idx = np.arange(n_cell)[None, :] - np.arange(n_patch)[:, None]
            return ((idx >= 0) & (idx < self.spread)).astype(np.float64)

        return cov(self.hi, self.hc), cov(self.wi, self.wc)


def patch_grid(height: int, width: int, patch: int = PATCH, num_per_dim: int = NUM_PER_DIM,
               source: str = "image") -> PatchGrid:
    """The grid for an image of `height` x `width`; raises `GridError` naming `source` when it does not fit."""
    if min(height, width) < patch:
        raise GridError(f"{source}: image {width}x{height} is smaller than one {patch}x{patch} patch "
                        f"(need both sides >= {patch} px)")
    stride = (max(height, width) - patch) // num_per_dim
    if stride < 1:
        raise GridError(f"{source}: image {width}x{height} too small for a {num_per_dim}-step patch grid "
                        f"(need the long side >= {patch + num_per_dim} px)")
    hi = 1 + (height - patch) // stride
    wi = 1 + (width - patch) // stride
    return PatchGrid(height=height, width=width, patch=patch, stride=stride, hi=hi, wi=wi)


def extract_patches(image: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """`uint8 [H, W, 3]` -> `uint8 [N, P, P, 3]` patches in raster order (a strided view, then one copy)."""
    if image.shape[:2] != (grid.height, grid.width):
        raise ValueError(f"image shape {image.shape[:2]} does not match grid {(grid.height, grid.width)}")
    p, s = grid.patch, grid.stride
    view = np.lib.stride_tricks.sliding_window_view(image, (p, p), axis=(0, 1))  # [H-p+1, W-p+1, C, p, p]
    view = view[: (grid.hi - 1) * s + 1 : s, : (grid.wi - 1) * s + 1 : s]
    return np.ascontiguousarray(view.transpose(0, 1, 3, 4, 2).reshape(grid.num_patches, p, p, image.shape[2]))
