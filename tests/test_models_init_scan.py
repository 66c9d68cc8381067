"""Repeated transformer layers are built under one `lax.scan` (small init program, fast XLA compile) and give
bitwise the same parameters as building them one by one, in the same RNG stream positions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exif_jax.models import layers
from exif_jax.models.distilbert import DistilBert
from exif_jax.models.vit import VisionTransformer


def _flat(state):
    return {k: np.asarray(jax.random.key_data(v[...]) if jnp.issubdtype(v[...].dtype, jax.dtypes.prng_key)
                          else v[...]) for k, v in nnx.to_flat_state(state)}


def _towers(scan_layers):
    rngs = nnx.Rngs(3)
    vit = VisionTransformer(width=32, depth=8, heads=2, mlp_dim=64, patch=8, image_size=16, out_dim=32,
                            scan_layers=scan_layers, rngs=rngs)
    text = DistilBert(dim=32, n_layers=4, n_heads=2, hidden_dim=64, vocab_size=100, max_position=16,
                      scan_layers=scan_layers, rngs=rngs)
    return nnx.state((vit, text))


def _init(scan_layers, scan_init, monkeypatch):
    monkeypatch.setattr(layers, "SCAN_INIT", scan_init)
    fn = jax.jit(lambda: _towers(scan_layers))
    return _flat(fn()), len(fn.lower().compile().as_text())


@pytest.mark.parametrize("scan_layers", [False, True])
def test_scanned_init_is_bitwise_the_sequential_init(scan_layers, monkeypatch):
    ref, ref_size = _init(scan_layers, False, monkeypatch)  # plain flax: [make(rngs) for _ in range(n)]
    got, got_size = _init(scan_layers, True, monkeypatch)
    assert list(got) == list(ref)  # same names, same order (params after the layers drew later stream counts)
    for k in ref:
        assert got[k].shape == ref[k].shape and got[k].dtype == ref[k].dtype, k
        np.testing.assert_array_equal(got[k], ref[k], err_msg=str(k))
    assert got_size < 0.5 * ref_size, (got_size, ref_size)


def test_layer_kernels_come_from_consecutive_stream_counts():
    """Independent of flax: each layer's q_proj kernel is `0.02 * normal(fold_in(key(seed), count))` with counts
    advancing by the same per-layer stride, as sequential `rngs.params()` calls produce."""
    vit = VisionTransformer(width=32, depth=6, heads=2, mlp_dim=64, patch=8, image_size=16, out_dim=32,
                            rngs=nnx.Rngs(5))
    kernels = [np.asarray(layer.self_attn.q_proj.kernel[...]) for layer in vit.encoder.layers]
    key = jax.random.key(5)
    draw = jax.jit(lambda c: 0.02 * jax.random.normal(jax.random.fold_in(key, c), kernels[0].shape))
    counts = []
    for kern in kernels[:3]:
        found = [c for c in range(0, 120) if np.allclose(np.asarray(draw(c)), kern, rtol=0, atol=1e-6)]
        assert len(found) == 1, found
        counts.append(found[0])
    stride = counts[1] - counts[0]
    assert stride > 0 and counts[2] - counts[1] == stride
    for i, kern in enumerate(kernels):
        np.testing.assert_allclose(np.asarray(draw(counts[0] + i * stride)), kern, rtol=0, atol=1e-6)


def test_rngs_advance_as_sequential_calls():
    from exif_jax.models.vit import EncoderLayer

    make = lambda r: EncoderLayer(16, 2, 32, "gelu", 1e-5, None, jnp.float32, r)  # noqa: E731
    a, b = nnx.Rngs(0), nnx.Rngs(0)
    layers.build_layers(make, 3, a)
    [make(b) for _ in range(3)]
    assert int(a.params.count[...]) == int(b.params.count[...]) > 0
    np.testing.assert_array_equal(jax.random.key_data(a.params()), jax.random.key_data(b.params()))


def test_dropout_layers_fall_back_to_one_by_one():
    """Dropout modules keep an RNG stream, which cannot leave a scan: those layers are built sequentially."""
    m = DistilBert(dim=32, n_layers=3, n_heads=2, hidden_dim=64, vocab_size=100, max_position=16, dropout=0.1,
                   rngs=nnx.Rngs(0))
    assert len(m.transformer.layer) == 3
    ids = jnp.ones((2, 5), jnp.int32)
    pooled, _ = m(ids, jnp.ones((2, 5), jnp.int32), deterministic=False)
    assert pooled.shape == (2, 32) and bool(jnp.all(jnp.isfinite(pooled)))
