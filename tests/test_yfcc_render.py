"""YFCC line parsing and EXIF -> text rendering, checked against independent references:

- the Java metadata-extractor reference dumps the YFCC-style lines were built from (parsed here by the dump format,
  not by our code);
- the original EXIF-as-language repository's outputs on those lines (`legacy_golden_dev.jsonl`,
  `legacy_tag_fractions_dev.json`, produced by running its own functions);
- `urllib.parse.quote_plus` encodings built in the test.
"""
import bz2
import csv
import gzip
import json
import re
from collections import Counter
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exif_jax.exif.render import (
    DEFAULT_CLEAN_TAGS,
    CleanRenderer,
    TagTable,
    get_renderer,
    legacy_exif,
)
from exif_jax.exif.yfcc import iter_yfcc_file, parse_yfcc_line

# Directories the YFCC-style lines were built from (shared/data/README.md, yfcc_style section).
_SUB_DIRS = {"Apple Run Time", "Olympus Camera Settings", "Olympus Equipment", "Olympus Focus Info",
             "Olympus Image Processing", "Olympus Raw Development", "Olympus Raw Development 2",
             "Nikon PictureControl 1"}
_TOP_DIRS = {"Exif IFD0", "Exif SubIFD", "Exif Thumbnail", "GPS", "Interoperability"}
_TAG_LINE = re.compile(r"^\[([^\]]+?) - 0x[0-9a-fA-F]+\] (.*)$")


def _included(directory):
    return directory in _TOP_DIRS or directory in _SUB_DIRS or directory.endswith(" Makernote")


def _dump_items(path):
    """Independent reader of a metadata-extractor text dump -> [(directory, tag, description)]."""
    items, prev = [], None
    for line in path.read_bytes().decode("utf-8").split("\n"):
        m = _TAG_LINE.match(line)
        if m:
            directory, rest = m.groups()
            tag, _, description = rest.partition(" = ")
            prev = [directory, tag, description] if _included(directory) else None
            if prev is not None:
                items.append(prev)
        elif not line.strip():
            prev = None
        elif line.startswith("[ERROR"):
            continue
        elif prev is not None:
            prev[2] += "\n" + line
    return [tuple(it) for it in items]


@pytest.fixture(scope="module")
def yfcc_dir(shared_data):
    return shared_data / "yfcc_style"


@pytest.fixture(scope="module")
def dev_rows(yfcc_dir):
    return list(iter_yfcc_file(yfcc_dir / "exif_lines_dev.tsv"))


@pytest.fixture(scope="module")
def golden(yfcc_dir):
    with open(yfcc_dir / "legacy_golden_dev.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------------------------------------ parsing


def test_yfcc_lines_decode_to_the_reference_dump_items(shared_data, dev_rows):
    base = shared_data / "photos_dev" / "metadata_extractor"
    with open(shared_data / "yfcc_style" / "photo_ids.tsv", encoding="utf-8") as f:
        names = {row["photo_id"]: row["file_name"] for row in csv.DictReader(f, delimiter="\t")}
    assert len(dev_rows) == 101
    n_items = 0
    for photo_id, items in dev_rows:
        expected = _dump_items(base / "reference_dumps" / f"{names[photo_id]}.txt")
        assert items == expected, names[photo_id]
        n_items += len(items)
    assert n_items > 5000
    # Values kept verbatim: trailing spaces, commas, colons, control characters and the multi-line Sigma value.
    all_values = [d for _, items in dev_rows for _, _, d in items]
    assert sum(v.endswith(" ") for v in all_values) == 165
    assert any("\n" in v for v in all_values)
    assert any("\x00" in v for v in all_values)


def test_parse_yfcc_line_rules():
    line = "42\tExif+SubIFD.Exposure+Time:1%2F15+sec,Exif+IFD0.Make:Canon\n"
    assert parse_yfcc_line(line) == ("42", [("Exif SubIFD", "Exposure Time", "1/15 sec"), ("Exif IFD0", "Make", "Canon")])
    # no photo id, CRLF, garbage items (no ':' / no '.'), empty items, empty value
    assert parse_yfcc_line("GPS.GPS+Altitude:3+m,,junk,NoDot:1,Exif+IFD0.Artist:\r\n") == (
        None, [("GPS", "GPS Altitude", "3 m"), ("Exif IFD0", "Artist", "")])
    assert parse_yfcc_line("") == (None, [])
    assert parse_yfcc_line("   \n") == (None, [])
    assert parse_yfcc_line("7\t") == ("7", [])
    assert parse_yfcc_line(b"9\tExif+IFD0.Model:%CE%BC+800") == ("9", [("Exif IFD0", "Model", "\u03bc 800")])
    # a value's first ':' splits the item; '%3A' inside values stays a value character
    assert parse_yfcc_line("1\tExif+IFD0.Date%2FTime:2011%3A01%3A13+14%3A33%3A39")[1] == [
        ("Exif IFD0", "Date/Time", "2011:01:13 14:33:39")]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(_text.filter(lambda s: s and "." not in s), _text.filter(bool), _text), max_size=8),
       st.integers(min_value=1, max_value=10**12))
def test_parse_inverts_quote_plus_construction(items, photo_id):
    line = f"{photo_id}\t" + ",".join(
        quote_plus(d, safe="") + "." + quote_plus(t, safe="") + ":" + quote_plus(v, safe="") for d, t, v in items)
    assert parse_yfcc_line(line) == (str(photo_id), items)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(st.sampled_from("%+2Bab5AFf0c9EeG\\x\uffff\u00e9\u20ac ,:.") | st.characters(blacklist_categories=("Cs",)),
               max_size=40))
def test_fast_value_decoding_equals_unquote_plus(s):
    from urllib.parse import unquote_plus

    from exif_jax.exif.yfcc import _unquote_plus_fast

    assert _unquote_plus_fast(s) == unquote_plus(s)
    # raw whitespace and ',' never occur inside an encoded line (quote_plus encodes them)
    parts = "".join(c for c in s if not c.isspace() and c != ",").split(":")
    line = "1\t" + ",".join(f"A.t{i}:{part}" for i, part in enumerate(parts))
    assert [v for _, _, v in parse_yfcc_line(line)[1]] == [unquote_plus(p) for p in parts]


def test_iter_yfcc_file_skips_and_counts_garbage_and_reads_compressed(tmp_path):
    lines = ["1\tExif+IFD0.Make:Apple,Exif+IFD0.Model:iPhone+4", "", "photo_id\tfile_name", "garbage",
             "Exif+IFD0.Make:Nikon", "3\tGPS.GPS+Altitude:3+metres"]
    text = "\n".join(lines) + "\n"
    for name, writer in [("a.tsv", lambda p: p.write_text(text)), ("a.tsv.gz", lambda p: p.write_bytes(gzip.compress(text.encode()))),
                         ("a.tsv.bz2", lambda p: p.write_bytes(bz2.compress(text.encode())))]:
        path = tmp_path / name
        writer(path)
        stats = {}
        rows = list(iter_yfcc_file(path, stats=stats))
        assert rows == [("1", [("Exif IFD0", "Make", "Apple"), ("Exif IFD0", "Model", "iPhone 4")]),
                        ("line:5", [("Exif IFD0", "Make", "Nikon")]),
                        ("3", [("GPS", "GPS Altitude", "3 metres")])], name
        assert stats == {"lines": 6, "skipped": 2}


# ------------------------------------------------------------------------------------------------ legacy


def test_legacy_tag_table_equals_the_original_table(yfcc_dir, dev_rows):
    table = TagTable.from_item_lists(items for _, items in dev_rows)
    with open(yfcc_dir / "legacy_tag_fractions_dev.json", encoding="utf-8") as f:
        expected = json.load(f)
    got = table.legacy_fractions()
    assert got == expected
    assert list(got) == list(expected)  # ascending, ties in first-seen order, as the original's sorted() gave
    assert table.legacy_num_images == 100 and table.num_images == 101


def test_legacy_reproduces_every_golden_text(dev_rows, golden):
    table = TagTable.from_item_lists(items for _, items in dev_rows)
    render = get_renderer("legacy", tag_table=table)
    assert len(golden) == len(dev_rows) == 101
    for (photo_id, items), ref in zip(dev_rows, golden):
        assert photo_id == str(ref["photo_id"])
        assert render(items) == ref["text"], photo_id
        record = legacy_exif(items)
        assert (record is not None) == ref["kept"]
        if record is not None:
            assert [list(kv) for kv in record[0].items()] == ref["exif"], photo_id
            assert len(record[0]) == ref["num_exif_tags"]
    assert sum(ref["text"] is None for ref in golden) == 1


def test_legacy_with_the_original_fraction_file_and_json_round_trip(yfcc_dir, dev_rows, golden, tmp_path):
    # The original's flat all_exif_count.json (tag -> fraction) loads as a table and selects the same tags.
    flat = TagTable.from_json(yfcc_dir / "legacy_tag_fractions_dev.json")
    table = TagTable.from_item_lists(items for _, items in dev_rows)
    saved = tmp_path / "dataset_info.json"
    saved.write_text(json.dumps({"num_train": 101, "tag_table": table.to_json()}))
    for tab in (flat, TagTable.from_json(saved), TagTable.from_json(json.dumps(table.to_json()))):
        render = get_renderer("legacy", tag_table=tab)
        assert [render(items) for _, items in dev_rows] == [ref["text"] for ref in golden]


def test_legacy_quirks_on_hand_made_items():
    filler = [("Exif SubIFD", f"Tag {i}", "x") for i in range(8)]
    items = [("Exif IFD0", "X Resolution", "72/1 dots per inch"),
             ("Exif SubIFD", "Exposure Bias Value", "-2/3 EV"),
             ("Exif SubIFD", "Focal Length", "6.25 mm"),
             ("Exif SubIFD", "ISO Speed Ratings", "100 200"),
             ("Exif IFD0", "Copyright", "A very long copyright string"),
             ("Exif IFD0", "Date/Time", "2011:01:13 14:33:39"),
             ("Exif SubIFD", "Subject Distance", "1/0 m"),
             ("Exif IFD0", "Y Resolution", ""),
             ("Exif Thumbnail", "X Resolution", "180 dots per inch"),
             ("Exif IFD0", "Artist", "%41bc")] + filler
    exif, counted = legacy_exif(items)
    assert list(exif.items())[:9] == [
        ("X Resolution", "180 dots per inch"),  # IFD1 overwrites IFD0 in place
        ("Exposure Bias Value", "-1 EV"),  # -2 // 3 == -1 (floor division)
        ("Focal Length", "6.2 mm"),  # Python's format of 6.25 (round half to even)
        ("ISO Speed Ratings", "100"),
        ("Copyright", "Unknown"),  # > 20 characters
        ("Date/Time", "20110113143339"),
        ("Subject Distance", "1/0m"),  # not a *Resolution key: only characters filtered
        ("Y Resolution", "Unknown"),  # empty value: refinement raises -> Unknown, not counted
        ("Artist", "Abc"),  # the original URL-decodes values a second time
    ]
    assert "Y Resolution" not in counted and counted.count("X Resolution") == 2
    assert legacy_exif(items[:10]) is None  # <= 10 distinct keys
    # duplicates of the same directory+tag count once toward the 10
    assert legacy_exif(items[:10] + [items[0]]) is None


# ------------------------------------------------------------------------------------------------ clean


def test_clean_renderer_values_as_written_in_fixed_order(shared_data, dev_rows):
    render = get_renderer("clean")
    by_id = dict(dev_rows)
    text = render(by_id["1000001"])
    assert text.startswith("Make: Apple, Model: iPhone 4, Software: 4.1, Orientation: Top, left side "
                           "(Horizontal / normal), X Resolution: 72 dots per inch")
    assert "Exposure Time: 1/15 sec, F-Number: f/2.8" in text and "Date/Time" not in text and "GPS" not in text
    for photo_id, items in dev_rows:
        text = render(items)
        # Independent expectation: first value per tag in the priority directories, in DEFAULT_CLEAN_TAGS order.
        prio = ["Exif IFD0", "Exif SubIFD", "Interoperability", "GPS", "Exif Thumbnail"]
        chosen = {}
        for d in prio:
            for dd, tag, value in items:
                v = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", value).split())[:64].rstrip()
                if dd == d and tag in DEFAULT_CLEAN_TAGS and v and tag not in chosen:
                    chosen[tag] = v
        expected = ", ".join(f"{t}: {chosen[t]}" for t in DEFAULT_CLEAN_TAGS if t in chosen) or None
        assert text == expected, photo_id


def test_clean_renderer_tag_list_threshold_and_drop():
    items = [("Exif Thumbnail", "X Resolution", "180 dots per inch"), ("Exif IFD0", "X Resolution", "72 dots per inch"),
             ("Canon Makernote", "Lens Model", "EF-S 18-55mm"), ("Exif IFD0", "Model", "  Canon\x00\x00 EOS  "),
             ("Exif IFD0", "Make", "   ")]
    assert get_renderer("clean", tags="X Resolution,Model,Make")(items) == "X Resolution: 72 dots per inch, Model: Canon EOS"
    assert get_renderer("clean", tags=["Lens Model"])(items) is None
    assert get_renderer("clean", tags=["Lens Model"], makernotes=True)(items) == "Lens Model: EF-S 18-55mm"
    assert get_renderer("clean")([]) is None
    lists = [items, [("Exif IFD0", "Model", "D90")], [("GPS", "GPS Altitude", "3 m")]]
    table = TagTable.from_item_lists(lists)
    assert table.fraction("Model") == pytest.approx(2 / 3) and table.fraction("X Resolution") == pytest.approx(1 / 3)
    r = get_renderer("clean", tag_table=table, threshold=0.5)
    assert r.tags == ("Model",)
    assert get_renderer("clean", tag_table=table, threshold=0.3).tags[:3] == ("Make", "Model", "X Resolution")


def test_tag_table_fractions_match_an_independent_count(dev_rows):
    table = TagTable.from_item_lists(items for _, items in dev_rows)
    counts = Counter(tag for _, items in dev_rows for tag in {t for _, t, _ in items})
    for tag, n in counts.items():
        assert table.fraction(tag) == n / 101
    assert table.fraction("No Such Tag") == 0.0
    halves = TagTable.from_item_lists(i for _, i in dev_rows[:40]).merge(TagTable.from_item_lists(i for _, i in dev_rows[40:]))
    assert halves.to_json() == table.to_json()


def test_renderer_errors_are_one_line_and_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown renderer 'fancy'"):
        get_renderer("fancy")
    with pytest.raises(ValueError, match="legacy.*needs a tag table"):
        get_renderer("legacy")
    with pytest.raises(ValueError, match="threshold needs a tag table"):
        get_renderer("clean", threshold=0.5)
    with pytest.raises(ValueError, match="renderer 'clean'"):
        get_renderer("clean", colour="red")
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"t\.json: not valid JSON"):
        TagTable.from_json(bad)
    with pytest.raises(ValueError, match=r"missing\.json: cannot read tag table"):
        TagTable.from_json(tmp_path / "missing.json")
    assert isinstance(get_renderer("clean"), CleanRenderer)
