"""Gradient accumulation that keeps every negative of the global batch (GradCache, Gao et al. 2021).

Plain accumulation would score each micro-batch only against its own rows. Here, with `k` micro-batches:
1. forward every micro-batch without gradients and cache the image/text embeddings of the whole batch;
2. compute the contrastive loss over the cached [B, D] embeddings and its gradient w.r.t. the embeddings (and the
   logit scale/bias parameters);
3. re-forward each micro-batch under `jax.vjp` and pull the cached embedding gradients back to the parameters,
   summing over micro-batches.
The result equals the full-batch gradient for towers without batch statistics (ViT, DistilBERT): activation memory
is that of one micro-batch, at the cost of one extra forward.

BatchNorm subtlety: in train mode a ResNet normalizes with statistics of the rows it sees, so with GradCache
the statistics are those of each micro-batch (B/k rows over all devices), not of the global batch; the gradient is
exact for *that* forward. Running statistics are updated once per micro-batch, from the re-forward in step 3 (the
caching pass in step 1 discards its updates), i.e. k momentum updates per step.

Micro-batch j takes rows r with r % k == j (a reshape [B] -> [B/k, k] and a transpose), which keeps each device's
rows on that device and makes the split independent of the device count.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from exif_jax.train import views
from exif_jax.train.mesh import BATCH_AXES


def split_micro(x, k: int, mesh):
    """[B, ...] -> [k, B/k, ...] with micro-batch j = rows j, j+k, j+2k, ..."""
    B = x.shape[0]
    y = x.reshape((B // k, k) + x.shape[1:])
    y = jnp.swapaxes(y, 0, 1)
    return jax.lax.with_sharding_constraint(y, NamedSharding(mesh, P(None, BATCH_AXES)))


def merge_micro(y, mesh):
    """Inverse of `split_micro`: [k, B/k, ...] -> [B, ...]."""
    k, b = y.shape[:2]
    x = jnp.swapaxes(y, 0, 1).reshape((k * b,) + y.shape[2:])
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(BATCH_AXES)))


def gradcache_value_and_grad(model, images, input_ids, attention_mask, k: int, loss_of_embeddings, mesh):
    """Returns ((loss, aux), grads) like `nnx.value_and_grad(..., has_aux=True)(model)` over the full batch.

    `loss_of_embeddings(model, img_emb, txt_emb) -> (loss, aux)` must use the model only for its logit scale/bias.
    Updates the model's non-parameter state (BatchNorm statistics) in place from the re-forward pass.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def forward(p, r, x, ids, mask):
        # copy=True: fresh Variables at this trace level (BatchNorm statistics are written inside the scans).
        m = nnx.merge(graphdef, p, r, copy=True)
        img = views.encode_images(m, x, train=True)
        txt = m.encode_text(ids, mask, train=True)
        _, _, new_r = nnx.split(m, nnx.Param, ...)
        return (img, txt), new_r

    xs = split_micro(images, k, mesh)
    ids = split_micro(input_ids, k, mesh)
    masks = split_micro(attention_mask, k, mesh)

    # 1. cache embeddings (no gradient, statistics updates discarded).
    def cache_one(_, inputs):
        (img, txt), _ = forward(jax.lax.stop_gradient(params), rest, *inputs)
        return None, (img, txt)

    _, (img_c, txt_c) = jax.lax.scan(cache_one, None, (xs, ids, masks))
    img_all, txt_all = merge_micro(img_c, mesh), merge_micro(txt_c, mesh)

    # 2. loss and its gradient w.r.t. the cached embeddings and the (scale/bias) parameters.
    def loss_fn(p, img, txt):
        m = nnx.merge(graphdef, p, rest)
        return loss_of_embeddings(m, img, txt)

    (loss, aux), (g_scale, g_img, g_txt) = jax.value_and_grad(loss_fn, argnums=(0, 1, 2), has_aux=True)(
        params, img_all, txt_all)
    g_img_m, g_txt_m = split_micro(g_img, k, mesh), split_micro(g_txt, k, mesh)

    # 3. re-forward each micro-batch and pull the embedding gradients back to the parameters.
    def reforward(carry, inputs):
        grads, r = carry
        x, i, m, gi, gt = inputs
        (_, vjp_fn, new_r) = jax.vjp(lambda p: forward(p, r, x, i, m), params, has_aux=True)
        (g,) = vjp_fn((gi, gt))
        return (jax.tree.map(jnp.add, grads, g), new_r), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grads, new_rest), _ = jax.lax.scan(reforward, (zeros, rest), (xs, ids, masks, g_img_m, g_txt_m))
    grads = jax.tree.map(jnp.add, grads, g_scale)
    nnx.update(model, new_rest)
    return (loss, aux), grads
