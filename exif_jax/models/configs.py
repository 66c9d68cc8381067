"""Model config defaults and named sizes, decoded in one place.

`get_model_config(image_tower="resnet50", **overrides)` returns the `config.model` ConfigDict every experiment
config embeds. Named sizes:

- ViT: `"Ti/16"`, `"S/32"`, `"B/16"`, `"L/14"` ... -> width, depth, heads, mlp dim, patch (`decode_vit`).
- DistilBERT: `"base"` (distilbert-base-uncased: 768 wide, 6 layers, 12 heads, 3072 FFN), `"small"`, `"tiny"`,
  `"mini"` (`decode_text`). Explicit `text.dim/n_layers/n_heads/hidden_dim` override the named size.

The defaults reproduce the original EXIF-as-Language model: torchvision ResNet-50 whose `fc` maps 2048 -> 768,
DistilBERT-base with masked mean pooling, no extra projections, logit scale fixed at 100, CLIP softmax loss.
"""
from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections import config_dict

VIT_WIDTHS = {
    # name: (width, depth, heads, mlp_dim)
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "M": (512, 12, 8, 2048),
    "B": (768, 12, 12, 3072),
    "L": (1024, 24, 16, 4096),
    "H": (1280, 32, 16, 5120),
    # Test-sized tower (not a published size).
    "mu": (64, 2, 2, 128),
}

TEXT_SIZES = {
    # name: (dim, n_layers, n_heads, hidden_dim)
    "base": (768, 6, 12, 3072),  # distilbert-base-uncased
    "small": (512, 4, 8, 2048),
    "tiny": (256, 4, 4, 1024),
    "mini": (64, 2, 2, 128),  # tests
}


@dataclasses.dataclass(frozen=True)
class VitSize:
    width: int
    depth: int
    heads: int
    mlp_dim: int
    patch: int


@dataclasses.dataclass(frozen=True)
class TextSize:
    dim: int
    n_layers: int
    n_heads: int
    hidden_dim: int


def decode_vit(variant: str) -> VitSize:
    """`"B/16"` -> VitSize(width=768, depth=12, heads=12, mlp_dim=3072, patch=16)."""
    try:
        name, patch = variant.split("/")
        width, depth, heads, mlp = VIT_WIDTHS[name]
        return VitSize(width, depth, heads, mlp, int(patch))
    except (ValueError, KeyError):
        raise ValueError(
            f"unknown ViT variant {variant!r}: expected NAME/PATCH with NAME in {sorted(VIT_WIDTHS)}, e.g. 'B/16'"
        ) from None


def decode_text(text_cfg) -> TextSize:
    """Named DistilBERT size from `text.variant`, with explicit non-None fields overriding it."""
    variant = text_cfg.get("variant", "base")
    if variant not in TEXT_SIZES:
        raise ValueError(f"unknown text variant {variant!r}: expected one of {sorted(TEXT_SIZES)}")
    dim, n_layers, n_heads, hidden = TEXT_SIZES[variant]
    pick = lambda key, default: default if text_cfg.get(key) is None else int(text_cfg.get(key))  # noqa: E731
    size = TextSize(pick("dim", dim), pick("n_layers", n_layers), pick("n_heads", n_heads),
                    pick("hidden_dim", hidden))
    if size.dim % size.n_heads:
        raise ValueError(f"text dim {size.dim} is not divisible by n_heads {size.n_heads}")
    return size


def get_model_config(image_tower: str = "resnet50", **overrides) -> ml_collections.ConfigDict:
    """Defaults for `config.model`; `overrides` are dotted keys, e.g. `**{"vit.variant": "Ti/16"}`."""
    if image_tower not in ("resnet50", "vit"):
        raise ValueError(f"unknown image_tower {image_tower!r}: expected 'resnet50' or 'vit'")
    c = ml_collections.ConfigDict()
    c.image_tower = image_tower
    c.embed_dim = 768  # joint embedding size (ResNet fc output / ViT visual_projection output)
    c.image_size = 124  # crop size the model is trained on (ViT position table is sized from it)
    c.image_filter = "none"  # fixed input filter of the image tower: "none" (original) | "highpass" (models/filters.py)
    c.image_filter_sigma = 1.0  # highpass: x - GaussianBlur_sigma(x) ...
    c.image_filter_gain = 16.0  # ... times this (a residual of ~4 grey levels -> ~unit scale after CLIP normalization)

    c.resnet = ml_collections.ConfigDict()
    c.resnet.bn_momentum = 0.1  # PyTorch convention: running = (1 - m) * running + m * batch
    c.resnet.bn_eps = 1e-5
    c.resnet.zero_init_residual = False
    c.resnet.width = 64  # stem channels; stage widths are 1/2/4/8 x this (x4 after each bottleneck)
    c.resnet.stages = (3, 4, 6, 3)  # bottlenecks per stage (ResNet-50); e.g. width 16, (1, 1, 1, 1) for CPU smoke

    c.vit = ml_collections.ConfigDict()
    c.vit.variant = "B/16"
    c.vit.pool = "cls"  # "cls" (HF CLIPVision layout) or "mean"
    c.vit.act = "quick_gelu"  # "quick_gelu" (OpenAI CLIP) or "gelu" (exact)
    c.vit.ln_eps = 1e-5

    c.text = ml_collections.ConfigDict()
    c.text.variant = "base"
    c.text.dim = config_dict.placeholder(int)
    c.text.n_layers = config_dict.placeholder(int)
    c.text.n_heads = config_dict.placeholder(int)
    c.text.hidden_dim = config_dict.placeholder(int)
    c.text.vocab_size = 30522
    c.text.max_position = 512
    c.text.ln_eps = 1e-12
    c.text.act = "gelu"  # exact GELU as DistilBERT
    c.text.dropout = 0.0
    c.text.attention_dropout = 0.0
    c.text.pool = "mean"  # masked mean over tokens (original); "cls" = first token

    c.image_projection = False  # extra Linear(embed_dim, embed_dim, bias=False) after the image tower
    c.text_projection = False  # Linear(text dim, embed_dim, bias=False); required when text dim != embed_dim

    c.logit_scale = ml_collections.ConfigDict()
    c.logit_scale.learn = False
    c.logit_scale.init = 100.0  # fixed value, or initial value of the learned scale (original: 100 fixed)
    c.logit_scale.max = 100.0  # learned scale is clamped to this
    c.loss = "clip"  # "clip" (softmax InfoNCE) or "siglip" (sigmoid)
    c.siglip_bias_init = -10.0

    c.dtype = "float32"  # compute dtype ("bfloat16" for mixed precision)
    c.param_dtype = "float32"
    c.remat = False  # rematerialise each block (ResNet bottleneck / transformer layer)
    c.scan_layers = False  # scan over stacked transformer layers (params get a leading layer axis)

    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def tiny_model_config(image_tower: str = "resnet50", **overrides) -> ml_collections.ConfigDict:
    """A tiny config for unit tests and `runlocal` smoke runs (mini text tower; ViT mu/8 on 32 px crops)."""
    base = {"text.variant": "mini", "embed_dim": 64, "text_projection": False, "vit.variant": "mu/8"}
    if image_tower == "vit":
        base["image_size"] = 32
    base.update(overrides)
    return get_model_config(image_tower, **base)


test_model_config = tiny_model_config  # older name (kept for existing imports)
