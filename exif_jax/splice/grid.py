"""Patch grid of the zero-shot splice detector (the original evaluator's `PatchedImage`).

Patches of `patch` x `patch` pixels are taken every `stride = (max(H, W) - patch) // num_per_dim` pixels in raster
order (row by row). Each patch votes on a grid of `stride`-sized cells: it covers `spread = max(1, patch // stride)`
cells per axis, so the cell grid is `(Hc, Wc) = (Hi + spread - 1, Wi + spread - 1)` for a patch grid `(Hi, Wi)`.

Bounded work: on small images that stride falls to 1-2 px and the grid gets about H x W cells (the mean shift is
cubic in the cell count). `max_cells` caps the cells per side by raising the stride to the smallest value whose
grid fits. The default (35) leaves the paper's 757x568 grid (26 x 35 cells) and the grid of every image whose long
side is >= 840 px (124 px patches; >= 514 px for 64 px patches) unchanged, so published numbers on such images are
reproduced; smaller near-square images (e.g. CASIA's 384x256) get a coarser stride than the original evaluator's,
whose mean shift there ran over up to H x W cells (25,600 cells, 5 GB, for a 160x160 image).
"""
from __future__ import annotations

import dataclasses

import numpy as np

PATCH = 124
NUM_PER_DIM = 30
MAX_CELLS = 35  # cells per side at most (see the module docstring)


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
               source: str = "image", max_cells: int | None = MAX_CELLS) -> PatchGrid:
    """The grid for an image of `height` x `width`; raises `GridError` naming `source` when it does not fit.

    `stride = (max(H, W) - patch) // num_per_dim` (at least 1), raised until both cell counts are <= `max_cells`
    (None = no cap).
    """
    if patch < 1 or num_per_dim < 1:
        raise ValueError(f"patch ({patch}) and num_per_dim ({num_per_dim}) must be >= 1")
    if max_cells is not None and max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells}")
    if min(height, width) < patch:
        raise GridError(f"{source}: image {width}x{height} is smaller than one {patch}x{patch} patch "
                        f"(need both sides >= {patch} px)")
    stride = max(1, (max(height, width) - patch) // num_per_dim)

    def make(s):
        return PatchGrid(height=height, width=width, patch=patch, stride=s,
                         hi=1 + (height - patch) // s, wi=1 + (width - patch) // s)

    g = make(stride)
    while max_cells is not None and max(g.hc, g.wc) > max_cells and g.stride < max(height, width):
        g = make(g.stride + 1)
    return g


def extract_patches(image: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """`uint8 [H, W, 3]` -> `uint8 [N, P, P, 3]` patches in raster order (a strided view, then one copy)."""
    if image.shape[:2] != (grid.height, grid.width):
        raise ValueError(f"image shape {image.shape[:2]} does not match grid {(grid.height, grid.width)}")
    p, s = grid.patch, grid.stride
    view = np.lib.stride_tricks.sliding_window_view(image, (p, p), axis=(0, 1))  # [H-p+1, W-p+1, C, p, p]
    view = view[: (grid.hi - 1) * s + 1 : s, : (grid.wi - 1) * s + 1 : s]
    return np.ascontiguousarray(view.transpose(0, 1, 3, 4, 2).reshape(grid.num_patches, p, p, image.shape[2]))
