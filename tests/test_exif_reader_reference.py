"""The EXIF reader against the Java metadata-extractor dumps of 101 real camera JPEGs (../shared/data).

The dumps are metadata-extractor's own output (the library Flickr used for YFCC100M's EXIF field), so they are
the independent reference for names, descriptions and order. Makernote blobs are not decoded by exif_jax; the
coverage target skips binary blobs (Makernote, User Comment, Thumbnail Offset/Length) and `Unknown tag (0x....)`
entries, the sequence test compares everything but the Makernote entry.
"""
from __future__ import annotations

import collections
import re

import pytest

from exif_jax.exif import read_exif_file

EXIF_DIRS = ("Exif IFD0", "Exif SubIFD", "Exif Thumbnail", "GPS", "Interoperability")
MAIN_DIRS = ("Exif IFD0", "Exif SubIFD", "Exif Thumbnail")
BLOBS = {"Makernote", "User Comment", "Thumbnail Offset", "Thumbnail Length"}
_TAG_LINE = re.compile(r"^\[(.+?) - 0x[0-9a-f]+\] (.*)$")


def parse_dump(text: str) -> list[tuple[str, str, str]]:
    """Tag lines of a metadata-extractor text dump (format in ../shared/data/README.md); split on \\n only."""
    items: list[list[str]] = []
    current = None
    for line in text.split("\n")[2:]:  # FILE: / TYPE: header
        if line.startswith("- ") or line.startswith("Generated using"):
            break  # directory tree and footer
        m = _TAG_LINE.match(line)
        if m:
            rest = m.group(2)
            if " = " in rest:
                name, desc = rest.split(" = ", 1)
            else:  # "Name = " with an empty value
                name, desc = (rest[:-2], "") if rest.endswith(" =") else (rest, "")
            current = [m.group(1), name, desc]
            items.append(current)
        elif line.startswith("[ERROR") or line == "":
            current = None
        elif current is not None:  # a description spanning several lines
            current[2] += "\n" + line
    return [tuple(x) for x in items]  # type: ignore[misc]


@pytest.fixture(scope="module")
def pairs(shared_data):
    root = shared_data / "photos_dev" / "metadata_extractor"
    dumps = sorted((root / "reference_dumps").glob("*.txt"))
    assert len(dumps) == 101, f"expected 101 reference dumps in {root}, found {len(dumps)}"
    out = []
    for dump in dumps:
        image = root / "images" / dump.name[: -len(".txt")]
        ref = parse_dump(dump.read_bytes().decode("utf-8", errors="replace"))
        out.append((dump.name, ref, read_exif_file(image)))
    return out


def _coverage(pairs, dirs):
    n_ref = n_found = n_exact = 0
    misses = []
    for name, ref, ours in pairs:
        have = collections.defaultdict(list)
        for d, t, s in ours:
            if d in dirs:
                have[(d, t)].append(s)
        for d, t, s in ref:
            if d not in dirs or t in BLOBS or t.startswith("Unknown tag"):
                continue
            n_ref += 1
            if (d, t) in have:
                n_found += 1
                if s in have[(d, t)]:
                    n_exact += 1
                else:
                    misses.append((name, d, t, s, have[(d, t)]))
            else:
                misses.append((name, d, t, s, None))
    return n_ref, n_found, n_exact, misses


def test_exif_ifd0_subifd_thumbnail_coverage(pairs):
    n_ref, n_found, n_exact, misses = _coverage(pairs, MAIN_DIRS)
    produced, exact = n_found / n_ref, n_exact / max(n_found, 1)
    print(f"\nExif IFD0/SubIFD/Thumbnail: {n_ref} reference items, produced {produced:.2%}, "
          f"exact description {exact:.2%} of those")
    assert n_ref > 3000
    assert produced >= 0.95, misses[:10]
    assert exact >= 0.95, misses[:10]


@pytest.mark.parametrize("directory", ["GPS", "Interoperability"])
def test_gps_and_interoperability_coverage(pairs, directory):
    n_ref, n_found, n_exact, misses = _coverage(pairs, (directory,))
    print(f"\n{directory}: {n_ref} reference items, produced {n_found / n_ref:.2%}, "
          f"exact description {n_exact / max(n_found, 1):.2%} of those")
    assert n_ref >= 100
    assert n_found / n_ref >= 0.95 and n_exact / max(n_found, 1) >= 0.95, misses[:10]


def test_full_item_sequences_match_dumps(pairs):
    """Directory grouping, entry order, unknown tags, user comments, thumbnail offsets: the whole EXIF part."""
    identical = 0
    diffs = []
    for name, ref, ours in pairs:
        want = [x for x in ref if x[0] in EXIF_DIRS and x[1] != "Makernote"]
        if ours == want:
            identical += 1
        else:
            diffs.append((name, [x for x in want if x not in ours][:3], [x for x in ours if x not in want][:3]))
    print(f"\n{identical}/{len(pairs)} files: every EXIF item (but Makernote) identical to the dump, in order")
    assert identical >= 0.97 * len(pairs), diffs[:5]


def test_known_values_of_one_camera(pairs):
    """Spot check of the descriptions the issue names, on the iPhone 4 photo."""
    items = dict(((d, t), s) for d, t, s in next(o for n, _, o in pairs if n == "Apple iPhone 4.jpg.txt"))
    assert items[("Exif SubIFD", "Exposure Time")] == "1/15 sec"
    assert items[("Exif SubIFD", "F-Number")] == "f/2.8"
    assert items[("Exif SubIFD", "Flash")] == "Flash did not fire, auto"
    assert items[("Exif IFD0", "Orientation")] == "Top, left side (Horizontal / normal)"
    assert items[("Exif IFD0", "X Resolution")] == "72 dots per inch"
    assert items[("GPS", "GPS Latitude")] == "41\u00b0 51' 10.8\""
