"""Held-out evaluation: contrastive loss and image->EXIF retrieval top-1/top-5 over the eval split.

Every held-out image is ranked against the EXIF texts of all held-out images (N-way retrieval, chance = k/N).
A retrieved text counts as correct when its tokens equal the image's own text (two photos with identical EXIF
text are indistinguishable by construction).
"""
from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from exif_jax.train import sharding
from exif_jax.train.loss import global_contrastive_loss


def make_encode_fn(graphdef, mesh, state_shardings):
    """Jitted `(state, batch) -> (img_emb, txt_emb, clip_loss)` in eval mode (BatchNorm running statistics)."""
    from exif_jax.models.preprocess import normalize_images

    bs = sharding.batch_sharding(mesh)

    def encode(state, batch):
        model, _ = nnx.merge(graphdef, state)
        img = model.encode_image(normalize_images(batch["image"]), train=False)
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"])
        img, txt = img.astype(jnp.float32), txt.astype(jnp.float32)
        loss, _ = global_contrastive_loss(img, txt, model.logit_scale(), mesh=mesh)
        return img, txt, loss

    return jax.jit(encode, in_shardings=(state_shardings, {k: bs for k in ("image", "input_ids", "attention_mask")}),
                   out_shardings=(bs, bs, sharding.replicated(mesh)))


def _hits(queries: np.ndarray, texts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[N, U] bool: column j of row i is True when row i's own text (`labels[i]`) is ranked j-th (cosine)."""
    order = np.argsort(-(queries @ texts.T), axis=1, kind="stable")
    return order == labels[:, None]


def retrieval_metrics(img: np.ndarray, txt: np.ndarray, ids: np.ndarray, ks=(1, 5)) -> dict:
    """Image->text top-k, each image ranked against the DISTINCT texts of the eval set.

    `ids` [N, L] token rows identify identical texts (several crops of one photo share one). Identical texts have
    identical embeddings, so ranking all N rows would let one photo's copies fill the top k together and push a
    model below the chance of a random ranking; ranking the U distinct texts makes chance exactly min(k, U) / U.
    """
    img = img / np.maximum(np.linalg.norm(img, axis=-1, keepdims=True), 1e-12)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=-1, keepdims=True), 1e-12)
    _, first, inverse = np.unique(ids, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    hits = _hits(img, txt[first], inverse)
    n_texts = len(first)
    out = {f"eval_top{k}": float(np.mean(hits[:, :k].any(axis=1))) for k in ks}
    out["eval_n"] = float(len(img))
    out["eval_n_texts"] = float(n_texts)
    for k in ks:
        out[f"eval_top{k}_chance"] = min(k, n_texts) / n_texts
    if n_texts < len(img):
        # Photo level: a photo is the set of crops sharing one text; its embedding is the normalised mean of its
        # crop embeddings (how a patch model describes a whole photo). Same distinct-text ranking, same chance.
        photo = np.zeros((n_texts, img.shape[1]))
        np.add.at(photo, inverse, img)
        photo /= np.maximum(np.linalg.norm(photo, axis=-1, keepdims=True), 1e-12)
        hits = _hits(photo, txt[first], np.arange(n_texts))
        for k in ks:
            out[f"eval_photo_top{k}"] = float(np.mean(hits[:, :k].any(axis=1)))
    return out


def evaluate(state, batches: Iterable[dict], encode_fn, to_global) -> dict:
    """Runs `encode_fn` over process-local `batches` (made global by `to_global`); returns `eval_loss` (CLIP
    softmax loss per eval batch, averaged), `eval_top1`, `eval_top5`, `eval_n` and the chance levels
    `eval_top1_chance`, `eval_top5_chance` (rows with identical texts, e.g. several crops of one photo, count), and
    with several crops per photo `eval_photo_top1`/`eval_photo_top5` (mean crop embedding per photo, same chance)."""
    imgs, txts, ids, losses = [], [], [], []
    for local in batches:
        batch = to_global(local)
        img, txt, loss = encode_fn(state, batch)
        losses.append(float(loss))
        imgs.append(np.asarray(multihost_utils.process_allgather(img, tiled=True)))
        txts.append(np.asarray(multihost_utils.process_allgather(txt, tiled=True)))
        ids.append(np.asarray(multihost_utils.process_allgather(batch["input_ids"], tiled=True)))
    if not imgs:
        return {}
    out = retrieval_metrics(np.concatenate(imgs), np.concatenate(txts), np.concatenate(ids))
    out["eval_loss"] = float(np.mean(losses))
    return out
