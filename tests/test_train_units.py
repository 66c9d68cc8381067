"""Unit checks of the trainer's pieces against independent references: the shard_map global-batch losses vs
torch on one device (values and gradients), the Adam-with-coupled-L2 optimizer and the warmup + per-epoch cosine
schedule vs torch.optim, sharding rules, mesh sizes, and the NaN/Inf guard."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from jax.sharding import PartitionSpec as P

from configs.common import base_config, parse_arg
from exif_jax.train import mesh as mesh_lib, optim, sharding
from exif_jax.train.loss import global_contrastive_loss


def _mesh(data, fsdp):
    return mesh_lib.make_mesh(ml_collections.ConfigDict({"data": data, "fsdp": fsdp}))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("data,fsdp", [(2, 4), (8, 1)])
def test_global_loss_and_grads_match_torch(kind, data, fsdp):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 32, 12)).astype(np.float32)
    scale, bias = 20.0, -3.0
    mesh = _mesh(data, fsdp)
    bs = sharding.batch_sharding(mesh)
    fn = jax.jit(jax.value_and_grad(
        lambda x, y: global_contrastive_loss(x, y, scale, bias, mesh=mesh, kind=kind)[0], argnums=(0, 1)))
    loss, (ga, gb) = fn(jax.device_put(a, bs), jax.device_put(b, bs))

    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    logits = scale * F.normalize(ta, dim=-1) @ F.normalize(tb, dim=-1).T
    if kind == "clip":
        labels = torch.arange(32)
        ref = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    else:
        sign = 2 * torch.eye(32) - 1
        ref = -F.logsigmoid(sign * (logits + bias)).sum() / 32
    ref.backward()
    assert float(loss) == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(np.asarray(ga), ta.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_adam_l2_matches_torch_adam_weight_decay():
    c = base_config().optim
    c.warmup_steps, c.schedule, c.lr, c.clip_norm = 0, "constant", 1e-2, 0.0
    tx, _ = optim.make_optimizer(c, total_steps=10, steps_per_epoch=10)
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    grads = rng.normal(size=(6, 5, 3)).astype(np.float32)
    p, s = {"w": w0}, tx.init({"w": w0})
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-4)
    for g in grads:
        u, s = tx.update({"w": g}, s, p)
        p = optax.apply_updates(p, u)
        tw.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(np.asarray(p["w"]), tw.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_warmup_then_per_epoch_cosine_matches_torch_schedulers():
    c = base_config().optim
    c.lr, c.min_lr, c.warmup_epochs, c.schedule = 1e-4, 1e-7, 2.0, "epoch_cosine"
    spe, epochs = 5, 8
    sched = optim.make_schedule(c, total_steps=spe * epochs, steps_per_epoch=spe)
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=1e-4)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (i + 1) / (2 * spe))  # stepped per step
    for step in range(2 * spe):
        assert float(sched(step)) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-5), step
        opt.step(); warm.step()
    for g in opt.param_groups:
        g["lr"] = 1e-4
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs - 2, eta_min=1e-7)  # stepped per epoch
    for epoch in range(2, epochs):
        for step in range(epoch * spe, (epoch + 1) * spe):
            assert float(sched(step)) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-5), step
        opt.step(); cos.step()


def test_sharding_rules_pick_largest_divisible_dim():
    mesh = _mesh(2, 4)
    rules = [("embeddings", "replicate"), (r"kernel", "fsdp"), (r"bias", ("fsdp",))]
    tree = {"a": {"kernel": jax.ShapeDtypeStruct((6, 12), np.float32)},
            "b": {"kernel": jax.ShapeDtypeStruct((8, 6), np.float32)},
            "c": {"kernel": jax.ShapeDtypeStruct((3, 5), np.float32)},
            "word_embeddings": jax.ShapeDtypeStruct((16, 8), np.float32),
            "d": {"bias": jax.ShapeDtypeStruct((8,), np.float32)},
            "e": jax.ShapeDtypeStruct((8,), np.float32)}
    s = sharding.tree_shardings(tree, rules, mesh)
    assert s["a"]["kernel"].spec == P(None, "fsdp")
    assert s["b"]["kernel"].spec == P("fsdp", None)
    assert s["c"]["kernel"].spec == P()
    assert s["word_embeddings"].spec == P()
    assert s["d"]["bias"].spec == P("fsdp")
    assert s["e"].spec == P()


def test_mesh_sizes_and_errors():
    assert mesh_lib.mesh_shape(-1, 1, 8) == (8, 1)
    assert mesh_lib.mesh_shape(-1, -1, 8) == (1, 8)  # fsdp=-1 alone is the FSDP switch
    assert mesh_lib.mesh_shape(2, -1, 8) == (2, 4)
    with pytest.raises(ValueError, match="does not divide the 8 devices"):
        mesh_lib.mesh_shape(3, -1, 8)
    with pytest.raises(ValueError, match="unknown config arg 'rez'"):
        parse_arg("rez=1", res=128)
    assert parse_arg("res=64,runlocal", res=128, runlocal=False).to_dict() == {"res": 64, "runlocal": True}


class _NaNAfter3(nnx.Module):
    """Test double: finite for its first 3 forwards, then a NaN logit scale (as an overflowing run would give)."""

    def __init__(self, cfg, rngs):
        self.proj = nnx.Linear(3, 8, rngs=rngs)
        self.emb = nnx.Embed(5000, 8, rngs=rngs)
        self.calls = nnx.Variable(jnp.zeros((), jnp.int32))

    def encode_image(self, x, train=False):
        self.calls[...] = self.calls[...] + 1
        return self.proj(jnp.mean(x, axis=(1, 2)))

    def encode_text(self, ids, mask, train=False):
        return jnp.mean(self.emb(ids), axis=1)

    def logit_scale(self):
        return jnp.where(self.calls[...] > 3, jnp.nan, 10.0)


def test_nan_guard_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path):
    from test_train_multiprocess import CROP, L, SyntheticData

    from exif_jax.models import test_model_config as tiny
    from exif_jax.train.checkpointing import Checkpointer
    from exif_jax.train.trainer import NonFiniteError, train

    c = base_config()
    c.model = tiny("vit")
    c.batch_size, c.total_steps, c.log_every, c.checkpoint_every, c.eval_every = 16, 8, 4, 1, 0
    c.data.crop, c.data.max_text_len, c.async_checkpointing = CROP, L, False
    with pytest.raises(NonFiniteError, match=r"non-finite training at step 4 .*last good checkpoint: step 3"):
        train(c, tmp_path, data=SyntheticData(0, 1), build_model=lambda cfg, rngs: _NaNAfter3(cfg, rngs))
    assert Checkpointer(tmp_path).latest_step() == 3


def test_retrieval_metrics_match_sklearn_and_chance():
    from sklearn.metrics import top_k_accuracy_score

    from exif_jax.train.evaluate import retrieval_metrics

    rng = np.random.default_rng(0)
    n = 40
    img, txt = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    txt[: n // 2] = img[: n // 2] + 0.3 * txt[: n // 2]  # half the pairs are findable
    ids = np.arange(n)[:, None]
    r = retrieval_metrics(img, txt, ids)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    scores = unit(img) @ unit(txt).T
    for k in (1, 5):
        assert r[f"eval_top{k}"] == pytest.approx(top_k_accuracy_score(np.arange(n), scores, k=k))
    assert r["eval_top5_chance"] == pytest.approx(5 / n)
    # 4 crops per photo share one text, so their text embeddings are identical (as a real model gives): a model
    # with random image embeddings must score the reported chance, simulated over random models
    ids4 = np.repeat(np.arange(n // 4), 4)[:, None]
    sims = [retrieval_metrics(rng.normal(size=(n, 8)), np.repeat(rng.normal(size=(n // 4, 8)), 4, axis=0),
                              ids4)["eval_top5"] for _ in range(400)]
    assert retrieval_metrics(img, txt, ids4)["eval_top5_chance"] == pytest.approx(np.mean(sims), abs=0.02)
    assert retrieval_metrics(img, txt, ids4)["eval_n_texts"] == n // 4


def test_photo_level_retrieval_averages_crops_and_matches_sklearn():
    from sklearn.metrics import top_k_accuracy_score

    from exif_jax.train.evaluate import retrieval_metrics

    rng = np.random.default_rng(1)
    photos, crops = 12, 5
    txt_p = rng.normal(size=(photos, 8))
    # each crop sees its photo's text only weakly; averaging 5 crops must find it more often than one crop does
    img = np.repeat(txt_p, crops, axis=0) * 0.6 + rng.normal(size=(photos * crops, 8))
    order = rng.permutation(photos * crops)  # crops of one photo are spread over the eval set, as batches give them
    img, labels = img[order], np.repeat(np.arange(photos), crops)[order]
    txt, ids = txt_p[labels], labels[:, None] + 100
    r = retrieval_metrics(img, txt, ids)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    mean_img = np.stack([unit(img)[labels == p].mean(0) for p in range(photos)])
    scores = unit(mean_img) @ unit(txt_p).T
    for k in (1, 5):
        assert r[f"eval_photo_top{k}"] == pytest.approx(top_k_accuracy_score(np.arange(photos), scores, k=k))
    assert r["eval_photo_top1"] > r["eval_top1"]
    assert "eval_photo_top5" not in retrieval_metrics(img[:photos], txt[:photos], np.arange(photos)[:, None])
