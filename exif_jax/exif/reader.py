"""EXIF items of a JPEG, named and described as metadata-extractor (the library behind YFCC100M's EXIF) does.

    >>> from exif_jax.exif import read_exif_file
    >>> read_exif_file("photo.jpg")[:3]
    [('Exif IFD0', 'Make', 'Apple'), ('Exif IFD0', 'Model', 'iPhone 4'),
     ('Exif IFD0', 'Orientation', 'Top, left side (Horizontal / normal)')]

Items are `(directory, tag, description)` triples of str: directories `Exif IFD0`, `Exif SubIFD`,
`Interoperability`, `GPS`, `Exif Thumbnail` in the order metadata-extractor opens them, tags in IFD entry order.
Makernotes, IPTC, XMP and PrintIM blocks are not decoded (metadata-extractor reports them as separate directories,
which the EXIF text does not use). A tag whose description metadata-extractor leaves null is given as "".

Errors: data that is not a JPEG, or whose EXIF block has no readable TIFF header, raises `ExifError` (a
`ValueError`) with a one-line message naming the source; a JPEG without EXIF gives `[]`; EXIF that breaks off or
points outside itself gives the items read before the damage. Nothing else is raised, and nothing loops unbounded.
"""
from __future__ import annotations

import os

from exif_jax.exif import tags as T
from exif_jax.exif.descriptions import describe
from exif_jax.exif.reader_tiff import EXIF_PREAMBLE, MAX_EXIF_SEGMENTS, TiffError, iter_jpeg_segments, read_exif_segment

Item = tuple[str, str, str]

__all__ = ["ExifError", "Item", "read_exif", "read_exif_file", "STANDARD_DIRECTORIES"]

STANDARD_DIRECTORIES = (T.IFD0, T.SUBIFD, T.INTEROP, T.GPS, T.THUMBNAIL, T.IMAGE)
MAX_FILE_BYTES = 1 << 30


class ExifError(ValueError):
    """The data is not a JPEG, or its EXIF block cannot be read. The message names the source."""


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


def read_exif(data: bytes, source: str = "<bytes>", problems: list | None = None) -> list[Item]:
    """EXIF items of the JPEG `data`; `source` (a path or id) is named in error messages. `problems`, when given,
    receives a few words for each damage read around (an EXIF block or file that breaks off)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExifError(f"{_one_line(source)}: expected JPEG bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ExifError(f"{_one_line(source)}: empty file, not a JPEG")
    if data[:2] != b"\xff\xd8":
        raise ExifError(f"{_one_line(source)}: not a JPEG (starts with 0x{data[:4].hex() or '00'}, expected 0xffd8)")
    segments, note = iter_jpeg_segments(data)
    if note and problems is not None:
        problems.append(f"damaged JPEG ({note})")
    items: list[Item] = []
    n_exif = 0
    for marker, payload in segments:
        if marker != 0xE1 or not payload.startswith(EXIF_PREAMBLE):
            continue
        n_exif += 1
        if n_exif > MAX_EXIF_SEGMENTS:
            break
        try:
            directories, truncated = read_exif_segment(payload)
        except TiffError as e:
            if items:  # a later broken copy does not spoil the items already read
                if problems is not None:
                    problems.append(f"a second EXIF block is corrupt ({e})")
                continue
            raise ExifError(f"{_one_line(source)}: corrupt EXIF block: {e}") from None
        if truncated and problems is not None:
            problems.append("the EXIF block breaks off; items after the damage are missing")
        for d in directories:
            for tag, _value in d.values.items():
                desc = describe(d.name, d.values, tag)
                items.append((d.name, T.tag_name(d.name, tag), "" if desc is None else desc))
    return items


def read_exif_file(path: str | os.PathLike, problems: list | None = None) -> list[Item]:
    """EXIF items of the JPEG file at `path` (errors: `ExifError` naming the path)."""
    src = os.fspath(path)
    try:
        size = os.path.getsize(src)
        if size > MAX_FILE_BYTES:
            raise ExifError(f"{src}: file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit for a JPEG")
        with open(src, "rb") as f:
            data = f.read()
    except ExifError:
        raise
    except OSError as e:
        raise ExifError(f"{src}: cannot read file: {e.strerror or e}") from None
    return read_exif(data, source=src, problems=problems)
