"""Building blocks shared by the towers: PyTorch-exact BatchNorm, activations, stacked (scanned) layers."""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def dtype_of(name):
    """'float32' / 'bfloat16' / a dtype -> jnp dtype."""
    return jnp.dtype(name) if name is not None else None


def quick_gelu(x):
    return x * jax.nn.sigmoid(1.702 * x)


def activation(name: str) -> Callable:
    acts = {
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
        "quick_gelu": quick_gelu,
        "relu": jax.nn.relu,
    }
    if name not in acts:
        raise ValueError(f"unknown activation {name!r}: expected one of {sorted(acts)}")
    return acts[name]


def torch_linear_init(fan_in: int):
    """PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class BatchNorm(nnx.Module):
    """BatchNorm over all axes but the last (NHWC), numerically the same as `torch.nn.BatchNorm2d`.

    Train mode normalizes with the biased batch variance and updates the running statistics with the unbiased one
    and PyTorch's `momentum` convention (`running = (1 - m) * running + m * batch`), counting
    `num_batches_tracked`. Statistics are reduced over the whole batch the function sees: under `jax.jit` with a
    batch sharded over devices that is the global batch; inside `shard_map`/`vmap` pass `axis_name` (str or tuple)
    and the statistics are `pmean`-ed over it. Parameters `scale`/`bias` are `nnx.Param`; `mean`/`var`/
    `num_batches_tracked` are `nnx.BatchStat`.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, epsilon: float = 1e-5, dtype=None,
                 param_dtype=jnp.float32, axis_name=None, scale_init: float = 1.0, rngs: nnx.Rngs | None = None):
        del rngs
        self.num_features = num_features
        self.momentum = momentum
        self.epsilon = epsilon
        self.dtype = dtype
        self.axis_name = axis_name
        self.scale = nnx.Param(jnp.full((num_features,), scale_init, param_dtype))
        self.bias = nnx.Param(jnp.zeros((num_features,), param_dtype))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))
        self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def __call__(self, x, train: bool = False):
        dtype = self.dtype or x.dtype
        xf = x.astype(jnp.float32)
        axes = tuple(range(x.ndim - 1))
        if train:
            mean = jnp.mean(xf, axes)
            count = jnp.asarray(math.prod(x.shape[:-1]), jnp.float32)
            if self.axis_name is not None:
                mean = jax.lax.pmean(mean, self.axis_name)
                count = jax.lax.psum(count, self.axis_name)
            var = jnp.mean(jnp.square(xf - mean), axes)
            if self.axis_name is not None:
                var = jax.lax.pmean(var, self.axis_name)
            unbiased = var * count / jnp.maximum(count - 1.0, 1.0)
            m = self.momentum
            self.mean[...] = (1.0 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
            self.var[...] = (1.0 - m) * self.var[...] + m * jax.lax.stop_gradient(unbiased)
            self.num_batches_tracked[...] = self.num_batches_tracked[...] + 1
        else:
            mean, var = self.mean[...], self.var[...]
        inv = jax.lax.rsqrt(var + self.epsilon) * self.scale[...].astype(jnp.float32)
        y = (xf - mean) * inv + self.bias[...].astype(jnp.float32)
        return y.astype(dtype)


# `build_layers` builds repeated layers under one `lax.scan` (False: one by one, the old inline init program;
# same arrays, kept for `bench/compile_time.py`'s before/after).
SCAN_INIT = True


class _HoldsRngs(Exception):
    """A layer keeps an RNG stream (e.g. dropout): it cannot be built inside `lax.scan`."""


def _scan_build(make: Callable, n: int, rngs: nnx.Rngs):
    """Build `n` layers with `make(rngs)` inside one `jax.lax.scan` -> (graphdef, state with a leading axis `n`).

    Every layer draws from the same streams, at the same counts, as `n` sequential `make(rngs)` calls
    (`rngs.params()` is `fold_in(key, count)`; the count is the scan carry), so the arrays are bitwise the same,
    and `rngs` is advanced as those calls would. Why: traced inline, a 12-layer tower is 12 copies of every
    initialiser (on GPU/TPU each `jax.random.normal` unrolls 20 Threefry rounds), and XLA compile time grows
    with that program; under scan the layer is compiled once.
    """
    rdef, rstate = nnx.split(rngs)
    found = {}

    def body(carry, _):
        r = nnx.merge(rdef, carry)
        layer = make(r)
        graphdef, state = nnx.split(layer)
        if jax.tree.leaves(nnx.state(layer, nnx.RngState)):
            raise _HoldsRngs
        found["graphdef"] = graphdef
        return nnx.state(r), state

    final, stacked = jax.lax.scan(body, rstate, None, length=n)
    nnx.update(rngs, final)
    return found["graphdef"], stacked


def build_layers(make: Callable[[nnx.Rngs], nnx.Module], n: int, rngs: nnx.Rngs, *, stacked: bool = False):
    """`n` layers `make(rngs)`: an `nnx.List` of modules, or (`stacked=True`) one `stack_modules`-style module
    whose arrays carry a leading axis `n`.

    Parameters (and the state of `rngs` afterwards) are exactly those of `[make(rngs) for _ in range(n)]`; the
    layers are built under one `jax.lax.scan` so the init program holds each initialiser once, not `n` times
    (see `_scan_build`). Layers that keep an RNG stream (dropout) are built one by one.
    """
    if n <= 1 or not SCAN_INIT:
        built = [make(rngs) for _ in range(n)]
        return stack_modules(iter(built).__next__, n) if stacked else nnx.List(built)
    try:
        graphdef, state = _scan_build(make, n, rngs)
    except _HoldsRngs:
        return stack_modules(lambda: make(rngs), n) if stacked else nnx.List([make(rngs) for _ in range(n)])
    if stacked:
        module = nnx.merge(graphdef, state)
        module.num_stacked = n
        return module
    return nnx.List([nnx.merge(graphdef, jax.tree.map(lambda x, i=i: x[i], state)) for i in range(n)])


def stack_modules(make: Callable[[], nnx.Module], n: int) -> nnx.Module:
    """Build `n` modules with `make()` and return one module whose arrays carry a leading axis of size `n`.

    The result has the attribute `num_stacked = n`; `run_layers` scans over it and the converters unstack it to
    PyTorch's per-layer keys (`layer.0...`, `layer.1...`). (`build_layers(..., stacked=True)` gives the same
    module from `make(rngs)` with a smaller init program.)
    """
    graphdef, first = nnx.split(make())
    states = [first] + [nnx.split(make())[1] for _ in range(n - 1)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    module = nnx.merge(graphdef, stacked)
    module.num_stacked = n
    return module


def run_layers(layers, x, fn: Callable, *, remat: bool = False):
    """Apply `fn(block, x) -> x` over `layers`: an `nnx.List` (python loop) or a `stack_modules` result (scan).

    Blocks run under scan must not update state (no BatchNorm, no dropout).
    """
    if getattr(layers, "num_stacked", None) is not None:
        graphdef, state = nnx.split(layers)

        def body(carry, layer_state):
            return fn(nnx.merge(graphdef, layer_state), carry), None

        if remat:
            body = jax.checkpoint(body, prevent_cse=False)
        x, _ = jax.lax.scan(body, x, state)
        return x
    call = nnx.remat(fn) if remat else fn
    for block in layers:
        x = call(block, x)
    return x
