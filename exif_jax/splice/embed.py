"""Batched patch embedding: fixed-size batches (last one padded) so the jitted encoder compiles once."""
from __future__ import annotations

from typing import Callable

import numpy as np

EmbedFn = Callable[[np.ndarray], np.ndarray]


def legacy_invert(patches: np.ndarray) -> np.ndarray:
    """The original evaluator's input quirk: `(256 - v) mod 256` (its float patches went through a uint8 cast)."""
    return np.negative(np.asarray(patches, np.uint8))


def batched(encode: EmbedFn, batch_size: int = 64) -> EmbedFn:
    """Wrap `encode(uint8 [B, P, P, 3]) -> [B, D]` to take any number of patches in fixed-size batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def embed(patches: np.ndarray) -> np.ndarray:
        n = len(patches)
        out = []
        for start in range(0, n, batch_size):
            chunk = patches[start:start + batch_size]
            k = len(chunk)
            if k < batch_size:  # pad with copies of the last patch: same shape -> no recompilation
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - k, axis=0)])
            out.append(np.asarray(encode(chunk), np.float32)[:k])
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return embed


def model_embed_fn(model, batch_size: int = 64, invert: bool = False) -> EmbedFn:
    """Embedding function of an `exif_jax.load(...)` model (`ExifModel.encode_images`), batched and padded."""
    embed = batched(model.encode_images, batch_size)
    if invert:
        return lambda patches: embed(legacy_invert(patches))
    return embed


def model_patch_size(model, default: int = 124) -> int:
    """The crop size a loaded model was trained on (`config.image_size`; ViTs accept only that size)."""
    cfg = getattr(model, "config", None)
    try:
        return int(cfg.image_size)
    except (AttributeError, TypeError, ValueError, KeyError):
        return default


def load_model_or_report(weights, prog: str, step: int | None = None):
    """`exif_jax.load(weights, step=step)`, or None after one line on stderr naming the weights and the problem."""
    import sys

    import exif_jax

    try:
        return exif_jax.load(weights) if step is None else exif_jax.load(weights, step=step)
    except (OSError, ValueError, KeyError) as e:
        msg = str(e) if str(weights) in str(e) else f"{weights}: {e}"
        print(f"{prog}: cannot load weights: {msg}", file=sys.stderr)
        return None
