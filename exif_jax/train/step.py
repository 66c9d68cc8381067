"""The train step: one `jax.jit` over the split NNX state with explicit shardings and donation."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from exif_jax.train import accumulate, sharding, views
from exif_jax.train.loss import global_contrastive_loss
from exif_jax.train.state import StateSpec, state_spec

METRIC_KEYS = ("loss", "batch_acc", "grad_norm", "lr", "logit_scale", "finite")


def _normalize_images(images):
    from exif_jax.models.preprocess import normalize_images  # models engineer's module

    return normalize_images(images)


def text_len(config) -> int:
    """Token length of the batches: `data.max_text_len`, else `text_len` of `data.path/dataset_info.json`, else 64
    (the pipeline pads every batch to this fixed length)."""
    if int(config.data.max_text_len) > 0:
        return int(config.data.max_text_len)
    try:
        from exif_jax.data.pipeline import load_dataset_info

        info = load_dataset_info(str(config.data.path)) if str(config.data.path) else None
    except (ImportError, ValueError, OSError):
        info = None
    return int((info or {}).get("text_len") or 64)


def n_views(config) -> int:
    """Crops of one photo per example (`data.views`, default 1); see `exif_jax.train.views`."""
    v = int(config.data.get("views", 1))
    if v < 1:
        raise ValueError(f"data.views={v}: must be >= 1 (crops of one photo per example)")
    return v


def view_consistency(config) -> float:
    """Weight of the within-photo term between views (`view_consistency`, default 0; needs `data.views >= 2`)."""
    w = float(config.get("view_consistency", 0.0))
    if w < 0:
        raise ValueError(f"view_consistency={w}: must be >= 0")
    if w > 0 and n_views(config) < 2:
        raise ValueError(f"view_consistency={w} needs data.views >= 2 (crops of one photo per example); "
                         f"data.views is {n_views(config)}")
    return w


def abstract_batch(config, mesh, batch_size: int | None = None, length: int | None = None) -> dict:
    """`jax.ShapeDtypeStruct`s (global shapes, batch sharding) of one train batch."""
    B = int(batch_size or config.batch_size)
    C, L = int(config.data.crop), int(length or text_len(config))
    V = n_views(config)
    bs = sharding.batch_sharding(mesh)
    return {
        "image": jax.ShapeDtypeStruct((B, C, C, 3) if V == 1 else (B, V, C, C, 3), jnp.uint8, sharding=bs),
        "input_ids": jax.ShapeDtypeStruct((B, L), jnp.int32, sharding=bs),
        "attention_mask": jax.ShapeDtypeStruct((B, L), jnp.int32, sharding=bs),
    }


def _loss_of_embeddings(kind, mesh):
    def fn(model, img, txt):
        bias = model.logit_bias() if kind == "siglip" else 0.0
        scale = model.logit_scale()
        loss, acc = global_contrastive_loss(img, txt, scale, bias, mesh=mesh, kind=kind)
        return loss, {"batch_acc": acc, "logit_scale": jnp.asarray(scale, jnp.float32)}

    return fn


def make_step_fn(config, mesh, spec: StateSpec) -> Callable:
    """The un-jitted step `(state, batch) -> (state, metrics)`."""
    k = int(config.accum_steps)
    kind = str(config.model.get("loss", "clip"))
    loss_of_emb = views.mean_over_views(_loss_of_embeddings(kind, mesh), view_consistency(config))
    guard = bool(config.nan_guard)

    def step(state, batch):
        model, opt = nnx.merge(spec.graphdef, state)
        images = _normalize_images(batch["image"])
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if k > 1:
            (loss, aux), grads = accumulate.gradcache_value_and_grad(model, images, ids, mask, k, loss_of_emb, mesh)
        else:
            def loss_fn(m):
                img = views.encode_images(m, images, train=True)
                return loss_of_emb(m, img, m.encode_text(ids, mask, train=True))

            (loss, aux), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        grad_norm = optax.tree.norm(grads)
        lr = spec.schedule(opt.step[...])
        opt.update(model, grads)
        new_state = nnx.state((model, opt))
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        if guard:
            # A non-finite step leaves the state untouched; the trainer stops at the next log step.
            new_state = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new_state, state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": lr, "finite": finite.astype(jnp.float32), **aux}
        return new_state, metrics

    return step


def jit_step(config, mesh, spec: StateSpec):
    """`jax.jit` of the step with in/out shardings and the state donated."""
    bs = sharding.batch_sharding(mesh)
    batch_sh = {k: bs for k in ("image", "input_ids", "attention_mask")}
    rep = sharding.replicated(mesh)
    return jax.jit(
        make_step_fn(config, mesh, spec),
        in_shardings=(spec.shardings, batch_sh),
        out_shardings=(spec.shardings, {k: rep for k in METRIC_KEYS}),
        donate_argnums=(0,),
    )


def build_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, build_model=None):
    """Builds the sharded train step for `config` on `mesh` without data or allocating parameters.

    Returns `(jitted_step, abstract_state, abstract_batch)`:
      - `jitted_step(state, batch) -> (state, metrics)`: one `jax.jit` with explicit `in_shardings`,
        `out_shardings` and `donate_argnums=(0,)`; metrics are replicated float32 scalars
        (`loss`, `batch_acc`, `grad_norm`, `lr`, `logit_scale`, `finite`).
      - `abstract_state`: pytree of `jax.ShapeDtypeStruct` (with `.sharding`) of the NNX model + optimizer state
        placed by `config.sharding.rules` (replicated unless the mesh has an `fsdp` axis > 1).
      - `abstract_batch`: `{"image": uint8[B,C,C,3], "input_ids": int32[B,L], "attention_mask": int32[B,L]}`
        `ShapeDtypeStruct`s (`image` uint8[B,V,C,C,3] with `data.views = V > 1`), global batch
        `B = config.batch_size` split over (`data`, `fsdp`), `C = config.data.crop`,
        `L = config.data.max_text_len` (64 when 0).
    Ahead-of-time use (e.g. for a TPU topology's mesh):
        step, s, b = build_train_step(cfg, mesh)
        compiled = step.lower(s, b).compile(); compiled.memory_analysis(); compiled.cost_analysis()
    """
    with jax.set_mesh(mesh):
        spec = state_spec(config, mesh, build_model)
    return jit_step(config, mesh, spec), spec.abstract, abstract_batch(config, mesh)
