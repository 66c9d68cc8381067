"""Reference PyTorch modules that rebuild the joint model from exported weights (the documented torch recipe).

- `ExifNetTorch`: the original repository's `EXIFNet` layout: `model.visual` = torchvision `resnet50` with
  `fc = Linear(2048, 768)`, `model.transformer` = `transformers.DistilBertModel`, the unused OpenAI CLIP ViT-B/32
  text-side leftovers (`model.positional_embedding` [77, 512], `model.text_projection` [512, 512],
  `model.logit_scale` [], `model.token_embedding` Embedding(49408, 512), `model.ln_final` LayerNorm(512)) and
  `sink_temp` []. A file written by `exif-jax export --format original` loads into it with strict
  `load_state_dict(ckpt["model"])`, exactly as the original evaluator loads `wrapper_75_new.pth`.
- `ExifClipTorch.from_hf_export(dir)`: the joint model from an `exif-jax export --format hf` directory
  (DistilBertModel + torchvision ResNet-50 or `CLIPVisionModelWithProjection` + optional projections).

Both give `encode_image(normalized NCHW float) -> [B, D]` and `encode_text(input_ids, attention_mask) -> [B, D]`,
raw (unnormalized), with the original's masked mean pooling. Example:

    import torch
    from exif_jax.convert.torch_reference import ExifNetTorch
    net = ExifNetTorch()
    net.load_state_dict(torch.load("model.pth", weights_only=True)["model"])
    net.eval()
"""
from __future__ import annotations

import json
import math
import pathlib

import torch
from torch import nn

# Leftovers of the OpenAI CLIP model the original wrapped (clip.load("ViT-B/32"), the default of its
# `load_wrapper_model`): text side of ViT-B/32, width 512, context 77, BPE vocab 49408, embed dim 512. Unused.
CLIP_LEFTOVER_SHAPES = {
    "sink_temp": (),
    "model.positional_embedding": (77, 512),
    "model.text_projection": (512, 512),
    "model.logit_scale": (),
    "model.token_embedding.weight": (49408, 512),
    "model.ln_final.weight": (512,),
    "model.ln_final.bias": (512,),
}


def distilbert_config(dim=768, n_layers=6, n_heads=12, hidden_dim=3072, vocab_size=30522, max_position=512,
                      act="gelu", dropout=0.0, attention_dropout=0.0):
    from transformers import DistilBertConfig

    return DistilBertConfig(vocab_size=vocab_size, max_position_embeddings=max_position, dim=dim, n_layers=n_layers,
                            n_heads=n_heads, hidden_dim=hidden_dim, activation=act, dropout=dropout,
                            attention_dropout=attention_dropout, sinusoidal_pos_embds=False)


def resnet50_torch(out_dim: int = 768) -> nn.Module:
    import torchvision

    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Linear(2048, out_dim)
    return net


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The original's `avg_word_embs` pooling."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.sum(hidden * m, dim=1) / torch.clamp(torch.sum(m, dim=1), min=1e-9)


class _ClipLeftovers(nn.Module):
    def __init__(self, embed_dim: int, text_config):
        super().__init__()
        from transformers import DistilBertModel

        self.visual = resnet50_torch(embed_dim)
        self.transformer = DistilBertModel(text_config)
        self.positional_embedding = nn.Parameter(torch.zeros(77, 512))
        self.text_projection = nn.Parameter(torch.zeros(512, 512))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        self.token_embedding = nn.Embedding(49408, 512)
        self.ln_final = nn.LayerNorm(512)


class ExifNetTorch(nn.Module):
    """The original `EXIFNet` state-dict layout (see module docstring)."""

    def __init__(self, embed_dim: int = 768, text_config=None):
        super().__init__()
        self.model = _ClipLeftovers(embed_dim, text_config or distilbert_config())
        self.sink_temp = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def encode_image(self, image):
        return self.model.visual(image)

    def encode_text(self, input_ids, attention_mask):
        hidden = self.model.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        return masked_mean(hidden, attention_mask)

    def forward(self, image, input_ids, attention_mask):
        return self.encode_image(image), self.encode_text(input_ids, attention_mask)


class ExifClipTorch(nn.Module):
    """Joint model rebuilt from an `exif-jax export --format hf` directory."""

    def __init__(self, visual: nn.Module, transformer: nn.Module, *, vit: bool, pool: str = "mean",
                 image_projection: nn.Module | None = None, text_projection: nn.Module | None = None,
                 logit_scale: float = 100.0, image_filter: str = "none", image_filter_sigma: float = 1.0,
                 image_filter_gain: float = 16.0):
        super().__init__()
        self.visual, self.transformer, self.vit, self.pool = visual, transformer, vit, pool
        self.image_filter = (image_filter, float(image_filter_sigma), float(image_filter_gain))
        self.image_projection, self.text_projection = image_projection, text_projection
        self.logit_scale = logit_scale

    @classmethod
    def from_hf_export(cls, directory) -> "ExifClipTorch":
        from safetensors.torch import load_file
        from transformers import CLIPVisionModelWithProjection, DistilBertModel

        d = pathlib.Path(directory)
        meta = json.loads((d / "exif_jax_config.json").read_text())
        cfg = meta["model_config"]
        transformer = DistilBertModel.from_pretrained(d / "text")
        if cfg["image_tower"] == "vit":
            visual = CLIPVisionModelWithProjection.from_pretrained(d / "vision")
        else:
            visual = resnet50_torch(cfg["embed_dim"])
            visual.load_state_dict(load_file(d / "vision" / "resnet50.safetensors"), strict=True)
        joint = load_file(d / "joint.safetensors") if (d / "joint.safetensors").exists() else {}
        proj = {}
        for name in ("image_projection", "text_projection"):
            if f"{name}.weight" in joint:
                w = joint[f"{name}.weight"]
                proj[name] = nn.Linear(w.shape[1], w.shape[0], bias=False)
                proj[name].weight.data.copy_(w)
        scale = float(torch.exp(joint["logit_scale"])) if "logit_scale" in joint else cfg["logit_scale"]["init"]
        filt = {k: cfg[k] for k in ("image_filter", "image_filter_sigma", "image_filter_gain") if k in cfg}
        return cls(visual, transformer, vit=cfg["image_tower"] == "vit", pool=cfg["text"]["pool"], logit_scale=scale,
                   **proj, **filt).eval()

    def encode_image(self, image):
        image = image_filter_torch(image, *self.image_filter)
        x = self.visual(pixel_values=image).image_embeds if self.vit else self.visual(image)
        return self.image_projection(x) if self.image_projection is not None else x

    def encode_text(self, input_ids, attention_mask):
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        x = masked_mean(hidden, attention_mask) if self.pool == "mean" else hidden[:, 0]
        return self.text_projection(x) if self.text_projection is not None else x


def image_filter_torch(x, name: str, sigma: float = 1.0, gain: float = 16.0):
    """`exif_jax.models.filters.apply_filter` for NCHW torch tensors (the towers' fixed input filter)."""
    if name == "none":
        return x
    if name not in ("highpass", "rgb+highpass"):
        raise ValueError(f"unknown image_filter {name!r}: expected none, highpass or rgb+highpass")
    from exif_jax.models.filters import gaussian_taps

    taps = torch.from_numpy(gaussian_taps(sigma)).to(x.dtype)
    r, c = (taps.numel() - 1) // 2, x.shape[1]
    y = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    y = torch.nn.functional.conv2d(y, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    y = torch.nn.functional.conv2d(y, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return gain * (x - y) + (x if name == "rgb+highpass" else 0)
