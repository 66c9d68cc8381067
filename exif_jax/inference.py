"""`exif_jax.load(weights) -> ExifModel`: embeddings from any saved model, as numpy, in a few lines.

The inference facade sits above `models/`, `convert/` and `train/` (it reads trainer workdirs and PyTorch files),
so `exif_jax.models` stays pure Flax.

    import exif_jax
    model = exif_jax.load("wrapper_75_new.pth")      # original .pth, exported .safetensors, hf dir, or workdir
    img = model.encode_images(patches_uint8_nhwc)     # [N, 768] float32, raw (unnormalized) like the original
    txt = model.encode_texts(["Make: Canon Model: Canon EOS 5D ..."])

Images are CLIP-normalized on device, run in fixed-size jitted batches (the last one padded, so one compile per
input size) with BatchNorm in eval mode. Texts are tokenized with `exif_jax.text.tokenizer.ExifTokenizer` (bucketed
padding: results equal padding to 512).
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from exif_jax.models.preprocess import normalize_images


class ExifModel:
    """Inference wrapper around an `ExifClip`; `.model` (the NNX module) and `.config` (its model config)."""

    def __init__(self, model, config, *, batch_size: int = 64, tokenizer=None, max_text_len: int | None = None,
                 step: int | None = None, name: str = "", weights: str = "", trained_text_len: int | None = None):
        self.model = model
        self.config = config
        self.step = step  # checkpoint step for a trainer workdir, else None
        self.name = name  # config name ("smoke") when known, else "" (see `label`)
        self.weights = str(weights)
        self.batch_size = int(batch_size)
        self.max_text_len = max_text_len  # fixed token length of every text batch (None: see `_text_len`)
        # The token length the text tower was trained at (a trainer workdir records it): texts are cut there, as
        # the training batches were, instead of reaching position embeddings that training never updated.
        self.trained_text_len = trained_text_len
        self._tokenizer = tokenizer
        graphdef, state = nnx.split(model)
        self._state = state

        @jax.jit
        def _images(state, images):
            m = nnx.merge(graphdef, state)
            return m.encode_image(normalize_images(images), train=False).astype(jnp.float32)

        @jax.jit
        def _texts(state, ids, mask):
            m = nnx.merge(graphdef, state)
            return m.encode_text(ids, mask, train=False).astype(jnp.float32)

        self._images_fn, self._texts_fn = _images, _texts

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from exif_jax.text.tokenizer import ExifTokenizer

            self._tokenizer = ExifTokenizer()
        return self._tokenizer

    def _batches(self, n):
        for start in range(0, n, self.batch_size):
            yield start, min(start + self.batch_size, n)

    def encode_images(self, images) -> np.ndarray:
        """uint8 [N, H, W, 3] (RGB, 0..255) -> float32 [N, D] raw image embeddings.

        A wrong input raises `ValueError` naming what was given (shape and dtype) and what is expected.
        """
        try:
            images = np.asarray(images)
        except ValueError:  # a ragged list (photos of different sizes) does not stack
            images = np.asarray(images, dtype=object)
        what = f"{images.dtype} array of shape {tuple(images.shape)}"
        if images.dtype == object:
            raise ValueError(f"encode_images expects uint8 [N, H, W, 3] RGB, got {len(images)} items of different "
                             f"shapes or types; pass one array of equal-sized crops (encode_image_files and query "
                             f"take photos of any size)")
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"encode_images expects uint8 [N, H, W, 3] RGB, got a {what}")
        if images.dtype != np.uint8:
            raise ValueError(f"encode_images expects uint8 pixels (0..255), got a {what}")
        if self.config.image_tower == "vit" and images.shape[1:3] != (self.config.image_size,) * 2:
            raise ValueError(f"this ViT takes {self.config.image_size}x{self.config.image_size} crops, "
                             f"got a {what}")
        out = []
        for s, e in self._batches(len(images)):
            chunk = images[s:e]
            pad = self.batch_size - len(chunk) if len(images) > self.batch_size else 0
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.uint8)])
            out.append(np.asarray(self._images_fn(self._state, chunk))[: e - s])
        return np.concatenate(out) if out else np.zeros((0, self.config.embed_dim), np.float32)

    def encode_tokens(self, input_ids, attention_mask) -> np.ndarray:
        """int [N, L] ids + mask -> float32 [N, D] raw text embeddings."""
        return np.asarray(self._texts_fn(self._state, jnp.asarray(input_ids, jnp.int32),
                                         jnp.asarray(attention_mask, jnp.int32)))

    def encode_texts(self, texts) -> np.ndarray:
        """list of EXIF texts -> float32 [N, D] raw text embeddings."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a list of texts, got a single str")
        texts = list(texts)
        out = []
        for s, e in self._batches(len(texts)):
            enc = self.tokenizer.encode(texts[s:e], max_len=self._text_len(texts[s:e]))
            out.append(self.encode_tokens(enc["input_ids"], enc["attention_mask"]))
        return np.concatenate(out) if out else np.zeros((0, self.config.embed_dim), np.float32)

    def _text_len(self, texts) -> int | None:
        """`max_text_len` if set; else the shortest bucket that fits the longest text (short prompts stay cheap),
        at most `trained_text_len`."""
        if self.max_text_len:
            return int(self.max_text_len)
        if not self.trained_text_len:
            return None
        from exif_jax.text import bucket_for

        longest = int(self.tokenizer.token_lengths(texts).max(initial=2))
        return min(bucket_for(longest, self.tokenizer.buckets), int(self.trained_text_len))

    def logit_scale(self) -> float:
        return float(self.model.logit_scale())

    def encode_image_files(self, images, *, view: str = "grid", num_per_dim: int = 8) -> np.ndarray:
        """Photos (paths or uint8 [H, W, 3] arrays, any size) -> float [N, D] unit photo embeddings: the normalised
        mean of the patch embeddings over the splice patch grid (`view="grid"`) or one centre crop
        (`view="centre"`), patches at the training crop size, never resized (`exif_jax.query.images`)."""
        from exif_jax.query.images import encode_photos

        return encode_photos(self, list(images), view=view, num_per_dim=num_per_dim)

    def query(self, images, tags, *, dataset=None, prompts: str = "auto", top: int | None = None, **kwargs):
        """Zero-shot EXIF query: per image, `{tag: [(value, prob), ...]}` most probable first, probabilities
        softmax(logit_scale * cos) over the given candidates, e.g.
        `model.query(["a.jpg"], {"Make": ["Canon", "NIKON"], "ISO Speed Ratings": ["100", "400"]})`.
        `dataset`: an ingest output folder (or `exif_jax.query.load_dataset(...)`) whose texts become the prompt
        templates (`prompts="ensemble"`, the default with a dataset; `"bare"`: `Tag: value`). See
        `exif_jax.query.core.query` for `view`, `num_per_dim`, `n_templates`."""
        from exif_jax.query import core, prompts as pr

        if dataset is not None and not isinstance(dataset, pr.Dataset):
            dataset = pr.load_dataset(dataset)
        return core.query(self, images, tags, dataset=dataset, prompts=prompts, top=top, **kwargs)

    @property
    def label(self) -> str:
        """How reports name this model: by config and step (`smoke step 2387`), never by the weights folder's name."""
        name = self.name or describe_architecture(self.config)
        return f"{name} step {self.step}" if self.step is not None else name

    def untrained(self, seed: int = 0) -> "ExifModel":
        """The untrained control: the same config, randomly initialised with a fixed `seed`, wrapped identically.

        Every learning number stands beside this model evaluated the same way: the margin over it is what training
        did (a random conv net already separates regions whose content or noise differs).
        """
        from exif_jax.models import build_model

        model = build_model(self.config, nnx.Rngs(int(seed)))
        return ExifModel(model, self.config, batch_size=self.batch_size, tokenizer=self._tokenizer,
                         max_text_len=self.max_text_len, step=None, name=f"untrained (seed {int(seed)})",
                         weights="", trained_text_len=self.trained_text_len)


def describe_architecture(model_cfg) -> str:
    """Short architecture name from a model config, e.g. `resnet50 w16 (1,1,1,1) + mini text` or `vit S/16`."""
    tower = model_cfg.get("image_tower", "?")
    if tower == "resnet50":
        r = model_cfg.get("resnet", None)
        width = r.get("width", 64) if r is not None else 64
        stages = tuple(r.get("stages", (3, 4, 6, 3))) if r is not None else (3, 4, 6, 3)
        img = "resnet50" if (width, stages) == (64, (3, 4, 6, 3)) else f"resnet w{width} {stages}"
    elif tower == "vit":
        v = model_cfg.get("vit", None)
        img = f"vit {v.get('variant', '?') if v is not None else '?'}"
    else:
        img = str(tower)
    t = model_cfg.get("text", None)
    text = t.get("variant", "") if t is not None else ""
    return f"{img} + {text} text" if text else img


def _is_workdir(p: pathlib.Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file() and (p / "checkpoints").is_dir()


def load_model(weights, *, step: int | None = None, info: dict | None = None, **overrides):
    """(model_cfg, ExifClip) from any supported weights. `overrides`: model config keys (e.g. `dtype="bfloat16"`,
    `scan_layers=True`) applied before building; the weights are the same whatever the layout switches.
    `step`: a trainer workdir's checkpoint step (default: the latest). `info`: a dict filled with `step` and
    `name` (the config name a trainer workdir recorded) for provenance."""
    from exif_jax.convert import formats, mapping
    from exif_jax.models import build_model

    p = pathlib.Path(weights)
    if _is_workdir(p):
        from exif_jax.train.checkpointing import restore_model

        cfg, model = restore_model(p, step=step, info=info)
        if not overrides:
            return cfg, model
        state = mapping.to_torch_state(model)
    else:
        if step is not None:
            raise ValueError(f"{p}: --step applies to trainer workdirs only (this is an exported weights file)")
        cfg, state = formats.read_weights(p)
    for k, v in overrides.items():
        node = cfg
        *parents, leaf = k.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = v
    # Build without initialising (random init of ResNet-50 + DistilBERT costs ~30 s on CPU), then fill every array.
    model = nnx.eval_shape(lambda: build_model(cfg, nnx.Rngs(0)))
    mapping.load_torch_state(model, state, str(p))
    if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(nnx.state(model))):
        model = build_model(cfg, nnx.Rngs(0))  # arrays outside the weights (e.g. dropout RNG state)
        mapping.load_torch_state(model, state, str(p))
    return cfg, model


def load(weights, *, batch_size: int = 64, max_text_len: int | None = None, step: int | None = None,
         **overrides) -> ExifModel:
    """`ExifModel` from a trainer workdir (latest checkpoint, or `step`), exported `.safetensors`, hf dir or
    original `.pth`."""
    info: dict = {}
    cfg, model = load_model(weights, step=step, info=info, **overrides)
    return ExifModel(model, cfg, batch_size=batch_size, max_text_len=max_text_len, step=info.get("step"),
                     name=info.get("name", ""), weights=str(weights), trained_text_len=info.get("text_len"))
