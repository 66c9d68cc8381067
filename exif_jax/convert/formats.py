"""Weight files in and out: exif-jax `.safetensors`, original `.pth`, Hugging Face directories, torchvision/HF inits.

Every reader returns `(model_config | None, state)` where `state` is the canonical torch-layout dict of
`exif_jax.convert.mapping`; `mapping.load_torch_state` puts it into a model. Errors are `ConversionError` with a
one-line message naming the file.

Formats:
- exif-jax `.safetensors`: canonical keys (`visual.*`, `transformer.*`, joint keys), metadata
  `{"format": "exif-jax", "model_config": <config JSON>}`; readable by `safetensors` in any framework.
- original `.pth`: `{"model": EXIFNet.state_dict()}`: `model.visual.*` (torchvision ResNet-50, fc 2048->768),
  `model.transformer.*` (DistilBertModel) and the CLIP leftovers of `torch_reference.CLIP_LEFTOVER_SHAPES`.
- hf directory: `text/` (DistilBertModel `config.json` + `model.safetensors`), `vision/` (ViT:
  CLIPVisionModelWithProjection `config.json` + `model.safetensors`; ResNet-50: torchvision keys in
  `resnet50.safetensors`), `joint.safetensors` (projections, learned logit scale/bias), `exif_jax_config.json`.
"""
from __future__ import annotations

import json
import math
import pathlib
import re

import ml_collections
import numpy as np

from exif_jax.convert.mapping import ConversionError, load_torch_state, to_torch_state
from exif_jax.models.configs import decode_text, decode_vit, get_model_config

FORMAT_TAG = "exif-jax"
ORIGINAL_PREFIX = "model."
TEXT_PREFIX = "transformer."
VISUAL_PREFIX = "visual."


# --------------------------------------------------------------------------------------------------- configs
def config_to_dict(cfg) -> dict:
    return json.loads(cfg.to_json())


def config_from_dict(d: dict, source: str = "<config>") -> ml_collections.ConfigDict:
    """Model config from a dict (e.g. saved JSON): defaults of its image tower, overridden key by key."""
    cfg = get_model_config(d.get("image_tower", "resnet50"))

    def assign(node, values, prefix):
        for k, v in values.items():
            if k not in node:  # keys other modules attach (e.g. the trainer's `init_from`) are kept as they are
                node[k] = v
            elif isinstance(v, dict):
                assign(node[k], v, f"{prefix}{k}.")
            else:
                node[k] = v

    assign(cfg, d, "")
    return cfg


def infer_text_config(cfg, state: dict, source: str):
    """Fill `cfg.text` sizes from DistilBERT arrays in canonical keys (`transformer.*`; heads: dim // 64, the
    DistilBERT/BERT head width). Raises `ConversionError` naming `source` when they are not there."""
    p = TEXT_PREFIX
    try:
        vocab, dim = state[p + "embeddings.word_embeddings.weight"].shape
        max_pos = state[p + "embeddings.position_embeddings.weight"].shape[0]
        hidden = state[p + "transformer.layer.0.ffn.lin1.weight"].shape[0]
    except KeyError as e:
        raise ConversionError(f"{source}: no DistilBERT weights found (missing {e.args[0]})") from None
    layers = {int(m.group(1)) for k in state if (m := re.match(re.escape(p) + r"transformer\.layer\.(\d+)\.", k))}
    cfg.text.vocab_size, cfg.text.max_position = int(vocab), int(max_pos)
    cfg.text.dim, cfg.text.n_layers, cfg.text.hidden_dim = int(dim), len(layers), int(hidden)
    cfg.text.n_heads = max(1, int(dim) // 64)


# --------------------------------------------------------------------------------------------------- helpers
def _torch_load(path: pathlib.Path):
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except Exception as e:  # pickle/zip errors come in many types
        raise ConversionError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None


def _to_numpy(tree: dict) -> dict[str, np.ndarray]:
    import torch

    out = {}
    for k, v in tree.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu()
            out[k] = (v.float() if v.dtype in (torch.bfloat16, torch.float16) else v).numpy()
    return out


def _read_safetensors_file(path: pathlib.Path):
    from safetensors import safe_open

    if not path.is_file():
        raise ConversionError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:
        raise ConversionError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None


def _save_safetensors_file(state: dict, path: pathlib.Path, metadata: dict | None = None):
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.require(v, requirements="C") for k, v in state.items()}, str(path), metadata=metadata)


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def add_prefix(state: dict, prefix: str) -> dict:
    """`{prefix + key: value}`: e.g. DistilBertModel keys -> canonical `transformer.*` keys (`TEXT_PREFIX`)."""
    return {prefix + k: v for k, v in state.items()}


def text_config_from_distilbert(cfg, path) -> None:
    """Sets `cfg.text` sizes (and `text_projection` when the text width differs from `embed_dim`) from a Hugging
    Face DistilBERT directory or weights file, as an initialisation from it needs."""
    infer_text_config(cfg, add_prefix(read_hf_distilbert(path), TEXT_PREFIX), str(path))
    cfg.text_projection = bool(cfg.text.dim != cfg.embed_dim)


_add = add_prefix  # old private names, kept for callers not yet updated
_infer_text = infer_text_config


# --------------------------------------------------------------------------------------------------- exif-jax
def save_safetensors(model, cfg, path) -> pathlib.Path:
    path = pathlib.Path(path)
    meta = {"format": FORMAT_TAG, "model_config": cfg.to_json()}
    _save_safetensors_file(to_torch_state(model), path, meta)
    return path


def read_safetensors(path):
    path = pathlib.Path(path)
    state, meta = _read_safetensors_file(path)
    if meta.get("format") != FORMAT_TAG or "model_config" not in meta:
        raise ConversionError(f"{path}: safetensors file without exif-jax metadata (format/model_config); "
                              "export it with `exif-jax export --format safetensors`")
    return config_from_dict(json.loads(meta["model_config"]), str(path)), state


# --------------------------------------------------------------------------------------------------- original
def _check_original_exportable(cfg):
    from exif_jax.models.resnet import is_resnet50_layout

    if (cfg.image_tower != "resnet50" or not is_resnet50_layout(cfg.get("resnet", {})) or cfg.image_projection
            or cfg.text_projection or cfg.loss != "clip"):
        r = cfg.get("resnet", {}) or {}
        what = (f"a narrow ResNet (width {r.get('width', 64)}, stages {tuple(r.get('stages', ()))})"
                if cfg.image_tower == "resnet50" and not is_resnet50_layout(r) else f"image tower {cfg.image_tower}")
        raise ConversionError(f"the original .pth layout holds only ResNet-50 + DistilBERT without projections "
                              f"(CLIP loss), and this model has {what}"
                              f"{', projections' if cfg.image_projection or cfg.text_projection else ''}; use "
                              "--format safetensors or hf for it")
    filt = cfg.get("image_filter", "none")
    if filt != "none":  # the original EXIFNet feeds RGB to its tower: these weights would see the wrong input
        raise ConversionError(f"the original .pth layout has no input filter, and this model's image tower sees "
                              f"its crops through image_filter={filt!r}; use --format safetensors or hf for it")


def export_original(model, cfg, path) -> pathlib.Path:
    """Write `{"model": EXIFNet-state-dict}` that `torch_reference.ExifNetTorch` loads strictly."""
    import torch

    from exif_jax.convert.torch_reference import CLIP_LEFTOVER_SHAPES

    _check_original_exportable(cfg)
    state = to_torch_state(model)
    out = {}
    for k, v in state.items():
        if k.startswith((VISUAL_PREFIX, TEXT_PREFIX)):
            out[ORIGINAL_PREFIX + k] = torch.from_numpy(np.array(v))
    log_scale = math.log(float(cfg.logit_scale.init))
    if "logit_scale" in state:
        log_scale = float(state["logit_scale"])
    for k, shape in CLIP_LEFTOVER_SHAPES.items():
        out[k] = torch.zeros(shape)
    out["sink_temp"] = torch.tensor(math.log(1 / 0.07))
    out["model.logit_scale"] = torch.tensor(log_scale)  # CLIP's log scale: exp() is the scale the model used
    out["model.ln_final.weight"] = torch.ones(512)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": out}, str(path))
    return path


def read_original(path):
    """Original-layout `.pth` (e.g. the released `wrapper_75_new.pth`) -> (config, canonical state)."""
    from exif_jax.convert.torch_reference import CLIP_LEFTOVER_SHAPES

    path = pathlib.Path(path)
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        sd = ckpt["model"]
    elif isinstance(ckpt, dict) and any(str(k).startswith(("model.visual.", "module.model.")) for k in ckpt):
        sd = ckpt
    else:
        raise ConversionError(f"{path}: not an original EXIF-as-Language checkpoint (expected a dict with 'model' "
                              "holding model.visual.* and model.transformer.* keys)")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    unexpected = [k for k in sd if not k.startswith(("model.visual.", "model.transformer."))
                  and k not in CLIP_LEFTOVER_SHAPES]
    if unexpected:
        raise ConversionError(f"{path}: {len(unexpected)} unexpected keys for the original layout: "
                              + ", ".join(sorted(unexpected)[:4]))
    state = _to_numpy({k[len(ORIGINAL_PREFIX):]: v for k, v in sd.items()
                       if k.startswith(("model.visual.", "model.transformer."))})
    if "visual.fc.weight" not in state:
        raise ConversionError(f"{path}: missing model.visual.fc.weight (ResNet-50 image tower)")
    cfg = get_model_config("resnet50")
    cfg.embed_dim = int(state["visual.fc.weight"].shape[0])
    infer_text_config(cfg, state, str(path))
    if "model.logit_scale" in sd:
        cfg.logit_scale.init = float(min(math.exp(float(sd["model.logit_scale"])), cfg.logit_scale.max))
    return cfg, state


# --------------------------------------------------------------------------------------------------- hf
def export_hf(model, cfg, directory) -> pathlib.Path:
    """Write a Hugging Face style directory (see module docstring)."""
    d = pathlib.Path(directory)
    state = to_torch_state(model)
    ts = decode_text(cfg.text)
    from exif_jax.convert.torch_reference import distilbert_config

    tcfg = distilbert_config(ts.dim, ts.n_layers, ts.n_heads, ts.hidden_dim, cfg.text.vocab_size,
                             cfg.text.max_position, cfg.text.act)
    tcfg.architectures = ["DistilBertModel"]
    (d / "text").mkdir(parents=True, exist_ok=True)
    tcfg.save_pretrained(str(d / "text"))
    _save_safetensors_file(_strip(state, TEXT_PREFIX), d / "text" / "model.safetensors", {"format": "pt"})
    visual = _strip(state, VISUAL_PREFIX)
    if cfg.image_tower == "vit":
        if cfg.vit.pool != "cls" or cfg.vit.act not in ("quick_gelu", "gelu"):
            raise ConversionError("hf export of the ViT tower needs vit.pool='cls' (CLIPVision pools the class "
                                  "token); use --format safetensors for mean pooling")
        from transformers import CLIPVisionConfig

        v = decode_vit(cfg.vit.variant)
        vcfg = CLIPVisionConfig(hidden_size=v.width, intermediate_size=v.mlp_dim, num_hidden_layers=v.depth,
                                num_attention_heads=v.heads, image_size=int(cfg.image_size), patch_size=v.patch,
                                hidden_act=cfg.vit.act, layer_norm_eps=cfg.vit.ln_eps,
                                projection_dim=int(cfg.embed_dim), num_channels=3)
        vcfg.architectures = ["CLIPVisionModelWithProjection"]
        (d / "vision").mkdir(parents=True, exist_ok=True)
        vcfg.save_pretrained(str(d / "vision"))
        hf = {("visual_projection.weight" if k == "visual_projection.weight" else "vision_model." + k): a
              for k, a in visual.items()}
        _save_safetensors_file(hf, d / "vision" / "model.safetensors", {"format": "pt"})
    else:
        _save_safetensors_file(visual, d / "vision" / "resnet50.safetensors", {"format": "pt"})
        (d / "vision" / "config.json").write_text(json.dumps(
            {"architecture": "torchvision.models.resnet50", "fc_out_features": int(cfg.embed_dim)}, indent=1))
    joint = {k: v for k, v in state.items() if not k.startswith((TEXT_PREFIX, VISUAL_PREFIX))}
    if joint:
        _save_safetensors_file(joint, d / "joint.safetensors", {"format": "pt"})
    (d / "exif_jax_config.json").write_text(json.dumps(
        {"format": FORMAT_TAG, "model_config": config_to_dict(cfg),
         "recipe": "exif_jax.convert.torch_reference.ExifClipTorch.from_hf_export(DIR)"}, indent=1))
    return d


def read_hf(directory):
    d = pathlib.Path(directory)
    meta_path = d / "exif_jax_config.json"
    if not meta_path.is_file():
        raise ConversionError(f"{d}: not an exif-jax hf export (no exif_jax_config.json)")
    cfg = config_from_dict(json.loads(meta_path.read_text())["model_config"], str(meta_path))
    state = add_prefix(read_hf_distilbert(d / "text"), TEXT_PREFIX)
    if cfg.image_tower == "vit":
        vis, _ = _read_safetensors_file(d / "vision" / "model.safetensors")
        state.update({VISUAL_PREFIX + (k[len("vision_model."):] if k.startswith("vision_model.") else k): v
                      for k, v in vis.items() if not k.endswith("position_ids")})
    else:
        vis, _ = _read_safetensors_file(d / "vision" / "resnet50.safetensors")
        state.update(add_prefix(vis, VISUAL_PREFIX))
    if (d / "joint.safetensors").is_file():
        state.update(_read_safetensors_file(d / "joint.safetensors")[0])
    return cfg, state


# --------------------------------------------------------------------------------------------------- inits
def read_hf_distilbert(path) -> dict[str, np.ndarray]:
    """DistilBERT weights (HF dir with model.safetensors / pytorch_model.bin, or one such file) -> DistilBertModel
    keys (`embeddings.*`, `transformer.*`); a `distilbert.` prefix and MLM heads (`vocab_*`) are dropped."""
    p = pathlib.Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise ConversionError(f"{path}: no model.safetensors or pytorch_model.bin in the directory")
    if p.suffix == ".safetensors":
        raw, _ = _read_safetensors_file(p)
    else:
        raw = _torch_load(p)
        if not isinstance(raw, dict):
            raise ConversionError(f"{p}: expected a state dict")
        raw = _to_numpy(raw)
    out = {}
    for k, v in raw.items():
        k = k[len("distilbert."):] if k.startswith("distilbert.") else k
        if k.startswith(("embeddings.", "transformer.")) and not k.endswith("position_ids"):
            out[k] = v
    if not out:
        raise ConversionError(f"{p}: no DistilBERT keys (embeddings.*, transformer.*) found")
    return out


def read_torchvision_resnet50(path) -> dict[str, np.ndarray]:
    """torchvision ResNet-50 state dict file (.pth/.safetensors) -> `visual.*` keys (the ImageNet `fc` dropped)."""
    p = pathlib.Path(path)
    raw = _read_safetensors_file(p)[0] if p.suffix == ".safetensors" else _torch_load(p)
    if not isinstance(raw, dict):
        raise ConversionError(f"{p}: expected a torchvision state dict")
    raw = raw if p.suffix == ".safetensors" else _to_numpy(raw)
    if "conv1.weight" not in raw:
        raise ConversionError(f"{p}: not a torchvision ResNet state dict (no conv1.weight)")
    return {VISUAL_PREFIX + k: v for k, v in raw.items() if not k.startswith("fc.")}


def init_from_pretrained(model, *, resnet50=None, distilbert=None, original=None) -> list[str]:
    """Initialise parts of `model` in place from local files, as the original training did.

    `resnet50`: torchvision ImageNet state dict (all but `fc`); `distilbert`: HF DistilBERT dir/file (text tower);
    `original`: original-layout `.pth` (both towers). Returns a list of what was loaded, for logging.
    """
    done = []
    if original is not None:
        _, state = read_original(original)
        load_torch_state(model, state, str(original), only=(VISUAL_PREFIX, TEXT_PREFIX))
        done.append(f"visual+text <- {original}")
    if resnet50 is not None:
        load_torch_state(model, read_torchvision_resnet50(resnet50), str(resnet50), only=(VISUAL_PREFIX,),
                         skip=(VISUAL_PREFIX + "fc.",))
        done.append(f"visual (without fc) <- {resnet50}")
    if distilbert is not None:
        load_torch_state(model, add_prefix(read_hf_distilbert(distilbert), TEXT_PREFIX), str(distilbert),
                         only=(TEXT_PREFIX,))
        done.append(f"text <- {distilbert}")
    return done


# --------------------------------------------------------------------------------------------------- dispatch
def read_weights(path):
    """Any supported weight file/directory (not a trainer workdir) -> (model config, canonical state)."""
    p = pathlib.Path(path)
    if not p.exists():
        raise ConversionError(f"{p}: no such file or directory")
    if p.is_dir():
        if (p / "exif_jax_config.json").is_file():
            return read_hf(p)
        raise ConversionError(f"{p}: directory is neither an exif-jax hf export (exif_jax_config.json) nor a "
                              "trainer workdir (config.json + checkpoints/)")
    if p.suffix == ".safetensors":
        return read_safetensors(p)
    if p.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        return read_original(p)
    raise ConversionError(f"{p}: unknown weights format (expected .pth, .safetensors, or a directory)")
