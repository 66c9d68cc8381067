"""Mean-shift response map, exactly as the original evaluator computes it, kept on device.

Rows `X` = the consistency volume as `(M, M)`. `eps` = numpy's 10th percentile (linear interpolation) of all `M*M`
pairwise Euclidean distances between rows (exact ties at `eps` count as within, see `TIE_RTOL`). Then `iters` passes, each visiting `i = 0..M-1` in order and replacing
`X[i]` by the mean of the CURRENT rows (rows already moved in this pass included) within `eps` of the current
`X[i]` -- the original reads neighbours from a `cKDTree` that shares memory with the array it updates in place.
Finally `count[i]` = rows within `eps` of `X[i]`; the map is the mean of the rows of maximal count, as `(Hc, Wc)`.

The sequential scan runs as one `lax.fori_loop` that keeps the squared-distance matrix up to date: moving row `i`
changes only row/column `i`, one `[M, M]` pass. In float64 (default) so neighbour tests agree with the float64 reference.
`mode="parallel"` is the textbook (Jacobi) variant -- every row moves at once from the previous pass -- offered
only as a faster option: it is NOT the original's result.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

WINDOW = 10  # percentile of pairwise distances used as the radius
# Radius slack so that rows at exactly the eps distance count as within it. The consistency volume often holds
# exact duplicate rows (cells covered by the same patches), so eps -- a percentile of the pairwise distances --
# frequently equals some pair's distance exactly; whether a KD-tree then includes that pair depends on the rounding
# of r*r. We define ties as inside; 1e-12 is far above float64 summation error and far below distance gaps.
TIE_RTOL = 1e-12
ITERS = 5
MODES = ("sequential", "parallel")
NEIGHBOURS = ("current", "initial")


def _sq_dists(x):
    sq = jnp.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    d2 = jnp.maximum(d2, 0.0)
    return d2.at[jnp.diag_indices(x.shape[0])].set(0.0)


@jax.jit
def _direct_sq_dists(x):
    """Pairwise squared distances from direct differences (no Gram cancellation), row by row."""
    return jax.lax.map(lambda xi: jnp.sum(jnp.square(x - xi[None, :]), axis=1), x, batch_size=8)


@functools.partial(jax.jit, static_argnames=("iters",), donate_argnums=(0,))
def _sequential(x, eps2, iters):
    m = x.shape[0]

    def body(t, x):
        i = t % m
        xi = jax.lax.dynamic_index_in_dim(x, i, axis=0, keepdims=False)
        d2 = jnp.sum(jnp.square(x - xi[None, :]), axis=1)  # current rows, direct differences (as the KD-tree)
        w = (d2 <= eps2).astype(x.dtype)
        new = (w @ x) / jnp.sum(w)
        return jax.lax.dynamic_update_index_in_dim(x, new, i, axis=0)

    return jax.lax.fori_loop(0, iters * m, body, x)


@functools.partial(jax.jit, static_argnames=("iters",), donate_argnums=(0,))
def _sequential_initial(x, x0, eps2, iters):
    """As `_sequential`, but neighbours are looked up among the INITIAL rows `x0` (a KD-tree over a copy)."""
    m = x.shape[0]

    def body(t, x):
        i = t % m
        xi = jax.lax.dynamic_index_in_dim(x, i, axis=0, keepdims=False)
        w = (jnp.sum(jnp.square(x0 - xi[None, :]), axis=1) <= eps2).astype(x.dtype)
        new = (w @ x) / jnp.sum(w)
        return jax.lax.dynamic_update_index_in_dim(x, new, i, axis=0)

    return jax.lax.fori_loop(0, iters * m, body, x)


@jax.jit
def _mode_map_initial(x, x0, eps2):
    count = jnp.sum(jax.lax.map(lambda xi: jnp.sum(jnp.square(x0 - xi[None, :]), axis=1), x, batch_size=8) <= eps2,
                    axis=1)
    sel = (count == jnp.max(count)).astype(x.dtype)
    return (sel @ x) / jnp.sum(sel)


@functools.partial(jax.jit, static_argnames=("iters",))
def _parallel(x, d2, eps2, iters):
    def body(_, carry):
        x, d2 = carry
        w = (d2 <= eps2).astype(x.dtype)
        x = (w @ x) / jnp.sum(w, axis=1, keepdims=True)
        return x, _sq_dists(x)

    return jax.lax.fori_loop(0, iters, body, (x, d2))


@jax.jit
def _mode_map(x, eps2):
    count = jnp.sum(_direct_sq_dists(x) <= eps2, axis=1)
    sel = (count == jnp.max(count)).astype(x.dtype)
    return (sel @ x) / jnp.sum(sel)


def percentile_radius(d2: np.ndarray, window: float = WINDOW) -> float:
    """numpy's `window`-th percentile (default linear interpolation) of the pairwise distances."""
    return float(np.percentile(np.sqrt(np.asarray(d2, np.float64)), window))


def mean_shift(volume, hc: int, wc: int, window: float = WINDOW, iters: int = ITERS,
               mode: str = "sequential", dtype: str = "float64", neighbours: str = "current") -> np.ndarray:
    """`[M, M]` consistency volume -> `(hc, wc)` float32 response map (before resizing to the image).

    `neighbours="initial"` reproduces what the released PyTorch code computes in practice: its maps are float32,
    so `cKDTree` converts them to a float64 COPY and every neighbour search (and the final count) runs against
    the initial rows, while the means still average the current rows. `"current"` (default) is the specified
    in-place semantics.

    `dtype="float32"` trades exactness of the neighbour tests (borderline rows may flip) for speed and for
    accelerators without float64 (TPU).
    """
    if mode not in MODES:
        raise ValueError(f"mean-shift mode {mode!r}: expected one of {MODES}")
    if neighbours not in NEIGHBOURS or (neighbours == "initial" and mode != "sequential"):
        raise ValueError(f"mean-shift neighbours {neighbours!r}: expected one of {NEIGHBOURS} "
                         "('initial' only with mode='sequential')")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"mean-shift dtype {dtype!r}: expected float64 or float32")
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(volume, dtype)
        if x.ndim != 2 or x.shape[0] != x.shape[1] or x.shape[0] != hc * wc:
            raise ValueError(f"expected a [{hc * wc}, {hc * wc}] volume for a {hc}x{wc} cell grid, got {x.shape}")
        d2 = _direct_sq_dists(x)
        eps = percentile_radius(jax.device_get(d2), window) * (1.0 + TIE_RTOL)
        eps2 = jnp.asarray(eps, dtype) * jnp.asarray(eps, dtype)
        if neighbours == "initial":
            xs = _sequential_initial(jnp.array(x, copy=True), x, eps2, iters)
            out = _mode_map_initial(xs, x, eps2)
            return np.asarray(out, np.float64).reshape(hc, wc).astype(np.float32)
        if mode == "sequential":
            x = _sequential(jnp.array(x, copy=True), eps2, iters)
        else:
            x, _ = _parallel(x, d2, eps2, iters)
        out = _mode_map(x, eps2)
        return np.asarray(out, np.float64).reshape(hc, wc).astype(np.float32)
