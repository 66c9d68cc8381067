"""Bad input never crashes or hangs the EXIF reader: one-line ExifError naming the source, or a (partial) item list.

Crafted TIFF blocks exercise loops, huge counts, zero denominators and wild offsets; a hypothesis property test
mutates the real APP1 EXIF segments of shared camera photos (byte flips, inserts, deletions, truncation).
"""
from __future__ import annotations

import functools
import pathlib
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exif_jax.exif import ExifError, read_exif, read_exif_file
from exif_jax.exif.reader_tiff import iter_jpeg_segments

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "photos_dev"
FUZZ_SOURCES = (
    "metadata_extractor/images/Apple iPhone 4.jpg",  # GPS
    "metadata_extractor/images/Canon EOS 7D.jpg",  # big Canon makernote
    "metadata_extractor/images/FujiFilm FinePixS5500.jpg",  # Intel byte order, interop, PrintIM
    "metadata_extractor/images/Nikon E885.jpg",
    "metadata_extractor/images/Sony DSC-G1.jpg",
)


def jpeg_with_app1(payload: bytes) -> bytes:
    """SOI + one APP1 segment + EOI (the reader never needs the pixels)."""
    payload = payload[:65533]
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + b"\xff\xd9"


def tiff(entries_ifd0: list[tuple[int, int, int, bytes]], extra: bytes = b"", next_ifd: int = 0) -> bytes:
    """Big-endian TIFF: IFD0 at offset 8 with (tag, type, count, 4-byte value/offset) entries, then `extra`."""
    body = struct.pack(">H", len(entries_ifd0))
    for tag, typ, count, value in entries_ifd0:
        body += struct.pack(">HHI", tag, typ, count) + value.ljust(4, b"\x00")[:4]
    body += struct.pack(">I", next_ifd)
    return b"MM\x00\x2a" + struct.pack(">I", 8) + body + extra


def exif(tiff_bytes: bytes) -> bytes:
    return jpeg_with_app1(b"Exif\x00\x00" + tiff_bytes)


def assert_items(result) -> None:
    assert isinstance(result, list)
    for item in result:
        assert isinstance(item, tuple) and len(item) == 3 and all(isinstance(x, str) for x in item), item
        for x in item:
            x.encode("utf-8")  # no lone surrogates: every item can be written as JSON / UTF-8


def assert_one_line_error(exc: ExifError, source: str) -> None:
    msg = str(exc)
    assert isinstance(exc, ValueError)
    assert source in msg and "\n" not in msg, msg


# -- not JPEG / no EXIF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"hello world", b"\xff", b"GIF89a" + b"\x00" * 10],
    ids=["empty", "png", "text", "one-byte", "gif"],
)
def test_non_jpeg_raises_exif_error_naming_source(data):
    with pytest.raises(ExifError) as err:
        read_exif(data, source="upload/42.bin")
    assert_one_line_error(err.value, "upload/42.bin")


def test_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ExifError) as err:
        read_exif_file(missing)
    assert_one_line_error(err.value, str(missing))
    with pytest.raises(ExifError) as err:
        read_exif_file(tmp_path)  # a directory
    assert_one_line_error(err.value, str(tmp_path))
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    with pytest.raises(ExifError) as err:
        read_exif_file(text)
    assert_one_line_error(err.value, str(text))


@pytest.mark.parametrize("name", ["exif-org__olympus-d320l.jpg", "exif-org__sony-powershota5.jpg"])
def test_jpeg_without_exif_gives_empty_list(shared_data, name):
    path = next((shared_data / "photos_dev" / "exif_samples_small").rglob(name))
    assert read_exif_file(path) == []
    assert read_exif(b"\xff\xd8\xff\xd9") == []  # SOI + EOI


def test_exif_without_camera_tags(shared_data):
    """EXIF stripped by an editor down to a few IFD0 tags: those tags, no camera items."""
    path = next((shared_data / "photos_dev" / "exif_samples_small").rglob("Canon_40D_photoshop_import.jpg"))
    items = read_exif_file(path)
    assert ("Exif IFD0", "Software", "GIMP 2.4.5") in items
    assert not any(t in ("Make", "Model") for _, t, _ in items)


def test_bad_tiff_header_raises(tmp_path):
    with pytest.raises(ExifError) as err:
        read_exif(jpeg_with_app1(b"Exif\x00\x00XX\x00\x2a\x00\x00\x00\x08"), source="cam.jpg")
    assert_one_line_error(err.value, "cam.jpg")
    assert "EXIF" in str(err.value)


# -- crafted TIFF structures ------------------------------------------------------------------------------------

ASCII, SHORT, LONG, RATIONAL = 2, 3, 4, 5


def test_ifd_cycles_terminate():
    # IFD0 points to itself as next IFD and as Exif SubIFD; SubIFD chains back through 0x014a.
    t = tiff([(0x010F, ASCII, 4, b"ACM\x00"), (0x8769, LONG, 1, struct.pack(">I", 8)),
              (0x014A, LONG, 1, struct.pack(">I", 8))], next_ifd=8)  # fmt: skip
    start = time.perf_counter()
    items = read_exif(exif(t))
    assert time.perf_counter() - start < 1.0
    assert ("Exif IFD0", "Make", "ACM") in items
    assert_items(items)


def test_deep_sub_ifd_chain_is_capped():
    # 300 IFDs, each a Sub IFD pointer to the next: nesting is capped, the walk returns.
    n = 300
    ifd_size = 2 + 12 + 4
    blob = b""
    for i in range(n):
        nxt = 8 + (i + 1) * ifd_size
        blob += struct.pack(">H", 1) + struct.pack(">HHI", 0x014A, LONG, 1) + struct.pack(">I", nxt)
        blob += struct.pack(">I", 0)
    t = b"MM\x00\x2a" + struct.pack(">I", 8) + blob
    start = time.perf_counter()
    assert_items(read_exif(exif(t)))
    assert time.perf_counter() - start < 1.0


def test_huge_counts_and_wild_offsets_are_skipped():
    t = tiff([
        (0x010F, ASCII, 0xFFFFFFFF, struct.pack(">I", 0x20)),  # count far beyond the block
        (0x0110, ASCII, 6, struct.pack(">I", 0x7FFFFFF0)),  # offset beyond the block
        (0x829D, RATIONAL, 0x10000000, struct.pack(">I", 8)),
        (0x0131, ASCII, 3, b"v1\x00"),  # a good tag after the bad ones
    ])  # fmt: skip
    items = read_exif(exif(t))
    assert items == [("Exif IFD0", "Software", "v1")]


def test_first_ifd_out_of_range_gives_no_items():
    t = b"MM\x00\x2a" + struct.pack(">I", 0xFFFFFF00)
    assert read_exif(exif(t)) == []


def test_zero_denominators():
    # rationals stored after the IFD: F-Number 0/0, Exposure Time 1/0, X Resolution 72/0, Aperture 5/0
    n_entries = 4
    data_off = 8 + 2 + 12 * n_entries + 4
    rationals = struct.pack(">IIIIIIII", 0, 0, 1, 0, 72, 0, 5, 0)
    t = tiff([
        (0x829D, RATIONAL, 1, struct.pack(">I", data_off)),
        (0x829A, RATIONAL, 1, struct.pack(">I", data_off + 8)),
        (0x011A, RATIONAL, 1, struct.pack(">I", data_off + 16)),
        (0x9202, RATIONAL, 1, struct.pack(">I", data_off + 24)),
    ], extra=rationals)  # fmt: skip
    items = dict(((d, t_), s) for d, t_, s in read_exif(exif(t)))
    # metadata-extractor: a zero numerator is 0; n/0 prints as the raw fraction; pow(sqrt 2, inf) is infinite
    assert items[("Exif IFD0", "F-Number")] == "f/0.0"
    assert items[("Exif IFD0", "Exposure Time")] == "1/0 sec"
    assert items[("Exif IFD0", "X Resolution")] == "72/0 dots per unit"
    assert items[("Exif IFD0", "Aperture Value")] == "f/\u221e"


def test_odd_encodings_are_valid_text():
    # Latin-1 Make, UTF-16 surrogate halves in a Windows XP tag, bytes >= 0x80 in a version tag
    xp = b"\x00\xd8A\x00"  # a lone high surrogate then 'A' (UTF-16LE)
    t = tiff([
        (0x010F, ASCII, 4, b"W\xfcr\x00"),
        (0x9C9D, 1, len(xp), xp),
        (0x9000, 7, 4, b"\xff\xfe02"),
    ])  # fmt: skip
    items = read_exif(exif(t))
    assert_items(items)
    assert ("Exif IFD0", "Make", "W\ufffdr") in items  # metadata-extractor decodes strings as UTF-8
    assert [t_ for _, t_, _ in items] == ["Make", "Windows XP Author", "Exif Version"]


def test_repeated_tag_keeps_first_position_and_last_value():
    """metadata-extractor's Directory: a tag set twice stays where it was first seen, with the later value."""
    t = tiff([(0x010F, ASCII, 2, b"A\x00"), (0x0110, ASCII, 2, b"M\x00"), (0x010F, ASCII, 2, b"B\x00")])
    assert read_exif(exif(t)) == [("Exif IFD0", "Make", "B"), ("Exif IFD0", "Model", "M")]


def test_ifd_with_swapped_byte_order_is_read():
    """An editor rewrote the file as big-endian but left one IFD little-endian: entry count 0x0100 means 1."""
    sub = struct.pack("<H", 1) + struct.pack("<HHI", 0x8827, SHORT, 1) + struct.pack("<HH", 200, 0) + b"\0" * 4
    t = tiff([(0x8769, LONG, 1, struct.pack(">I", 8 + 2 + 12 + 4))], extra=sub)
    assert read_exif(exif(t)) == [("Exif SubIFD", "ISO Speed Ratings", "200")]


def test_truncated_real_jpegs(shared_data):
    data = (shared_data / "photos_dev/metadata_extractor/images/Canon EOS 7D.jpg").read_bytes()
    full = read_exif(data)
    for cut in list(range(0, 400, 7)) + list(range(400, 40_000, 613)):
        try:
            items = read_exif(data[:cut], source=f"cut{cut}")
        except ExifError as e:
            assert_one_line_error(e, f"cut{cut}")
            continue
        assert_items(items)
        assert len(items) <= len(full) + 5


# -- property test over mutated real EXIF blocks -----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _app1_payloads() -> tuple[bytes, ...]:
    out = []
    for rel in FUZZ_SOURCES:
        segments, _ = iter_jpeg_segments((SHARED / rel).read_bytes())
        out.append(next(p for m, p in segments if m == 0xE1 and p.startswith(b"Exif\x00\x00")))
    return tuple(out)


_mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(min_value=0, max_value=70_000),
    st.integers(min_value=0, max_value=255),
)


@settings(max_examples=1000, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.integers(0, len(FUZZ_SOURCES) - 1), mutations=st.lists(_mutation, min_size=1, max_size=12),
       header_bias=st.booleans())  # fmt: skip
def test_mutated_exif_blocks_never_crash(source, mutations, header_bias):
    payload = bytearray(_app1_payloads()[source])
    for op, pos, byte in mutations:
        if not payload:
            break
        if header_bias:  # most structure (IFD0, SubIFD entries) lives in the first few hundred bytes
            pos %= 600
        pos %= max(1, len(payload))
        if op == "flip":
            payload[pos] ^= 1 << (byte % 8)
        elif op == "set":
            payload[pos] = byte
        elif op == "insert":
            payload[pos:pos] = bytes([byte]) * (1 + byte % 5)
        elif op == "delete":
            del payload[pos : pos + 1 + byte % 7]
        else:
            del payload[pos:]
    start = time.perf_counter()
    try:
        items = read_exif(jpeg_with_app1(bytes(payload)), source="fuzz.jpg")
    except ExifError as e:
        assert_one_line_error(e, "fuzz.jpg")
    else:
        assert_items(items)
    assert time.perf_counter() - start < 1.5


@settings(max_examples=300, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255), st.booleans()), min_size=1, max_size=8))
def test_mutated_jpeg_headers_never_crash(mutations):
    """Damage to the JPEG segment structure itself (markers, segment lengths) before the EXIF block."""
    data = bytearray((SHARED / FUZZ_SOURCES[2]).read_bytes()[:70_000])
    for pos, byte, insert in mutations:
        if insert:
            data[pos:pos] = bytes([byte])
        else:
            data[pos % len(data)] = byte
    try:
        items = read_exif(bytes(data), source="hdr.jpg")
    except ExifError as e:
        assert_one_line_error(e, "hdr.jpg")
    else:
        assert_items(items)
