"""Zero-shot EXIF queries for whole photos and for regions (`exif-jax query`, `ExifModel.query`).

- `images`: photos of any size -> patches on the splice grid (or a centre crop) -> one embedding per photo.
- `prompts`: candidate values of a tag -> texts (the dataset's texts with the tag set, ensembled, or `Tag: value`).
- `core`: softmax(logit_scale * cos) ranking, `query(model, images, {tag: values})`.
- `maps`: per-region probability maps over the patch grid, PNG panels with a colour bar.
"""
from exif_jax.query.core import QueryError, TagQuery, prepare, probabilities, query, ranking
from exif_jax.query.images import PhotoError, encode_photos
from exif_jax.query.prompts import Dataset, DatasetError, load_dataset

__all__ = ["Dataset", "DatasetError", "PhotoError", "QueryError", "TagQuery", "encode_photos", "load_dataset",
           "prepare", "probabilities", "query", "ranking"]
