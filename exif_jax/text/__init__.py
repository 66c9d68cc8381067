"""Text side of exif-jax: the distilbert-base-uncased WordPiece tokenizer with bucketed padding."""
from exif_jax.text.tokenizer import DEFAULT_BUCKETS, ExifTokenizer, bucket_for

__all__ = ["DEFAULT_BUCKETS", "ExifTokenizer", "bucket_for"]
