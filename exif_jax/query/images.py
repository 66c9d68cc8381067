"""Photos of any size -> patches -> one embedding per photo (or per patch, for region maps).

A photo is described by the mean of its patch embeddings over the splice detector's patch grid
(`exif_jax.splice.grid.patch_grid`, `num_per_dim` steps along the long side), each patch at the model's training
crop size and native resolution (never resized: resizing destroys camera traces). `view="centre"` takes one centre
crop instead. The photo embedding is the normalised mean of the L2-normalised patch embeddings, as the trainer's
per-photo retrieval eval computes it (`exif_jax.train.evaluate.retrieval_metrics`).

Patches of all photos are streamed through the encoder in fixed-size batches (the last one padded), so the jitted
encoder compiles once whatever the photo sizes.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from exif_jax.splice import grid as grid_lib

VIEWS = ("grid", "centre")
DEFAULT_VIEW = "grid"
# Patches per long side - 1 for the whole-photo embedding: 9 x <= 9 patches. Denser grids change the ranking
# little (the mean over 81 patches is already stable) and cost time; region maps use the splice default (30).
DEFAULT_NUM_PER_DIM = 8


class PhotoError(ValueError):
    """A photo cannot be read or is smaller than one patch; the message names it."""


def model_patch_size(model) -> int:
    """The crop size the model was trained on (`config.image_size`)."""
    return int(model.config.image_size)


def as_image(image, source: str) -> np.ndarray:
    """A path (str/PathLike) or an `uint8 [H, W, 3]` array -> `uint8 [H, W, 3]` RGB; `PhotoError` names `source`."""
    if isinstance(image, (str, os.PathLike)):
        from exif_jax.splice.io import ImageError, load_image

        try:
            return load_image(image)
        except ImageError as e:
            raise PhotoError(str(e)) from None
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise PhotoError(f"{source}: expected a path or an uint8 [H, W, 3] RGB array, got {arr.dtype} array of "
                         f"shape {tuple(arr.shape)}")
    return arr


@dataclasses.dataclass
class PhotoPatches:
    """The patches of one photo and where they lie (`grid` is None for a centre crop)."""

    source: str
    patches: np.ndarray  # uint8 [N, P, P, 3]
    grid: grid_lib.PatchGrid | None
    height: int
    width: int
    index: int = 0  # position in the caller's list (1-based in the CLI)
    path: object = None  # the file, when it came from one
    image: np.ndarray | None = None  # the decoded photo, kept only while a caller needs it (region maps)


def photo_patches(image: np.ndarray, patch: int, *, view: str = DEFAULT_VIEW,
                  num_per_dim: int = DEFAULT_NUM_PER_DIM, source: str = "image") -> PhotoPatches:
    """`uint8 [H, W, 3]` -> its patches: the patch grid (`view="grid"`) or one centre crop (`view="centre"`).

    A photo of exactly one patch gives that patch; one whose long side is too short for `num_per_dim` steps gets
    as many steps as it holds. Smaller than one patch: `PhotoError`.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r} (choose from {', '.join(VIEWS)})")
    h, w = image.shape[:2]
    if min(h, w) < patch:
        raise PhotoError(f"{source}: image {w}x{h} is smaller than one {patch}x{patch} patch "
                         f"(the model's crop size; photos are never resized)")
    if view == "centre" or max(h, w) == patch:
        y, x = (h - patch) // 2, (w - patch) // 2
        return PhotoPatches(source, np.ascontiguousarray(image[None, y:y + patch, x:x + patch]), None, h, w)
    steps = max(1, min(int(num_per_dim), max(h, w) - patch))
    g = grid_lib.patch_grid(h, w, patch, steps, source=source)
    return PhotoPatches(source, grid_lib.extract_patches(image, g), g, h, w)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def photo_embedding(patch_embeddings: np.ndarray) -> np.ndarray:
    """`[N, D]` raw patch embeddings -> `[D]` unit vector: the normalised mean of the normalised patches."""
    return l2_normalize(l2_normalize(patch_embeddings).mean(axis=0))


def stream_embeddings(model, photos: Iterable[PhotoPatches], batch_size: int | None = None
                      ) -> Iterator[tuple[PhotoPatches, np.ndarray]]:
    """Yields `(photo, raw patch embeddings [N, D])` in order; patches of consecutive photos share batches of
    exactly `batch_size` (the last padded with copies), so the encoder compiles once."""
    bs = int(batch_size or getattr(model, "batch_size", 64))
    pending: list[PhotoPatches] = []
    buf: list[np.ndarray] = []
    done: list[np.ndarray] = []
    n_buf = 0

    def flush(final: bool):
        nonlocal buf, n_buf
        if not buf:
            return
        x = np.concatenate(buf)
        take = len(x) if final else len(x) // bs * bs
        for s in range(0, take, bs):
            chunk = x[s:s + bs]
            k = len(chunk)
            if k < bs:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], bs - k, axis=0)])
            done.append(np.asarray(model.encode_images(chunk), np.float32)[:k])
        buf = [x[take:]] if take < len(x) else []
        n_buf = len(x) - take

    def ready():
        nonlocal done
        emb = np.concatenate(done) if done else None
        out = []
        while pending and emb is not None and len(emb) >= len(pending[0].patches):
            p = pending.pop(0)
            out.append((p, emb[:len(p.patches)]))
            emb = emb[len(p.patches):]
        done = [emb] if emb is not None and len(emb) else []
        return out

    for photo in photos:
        pending.append(photo)
        buf.append(photo.patches)
        n_buf += len(photo.patches)
        if n_buf >= bs:
            flush(final=False)
            yield from ready()
    flush(final=True)
    yield from ready()


def encode_photos(model, images: Sequence, *, view: str = DEFAULT_VIEW, num_per_dim: int = DEFAULT_NUM_PER_DIM,
                  patch: int | None = None, batch_size: int | None = None) -> np.ndarray:
    """Photos (paths or uint8 [H, W, 3] arrays of any size) -> `float [N, D]` unit photo embeddings.

    Raises `PhotoError` naming the first photo that cannot be read or is smaller than one patch.
    """
    patch = int(patch or model_patch_size(model))
    photos = (photo_patches(as_image(im, _name(im, i)), patch, view=view, num_per_dim=num_per_dim,
                            source=_name(im, i)) for i, im in enumerate(images))
    out = [photo_embedding(emb) for _, emb in stream_embeddings(model, photos, batch_size)]
    dim = int(model.config.embed_dim)
    return np.stack(out) if out else np.zeros((0, dim))


def _name(image, index: int) -> str:
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"image {index}"
