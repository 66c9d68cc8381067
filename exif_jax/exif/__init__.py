"""Camera metadata (EXIF) as metadata-extractor / YFCC100M present it: reading, YFCC lines, text rendering."""
from exif_jax.exif.reader import ExifError, read_exif, read_exif_file

__all__ = ["ExifError", "read_exif", "read_exif_file"]
