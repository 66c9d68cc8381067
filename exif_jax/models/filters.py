"""Fixed (not learned) input filters for the image tower: `config.model.image_filter`.

    "none"      the CLIP-normalized pixels, as the original (ResNet-50 on RGB)
    "highpass"  gain * (x - GaussianBlur_sigma(x)) per channel: the image's noise residual
    "rgb+highpass"  x + gain * (x - GaussianBlur_sigma(x)): the pixels with their residual amplified (colour kept)

Why: a camera's traces (sensor noise, demosaicing, denoising/sharpening, JPEG quantization) live in the residual,
while the content lives in the low frequencies. A small tower trained for minutes on RGB learns content (which photo)
long before traces: on renders of the same photos through the simulated zoo, a narrow ResNet trained supervised on
RGB crops identifies held-out photos' cameras at chance, and at 0.72 (chance 0.08) on the residual (see
docs/LEARNING.md). This is the fixed high-pass front end of forensic networks (SRM filters, Bayar's constrained
convolution), here with one Gaussian. The blur equals OpenCV's `GaussianBlur(x, (0, 0), sigma)` on float input
(kernel radius round(4 sigma), BORDER_REFLECT_101), which tests/test_filters.py checks.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

FILTERS = ("none", "highpass", "rgb+highpass")


def gaussian_taps(sigma: float) -> np.ndarray:
    """1-D Gaussian taps as OpenCV builds them for float images: radius round(4 sigma), normalized to sum 1."""
    radius = max(int(round(4.0 * float(sigma))), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2.0 * float(sigma) ** 2))
    return (k / k.sum()).astype(np.float32)


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """[n, n] matrix B with (B @ v) = the Gaussian blur of a length-n signal v with reflect-101 borders."""
    taps = gaussian_taps(sigma)
    r = (taps.shape[0] - 1) // 2
    if n <= r:
        raise ValueError(f"image_filter: images of side {n} are too small for a blur of radius {r}")
    m = np.zeros((n, n), np.float64)
    for i in range(n):
        for k, t in enumerate(taps):
            j = i + k - r
            j = -j if j < 0 else (2 * (n - 1) - j if j >= n else j)  # reflect-101: ... 2 1 | 0 1 2 ... n-2 | n-1 n-2
            m[i, j] += t
    return m.astype(np.float32)


def gaussian_blur(x: jax.Array, sigma: float) -> jax.Array:
    """Separable per-channel Gaussian blur of NHWC `x`, reflect-101 borders, as two small matmuls (rows, then
    columns). XLA's depthwise convolution on CPU took longer than the whole smoke tower; a [H, H] and a [W, W] matmul
    over crops of <= a few hundred pixels is a fraction of it. HIGHEST precision: the residual x - blur(x) is a small
    difference of large values, which TPU's default bf16 matmul passes would swamp."""
    hi = jax.lax.Precision.HIGHEST
    bh = jnp.asarray(blur_matrix(x.shape[1], sigma), x.dtype)
    bw = jnp.asarray(blur_matrix(x.shape[2], sigma), x.dtype)
    y = jnp.einsum("ij,bjwc->biwc", bh, x, precision=hi)
    return jnp.einsum("kw,bhwc->bhkc", bw, y, precision=hi)


def apply_filter(x: jax.Array, name: str, *, sigma: float = 1.0, gain: float = 16.0) -> jax.Array:
    """The image tower's input filter `name` on CLIP-normalized NHWC images."""
    if name == "none":
        return x
    if name == "highpass":
        return gain * (x - gaussian_blur(x, sigma))
    if name == "rgb+highpass":
        return x + gain * (x - gaussian_blur(x, sigma))
    raise ValueError(f"unknown model.image_filter {name!r}: expected one of {', '.join(FILTERS)}")


def check_filter(name: str, sigma: float, gain: float) -> None:
    if name not in FILTERS:
        raise ValueError(f"unknown model.image_filter {name!r}: expected one of {', '.join(FILTERS)}")
    if name != "none" and not (sigma > 0 and math.isfinite(sigma) and gain > 0 and math.isfinite(gain)):
        raise ValueError(f"model.image_filter_sigma {sigma} and image_filter_gain {gain} must be positive")
