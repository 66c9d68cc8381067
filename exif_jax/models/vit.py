"""ViT image tower in Flax NNX with the layout of HF `CLIPVisionModelWithProjection` (pre-LN CLIP ViT).

Names: `embeddings.patch_embedding` (conv, no bias), `embeddings.class_embedding`, `embeddings.position_embedding`,
`pre_layrnorm`, `encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2}`,
`post_layernorm`, `visual_projection` (no bias). Sizes are named (`"B/16"`, `exif_jax.models.configs.decode_vit`);
any crop size divisible by the patch works (the position table is sized from it). Pooling: `cls` token (HF) or the
mean of the patch tokens; then `post_layernorm` and `visual_projection` to the joint dim.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from exif_jax.models.layers import activation, build_layers, run_layers

_normal02 = jax.nn.initializers.normal(0.02)


class Embeddings(nnx.Module):
    def __init__(self, width, patch, image_size, dtype, param_dtype, rngs):
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not divisible by the ViT patch size {patch}")
        self.patch = patch
        self.num_patches = (image_size // patch) ** 2
        self.patch_embedding = nnx.Conv(3, width, (patch, patch), strides=(patch, patch), padding="VALID",
                                        use_bias=False, kernel_init=_normal02, dtype=dtype,
                                        param_dtype=param_dtype, rngs=rngs)
        self.class_embedding = nnx.Param(_normal02(rngs.params(), (width,), param_dtype))
        self.position_embedding = nnx.Embed(self.num_patches + 1, width, embedding_init=_normal02, dtype=dtype,
                                            param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x):
        b = x.shape[0]
        p = self.patch_embedding(x)
        p = p.reshape(b, -1, p.shape[-1])
        if p.shape[1] != self.num_patches:
            raise ValueError(f"ViT built for {self.num_patches} patches got {p.shape[1]} (input {x.shape[1:3]})")
        cls = jnp.broadcast_to(self.class_embedding[...].astype(p.dtype), (b, 1, p.shape[-1]))
        return jnp.concatenate([cls, p], axis=1) + self.position_embedding.embedding[...].astype(p.dtype)[None]


class Attention(nnx.Module):
    def __init__(self, width, heads, dtype, param_dtype, rngs):
        kw = dict(kernel_init=_normal02, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.heads = heads
        self.q_proj = nnx.Linear(width, width, **kw)
        self.k_proj = nnx.Linear(width, width, **kw)
        self.v_proj = nnx.Linear(width, width, **kw)
        self.out_proj = nnx.Linear(width, width, **kw)

    def __call__(self, x):
        b, n, d = x.shape
        dh = d // self.heads
        split = lambda t: t.reshape(b, n, self.heads, dh)  # noqa: E731
        q = split(self.q_proj(x)) * jnp.asarray(dh ** -0.5, x.dtype)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        return self.out_proj(jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d))


class MLP(nnx.Module):
    def __init__(self, width, mlp_dim, act, dtype, param_dtype, rngs):
        kw = dict(kernel_init=_normal02, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, mlp_dim, **kw)
        self.fc2 = nnx.Linear(mlp_dim, width, **kw)
        self.act = activation(act)

    def __call__(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nnx.Module):
    def __init__(self, width, heads, mlp_dim, act, ln_eps, dtype, param_dtype, rngs):
        ln = dict(epsilon=ln_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.layer_norm1 = nnx.LayerNorm(width, **ln)
        self.self_attn = Attention(width, heads, dtype, param_dtype, rngs)
        self.layer_norm2 = nnx.LayerNorm(width, **ln)
        self.mlp = MLP(width, mlp_dim, act, dtype, param_dtype, rngs)

    def __call__(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nnx.Module):
    def __init__(self, depth, make, scan_layers, remat, rngs):
        self.layers = build_layers(make, depth, rngs, stacked=scan_layers)
        self.remat = remat

    def __call__(self, x):
        return run_layers(self.layers, x, lambda blk, h: blk(h), remat=self.remat)


class VisionTransformer(nnx.Module):
    """`__call__(x_nhwc, train=False) -> [B, out_dim]` (projected pooled embedding)."""

    def __init__(self, *, width, depth, heads, mlp_dim, patch, image_size, out_dim, pool="cls", act="quick_gelu",
                 ln_eps=1e-5, dtype=None, param_dtype=jnp.float32, remat=False, scan_layers=False,
                 rngs: nnx.Rngs):
        if pool not in ("cls", "mean"):
            raise ValueError(f"unknown ViT pool {pool!r}: expected 'cls' or 'mean'")
        if width % heads:
            raise ValueError(f"ViT width {width} is not divisible by heads {heads}")
        self.pool = pool
        self.dtype = dtype
        ln = dict(epsilon=ln_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.embeddings = Embeddings(width, patch, image_size, dtype, param_dtype, rngs)
        self.pre_layrnorm = nnx.LayerNorm(width, **ln)
        make = lambda r: EncoderLayer(width, heads, mlp_dim, act, ln_eps, dtype, param_dtype, r)  # noqa: E731
        self.encoder = Encoder(depth, make, scan_layers, remat, rngs)
        self.post_layernorm = nnx.LayerNorm(width, **ln)
        self.visual_projection = nnx.Linear(width, out_dim, use_bias=False, kernel_init=_normal02, dtype=dtype,
                                            param_dtype=param_dtype, rngs=rngs)

    def tokens(self, x):
        """Final hidden states [B, 1 + num_patches, width] (before post_layernorm)."""
        if self.dtype is not None:
            x = x.astype(self.dtype)
        return self.encoder(self.pre_layrnorm(self.embeddings(x)))

    def __call__(self, x, train: bool = False):
        del train
        h = self.tokens(x)
        pooled = h[:, 0] if self.pool == "cls" else jnp.mean(h[:, 1:].astype(jnp.float32), axis=1).astype(h.dtype)
        return self.visual_projection(self.post_layernorm(pooled))
