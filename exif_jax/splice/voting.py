"""Pairwise patch inconsistency voted onto the cell grid, in closed form.

The original evaluator loops over all `N^2` ordered patch pairs `(p, q)` and adds `1 - cos(f_p, f_q)` to every cell
pair `(a, b)` with `a` covered by `p` and `b` covered by `q`, then divides by the vote count (started at 1e-4).
Summing over pairs factorizes: with `n_a` the number of patches covering cell `a` and `h_a` the sum of the
L2-normalized embeddings of those patches,

    votes[a, b]  = n_a n_b - <h_a, h_b>        counts[a, b] = n_a n_b + 1e-4

so the `[Hc, Wc, Hc, Wc]` consistency volume is two small matrix products instead of `N^2` Python iterations.
Computed in float64 (the volume feeds mean shift, whose neighbour tests are exact comparisons), float32 on TPU.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from exif_jax.splice.grid import PatchGrid

COUNT_INIT = 1e-4


@functools.partial(jax.jit, static_argnames=("hi", "wi"))
def _volume(feats, ch, cw, hi, wi):
    f = feats / jnp.linalg.norm(feats, axis=-1, keepdims=True)
    f = f.reshape(hi, wi, -1)
    h = jnp.einsum("ya,xb,yxd->abd", ch, cw, f).reshape(ch.shape[1] * cw.shape[1], -1)  # [M, D]
    n = jnp.outer(ch.sum(0), cw.sum(0)).reshape(-1)  # [M]
    nn = jnp.outer(n, n)
    return (nn - h @ h.T) / (nn + COUNT_INIT)


def consistency_volume(features, grid: PatchGrid) -> jax.Array:
    """`[N, D]` raw patch embeddings (raster order) -> `[M, M]` float64 volume, `M = Hc * Wc` (row = cell a)."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != grid.num_patches:
        raise ValueError(f"expected [{grid.num_patches}, D] patch embeddings for grid {grid.hi}x{grid.wi}, "
                         f"got {features.shape}")
    ch, cw = grid.coverage()
    x64 = jax.default_backend() != "tpu"  # TPUs have no float64 arithmetic: float32 there
    dt = jnp.float64 if x64 else jnp.float32
    with jax.enable_x64(x64):
        return _volume(jnp.asarray(features, dt), jnp.asarray(ch, dt), jnp.asarray(cw, dt), grid.hi, grid.wi)


def detection_score(volume) -> float:
    """Image-level splice score: mean of the consistency volume (higher = more likely manipulated)."""
    with jax.enable_x64(jax.default_backend() != "tpu"):
        return float(jnp.mean(volume))
