"""Simulated cameras: fixed processing chains (CFA + demosaicing, ISO noise, denoising/sharpening, resampling,
JPEG tables and subsampling) that turn any photo into JPEGs with EXIF describing the chain. See camera.py, zoo.py
and `exif-jax simulate --help`."""
from exif_jax.simulate.camera import SOFTWARE, Camera, Look, quantization_tables, reference
from exif_jax.simulate.zoo import SimulateError, default_zoo, prepare_out, render_zoo

__all__ = ["Camera", "Look", "SOFTWARE", "SimulateError", "default_zoo", "prepare_out", "quantization_tables",
           "reference", "render_zoo"]
