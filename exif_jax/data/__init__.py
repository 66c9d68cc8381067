"""Data: TFRecord/ArrayRecord records (CRC-checked), `exif-jax ingest`, and the grain input pipeline.

Heavy modules are imported lazily: `from exif_jax.data.pipeline import make_dataset`.
"""
