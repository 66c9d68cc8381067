"""The image tower's fixed input filter (`model.image_filter`) against OpenCV, and its place in the model."""
import cv2
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exif_jax.models import build_model, tiny_model_config
from exif_jax.models.filters import apply_filter, gaussian_blur


@pytest.mark.parametrize("sigma", [0.8, 1.0, 1.7])
def test_blur_equals_opencv(sigma):
    x = np.random.default_rng(0).normal(size=(2, 37, 45, 3)).astype(np.float32)
    ref = np.stack([cv2.GaussianBlur(xi, (0, 0), sigma) for xi in x])  # BORDER_REFLECT_101, radius round(4 sigma)
    assert np.abs(np.asarray(gaussian_blur(jnp.asarray(x), sigma)) - ref).max() < 1e-5


def test_highpass_is_the_scaled_residual_and_none_is_identity():
    x = np.random.default_rng(1).normal(size=(1, 24, 24, 3)).astype(np.float32)
    ref = 16.0 * (x - np.stack([cv2.GaussianBlur(xi, (0, 0), 1.0) for xi in x]))
    assert np.abs(np.asarray(apply_filter(jnp.asarray(x), "highpass")) - ref).max() < 1e-4
    assert np.array_equal(np.asarray(apply_filter(jnp.asarray(x), "none")), x)
    assert np.abs(np.asarray(apply_filter(jnp.asarray(x), "rgb+highpass")) - (x + ref)).max() < 1e-4
    flat = np.full((1, 24, 24, 3), 0.3, np.float32)  # no residual in a flat image
    assert np.abs(np.asarray(apply_filter(jnp.asarray(flat), "highpass"))).max() < 1e-5


def test_model_applies_the_filter_before_the_tower():
    """The same weights embed an image and its brightness-shifted copy identically through the high-pass (a
    constant offset has no residual), and differently without it."""
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    out = {}
    for name in ("none", "highpass"):
        m = build_model(tiny_model_config("resnet50", image_filter=name), nnx.Rngs(0))
        a = np.asarray(m.encode_image(jnp.asarray(x)))
        b = np.asarray(m.encode_image(jnp.asarray(x + 0.5)))
        out[name] = np.abs(a - b).max() / np.abs(a).max()
    assert out["highpass"] < 1e-4 < out["none"]


def test_unknown_filter_is_refused():
    with pytest.raises(ValueError, match="image_filter 'sobel'"):
        build_model(tiny_model_config("resnet50", image_filter="sobel"), nnx.Rngs(0))
