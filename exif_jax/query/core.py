"""Zero-shot EXIF queries: rank candidate values of a tag for a photo, as CLIP ranks class prompts.

    probs = softmax(logit_scale * cos(photo embedding, candidate text embeddings))

with the model's own (trained) logit scale, the photo embedding from `exif_jax.query.images` and the candidates'
text embeddings from `exif_jax.query.prompts`. `ExifModel.query(images, {"Make": [...], ...})` calls `query`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

from exif_jax.query import images as im
from exif_jax.query import prompts as pr


# The prompt style used when a dataset is known (`prompts="auto"`); chosen by `python -m eval.query` (README).
DEFAULT_STYLE = "matched"


class QueryError(ValueError):
    """A query cannot be asked as given (unknown tag, no candidate values); the message says what is known."""


@dataclasses.dataclass
class TagQuery:
    """One tag's candidates and their unit text embeddings `[V, D]`."""

    tag: str
    values: list[str]
    text_embeddings: np.ndarray
    style: str  # "ensemble" | "bare"
    n_templates: int  # texts averaged for the first candidate


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def probabilities(image_embeddings: np.ndarray, text_embeddings: np.ndarray, logit_scale: float) -> np.ndarray:
    """`[N, D]` image and `[V, D]` text embeddings (any norm) -> `[N, V]` softmax(scale * cosine)."""
    return softmax(logit_scale * (im.l2_normalize(image_embeddings) @ im.l2_normalize(text_embeddings).T))


def ranking(values: Sequence[str], probs: np.ndarray, top: int | None = None) -> list[tuple[str, float]]:
    """`[(value, prob), ...]` most probable first (ties keep the candidates' order)."""
    order = np.argsort(-np.asarray(probs), kind="stable")
    if top is not None:
        order = order[:top]
    return [(values[i], float(probs[i])) for i in order]


def canonical_tag(tag: str, known: Sequence[str]) -> str:
    """`tag` as spelled in `known` (case- and space-insensitive), else `QueryError` naming the known tags."""
    key = " ".join(tag.split()).casefold()
    for k in known:
        if k.casefold() == key:
            return k
    raise QueryError(f"unknown tag {tag!r}; known tags: {', '.join(known)}")


def known_tags(dataset: pr.Dataset | None) -> list[str]:
    from exif_jax.exif.render import DEFAULT_CLEAN_TAGS

    return dataset.tags() if dataset is not None else list(DEFAULT_CLEAN_TAGS)


def prepare(model, tags: Mapping[str, Sequence[str]], *, dataset: pr.Dataset | None = None, prompts: str = "auto",
            n_templates: int = pr.DEFAULT_N_TEMPLATES) -> list[TagQuery]:
    """Candidate texts -> embeddings for each tag. `prompts`: `ensemble` (needs `dataset`), `bare`, or `auto`
    (ensemble when a dataset is given). Values are deduplicated in order; an empty list is a `QueryError`."""
    style = prompts if prompts != "auto" else (DEFAULT_STYLE if dataset is not None else "bare")
    if style in ("ensemble", "matched") and dataset is None:
        raise QueryError(f"{style} prompts need a dataset (its texts are the templates); pass dataset= or use "
                         "prompts='bare'")
    templates = dataset.templates(n_templates) if (dataset is not None and style != "bare") else []
    renderer = dataset.renderer if dataset is not None else None
    out = []
    for tag, values in tags.items():
        if isinstance(values, str):
            raise QueryError(f"{tag}: give the candidate values as a list, got the string {values!r}")
        values = list(dict.fromkeys(str(v) for v in values if str(v).strip()))
        if not values:
            raise QueryError(f"{tag}: no candidate values; known tags: {', '.join(known_tags(dataset))}")
        texts = pr.prompt_texts(tag, values, style=style, templates=templates, renderer=renderer, dataset=dataset,
                                n_templates=n_templates)
        out.append(TagQuery(tag, values, pr.text_embeddings(model, texts), style, len(texts[0])))
    return out


def query(model, images: Sequence, tags: Mapping[str, Sequence[str]], *, dataset: pr.Dataset | None = None,
          prompts: str = "auto", n_templates: int = pr.DEFAULT_N_TEMPLATES, view: str = im.DEFAULT_VIEW,
          num_per_dim: int = im.DEFAULT_NUM_PER_DIM, top: int | None = None) -> list[dict[str, list]]:
    """Per image, `{tag: [(value, prob), ...]}` most probable first. Images: paths or uint8 [H, W, 3] arrays of
    any size (each cropped into patches at the model's crop size, batched together). A photo that cannot be read
    or is smaller than one patch raises `PhotoError` naming it."""
    if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]  # one photo
    queries = prepare(model, tags, dataset=dataset, prompts=prompts, n_templates=n_templates)
    photos = im.encode_photos(model, list(images), view=view, num_per_dim=num_per_dim)
    scale = float(model.logit_scale())
    out = [dict() for _ in range(len(photos))]
    for q in queries:
        probs = probabilities(photos, q.text_embeddings, scale)
        for i, p in enumerate(probs):
            out[i][q.tag] = ranking(q.values, p, top)
    return out
