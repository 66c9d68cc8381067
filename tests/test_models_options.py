"""Model switches against the plain fp32 model: bf16 compute (fp32 params), remat, scan over layers (forward and
gradients), ViT mean pooling and crop sizes, named sizes; ResNet 1x1 convolutions as matmuls vs lax convolution;
DistilBERT tower vs transformers with padding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from exif_jax.convert import load_torch_state, to_torch_state
from exif_jax.convert.torch_reference import distilbert_config, masked_mean
from exif_jax.models import build_model, configs, tiny_model_config


def inputs(cfg, b=2, length=12, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    size = cfg.image_size if cfg.image_tower == "vit" else 40
    imgs = jax.random.normal(k1, (b, size, size, 3))
    ids = jax.random.randint(k2, (b, length), 1000, 2000)
    mask = jnp.asarray(np.arange(length)[None] < np.array([length, length // 2])[:b, None], jnp.int32)
    return imgs, ids, mask


def copy_of(cfg, source_model, **overrides):
    """A model built with `cfg` + `overrides` holding the same weights as `source_model`."""
    flat = {**flatten(cfg), **overrides}
    other = tiny_model_config(flat.pop("image_tower"), **flat)
    model = nnx.eval_shape(lambda: build_model(other, nnx.Rngs(99)))
    load_torch_state(model, to_torch_state(source_model), "<memory>")
    return model


def flatten(cfg, prefix=""):
    out = {}
    for k, v in cfg.items():
        if hasattr(v, "items"):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def grads_in_torch_layout(model, batch):
    """(loss, gradients keyed like the torch state dict: scanned and unscanned layouts compare key by key)."""

    @nnx.jit
    def f(m):
        return nnx.value_and_grad(lambda m: m.loss(*m(*batch, train=True)))(m)

    loss, grads = f(model)
    holder = nnx.clone(model)
    nnx.update(holder, grads)  # the gradient tree has the model's structure: reuse the key mapping
    state = to_torch_state(holder)
    return float(loss), {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k}


def test_scan_and_remat_give_same_loss_and_grads():
    """ViT + DistilBERT with both transformer stacks scanned and rematerialised vs the plain python loop."""
    cfg = tiny_model_config("vit")
    base = build_model(cfg, nnx.Rngs(0))
    batch = inputs(cfg)
    ref_loss, ref = grads_in_torch_layout(nnx.clone(base), batch)
    loss, got = grads_in_torch_layout(copy_of(cfg, base, scan_layers=True, remat=True), batch)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], atol=1e-6, rtol=2e-4, err_msg=k)


def test_bf16_compute_keeps_fp32_params_and_is_close():
    cfg = tiny_model_config("vit")
    base = build_model(cfg, nnx.Rngs(0))
    bf = copy_of(cfg, base, dtype="bfloat16")
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(bf, nnx.Param)))
    batch = inputs(cfg)
    fwd = nnx.jit(lambda m, *b: m(*b))
    ref = fwd(base, *batch)
    out = fwd(bf, *batch)
    for r, o in zip(ref, out):
        assert o.dtype == jnp.bfloat16
        rel = np.max(np.abs(np.asarray(o, np.float32) - np.asarray(r))) / np.max(np.linalg.norm(r, axis=-1))
        assert rel < 3e-2


def test_vit_mean_pool_and_crop_sizes():
    cfg = tiny_model_config("vit", image_size=48, **{"vit.variant": "mu/16", "vit.pool": "mean"})
    m = build_model(cfg, nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 48, 48, 3))
    h, emb = nnx.jit(lambda m, x: (m.visual.tokens(x), m.encode_image(x)))(m, x)
    assert h.shape == (2, 1 + 9, 64)
    manual = m.visual.visual_projection(m.visual.post_layernorm(h[:, 1:].mean(axis=1)))
    np.testing.assert_allclose(emb, manual, atol=1e-5, rtol=1e-5)
    for size, patch in [(64, 32), (40, 8), (124, 4)]:
        c = tiny_model_config("vit", image_size=size, **{"vit.variant": f"mu/{patch}"})
        out = nnx.eval_shape(lambda c=c, size=size: build_model(c, nnx.Rngs(0)).encode_image(
            jnp.zeros((2, size, size, 3))))
        assert out.shape == (2, 64)
    with pytest.raises(ValueError, match="not divisible by the ViT patch size 16"):
        build_model(tiny_model_config("vit", image_size=40, **{"vit.variant": "mu/16"}), nnx.Rngs(0))


def test_named_sizes():
    assert configs.decode_vit("B/16") == configs.VitSize(768, 12, 12, 3072, 16)
    assert configs.decode_vit("Ti/32") == configs.VitSize(192, 12, 3, 768, 32)
    assert configs.decode_vit("S/16").heads == 6
    with pytest.raises(ValueError, match="unknown ViT variant 'X/16'"):
        configs.decode_vit("X/16")
    base = configs.get_model_config()
    assert configs.decode_text(base.text) == configs.TextSize(768, 6, 12, 3072)
    base.text.n_layers = 3
    assert configs.decode_text(base.text).n_layers == 3
    abstract = nnx.eval_shape(lambda: build_model(configs.get_model_config("vit", **{"vit.variant": "Ti/16",
                                                                                     "image_size": 128}),
                                                  nnx.Rngs(0)))
    assert abstract.visual.embeddings.position_embedding.embedding.get_value().shape == (65, 192)


def test_distilbert_tower_matches_transformers_with_padding():
    from transformers import DistilBertModel

    cfg = tiny_model_config("vit", **{"text.n_layers": 3})
    torch.manual_seed(0)
    ref = DistilBertModel(distilbert_config(dim=64, n_layers=3, n_heads=2, hidden_dim=128)).eval()
    model = build_model(cfg, nnx.Rngs(0))
    state = to_torch_state(model)
    state.update({"transformer." + k: v.numpy() for k, v in ref.state_dict().items()})
    load_torch_state(model, state, "<torch>")
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, (3, 20))
    mask = (np.arange(20)[None] < np.array([[20], [7], [1]])).astype(np.int64)
    with torch.no_grad():
        hidden = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))[0]
        want = masked_mean(hidden, torch.from_numpy(mask)).numpy()
    enc = nnx.jit(lambda m, i, k: m.encode_text(i, k))
    got = np.asarray(enc(model, jnp.asarray(ids), jnp.asarray(mask)))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    # Extra padding does not change the pooled embedding.
    pad_ids = np.concatenate([ids, np.zeros((3, 44), ids.dtype)], 1)
    pad_mask = np.concatenate([mask, np.zeros((3, 44), mask.dtype)], 1)
    np.testing.assert_allclose(enc(model, jnp.asarray(pad_ids), jnp.asarray(pad_mask)), got, atol=1e-5)


def test_resnet_remat_train_forward_updates_batchnorm_like_plain():
    """Rematerialised bottlenecks give the same train-mode output and BatchNorm running statistics as the plain
    ResNet (state updates escape `nnx.remat`; gradients through remat are checked on the transformer towers)."""
    from exif_jax.convert.mapping import random_model

    cfg = tiny_model_config("resnet50")
    plain = random_model(lambda: build_model(cfg, nnx.Rngs(0)), seed=4)
    remat = copy_of(cfg, plain, remat=True)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))

    run = nnx.jit(lambda m, x: m.encode_image(x, train=True))
    np.testing.assert_allclose(run(remat, x), run(plain, x), atol=1e-5, rtol=1e-5)
    sa, sb = to_torch_state(plain), to_torch_state(remat)
    assert int(sa["visual.layer2.1.bn2.num_batches_tracked"]) == int(sb["visual.layer2.1.bn2.num_batches_tracked"]) == 1
    for k in ("visual.layer2.1.bn2.running_mean", "visual.layer4.2.bn3.running_var"):
        np.testing.assert_allclose(sb[k], sa[k], atol=1e-6, rtol=1e-5)


def test_resnet_depth_and_width_knobs():
    """`resnet.stages` gives torchvision's ResNet(Bottleneck, stages) exactly; `resnet.width` scales every stage."""
    import torchvision

    cfg = tiny_model_config("resnet50", **{"resnet.stages": (1, 2, 1, 1)})
    model = build_model(cfg, nnx.Rngs(0))
    torch.manual_seed(0)
    ref = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 2, 1, 1],
                                           num_classes=cfg.embed_dim).eval()
    state = {f"visual.{k}": v.numpy() for k, v in ref.state_dict().items()}
    load_torch_state(model, state, "<torchvision>", only=("visual.",))
    x = np.random.default_rng(0).normal(size=(2, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = np.asarray(model.encode_image(jnp.asarray(x.transpose(0, 2, 3, 1)), train=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

    narrow = build_model(tiny_model_config("resnet50", **{"resnet.width": 16, "resnet.stages": (1, 1, 1, 1)}),
                         nnx.Rngs(0))
    shapes = {k: v.shape for k, v in to_torch_state(narrow).items() if k.startswith("visual.")}
    assert shapes["visual.conv1.weight"] == (16, 3, 7, 7)
    assert shapes["visual.layer4.0.conv3.weight"] == (512, 128, 1, 1)
    assert shapes["visual.fc.weight"] == (cfg.embed_dim, 512)
    with pytest.raises(ValueError, match="stages"):
        build_model(tiny_model_config("resnet50", **{"resnet.stages": (1, 1, 1)}), nnx.Rngs(0))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [((0, 0), (0, 0)), "VALID", ((1, 1), (1, 1))])
def test_resnet_1x1_conv_as_matmul_equals_the_convolution(stride, padding):
    from exif_jax.models.resnet import Conv

    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 8))
    conv = Conv(8, 4, (1, 1), strides=(stride, stride), padding=padding, use_bias=False, rngs=nnx.Rngs(0))

    def ref_conv(k, x):
        return jax.lax.conv_general_dilated(x, k, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(conv(x), ref_conv(conv.kernel[...], x), rtol=1e-5, atol=1e-5)
    gk, gx = nnx.grad(lambda c, x: jnp.sum(jnp.sin(c(x))), argnums=(0, 1))(conv, x)
    rk, rx = jax.grad(lambda k, x: jnp.sum(jnp.sin(ref_conv(k, x))), argnums=(0, 1))(conv.kernel[...], x)
    np.testing.assert_allclose(gk.kernel[...], rk, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw,lax_kw", [({"feature_group_count": 2}, {"feature_group_count": 2}),
                                       ({"input_dilation": 2}, {"lhs_dilation": (2, 2)})])
def test_resnet_1x1_conv_keeps_grouped_and_dilated_convolutions(kw, lax_kw):
    from exif_jax.models.resnet import Conv

    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 8))
    conv = Conv(8, 4, (1, 1), padding=((0, 0), (0, 0)), use_bias=False, rngs=nnx.Rngs(0), **kw)
    ref = jax.lax.conv_general_dilated(x, conv.kernel[...], (1, 1), ((0, 0), (0, 0)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"), **lax_kw)
    np.testing.assert_allclose(conv(x), ref, rtol=1e-5, atol=1e-5)
