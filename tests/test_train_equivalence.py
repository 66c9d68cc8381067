"""Sharded training equals single-device training: 20 steps on 8 fake CPU devices (data-parallel mesh, FSDP mesh
with GradCache accumulation) against the same 20 steps on a 1-device mesh, same global batch.

The 1-device reference runs the executable that `build_train_step(...)` lowers and compiles ahead of time from
abstract inputs only. Also: BatchNorm statistics are over the global batch (a conv+BN tower double, 8 vs 1).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.common import base_config, with_model
from exif_jax.models import test_model_config as tiny_model_config
from exif_jax.train import mesh as mesh_lib, sharding, state as state_lib, step as step_lib

STEPS, B, L = 20, 16, 16


def _config(fsdp=1, data=-1, accum=1, tower="vit", views=1, consistency=0.0):
    c = base_config()
    with_model(c, tiny_model_config(tower))
    c.batch_size = B
    c.total_steps = STEPS
    c.data.crop = int(c.model.image_size) if tower == "vit" else 32
    c.data.max_text_len = L
    c.mesh.data, c.mesh.fsdp = data, fsdp
    c.accum_steps = accum
    c.data.views = views
    c.view_consistency = consistency
    c.optim.lr = 3e-4
    c.optim.warmup_steps = 3
    return c


def _batches(crop, views=1):
    # 4 distinct batches seen 5 times each: learnable, so "it trains" is checkable
    rng = np.random.default_rng(1234)
    out = []
    shape = (B, crop, crop, 3) if views == 1 else (B, views, crop, crop, 3)
    for _ in range(4):
        lens = rng.integers(4, L + 1, size=B)
        mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
        out.append({"image": rng.integers(0, 256, shape, dtype=np.uint8),
                    "input_ids": (rng.integers(1000, 5000, (B, L)) * mask).astype(np.int32),
                    "attention_mask": mask})
    return [out[i % 4] for i in range(STEPS)]


def _run(config, devices, build_model=None, aot=False):
    mesh = mesh_lib.make_mesh(config.mesh, devices=devices)
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(config, mesh, build_model)
        state = state_lib.init_state(config, mesh, spec, build_model)
        step = step_lib.jit_step(config, mesh, spec)
        if aot:  # the compile command's path: build_train_step -> lower(abstract inputs) -> compile, no data
            jitted, abstract_state, abstract_batch = step_lib.build_train_step(config, mesh, build_model)
            C, V = config.data.crop, config.data.views
            assert abstract_batch["image"].shape == ((B, C, C, 3) if V == 1 else (B, V, C, C, 3))
            assert jax.tree.structure(abstract_state) == jax.tree.structure(state)
            assert all(isinstance(x, jax.ShapeDtypeStruct) and x.sharding is not None
                       for x in jax.tree.leaves(abstract_state))
            step = jitted.lower(abstract_state, abstract_batch).compile()
            cost = step.cost_analysis()
            assert (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"] > 0
        bs = sharding.batch_sharding(mesh)
        losses = []
        for b in _batches(int(config.data.crop), int(config.data.views)):
            state, m = step(state, {k: jax.device_put(v, bs) for k, v in b.items()})
            losses.append(float(m["loss"]))
        model, _ = nnx.merge(spec.graphdef, state)
        flat = {"/".join(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(nnx.state(model))
                if np.issubdtype(np.asarray(v[...]).dtype, np.floating)}
    return np.asarray(losses), flat, state


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


@pytest.fixture(scope="module")
def single_device():
    return _run(_config(data=1, fsdp=1), jax.devices()[:1], aot=True)


@pytest.mark.parametrize("mesh_kw,accum", [({"data": 8, "fsdp": 1}, 1), ({"data": 1, "fsdp": -1}, 2)],
                         ids=["data8", "fsdp8_gradcache2"])
def test_eight_devices_equal_one(single_device, mesh_kw, accum):
    ref_losses, ref_params, _ = single_device
    losses, params, state = _run(_config(accum=accum, **mesh_kw), jax.devices())
    assert len(jax.devices()) == 8
    if mesh_kw["fsdp"] == -1:  # parameters really are sharded over the 8 devices
        specs = [x.sharding.spec for x in jax.tree.leaves(state) if x.ndim >= 2]
        assert sum("fsdp" in str(s) for s in specs) >= len(specs) // 2
    assert ref_losses[-4:].mean() < ref_losses[:4].mean()  # it trains
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert params.keys() == ref_params.keys()
    # Attention key biases get an exactly-zero gradient (softmax is invariant to a per-query constant), so Adam
    # turns reduction-order roundoff (~1e-9) into lr-sized steps there: compared by absolute size instead.
    zero_grad = [k for k in ref_params if "k_proj/bias" in k or "k_lin/bias" in k]
    for k in zero_grad:
        assert np.abs(params[k] - ref_params[k]).max() < 3 * STEPS * 3e-4, k
    worst = max((_rel(params[k], ref_params[k]), k) for k in ref_params if k not in zero_grad)
    assert worst[0] < 1e-5, worst
    everything = lambda p: np.concatenate([p[k].ravel() for k in sorted(p)])  # noqa: E731
    assert _rel(everything(params), everything(ref_params)) < 1e-5


@pytest.fixture(scope="module")
def single_device_views():
    return _run(_config(data=1, fsdp=1, views=3, consistency=0.5), jax.devices()[:1], aot=True)


@pytest.mark.parametrize("mesh_kw,accum", [({"data": 8, "fsdp": 1}, 1), ({"data": 1, "fsdp": -1}, 2)],
                         ids=["data8", "fsdp8_gradcache2"])
def test_views_eight_devices_equal_one(single_device_views, mesh_kw, accum):
    """data.views=3 (3 crops per text) with the within-photo term between views: sharded training, with and
    without GradCache, equals one device."""
    ref_losses, ref_params, _ = single_device_views
    losses, params, _ = _run(_config(accum=accum, views=3, consistency=0.5, **mesh_kw), jax.devices())
    assert ref_losses[-4:].mean() < ref_losses[:4].mean()
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    zero_grad = [k for k in ref_params if "k_proj/bias" in k or "k_lin/bias" in k]
    rest = [k for k in ref_params if k not in zero_grad]
    everything = lambda p: np.concatenate([p[k].ravel() for k in rest])  # noqa: E731
    assert _rel(everything(params), everything(ref_params)) < 1e-5


@pytest.mark.parametrize("w", [0.0, 0.5])
def test_views_loss_is_the_mean_of_per_view_clip_losses(w):
    """The step's loss with views equals, on the same initial model, the mean over views of the single-device
    CLIP formula (`reference_clip_loss`) of each view's crops against the texts, computed here view by view, plus
    `view_consistency` w times the mean of the same formula between consecutive views (crops of one photo)."""
    from exif_jax.models.preprocess import normalize_images
    from exif_jax.train.loss import reference_clip_loss

    V = 3
    config = _config(data=1, fsdp=1, views=V, consistency=w)
    mesh = mesh_lib.make_mesh(config.mesh, devices=jax.devices()[:1])
    b = _batches(int(config.data.crop), V)[0]
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(config, mesh)
        state = state_lib.init_state(config, mesh, spec)
        model, _ = nnx.merge(spec.graphdef, state)
        txt = model.encode_text(jnp.asarray(b["input_ids"]), jnp.asarray(b["attention_mask"]), train=True)
        img = [model.encode_image(normalize_images(jnp.asarray(b["image"][:, v])), train=True) for v in range(V)]
        per_view = [float(reference_clip_loss(img[v], txt, model.logit_scale())) for v in range(V)]
        pairs = [float(reference_clip_loss(img[v], img[v + 1], model.logit_scale())) for v in range(V - 1)]
        bs = sharding.batch_sharding(mesh)
        _, m = step_lib.jit_step(config, mesh, spec)(state, {k: jax.device_put(v, bs) for k, v in b.items()})
    assert len(set(np.round(per_view, 4))) == V  # the views really differ
    assert min(pairs) > 0.1  # random crops of one example are not yet alike: the term is not vanishing
    np.testing.assert_allclose(float(m["loss"]), np.mean(per_view) + w * np.mean(pairs), rtol=1e-5)


def test_view_consistency_needs_views():
    config = _config(data=1, fsdp=1, views=1, consistency=1.0)
    with pytest.raises(ValueError, match="view_consistency=1.0 needs data.views >= 2"):
        step_lib.view_consistency(config)
    config.view_consistency = -1.0
    with pytest.raises(ValueError, match="must be >= 0"):
        step_lib.view_consistency(config)


class _BNTower(nnx.Module):
    """Test double: conv -> BatchNorm -> mean pool image tower and an embedding-bag text tower."""

    def __init__(self, cfg, rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), use_bias=False, rngs=rngs)  # a bias before BN has zero gradient
        self.bn = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.proj = nnx.Linear(8, 16, rngs=rngs)
        self.emb = nnx.Embed(5000, 16, rngs=rngs)

    def encode_image(self, x, train=False):
        h = self.bn(self.conv(x), use_running_average=not train)
        return self.proj(jnp.mean(jax.nn.relu(h), axis=(1, 2)))

    def encode_text(self, ids, mask, train=False):
        m = mask[..., None].astype(jnp.float32)
        return jnp.sum(self.emb(ids) * m, 1) / jnp.maximum(jnp.sum(m, 1), 1.0)

    def logit_scale(self):
        return jnp.float32(10.0)


def test_batchnorm_statistics_are_global():
    build = lambda cfg, rngs: _BNTower(cfg, rngs)  # noqa: E731
    c1, c8 = _config(data=1, tower="resnet50"), _config(data=-1, tower="resnet50")
    l1, p1, _ = _run(c1, jax.devices()[:1], build)
    l8, p8, _ = _run(c8, jax.devices(), build)
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    # running statistics after 20 steps equal (per-device statistics would differ at the 1e-2 level)
    for k in p1:
        if k.endswith("mean") or k.endswith("var"):
            assert _rel(p8[k], p1[k]) < 1e-5, k
