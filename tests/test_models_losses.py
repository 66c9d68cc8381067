"""Losses and BatchNorm against independent references: open_clip-style torch cross-entropy, a numpy SigLIP
formula, torch.nn.BatchNorm2d, and single-device results for sharded (jit / shard_map) runs on 8 fake devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from exif_jax.models import build_model, losses, tiny_model_config
from exif_jax.models.layers import BatchNorm


def embeddings(b=16, d=24, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(b, d)).astype(np.float32)
    txt = (img + rng.normal(size=(b, d)) * 2.0).astype(np.float32)
    return img, txt


def open_clip_reference(img, txt, scale):
    """open_clip ClipLoss on one device, in torch."""
    i = F.normalize(torch.from_numpy(img), dim=-1)
    t = F.normalize(torch.from_numpy(txt), dim=-1)
    logits = scale * i @ t.T
    labels = torch.arange(len(img))
    return float((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2)


def siglip_reference(img, txt, scale, bias):
    """SigLIP paper pseudo-code, in float64 numpy."""
    i = img / np.linalg.norm(img, axis=1, keepdims=True)
    t = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = scale * i.astype(np.float64) @ t.T.astype(np.float64) + bias
    labels = 2 * np.eye(len(img)) - 1
    return float(-np.sum(np.log(1 / (1 + np.exp(-labels * logits)))) / len(img))


@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_clip_loss_matches_open_clip(scale):
    img, txt = embeddings()
    got = float(losses.clip_loss(jnp.asarray(img), jnp.asarray(txt), scale))
    assert got == pytest.approx(open_clip_reference(img, txt, scale), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (3.0, 0.5)])
def test_siglip_loss_matches_formula(scale, bias):
    img, txt = embeddings(seed=1)
    got = float(losses.siglip_loss(jnp.asarray(img), jnp.asarray(txt), scale, bias))
    assert got == pytest.approx(siglip_reference(img, txt, scale, bias), rel=1e-5)


def test_losses_under_shard_map_equal_global_formula():
    mesh = jax.make_mesh((8,), ("data",))
    img, txt = embeddings(b=32, seed=2)

    spec = NamedSharding(mesh, P("data"))

    def sharded(fn):
        f = jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P()))
        return lambda i, t: f(jax.device_put(i, spec), jax.device_put(t, spec))

    clip = sharded(lambda i, t: losses.clip_loss(i, t, 50.0, axis_name="data"))(img, txt)
    sig = sharded(lambda i, t: losses.siglip_loss(i, t, 10.0, -10.0, axis_name="data"))(img, txt)
    assert float(clip) == pytest.approx(open_clip_reference(img, txt, 50.0), rel=1e-5)
    assert float(sig) == pytest.approx(siglip_reference(img, txt, 10.0, -10.0), rel=1e-5)
    with jax.set_mesh(mesh):
        g_shard = jax.grad(lambda i: sharded(lambda a, b: losses.clip_loss(a, b, 50.0, axis_name="data"))(i, txt))(
            jax.device_put(img, spec))
    g_single = jax.grad(lambda i: losses.clip_loss(i, txt, 50.0))(img)
    np.testing.assert_allclose(g_shard, g_single, atol=1e-6, rtol=1e-4)


def test_learned_logit_scale_is_clamped_and_siglip_bias():
    cfg = tiny_model_config("vit", loss="siglip", **{"logit_scale.learn": True, "logit_scale.init": 10.0,
                                                     "logit_scale.max": 100.0})
    model = nnx.eval_shape(lambda: build_model(cfg, nnx.Rngs(0)))
    assert model.log_scale.get_value().shape == () and model.bias.get_value().shape == ()
    model = build_model(cfg, nnx.Rngs(0))
    assert float(model.logit_scale()) == pytest.approx(10.0)
    assert float(model.logit_bias()) == pytest.approx(-10.0)
    model.log_scale.set_value(jnp.asarray(np.log(1000.0), jnp.float32))
    assert float(model.logit_scale()) == pytest.approx(100.0)
    img, txt = embeddings(b=4, d=64, seed=3)
    assert float(model.loss(img, txt)) == pytest.approx(siglip_reference(img, txt, 100.0, -10.0), rel=1e-5)
    fixed = build_model(tiny_model_config("vit"), nnx.Rngs(0))
    assert float(fixed.logit_scale()) == 100.0 and fixed.log_scale is None
    assert "log_scale" not in str(nnx.state(fixed, nnx.Param))


def test_batchnorm_matches_torch_over_steps():
    rng = np.random.default_rng(0)
    bn = BatchNorm(6, momentum=0.1, epsilon=1e-5)
    ref = torch.nn.BatchNorm2d(6, momentum=0.1, eps=1e-5).train()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    bn.scale.set_value(jnp.asarray(ref.weight.detach().numpy()))
    bn.bias.set_value(jnp.asarray(ref.bias.detach().numpy()))
    for _ in range(3):
        x = (rng.normal(size=(4, 5, 5, 6)) * 3 + 1).astype(np.float32)
        y = bn(jnp.asarray(x), train=True)
        with torch.no_grad():
            r = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(y, r, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(bn.mean.get_value(), ref.running_mean.numpy(), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(bn.var.get_value(), ref.running_var.numpy(), atol=1e-6, rtol=1e-5)
    assert int(bn.num_batches_tracked.get_value()) == int(ref.num_batches_tracked) == 3
    ref.eval()
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(bn(jnp.asarray(x), train=False), r, atol=1e-5, rtol=1e-5)


def test_batchnorm_global_statistics_when_sharded():
    """Under jit with the batch sharded over 8 devices, and in shard_map with axis_name, the statistics are those
    of the global batch (equal to one device seeing everything)."""
    mesh = jax.make_mesh((8,), ("data",))
    x = np.random.default_rng(1).normal(size=(16, 3, 3, 4)).astype(np.float32) * np.arange(1, 17)[:, None, None, None]

    def run(module, x):
        return module(x, train=True), module.mean.get_value(), module.var.get_value()

    single = run(BatchNorm(4), jnp.asarray(x))
    with jax.set_mesh(mesh):
        xs = jax.device_put(x, NamedSharding(mesh, P("data")))
        jitted = nnx.jit(run)(BatchNorm(4), xs)
    bn_sm = BatchNorm(4, axis_name="data")
    graphdef, state = nnx.split(bn_sm)

    def body(state, xl):
        m = nnx.merge(graphdef, state)
        y = m(xl, train=True)
        return y, nnx.state(m)

    y_sm, new_state = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), P("data")), out_specs=(P("data"), P()),
                                            check_vma=False))(state, jax.device_put(x, NamedSharding(mesh, P("data"))))
    nnx.update(bn_sm, new_state)
    for got in (jitted, (y_sm, bn_sm.mean.get_value(), bn_sm.var.get_value())):
        for a, b in zip(got, single):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
