"""DistilBERT text tower in Flax NNX, numerically the same as `transformers.DistilBertModel`.

Post-LayerNorm blocks, exact GELU, LayerNorm eps 1e-12, learned positions (up to `max_position`), attention mask
applied as in HF, and masked mean pooling `sum(h * mask) / max(sum(mask), 1e-9)` (the original's `avg_word_embs`).
Submodule names follow HF (`embeddings.word_embeddings`, `embeddings.position_embeddings`, `embeddings.LayerNorm`,
`transformer.layer.N.attention.{q,k,v,out}_lin`, `sa_layer_norm`, `ffn.lin1/lin2`, `output_layer_norm`).
With `scan_layers=True`, `transformer.layer` is one block whose arrays have a leading layer axis.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from exif_jax.models.layers import activation, build_layers, run_layers

_normal02 = jax.nn.initializers.normal(0.02)


def _linear(din, dout, cfg, rngs):
    return nnx.Linear(din, dout, kernel_init=_normal02, dtype=cfg["dtype"], param_dtype=cfg["param_dtype"],
                      rngs=rngs)


def _dropout(rate, rngs):
    return nnx.Dropout(rate, rngs=rngs) if rate > 0 else None


class Embeddings(nnx.Module):
    def __init__(self, cfg, rngs):
        kw = dict(dtype=cfg["dtype"], param_dtype=cfg["param_dtype"], embedding_init=_normal02, rngs=rngs)
        self.word_embeddings = nnx.Embed(cfg["vocab_size"], cfg["dim"], **kw)
        self.position_embeddings = nnx.Embed(cfg["max_position"], cfg["dim"], **kw)
        self.LayerNorm = nnx.LayerNorm(cfg["dim"], epsilon=cfg["ln_eps"], dtype=cfg["dtype"],
                                       param_dtype=cfg["param_dtype"], rngs=rngs)
        self.dropout = _dropout(cfg["dropout"], rngs)

    def __call__(self, input_ids, deterministic=True):
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(f"text length {length} exceeds max_position {self.position_embeddings.num_embeddings}")
        x = self.word_embeddings(input_ids) + self.position_embeddings(jnp.arange(length))[None]
        x = self.LayerNorm(x)
        if self.dropout is not None:
            x = self.dropout(x, deterministic=deterministic)
        return x


class MultiHeadSelfAttention(nnx.Module):
    def __init__(self, cfg, rngs):
        d = cfg["dim"]
        self.n_heads = cfg["n_heads"]
        self.q_lin = _linear(d, d, cfg, rngs)
        self.k_lin = _linear(d, d, cfg, rngs)
        self.v_lin = _linear(d, d, cfg, rngs)
        self.out_lin = _linear(d, d, cfg, rngs)
        self.dropout = _dropout(cfg["attention_dropout"], rngs)

    def __call__(self, x, mask, deterministic=True):
        b, n, d = x.shape
        h = self.n_heads
        dh = d // h
        split = lambda t: t.reshape(b, n, h, dh)  # noqa: E731
        q = split(self.q_lin(x)) / jnp.sqrt(jnp.asarray(dh, x.dtype))
        k, v = split(self.k_lin(x)), split(self.v_lin(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        scores = jnp.where(mask[:, None, None, :] > 0, scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1)
        if self.dropout is not None:
            weights = self.dropout(weights, deterministic=deterministic)
        ctx = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v).reshape(b, n, d)
        return self.out_lin(ctx)


class FFN(nnx.Module):
    def __init__(self, cfg, rngs):
        self.lin1 = _linear(cfg["dim"], cfg["hidden_dim"], cfg, rngs)
        self.lin2 = _linear(cfg["hidden_dim"], cfg["dim"], cfg, rngs)
        self.act = activation(cfg["act"])
        self.dropout = _dropout(cfg["dropout"], rngs)

    def __call__(self, x, deterministic=True):
        x = self.lin2(self.act(self.lin1(x)))
        if self.dropout is not None:
            x = self.dropout(x, deterministic=deterministic)
        return x


class TransformerBlock(nnx.Module):
    def __init__(self, cfg, rngs):
        ln = dict(epsilon=cfg["ln_eps"], dtype=cfg["dtype"], param_dtype=cfg["param_dtype"], rngs=rngs)
        self.attention = MultiHeadSelfAttention(cfg, rngs)
        self.sa_layer_norm = nnx.LayerNorm(cfg["dim"], **ln)
        self.ffn = FFN(cfg, rngs)
        self.output_layer_norm = nnx.LayerNorm(cfg["dim"], **ln)

    def __call__(self, x, mask, deterministic=True):
        sa = self.sa_layer_norm(self.attention(x, mask, deterministic) + x)
        return self.output_layer_norm(self.ffn(sa, deterministic) + sa)


class Transformer(nnx.Module):
    def __init__(self, cfg, rngs):
        make = lambda r: TransformerBlock(cfg, r)  # noqa: E731
        if cfg["scan_layers"]:
            if cfg["dropout"] > 0 or cfg["attention_dropout"] > 0:
                raise ValueError("text dropout > 0 is not supported with scan_layers=True; set dropout to 0")
        self.layer = build_layers(make, cfg["n_layers"], rngs, stacked=bool(cfg["scan_layers"]))
        self.remat = cfg["remat"]

    def __call__(self, x, mask, deterministic=True):
        return run_layers(self.layer, x, lambda blk, h: blk(h, mask, deterministic), remat=self.remat)


class DistilBert(nnx.Module):
    """`__call__(input_ids, attention_mask) -> (pooled [B, dim], last_hidden_state [B, L, dim])`."""

    def __init__(self, *, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, vocab_size=30522, max_position=512,
                 ln_eps=1e-12, act="gelu", dropout=0.0, attention_dropout=0.0, pool="mean", dtype=None,
                 param_dtype=jnp.float32, remat=False, scan_layers=False, rngs: nnx.Rngs):
        if pool not in ("mean", "cls"):
            raise ValueError(f"unknown text pool {pool!r}: expected 'mean' or 'cls'")
        cfg = dict(dim=dim, n_layers=n_layers, n_heads=n_heads, hidden_dim=hidden_dim, vocab_size=vocab_size,
                   max_position=max_position, ln_eps=ln_eps, act=act, dropout=dropout,
                   attention_dropout=attention_dropout, dtype=dtype, param_dtype=param_dtype, remat=remat,
                   scan_layers=scan_layers)
        self.pool = pool
        self.embeddings = Embeddings(cfg, rngs)
        self.transformer = Transformer(cfg, rngs)

    def __call__(self, input_ids, attention_mask, deterministic: bool = True):
        mask = attention_mask.astype(jnp.int32)
        h = self.transformer(self.embeddings(input_ids, deterministic), mask, deterministic)
        if self.pool == "cls":
            return h[:, 0], h
        m = mask.astype(jnp.float32)[..., None]
        pooled = jnp.sum(h.astype(jnp.float32) * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)
        return pooled.astype(h.dtype), h
