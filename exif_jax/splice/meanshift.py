"""Mean-shift response map of the released evaluator, kept on device.

Rows `X` = the consistency volume as `(M, M)`. `eps` = numpy's 10th percentile (linear interpolation) of all `M*M`
pairwise Euclidean distances between rows (exact ties at `eps` count as within, see `TIE_RTOL`). Then `iters`
passes, each visiting `i = 0..M-1` in order and replacing `X[i]` by the mean of the CURRENT rows (rows already moved
in this pass included) whose neighbour test passes; finally `count[i]` = rows within `eps` of `X[i]`; the map is the
mean of the rows of maximal count, as `(Hc, Wc)`.

Which rows the neighbour test looks at (`neighbours`):
- `"initial"` (default) -- what the released PyTorch code computes, hence its published numbers: its consistency
  maps are float32, so `scipy.spatial.cKDTree` copies them to float64 and every query sees the INITIAL rows while
  the means read the updated array. (The original function fed float32 maps equals this within 1e-6, and differs
  from the in-place form by ~1e-2; `tests/test_splice_core.py` keeps the transcription.)
- `"current"` -- the textbook in-place reading of the code (a tree sharing memory with the array it updates), which
  the released code never ran.

Empty neighbourhoods: with `"initial"`, a row that has moved can end up farther than eps from every initial row
(measured: a trained model's same-content splice, 361 cells, pass 5, nearest initial row at 1.063 for eps 1.048).
The released code then takes `np.mean` of no rows, a NaN row that spreads to the whole map, and its final
`cKDTree` raises on the NaN ("data must be finite"): it has no result for that image. Here such a row stays where it
is for that visit, so the map stays defined; every image the released code does give a map for is unchanged.

The sequential scan runs as one `lax.fori_loop`, one `[M, M]` pass per row update, in float64 (default) so neighbour
tests agree with the float64 tree. `mode="parallel"` is the textbook (Jacobi) variant -- every row moves at once
from the previous pass -- offered only as a faster option: it is NOT the original's result.
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


PAD_MULTIPLE = 64  # rows are padded to a multiple of this: one compilation serves many image sizes
FAR = 1e6  # padded rows sit this far from every real row, so they are never neighbours


def _sq_dists(x):
    sq = jnp.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    d2 = jnp.maximum(d2, 0.0)
    return d2.at[jnp.diag_indices(x.shape[0])].set(0.0)


@functools.partial(jax.jit, static_argnames=("mp",))
def _pad(x, mp):
    m = x.shape[0]
    xp = jnp.zeros((mp, mp), x.dtype).at[:m, :m].set(x)
    if mp > m:
        xp = xp.at[m:, m].set(FAR)
    return xp


@jax.jit
def _direct_sq_dists(x):
    """Pairwise squared distances from direct differences (no Gram cancellation), row by row."""
    return jax.lax.map(lambda xi: jnp.sum(jnp.square(x - xi[None, :]), axis=1), x, batch_size=8)


def _scan(x, x_ref, m, eps2, iters):
    """Rows 0..m-1 in order, `iters` passes; neighbours among `x_ref(x)` rows (current or initial)."""

    def body(t, x):
        i = t % m
        xi = jax.lax.dynamic_index_in_dim(x, i, axis=0, keepdims=False)
        ref = x_ref(x)
        w = (jnp.sum(jnp.square(ref - xi[None, :]), axis=1) <= eps2).astype(x.dtype)  # direct differences
        n = jnp.sum(w)
        # A moved row with no initial row within eps (only possible with `x_ref` = the initial rows) stays put;
        # see "Empty neighbourhoods" in the module docstring.
        new = jnp.where(n > 0, (w @ x) / jnp.maximum(n, 1.0), xi)
        return jax.lax.dynamic_update_index_in_dim(x, new, i, axis=0)

    return jax.lax.fori_loop(0, iters * m, body, x)


@functools.partial(jax.jit, static_argnames=("iters",), donate_argnums=(0,))
def _sequential(x, m, eps2, iters):
    return _scan(x, lambda cur: cur, m, eps2, iters)


@functools.partial(jax.jit, static_argnames=("iters",), donate_argnums=(0,))
def _sequential_initial(x, x0, m, eps2, iters):
    """As `_sequential`, but neighbours are looked up among the INITIAL rows `x0` (a KD-tree over a copy)."""
    return _scan(x, lambda cur: x0, m, eps2, iters)


@functools.partial(jax.jit, static_argnames=("iters",))
def _parallel(x, d2, eps2, iters):
    def body(_, carry):
        x, d2 = carry
        w = (d2 <= eps2).astype(x.dtype)
        x = (w @ x) / jnp.sum(w, axis=1, keepdims=True)
        return x, _sq_dists(x)

    return jax.lax.fori_loop(0, iters, body, (x, d2))


@jax.jit
def _mode_map(x, ref, m, eps2):
    """Mean of the real rows whose count of real `ref` rows within eps is maximal."""
    valid = jnp.arange(x.shape[0]) < m
    d2 = jax.lax.map(lambda xi: jnp.sum(jnp.square(ref - xi[None, :]), axis=1), x, batch_size=8)
    count = jnp.sum((d2 <= eps2) & valid[None, :], axis=1)
    count = jnp.where(valid, count, -1)
    sel = (count == jnp.max(count)).astype(x.dtype)
    return (sel @ x) / jnp.sum(sel)


def percentile_radius(d2: np.ndarray, window: float = WINDOW) -> float:
    """numpy's `window`-th percentile (default linear interpolation) of the pairwise distances."""
    return float(np.percentile(np.sqrt(np.asarray(d2, np.float64)), window))


def mean_shift(volume, hc: int, wc: int, window: float = WINDOW, iters: int = ITERS,
               mode: str = "sequential", dtype: str = "auto", neighbours: str | None = None) -> np.ndarray:
    """`[M, M]` consistency volume -> `(hc, wc)` float32 response map (before resizing to the image).

    `neighbours="initial"` (the default for the sequential mode) reproduces what the released PyTorch code
    computes: its maps are float32, so `cKDTree` converts them to a float64 COPY and every neighbour search (and
    the final count) runs against the initial rows, while the means still average the current rows. `"current"`
    is the in-place reading (and the only one of the parallel mode).

    `dtype="float32"` trades exactness of the neighbour tests (borderline rows may flip) for speed and for
    accelerators without float64; `"auto"` (default) is float64 except on TPU, which has no float64 arithmetic.
    """
    if dtype == "auto":
        dtype = "float32" if jax.default_backend() == "tpu" else "float64"
    if neighbours is None:
        neighbours = "initial" if mode == "sequential" else "current"
    if mode not in MODES:
        raise ValueError(f"mean-shift mode {mode!r}: expected one of {MODES}")
    if neighbours not in NEIGHBOURS or (neighbours == "initial" and mode != "sequential"):
        raise ValueError(f"mean-shift neighbours {neighbours!r}: expected one of {NEIGHBOURS} "
                         "('initial' only with mode='sequential')")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"mean-shift dtype {dtype!r}: expected auto, float64 or float32")
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(volume, dtype)
        m = int(x.shape[0])
        if x.ndim != 2 or x.shape[0] != x.shape[1] or m != hc * wc:
            raise ValueError(f"expected a [{hc * wc}, {hc * wc}] volume for a {hc}x{wc} cell grid, got {x.shape}")
        mp = -(-m // PAD_MULTIPLE) * PAD_MULTIPLE
        x = _pad(x, mp)
        d2 = _direct_sq_dists(x)
        eps = percentile_radius(np.asarray(d2)[:m, :m], window) * (1.0 + TIE_RTOL)
        eps2 = jnp.asarray(eps, dtype) * jnp.asarray(eps, dtype)
        mm = jnp.asarray(m, jnp.int32)
        if neighbours == "initial":
            out = _mode_map(_sequential_initial(jnp.array(x, copy=True), x, mm, eps2, iters), x, mm, eps2)
        elif mode == "sequential":
            xs = _sequential(jnp.array(x, copy=True), mm, eps2, iters)
            out = _mode_map(xs, xs, mm, eps2)
        else:
            xs, _ = _parallel(x, d2, eps2, iters)
            out = _mode_map(xs, xs, mm, eps2)
        return np.asarray(out, np.float64)[:m].reshape(hc, wc).astype(np.float32)
