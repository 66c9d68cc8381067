"""The bundled quickstart photos are lossless crops of allowed real camera JPEGs, with their EXIF intact.

References: the original files in ../shared/data (decoded by Pillow/libjpeg), ExifRead's tag parse, and the
shared data README's licence table (only `metadata_extractor` and `digicam_cc0` may be copied).
"""
from __future__ import annotations

import csv
import pathlib
import re

import exifread
import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1] / "exif_jax" / "assets" / "quickstart"
ALLOWED = {"https://github.com/drewnoakes/metadata-extractor-images": "metadata_extractor",
           "https://github.com/drewnoakes/digicam_corpus": "digicam_cc0"}


def _rows():
    rows = []
    for line in (ROOT / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        repo = cells[1].split(" @ ")[0]
        w, h, x, y = map(int, re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", cells[6]).groups())
        rows.append(dict(file=cells[0].strip("`"), repo=repo, source_path=cells[2].strip("`"), licence=cells[3],
                         camera=cells[4], crop=(w, h, x, y)))
    return rows


ROWS = _rows()


def test_sources_cover_every_bundled_photo_and_the_size_budget():
    files = sorted(p.name for p in (ROOT / "photos").glob("*"))
    assert files == sorted(r["file"] for r in ROWS)
    assert 24 <= len(files) <= 40
    assert sum((ROOT / "photos" / f).stat().st_size for f in files) < 4_000_000
    assert all(r["repo"] in ALLOWED for r in ROWS)  # never exif_samples_small
    assert len({r["camera"] for r in ROWS}) == len(ROWS)  # one camera each
    assert len({r["camera"].split(" / ")[0].strip().lower() for r in ROWS}) >= 15  # varied makes


def _source(shared_data, row) -> pathlib.Path:
    folder = shared_data / "photos_dev" / ALLOWED[row["repo"]]
    manifest = {r["source_path"]: r for r in csv.DictReader(open(folder / "manifest.csv", encoding="utf-8"))}
    m = manifest[row["source_path"]]
    assert f"{m['Make']} / {m['Model']}" == row["camera"]
    return (folder / "images" if (folder / "images").is_dir() else folder) / m["file"]


def _component_tables(im):
    """Quantization table of each colour component (tables may be renumbered, their values may not change)."""
    return [list(im.quantization[table]) for (_, _, _, table) in im.layer]


def _exif_tags(path):
    with open(path, "rb") as f:
        tags = exifread.process_file(f, details=True)
    # jpegtran rewrites the EXIF pixel dimensions to the crop; everything else must survive.
    skip = {"JPEGThumbnail", "EXIF ExifImageWidth", "EXIF ExifImageLength"}
    # ExifRead reads some maker-note entries past the EXIF segment (into the image stream, which the crop
    # changed): unknown tags ("MakerNote Tag 0x....") and empty values are not EXIF content. The segment's own
    # bytes are compared separately.
    return {k: str(v) for k, v in tags.items() if k not in skip and not k.startswith("MakerNote Tag 0x")
            and not (k.startswith("MakerNote ") and str(v).strip() in ("", "[]"))}


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_photo_is_a_lossless_crop_with_exif(shared_data, row):
    src, dst = _source(shared_data, row), ROOT / "photos" / row["file"]
    w, h, x, y = row["crop"]
    with Image.open(src) as a, Image.open(dst) as b:
        assert b.format in ("JPEG", "MPO") and b.size == (w, h)  # MPO: JPEG with a multi-picture APP2
        exif_a, exif_b = a.info.get("exif", b""), b.info.get("exif", b"")
        # The APP1 EXIF segment is copied; jpegtran only patches the two pixel-dimension values in place.
        assert len(exif_a) == len(exif_b) > 100
        assert np.count_nonzero(np.frombuffer(exif_a, np.uint8) != np.frombuffer(exif_b, np.uint8)) <= 16
        assert _component_tables(a) == _component_tables(b)  # same quantization: not re-encoded
        pa = np.asarray(a.convert("RGB"))[y:y + h, x:x + w].astype(int)
        pb = np.asarray(b.convert("RGB")).astype(int)
    # Identical DCT blocks decode to identical pixels away from the crop border (chroma upsampling reads
    # neighbouring blocks, which the crop removed).
    assert np.array_equal(pa[16:-16, 16:-16], pb[16:-16, 16:-16])
    assert np.abs(pa - pb).max() <= 32
    tags_src, tags_dst = _exif_tags(src), _exif_tags(dst)
    assert len(tags_src) >= 15 and tags_dst == tags_src


def _multi_rows():
    rows = []
    path = ROOT / "SOURCES_multi.md"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        w, h, x, y = map(int, re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", cells[6]).groups())
        rows.append(dict(file=cells[0].strip("`"), repo=cells[1].split(" @ ")[0], source_path=cells[2].strip("`"),
                         licence=cells[3], camera=cells[4], crop=(w, h, x, y)))
    return rows


MULTI_ROWS = _multi_rows()


def test_multi_set_covers_several_photos_per_camera_within_budget():
    files = sorted(p.name for p in (ROOT / "multi").glob("*"))
    assert files == sorted(r["file"] for r in MULTI_ROWS)
    per_camera = {}
    for r in MULTI_ROWS:
        per_camera[r["camera"]] = per_camera.get(r["camera"], 0) + 1
    assert len(per_camera) >= 10 and min(per_camera.values()) >= 3
    assert sum((ROOT / "multi" / f).stat().st_size for f in files) < 5_000_000
    assert all(r["repo"] == "https://github.com/drewnoakes/digicam_corpus" and r["licence"] == "CC0-1.0"
               for r in MULTI_ROWS)


@pytest.mark.parametrize("row", MULTI_ROWS, ids=[r["file"] for r in MULTI_ROWS])
def test_multi_photo_is_a_lossless_crop_of_photos_multi(shared_data, row):
    folder = shared_data / "photos_multi"
    manifest = {r["source_path"]: r for r in csv.DictReader(open(folder / "manifest.tsv", encoding="utf-8"),
                                                            delimiter="\t")}
    m = manifest[row["source_path"]]
    assert m["camera"] == row["camera"]
    src, dst = folder / m["file"], ROOT / "multi" / row["file"]
    w, h, x, y = row["crop"]
    with Image.open(src) as a, Image.open(dst) as b:
        assert b.size == (w, h) and _component_tables(a) == _component_tables(b)
        pa = np.asarray(a.convert("RGB"))[y:y + h, x:x + w].astype(int)
        pb = np.asarray(b.convert("RGB")).astype(int)
    assert np.array_equal(pa[16:-16, 16:-16], pb[16:-16, 16:-16])
    with open(src, "rb") as fa, open(dst, "rb") as fb:
        ta, tb = exifread.process_file(fa, details=False), exifread.process_file(fb, details=False)
    assert str(tb["Image Model"]) == str(ta["Image Model"]) and str(tb["Image Make"]) == str(ta["Image Make"])
