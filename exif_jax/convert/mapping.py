"""The one table between ExifClip arrays and PyTorch state-dict keys ("canonical" torch layout).

Canonical keys are the NNX attribute paths joined with '.' (they mirror PyTorch by construction: `visual.layer1.0.
conv1.weight`, `transformer.transformer.layer.3.ffn.lin1.weight`, `visual.encoder.layers.0.self_attn.q_proj.bias`)
plus these layout rules:

- Linear `kernel` [in, out] <-> `weight` [out, in]; Conv `kernel` HWIO <-> `weight` OIHW; Embed `embedding` <->
  `weight`; LayerNorm `scale` <-> `weight`; BatchNorm `scale/bias/mean/var/num_batches_tracked` <-> `weight/bias/
  running_mean/running_var/num_batches_tracked` (int64 in torch).
- Stacked (`scan_layers=True`) blocks are unstacked to per-layer indices, so scanned and unscanned models share keys.
- Joint parameters: `log_scale` <-> `logit_scale` (log of the scale, as CLIP stores it), `bias` <-> `logit_bias`,
  `image_projection.weight`, `text_projection.weight`.

`to_torch_state(model)` exports float32 numpy arrays; `load_torch_state(model, state, source)` imports, checking that
every selected key on both sides is used exactly once and every shape matches, and raises `ConversionError` (one
line naming `source`, listing a few offending keys) otherwise.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from exif_jax.models.layers import BatchNorm


class ConversionError(ValueError):
    """Weights that do not fit the model: missing/unexpected keys, shape mismatches, unreadable files."""


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str  # canonical torch key
    module: nnx.Module
    attr: str  # attribute on `module` holding the nnx.Variable
    kind: str  # "linear" | "conv" | "plain" | "count"
    index: int | None  # layer index into a stacked array, or None


def _leaf_attrs(module):
    """(attr, torch name, kind) of the arrays a module owns directly."""
    from exif_jax.models.clip import ExifClip
    from exif_jax.models.vit import Embeddings as VitEmbeddings

    if isinstance(module, nnx.Linear):
        out = [("kernel", "weight", "linear")]
        return out + ([("bias", "bias", "plain")] if module.bias is not None else [])
    if isinstance(module, nnx.Conv):
        out = [("kernel", "weight", "conv")]
        return out + ([("bias", "bias", "plain")] if module.bias is not None else [])
    if isinstance(module, nnx.LayerNorm):
        return [("scale", "weight", "plain"), ("bias", "bias", "plain")]
    if isinstance(module, nnx.Embed):
        return [("embedding", "weight", "plain")]
    if isinstance(module, BatchNorm):
        return [("scale", "weight", "plain"), ("bias", "bias", "plain"), ("mean", "running_mean", "plain"),
                ("var", "running_var", "plain"), ("num_batches_tracked", "num_batches_tracked", "count")]
    if isinstance(module, VitEmbeddings):
        return [("class_embedding", "class_embedding", "plain")]
    if isinstance(module, ExifClip):
        out = []
        if module.log_scale is not None:
            out.append(("log_scale", "logit_scale", "plain"))
        if module.bias is not None:
            out.append(("bias", "logit_bias", "plain"))
        return out
    return []


def entries(model) -> list[Entry]:
    """Every array of `model` as an `Entry`, in a stable order."""
    modules = list(nnx.iter_modules(model))
    stacked = {path: m.num_stacked for path, m in modules if getattr(m, "num_stacked", None) is not None}
    result = []
    for path, module in modules:
        attrs = _leaf_attrs(module)
        if not attrs:
            continue
        root = next((r for r in stacked if path[:len(r)] == r), None)
        for attr, name, kind in attrs:
            if root is None:
                result.append(Entry(".".join(map(str, (*path, name))), module, attr, kind, None))
            else:
                for i in range(stacked[root]):
                    key = ".".join(map(str, (*root, i, *path[len(root):], name)))
                    result.append(Entry(key, module, attr, kind, i))
    return result


def _to_torch_layout(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "linear":
        return np.ascontiguousarray(a.T)
    if kind == "conv":
        return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
    if kind == "count":
        return a.astype(np.int64)
    return a


def _from_torch_layout(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "linear":
        return np.ascontiguousarray(a.T) if a.ndim == 2 else a
    if kind == "conv":
        return np.ascontiguousarray(a.transpose(2, 3, 1, 0)) if a.ndim == 4 else a
    return a


def to_torch_state(model) -> dict[str, np.ndarray]:
    """Canonical torch-layout state dict (float32 numpy; BatchNorm counters int64)."""
    out = {}
    for e in entries(model):
        a = np.asarray(getattr(e.module, e.attr).get_value())
        if e.index is not None:
            a = a[e.index]
        if a.dtype != np.int32 and a.dtype != np.int64:
            a = a.astype(np.float32)
        out[e.key] = _to_torch_layout(a, e.kind)
    return out


def _few(keys, n=4):
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_torch_state(model, state: dict, source: str, *, only: tuple[str, ...] = ("",),
                     skip: tuple[str, ...] = ()) -> None:
    """Copy canonical torch-layout arrays `state` into `model` in place.

    Only model keys starting with one of `only` and none of `skip` are loaded; among those, a key missing from
    `state`, a key of `state` that the model lacks, or a shape mismatch raises `ConversionError` naming `source`.
    """
    selected = lambda k: k.startswith(only) and not (skip and k.startswith(skip))  # noqa: E731
    ents = [e for e in entries(model) if selected(e.key)]
    want = {e.key for e in ents}
    have = {k for k in state if selected(k)}
    missing, unexpected = want - have, have - want
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_few(unexpected)}")
        raise ConversionError(f"{source}: weights do not match the model config: " + "; ".join(parts))
    pending: dict[tuple[int, str], list] = {}
    bad = []
    for e in ents:
        var = getattr(e.module, e.attr)
        current = var.get_value()  # an array, or a ShapeDtypeStruct in a model built under nnx.eval_shape
        target_shape = tuple(current.shape[1:] if e.index is not None else current.shape)
        a = _from_torch_layout(np.asarray(state[e.key]), e.kind)
        if tuple(a.shape) != target_shape:
            bad.append(f"{e.key} {tuple(np.asarray(state[e.key]).shape)} (model wants "
                       f"{_to_torch_layout(np.zeros(target_shape), e.kind).shape})")
            continue
        if e.index is None:
            var.set_value(jnp.asarray(a, current.dtype))
        else:
            pending.setdefault((id(e.module), e.attr), [e.module, e.attr, {}])[2][e.index] = a
    if bad:
        raise ConversionError(f"{source}: {len(bad)} shape mismatches: {'; '.join(bad[:4])}"
                              + (f" (+{len(bad) - 4} more)" if len(bad) > 4 else ""))
    for module, attr, by_index in pending.values():
        var = getattr(module, attr)
        var.set_value(jnp.asarray(np.stack([by_index[i] for i in range(len(by_index))]), var.get_value().dtype))


def random_torch_state(model, seed: int = 0, std: float = 0.05) -> dict[str, np.ndarray]:
    """Random canonical state for `model` (which may be abstract, from `nnx.eval_shape`), made on the host.

    For tests and benchmarks that need some random weights without paying XLA compiles of the initialisers:
    normal(0, std) arrays, BatchNorm running variances in [0.5, 1.5], counters 0.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for e in entries(model):
        v = getattr(e.module, e.attr).get_value()
        shape = _to_torch_layout(np.zeros(v.shape[1:] if e.index is not None else v.shape), e.kind).shape
        if e.kind == "count":
            out[e.key] = np.zeros(shape, np.int64)
        elif e.key.endswith("running_var"):
            out[e.key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[e.key] = (rng.standard_normal(shape, np.float32) * std).astype(np.float32)
    return out


def random_model(build, seed: int = 0):
    """`build()` under `nnx.eval_shape`, filled with `random_torch_state` (no XLA initialiser compiles)."""
    model = nnx.eval_shape(build)
    load_torch_state(model, random_torch_state(model, seed), "<random>")
    return model
