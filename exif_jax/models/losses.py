"""Contrastive losses on raw tower outputs (L2-normalized here).

`clip_loss(img, txt, scale)`: symmetric InfoNCE, `(CE(s * I T^T, diag) + CE(s * T I^T, diag)) / 2` (open_clip).
`siglip_loss(img, txt, scale, bias)`: sigmoid loss `-sum_ij log sigmoid(z_ij (s I_i.T_j + b)) / B`, `z = 2*eye - 1`.

Both accept `axis_name`: inside `jax.shard_map` with the batch split over that mesh axis (or tuple of axes), each
shard's rows are scored against the all-gathered other side and the result equals the single-device loss over the
global batch (what `jax.jit` over a sharded global array computes without it).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def l2_normalize(x, eps: float = 1e-12):
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def _gather(x, axis_name):
    if axis_name is None:
        return x, jnp.arange(x.shape[0])
    full = jax.lax.all_gather(x, axis_name, tiled=True)
    start = jax.lax.axis_index(axis_name) * x.shape[0]
    return full, start + jnp.arange(x.shape[0])


def clip_logits(img, txt, scale):
    """[B, B] image->text logits `scale * normalize(img) @ normalize(txt).T` (rows: images)."""
    return scale * l2_normalize(img) @ l2_normalize(txt).T


def clip_loss(img, txt, scale, axis_name=None):
    """Symmetric softmax contrastive loss (scalar float32); `scale` is the (exponentiated) logit scale."""
    img, txt = l2_normalize(img), l2_normalize(txt)
    all_img, labels = _gather(img, axis_name)
    all_txt, _ = _gather(txt, axis_name)
    logits_i2t = scale * img @ all_txt.T
    logits_t2i = scale * txt @ all_img.T
    ce = lambda logits: -jnp.mean(  # noqa: E731
        jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), labels[:, None], axis=-1))
    loss = 0.5 * (ce(logits_i2t) + ce(logits_t2i))
    return loss if axis_name is None else jax.lax.pmean(loss, axis_name)


def siglip_loss(img, txt, scale, bias, axis_name=None):
    """Sigmoid pairwise loss (SigLIP, Zhai et al. 2023), summed over pairs and divided by the global batch."""
    img, txt = l2_normalize(img), l2_normalize(txt)
    all_txt, labels = _gather(txt, axis_name)
    logits = scale * img @ all_txt.T + bias
    z = 2.0 * (labels[:, None] == jnp.arange(all_txt.shape[0])[None, :]).astype(jnp.float32) - 1.0
    total = -jnp.sum(jax.nn.log_sigmoid(z * logits))
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    return total / all_txt.shape[0]


def retrieval_accuracy(img, txt):
    """(image->text top-1, text->image top-1) accuracy of matching pairs in the batch."""
    logits = clip_logits(img, txt, 1.0)
    target = jnp.arange(logits.shape[0])
    return (jnp.mean(jnp.argmax(logits, 1) == target), jnp.mean(jnp.argmax(logits, 0) == target))
