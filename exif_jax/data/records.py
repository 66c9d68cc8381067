"""The per-photo record schema (docs/ARCHITECTURE.md "Records") and its encode/parse/validate helpers."""
from __future__ import annotations

import json
from collections.abc import Sequence

from exif_jax.data import tfrecord

# name -> kind ("bytes" | "int64"); every record has all of them, one value each.
FEATURES: dict[str, str] = {
    "image": "bytes",
    "photo_id": "bytes",
    "exif_items": "bytes",
    "exif_text": "bytes",
    "width": "int64",
    "height": "int64",
    "make": "bytes",
    "model": "bytes",
    "source": "bytes",
}


class SchemaError(ValueError):
    """A record does not follow the exif-jax feature schema."""


def make_record(*, image: bytes, photo_id: str, items: Sequence[Sequence[str]], text: str, width: int,
                height: int, make: str, model: str, source: str) -> bytes:
    """Serialized `tf.train.Example` for one photo (JPEG bytes stored untouched)."""
    return tfrecord.encode_example({
        "image": image,
        "photo_id": photo_id,
        "exif_items": json.dumps([list(it) for it in items], ensure_ascii=False),
        "exif_text": text,
        "width": int(width),
        "height": int(height),
        "make": make,
        "model": model,
        "source": source,
    })


def parse_record(data: bytes, where: str = "<record>") -> dict:
    """Decodes and validates one record into python values (`image` bytes, str fields, int width/height).

    `exif_items` stays a JSON string (decode with `json.loads` where needed). Raises `SchemaError` naming `where`.
    """
    try:
        raw = tfrecord.decode_example(data)
    except ValueError as e:
        raise SchemaError(f"{where}: not a tf.train.Example ({e})") from None
    missing = [k for k in FEATURES if k not in raw]
    if missing:
        raise SchemaError(f"{where}: wrong feature schema: missing {', '.join(missing)} (has {', '.join(sorted(raw)) or 'nothing'}); "
                          "re-ingest with `exif-jax ingest`")
    out = {}
    for name, kind in FEATURES.items():
        vals = raw[name]
        if len(vals) != 1:
            raise SchemaError(f"{where}: feature {name!r} has {len(vals)} values, expected 1")
        v = vals[0]
        if kind == "int64":
            if not isinstance(v, int):
                raise SchemaError(f"{where}: feature {name!r} must be int64, got {type(v).__name__}")
            out[name] = v
        else:
            if not isinstance(v, bytes):
                raise SchemaError(f"{where}: feature {name!r} must be bytes, got {type(v).__name__}")
            out[name] = v if name == "image" else v.decode("utf-8", "replace")
    return out
