"""GradCache accumulation with a BatchNorm (ResNet) image tower: `--config.accum_steps=2` used to crash at the
first step (BatchNorm statistics mutated inside the caching scan). It now runs, and it computes exactly what
`exif_jax/train/accumulate.py` documents: BatchNorm normalises each micro-batch (rows j, j+k, ...) with that
micro-batch's statistics, every negative of the whole batch is kept in the loss, and the running statistics get
one momentum update per micro-batch.

The reference is written independently of GradCache: one plain `nnx.value_and_grad` over the whole batch whose
image tower is run once per micro-batch (so BatchNorm sees the same rows), embeddings put back in row order, the
same contrastive loss; no caching, no scans, no vjp.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs.common import base_config, with_model
from exif_jax.models import build_model, tiny_model_config
from exif_jax.models.preprocess import normalize_images
from exif_jax.train import accumulate, mesh as mesh_lib
from exif_jax.train.step import _loss_of_embeddings

B, L, C, K = 8, 16, 32, 2


def _setup():
    c = base_config()
    with_model(c, tiny_model_config("resnet50", **{"resnet.width": 8, "resnet.stages": (1, 1, 1, 1), "text.n_layers": 1}))
    c.mesh.data, c.mesh.fsdp = 1, 1
    mesh = mesh_lib.make_mesh(c.mesh, devices=jax.devices()[:1])
    rng = np.random.default_rng(0)
    lens = rng.integers(4, L + 1, size=B)
    mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
    batch = {"image": normalize_images(jnp.asarray(rng.integers(0, 256, (B, C, C, 3), dtype=np.uint8))),
             "input_ids": jnp.asarray((rng.integers(1000, 5000, (B, L)) * mask).astype(np.int32)),
             "attention_mask": jnp.asarray(mask)}
    return c, mesh, batch


def _reference(model, batch, loss_of_emb):
    """Full-batch gradient; BatchNorm statistics per micro-batch of rows j::K (what GradCache documents)."""
    def loss_fn(m):
        parts = [m.encode_image(batch["image"][j::K], train=True) for j in range(K)]
        img = jnp.zeros((B, parts[0].shape[1]), parts[0].dtype)
        for j, p in enumerate(parts):
            img = img.at[j::K].set(p)
        txt = m.encode_text(batch["input_ids"], batch["attention_mask"], train=True)
        return loss_of_emb(m, img, txt)

    return nnx.value_and_grad(loss_fn, has_aux=True)(model)


def _flat(tree):
    return {"/".join(map(str, k)): np.asarray(v[...] if hasattr(v, "__getitem__") and not isinstance(v, np.ndarray)
                                              else v)
            for k, v in nnx.to_flat_state(tree)}


def _jitted(fn, model):
    """`fn(model) -> (loss, grads)` jitted over the model's state; returns (loss, grads, BatchNorm statistics)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state):
        m = nnx.merge(graphdef, state)
        loss, grads = fn(m)
        return loss, grads, nnx.state(m, nnx.BatchStat)

    return run(state)


def test_gradcache_with_batchnorm_equals_per_micro_batch_reference():
    c, mesh, batch = _setup()
    loss_of_emb = _loss_of_embeddings("clip", mesh)

    def reference(m):
        (loss, _), grads = _reference(m, batch, loss_of_emb)
        return loss, grads

    def accumulated(m):
        (loss, _), grads = accumulate.gradcache_value_and_grad(
            m, batch["image"], batch["input_ids"], batch["attention_mask"], K, loss_of_emb, mesh)
        return loss, grads

    def whole_batch(m):  # BatchNorm over all B rows: what accumulation does NOT compute
        (loss, _), grads = nnx.value_and_grad(lambda m: loss_of_emb(
            m, m.encode_image(batch["image"], train=True),
            m.encode_text(batch["input_ids"], batch["attention_mask"], train=True)), has_aux=True)(m)
        return loss, grads

    with jax.set_mesh(mesh):
        ref_loss, ref_grads, ref_stats = _jitted(reference, build_model(c.model, nnx.Rngs(0)))
        acc_loss, acc_grads, acc_stats = _jitted(accumulated, build_model(c.model, nnx.Rngs(0)))
        whole_loss, _, _ = _jitted(whole_batch, build_model(c.model, nnx.Rngs(0)))
        init_stats = _flat(nnx.state(build_model(c.model, nnx.Rngs(0)), nnx.BatchStat))
    np.testing.assert_allclose(float(acc_loss), float(ref_loss), rtol=1e-5)
    assert abs(float(whole_loss) - float(ref_loss)) > 1e-4  # the per-micro-batch semantics is a real difference
    ref_g, acc_g = _flat(ref_grads), _flat(acc_grads)
    assert ref_g.keys() == acc_g.keys()
    # Relative per array, with a floor for gradients that are zero in exact arithmetic (attention key biases:
    # softmax is invariant to them, so both sides hold ~1e-10 roundoff there).
    worst = max(float(np.linalg.norm(acc_g[k] - ref_g[k]) / max(np.linalg.norm(ref_g[k]), 1e-3)) for k in ref_g)
    assert worst < 1e-4, worst
    # Running statistics: one update per micro-batch, in micro-batch order, as in the reference's two forwards.
    ref_s, acc_s = _flat(ref_stats), _flat(acc_stats)
    assert ref_s.keys() == acc_s.keys() and ref_s
    for k in ref_s:
        np.testing.assert_allclose(acc_s[k], ref_s[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert any(not np.allclose(acc_s[k], init_stats[k]) for k in ref_s)  # they did move
