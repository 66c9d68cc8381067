"""Train state: the NNX graph (model + `nnx.Optimizer`) split into a static graphdef and a pytree of arrays.

The state pytree is what the jitted step takes and returns, what the sharding rules place and what orbax saves.
It holds parameters, BatchNorm statistics, RNG state, the optimizer's step and moments.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable

import jax
import ml_collections
from flax import nnx

from exif_jax.train import optim, sharding


def default_build_model(model_cfg, rngs):
    from exif_jax.models import build_model  # models engineer's module (contract in docs/ARCHITECTURE.md)

    return build_model(model_cfg, rngs)


def steps_per_epoch(config) -> int:
    """`data.steps_per_epoch`, else train records in `data.path/dataset_info.json` // batch_size, else 1 epoch =
    the whole run (only the epoch-based schedule pieces depend on it)."""
    if int(config.data.steps_per_epoch) > 0:
        return int(config.data.steps_per_epoch)
    info = pathlib.Path(str(config.data.path)) / "dataset_info.json"
    if str(config.data.path) and info.is_file():
        meta = json.loads(info.read_text())
        n = _train_count(meta)
        if n:
            return max(n // int(config.batch_size), 1)
    return max(int(config.total_steps), 1)


def _train_count(meta: dict) -> int:
    for key in ("train", "num_train", "train_count"):
        for d in (meta, meta.get("counts", {}), meta.get("splits", {})):
            v = d.get(key) if isinstance(d, dict) else None
            if isinstance(v, dict):
                v = v.get("count", v.get("num_examples", v.get("records")))
            if isinstance(v, int):
                return v
    return 0


@dataclasses.dataclass
class StateSpec:
    graphdef: Any  # static NNX graph of (model, optimizer)
    abstract: Any  # pytree of jax.ShapeDtypeStruct with .sharding
    shardings: Any  # pytree of NamedSharding, same structure
    schedule: Callable  # step -> learning rate
    tx: Any


def _make_pair(config, build_model, tx):
    model = build_model(config.model, nnx.Rngs(int(config.seed)))
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def state_spec(config: ml_collections.ConfigDict, mesh, build_model=None) -> StateSpec:
    """Shapes, dtypes and shardings of the train state without allocating it."""
    build_model = build_model or default_build_model
    tx, schedule = optim.make_optimizer(config.optim, int(config.total_steps), steps_per_epoch(config))
    abs_pair = nnx.eval_shape(lambda: _make_pair(config, build_model, tx))
    graphdef, abs_state = nnx.split(abs_pair)
    shardings = sharding.tree_shardings(abs_state, config.sharding.rules, mesh)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abs_state, shardings)
    return StateSpec(graphdef, abstract, shardings, schedule, tx)


def init_state(config, mesh, spec: StateSpec, build_model=None, pretrained: bool = True):
    """Initialises the state directly into its shardings (no host copy of a replicated model per device).
    `pretrained=False` skips `model.init_from` (the untrained control)."""
    build_model = build_model or default_build_model

    def init():
        return nnx.state(_make_pair(config, build_model, spec.tx))

    with jax.set_mesh(mesh):
        state = jax.jit(init, out_shardings=spec.shardings)()
    if pretrained and str(config.model.get("init_from", "") or ""):
        state = load_pretrained(config, spec, state)
    return state


def load_pretrained(config, spec: StateSpec, state):
    """Copies parameters (and BatchNorm statistics) from `model.init_from` (an original `.pth`, an exported
    `.safetensors`, or a trainer workdir, read by `exif_jax.load`) into a fresh state; optimizer moments stay zero."""
    import exif_jax

    src = exif_jax.load(str(config.model.init_from)).model
    model, opt = nnx.merge(spec.graphdef, state)
    src_state = nnx.state(src)
    dst_state = nnx.state(model)
    src_flat = dict(nnx.to_flat_state(src_state))
    missing = [k for k, _ in nnx.to_flat_state(dst_state) if k not in src_flat]
    if missing:
        raise ValueError(f"model.init_from={config.model.init_from}: {len(missing)} model entries are missing there, "
                         f"e.g. {'/'.join(map(str, missing[0]))} (does model config match the weights?)")
    nnx.update(model, src_state)
    new = nnx.state((model, opt))
    return jax.tree.map(lambda x, s: jax.device_put(x, s), new, spec.shardings)
