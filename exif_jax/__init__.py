"""exif-jax: EXIF-as-Language in JAX/Flax NNX.

Light at import: heavy modules (models, jax) load on first use.
"""
__version__ = "0.1.0"


def load(weights, **kwargs):
    """Load a model from an exif-jax checkpoint directory, an exported file, or an original-format `.pth`.

    Returns an object with `encode_images(uint8 NHWC) -> np.ndarray` and `encode_texts(list[str]) -> np.ndarray`.
    """
    from exif_jax.inference import load as _load

    return _load(weights, **kwargs)
