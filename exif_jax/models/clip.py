"""ExifClip: image tower (`visual`: ResNet-50 or ViT) + text tower (`transformer`: DistilBERT) in one NNX module.

Attribute names mirror the original `EXIFNet.model` (`model.visual`, `model.transformer`). Optional projections
(`image_projection`, `text_projection`: Linear without bias), logit scale fixed or learned (log-parameterised,
clamped to `logit_scale.max`), and a learned bias for the SigLIP loss.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

from exif_jax.models import losses
from exif_jax.models.configs import decode_text, decode_vit
from exif_jax.models.distilbert import DistilBert
from exif_jax.models.filters import apply_filter, check_filter
from exif_jax.models.layers import dtype_of, torch_linear_init
from exif_jax.models.resnet import ResNet50, resnet_layout
from exif_jax.models.vit import VisionTransformer


class ExifClip(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs, bn_axis_name=None):
        dtype, param_dtype = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        embed = int(cfg.embed_dim)
        common = dict(dtype=dtype, param_dtype=param_dtype, remat=bool(cfg.remat))
        self.image_filter = str(cfg.get("image_filter", "none"))
        self.filter_sigma = float(cfg.get("image_filter_sigma", 1.0))
        self.filter_gain = float(cfg.get("image_filter_gain", 16.0))
        check_filter(self.image_filter, self.filter_sigma, self.filter_gain)
        if cfg.image_tower == "resnet50":
            r = cfg.resnet
            width, stages = resnet_layout(r)
            self.visual = ResNet50(embed, bn_momentum=r.bn_momentum, bn_eps=r.bn_eps,
                                   zero_init_residual=r.zero_init_residual, bn_axis_name=bn_axis_name,
                                   width=width, stages=stages, rngs=rngs, **common)
        elif cfg.image_tower == "vit":
            v = decode_vit(cfg.vit.variant)
            self.visual = VisionTransformer(width=v.width, depth=v.depth, heads=v.heads, mlp_dim=v.mlp_dim,
                                            patch=v.patch, image_size=int(cfg.image_size), out_dim=embed,
                                            pool=cfg.vit.pool, act=cfg.vit.act, ln_eps=cfg.vit.ln_eps,
                                            scan_layers=bool(cfg.scan_layers), rngs=rngs, **common)
        else:
            raise ValueError(f"unknown model.image_tower {cfg.image_tower!r}: expected 'resnet50' or 'vit'")
        t = cfg.text
        ts = decode_text(t)
        self.transformer = DistilBert(dim=ts.dim, n_layers=ts.n_layers, n_heads=ts.n_heads, hidden_dim=ts.hidden_dim,
                                      vocab_size=t.vocab_size, max_position=t.max_position, ln_eps=t.ln_eps,
                                      act=t.act, dropout=t.dropout, attention_dropout=t.attention_dropout,
                                      pool=t.pool, scan_layers=bool(cfg.scan_layers), rngs=rngs, **common)
        lin = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.image_projection = (nnx.Linear(embed, embed, kernel_init=torch_linear_init(embed), **lin)
                                 if cfg.image_projection else None)
        if cfg.text_projection:
            self.text_projection = nnx.Linear(ts.dim, embed, kernel_init=torch_linear_init(ts.dim), **lin)
        else:
            if ts.dim != embed:
                raise ValueError(f"text dim {ts.dim} != embed_dim {embed}: set model.text_projection=True")
            self.text_projection = None
        self.learn_scale = bool(cfg.logit_scale.learn)
        self.scale_init = float(cfg.logit_scale.init)
        self.scale_max = float(cfg.logit_scale.max)
        self.log_scale = nnx.Param(jnp.asarray(math.log(self.scale_init), jnp.float32)) if self.learn_scale else None
        self.loss_name = cfg.loss
        if cfg.loss not in ("clip", "siglip"):
            raise ValueError(f"unknown model.loss {cfg.loss!r}: expected 'clip' or 'siglip'")
        self.bias = (nnx.Param(jnp.asarray(cfg.siglip_bias_init, jnp.float32)) if cfg.loss == "siglip" else None)

    def encode_image(self, images, train: bool = False):
        """CLIP-normalized float NHWC -> raw image embedding [B, embed_dim]."""
        images = apply_filter(images, self.image_filter, sigma=self.filter_sigma, gain=self.filter_gain)
        x = self.visual(images, train=train)
        if self.image_projection is not None:
            x = self.image_projection(x)
        return x

    def encode_text(self, input_ids, attention_mask, train: bool = False):
        """int token ids [B, L] + mask [B, L] -> raw text embedding [B, embed_dim] (masked mean pooling)."""
        x, _ = self.transformer(input_ids, attention_mask, deterministic=not train)
        if self.text_projection is not None:
            x = self.text_projection(x)
        return x

    def logit_scale(self):
        if self.log_scale is None:
            return jnp.asarray(self.scale_init, jnp.float32)
        return jnp.minimum(jnp.exp(self.log_scale[...]), self.scale_max)

    def logit_bias(self):
        return None if self.bias is None else self.bias[...]

    def loss(self, img, txt, axis_name=None):
        if self.loss_name == "siglip":
            return losses.siglip_loss(img, txt, self.logit_scale(), self.logit_bias(), axis_name=axis_name)
        return losses.clip_loss(img, txt, self.logit_scale(), axis_name=axis_name)

    def __call__(self, images, input_ids, attention_mask, train: bool = False):
        return self.encode_image(images, train), self.encode_text(input_ids, attention_mask, train)
