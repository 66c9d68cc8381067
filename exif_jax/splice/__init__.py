"""Zero-shot splice detection and localization (EXIF-as-Language evaluator, vectorized).

    from exif_jax.splice import localize, model_embed_fn
    res = localize(image_uint8_hwc, model_embed_fn(exif_jax.load(weights)))
    res.score, res.pair_score, res.heatmap, res.cells
"""
from exif_jax.splice.embed import batched, legacy_invert, model_embed_fn
from exif_jax.splice.grid import GridError, PatchGrid, extract_patches, patch_grid
from exif_jax.splice.figures import overlay
from exif_jax.splice.io import ImageError, load_image, write_png
from exif_jax.splice.meanshift import mean_shift
from exif_jax.splice.pair_score import pair_score
from exif_jax.splice.pipeline import SpliceResult, localize, localize_embeddings, resize_bilinear
from exif_jax.splice.voting import consistency_volume, detection_score

__all__ = [
    "GridError", "ImageError", "PatchGrid", "SpliceResult", "batched", "consistency_volume", "detection_score",
    "extract_patches", "legacy_invert", "load_image", "localize", "localize_embeddings", "mean_shift",
    "model_embed_fn", "overlay", "pair_score", "patch_grid", "resize_bilinear", "write_png",
]
