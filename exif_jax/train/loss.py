"""Contrastive losses over the whole global batch, written explicitly with `jax.shard_map`.

Each device holds its rows of the image and text embeddings (batch split over (`data`, `fsdp`)). It gathers the
other side's embeddings from all devices (`all_gather`, tiled), scores its own rows against every column, and the
per-device sums are `psum`-ed. Every example therefore sees all `B - 1` negatives of the global batch, and the
gradient is exact: the transpose of `all_gather` is a reduce-scatter, which sums the column gradients from all
devices. `jax.grad` of this function equals `jax.grad` of the single-device formula (tests check it against torch).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from exif_jax.train.mesh import BATCH_AXES


def _normalize(x):
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _row_offset(axes, local_rows):
    # Index of this shard along the flattened (data, fsdp) batch dimension.
    idx = 0
    for a in axes:
        idx = idx * jax.lax.axis_size(a) + jax.lax.axis_index(a)
    return idx * local_rows


def _clip_local(img, txt, scale, bias):
    del bias
    img, txt = _normalize(img), _normalize(txt)
    n = img.shape[0]
    all_txt = jax.lax.all_gather(txt, BATCH_AXES, tiled=True)
    all_img = jax.lax.all_gather(img, BATCH_AXES, tiled=True)
    labels = _row_offset(BATCH_AXES, n) + jnp.arange(n)
    logits_i2t = scale * img @ all_txt.T  # [n, B]
    logits_t2i = scale * txt @ all_img.T
    def ce(logits):
        lse = jax.nn.logsumexp(logits, axis=-1)
        pos = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        return jnp.sum(lse - pos)
    total = jax.lax.psum(ce(logits_i2t) + ce(logits_t2i), BATCH_AXES)
    correct = jax.lax.psum(jnp.sum(jnp.argmax(logits_i2t, -1) == labels), BATCH_AXES)
    return total, correct


def _siglip_local(img, txt, scale, bias):
    img, txt = _normalize(img), _normalize(txt)
    n = img.shape[0]
    all_txt = jax.lax.all_gather(txt, BATCH_AXES, tiled=True)
    labels = _row_offset(BATCH_AXES, n) + jnp.arange(n)
    logits = scale * img @ all_txt.T + bias
    sign = jnp.where(labels[:, None] == jnp.arange(all_txt.shape[0])[None, :], 1.0, -1.0)
    total = jax.lax.psum(-jnp.sum(jax.nn.log_sigmoid(sign * logits)), BATCH_AXES)
    correct = jax.lax.psum(jnp.sum(jnp.argmax(logits, -1) == labels), BATCH_AXES)
    return total, correct


def global_contrastive_loss(img, txt, scale, bias=0.0, *, mesh, kind: str = "clip"):
    """Loss over the global batch; `img`, `txt` are [B, D] arrays split over (`data`, `fsdp`) on `mesh`.

    kind `clip`: symmetric InfoNCE, mean over B of (i->t CE + t->i CE) / 2 on L2-normalized embeddings (same
    formula as `exif_jax.models.losses.clip_loss`). kind `siglip`: sigmoid loss summed over all B^2 pairs / B.
    Returns (loss, image->text top-1 accuracy in the batch).
    """
    if kind not in ("clip", "siglip"):
        raise ValueError(f"unknown loss {kind!r}: use 'clip' or 'siglip'")
    local = _clip_local if kind == "clip" else _siglip_local
    B = img.shape[0]
    scale = jnp.asarray(scale, jnp.float32)
    bias = jnp.asarray(bias, jnp.float32)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(BATCH_AXES), P(BATCH_AXES), P(), P()), out_specs=(P(), P()))
    total, correct = fn(img, txt, scale, bias)
    if kind == "clip":
        loss = total / (2.0 * B)
    else:
        loss = total / B
    return loss, correct.astype(jnp.float32) / B


def reference_clip_loss(img, txt, scale):
    """Single-device formula (for tests and evaluation without a mesh)."""
    img, txt = _normalize(img), _normalize(txt)
    logits = scale * img @ txt.T
    labels = jnp.arange(img.shape[0])
    i2t = jnp.mean(jax.nn.logsumexp(logits, -1) - logits[labels, labels])
    t2i = jnp.mean(jax.nn.logsumexp(logits.T, -1) - logits[labels, labels])
    return (i2t + t2i) / 2
