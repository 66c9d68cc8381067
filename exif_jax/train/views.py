"""Several crops of one photo per example (`data.views = V`): the text is encoded once, each crop is scored alone.

A batch's `image` is [B, V, C, C, 3] (`exif_jax.data.pipeline`). The image tower runs on all B*V crops as one
batch (BatchNorm sees all of them); the loss is the mean over views of the contrastive loss of view `v` of every
example against the B texts:

    loss = 1/V * sum_v  L(img[:, v], txt)

so every crop is still scored against all B - 1 negatives of the global batch, exactly as if the V views were V
separate steps sharing one text-tower forward. With V = 1 (`image` [B, C, C, 3]) this is the plain loss.

`view_consistency = w > 0` (needs V >= 2) adds a within-photo term: the symmetric InfoNCE of view v against view
v + 1 of the same examples (crops of one photo at different places, so different content and the same camera),
every other example's view being a negative, at the same logit scale, averaged over the V - 1 consecutive pairs:

    loss = 1/V * sum_v L(img[:, v], txt)  +  w/(V-1) * sum_v L(img[:, v], img[:, v + 1])

It asks directly for what the splice localizer needs: the patches of one photo embed alike whatever they show
(a flat sky and a textured field of the same photo), while the text term only asks it of each crop on average.
"""
from __future__ import annotations

import jax.numpy as jnp


def encode_images(model, images, train: bool):
    """[B, C, C, 3] -> [B, D]; [B, V, C, C, 3] -> [B, V, D] (one image-tower pass over the B*V crops)."""
    if images.ndim == 4:
        return model.encode_image(images, train=train)
    B, V = images.shape[:2]
    emb = model.encode_image(images.reshape((B * V,) + images.shape[2:]), train=train)
    return emb.reshape((B, V) + emb.shape[1:])


def mean_over_views(loss_of_embeddings, view_consistency: float = 0.0):
    """Wraps `loss_of_embeddings(model, img [B, D], txt [B, D]) -> (loss, aux)` to take img [B, V, D] too:
    loss and the batch accuracy are means over views; other aux values (the logit scale) are view-independent.
    `view_consistency > 0` adds the within-photo term of the module docstring, computed by the same function with
    view v + 1 in place of the texts (so it is sharded and exact over the global batch in the same way)."""
    w = float(view_consistency)

    def fn(model, img, txt):
        if img.ndim == 2:
            return loss_of_embeddings(model, img, txt)
        V = img.shape[1]
        outs = [loss_of_embeddings(model, img[:, v], txt) for v in range(V)]
        loss = jnp.mean(jnp.stack([o[0] for o in outs]))
        if w > 0 and V > 1:
            pairs = [loss_of_embeddings(model, img[:, v], img[:, v + 1])[0] for v in range(V - 1)]
            loss = loss + w * jnp.mean(jnp.stack(pairs))
        aux = dict(outs[0][1])
        aux["batch_acc"] = jnp.mean(jnp.stack([o[1]["batch_acc"] for o in outs]))
        return loss, aux

    return fn
