"""Image normalization: uint8 NHWC -> float CLIP mean/std normalized NHWC (what the original model was trained on)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# OpenAI CLIP statistics (the original's torchvision Normalize), on a 0..1 scale.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_images(images, dtype=jnp.float32):
    """uint8 [..., H, W, 3] (0..255) -> `dtype` [..., H, W, 3], `(x / 255 - mean) / std`. Works under jit."""
    if images.shape[-1] != 3:
        raise ValueError(f"normalize_images expects channels-last RGB (last dim 3), got shape {tuple(images.shape)}")
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    x = (x - jnp.asarray(CLIP_MEAN, jnp.float32)) / jnp.asarray(CLIP_STD, jnp.float32)
    return x.astype(dtype)


def normalize_images_np(images: np.ndarray) -> np.ndarray:
    """Host-side numpy twin of `normalize_images` (float32)."""
    if images.shape[-1] != 3:
        raise ValueError(f"normalize_images expects channels-last RGB (last dim 3), got shape {tuple(images.shape)}")
    x = np.asarray(images, np.float32) / 255.0
    return ((x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)).astype(np.float32)
