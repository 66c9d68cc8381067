"""Values read by exif_jax agree with Pillow's independent EXIF parser on every shared camera JPEG.

The digicam_cc0 and exif_samples_small photos have no metadata-extractor dumps; Pillow (a separate TIFF/EXIF
implementation) gives the raw numbers, which must match the numbers inside our descriptions.
"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
from PIL import Image

from exif_jax.exif import read_exif_file

FOLDERS = ("digicam_cc0", "exif_samples_small", "metadata_extractor/images")


def _photos(shared_data):
    out = []
    for folder in FOLDERS:
        out += sorted(p for p in (shared_data / "photos_dev" / folder).rglob("*") if p.suffix.lower() == ".jpg")
    return out


def _num(text: str) -> float:
    return float(Fraction(text)) if "/" in text else float(text)


def _ascii(v) -> str | None:
    if not isinstance(v, str) or not v.isascii():
        return None
    return v.split("\x00")[0]  # metadata-extractor stops a string at its first NUL


def test_values_agree_with_pillow(shared_data):
    photos = _photos(shared_data)
    assert len(photos) == 182, len(photos)
    checked = 0
    for path in photos:
        items = read_exif_file(path)
        ours = {}
        for d, t, s in items:
            ours.setdefault((d, t), s)
        with Image.open(path) as im:
            ifd0 = im.getexif()
            sub = ifd0.get_ifd(0x8769)
        if not ifd0:
            assert items == [], f"{path.name}: Pillow sees no EXIF, we read {items[:3]}"
            continue
        for tag, name in ((0x010F, "Make"), (0x0110, "Model"), (0x0131, "Software")):
            want = _ascii(ifd0.get(tag))
            if want is not None:
                assert ours.get(("Exif IFD0", name)) == want, (path.name, name)
                checked += 1
        want = _ascii(sub.get(0x9003))
        if want is not None:
            assert ours[("Exif SubIFD", "Date/Time Original")] == want, path.name
            checked += 1
        for tag, name, prefix, suffix, tol in (
            (0x829A, "Exposure Time", "", " sec", 1e-6),
            (0x829D, "F-Number", "f/", "", 0.05 + 1e-9),
            (0x920A, "Focal Length", "", " mm", 0.05 + 1e-9),
        ):
            if tag not in sub:
                continue
            want = float(sub[tag])
            if math.isnan(want) or math.isinf(want):
                continue
            got = ours[("Exif SubIFD", name)]
            assert got.startswith(prefix) and got.endswith(suffix), (path.name, got)
            value = _num(got[len(prefix) : len(got) - len(suffix)])
            limit = tol * max(1.0, abs(want)) if name == "Exposure Time" else tol  # relative / display rounding
            assert abs(value - want) <= limit, (path.name, name, got, want)
            checked += 1
        if 0x8827 in sub:
            iso = sub[0x8827]
            iso = iso[0] if isinstance(iso, tuple) else iso
            assert ours[("Exif SubIFD", "ISO Speed Ratings")] == str(int(iso)), path.name
            checked += 1
        if 0xA002 in sub and isinstance(sub[0xA002], int):
            assert ours[("Exif SubIFD", "Exif Image Width")] == f"{sub[0xA002]} pixels", path.name
            checked += 1
    print(f"\n{checked} values checked against Pillow on {len(photos)} photos")
    assert checked > 700


@pytest.mark.parametrize("name", ["WWL_(Polaroid)_ION230.jpg"])
def test_model_with_nul_byte(shared_data, name):
    """The Model string of this camera has a NUL inside: metadata-extractor (and we) stop the string there."""
    path = next((shared_data / "photos_dev" / "exif_samples_small").rglob(name))
    items = read_exif_file(path)
    with Image.open(path) as im:
        raw_model = im.getexif()[0x0110]
    assert "\x00" in raw_model
    model = [s for d, t, s in items if (d, t) == ("Exif IFD0", "Model")]
    assert model == [raw_model.split("\x00")[0]]
    assert all("\x00" not in s for d, _, s in items if d == "Exif IFD0")


def test_tag_sets_agree_with_exifread(shared_data):
    """Which tags each directory holds, against ExifRead (a third, independent EXIF parser)."""
    import logging

    import exifread

    from exif_jax.exif import tags as T

    logging.getLogger("exifread").setLevel(logging.CRITICAL)
    dirs = {"Image": T.IFD0, "EXIF": T.SUBIFD, "GPS": T.GPS, "Interoperability": T.INTEROP, "Thumbnail": T.THUMBNAIL}
    # pointers and blocks that metadata-extractor turns into other directories, not items
    not_items = {0x8769, 0x8825, 0xA005, 0x014A, 0x927C, 0xC4A5, 0x83BB, 0x02BC}
    total = missing = extra = 0
    for path in _photos(shared_data):
        with open(path, "rb") as fh:
            tags = exifread.process_file(fh, details=False)
        ref = set()
        for key, tag in tags.items():
            d = dirs.get(key.split(" ")[0])
            if d is not None and hasattr(tag, "tag") and tag.tag not in not_items:
                ref.add((d, T.tag_name(d, tag.tag)))
        ours = {(d, t) for d, t, _ in read_exif_file(path)}
        total += len(ref)
        missing += len(ref - ours)
        extra += len({x for x in ours - ref if x[1] != "User Comment"})  # ExifRead skips it without details
    print(f"\nExifRead: {total} tags, {missing} not produced by exif_jax, {extra} only in exif_jax")
    assert total > 7000
    assert missing <= 0.01 * total and extra <= 0.01 * total
