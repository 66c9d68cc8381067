"""JPEG APP1 segments and the TIFF/IFD structure of EXIF, walked the way metadata-extractor walks it.

A small IFD walker rather than ExifRead: the items must come out in metadata-extractor's order and grouping
(directories in the order they are opened, tags in IFD entry order with a repeated tag keeping its first position
and its last value), with the raw TIFF types (a single LONG is not a single SHORT for the description rules) and
metadata-extractor's recovery rules (byte-order flips per IFD, out-of-range pointers skipped, a follower IFD after
IFD0 read as the thumbnail directory, at most 5 bad format codes per IFD). Every loop is bounded: visited IFD
offsets are never re-entered, and the number of directories, entries and nesting depth are capped.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from exif_jax.exif import tags as T
from exif_jax.exif.reader_values import (
    BYTES,
    DOUBLE,
    DOUBLES,
    FLOAT,
    FLOATS,
    INT,
    INTS,
    LONG,
    LONGS,
    RATIONAL,
    RATIONALS,
    SHORTS,
    STR,
    Rational,
    Value,
    to_int32,
)

EXIF_PREAMBLE = b"Exif\x00\x00"
_MARKER = re.compile(rb"\xff[^\x00\xff]")
# TIFF format code -> bytes per component
FORMAT_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
MAX_DIRECTORIES = 64
MAX_DEPTH = 16
MAX_ENTRIES = 20_000
MAX_EXIF_SEGMENTS = 4
MAX_JPEG_SEGMENTS = 4096
MAX_VALUE_BYTES = 1 << 20  # per APP1 payload (<= 64 KiB): entries may all point at the same bytes


class TiffError(Exception):
    """The EXIF block cannot be read at all (bad TIFF header)."""


class _Bounds(Exception):
    """A read beyond the segment: metadata-extractor aborts the walk and keeps what it has read."""


@dataclass
class Directory:
    name: str
    values: dict[int, Value] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def iter_jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
    """(marker, payload) of each JPEG segment before the scan data, and a note when the data ended early.

    Follows metadata-extractor's JpegSegmentReader: fill bytes (0xFF) before a marker are skipped, scanning stops
    at SOS or EOI. A segment cut short by the end of the data is returned with the bytes that are there.
    """
    segments: list[tuple[int, bytes]] = []
    n = len(data)
    pos = 2
    while len(segments) < MAX_JPEG_SEGMENTS:
        # the next 0xFF followed by a byte other than 0x00 / 0xFF (fill bytes and stuffed zeros are skipped)
        m = _MARKER.search(data, pos)
        if m is None:
            return segments, "data ends while looking for a JPEG marker"
        i = m.start()
        kind = data[i + 1]
        pos = i + 2
        if kind in (0xDA, 0xD9):  # start of scan / end of image
            return segments, None
        if pos + 2 > n:
            return segments, "data ends inside a segment header"
        length = ((data[pos] << 8) | data[pos + 1]) - 2
        pos += 2
        if length < 0:
            return segments, "a JPEG segment has a size below 2"
        payload = data[pos : pos + length]
        segments.append((kind, payload))
        pos += length
        if pos > n:
            return segments, "data ends inside a segment"
    return segments, "too many JPEG segments"


class _Reader:
    """Bounds-checked big/little-endian reads over one APP1 segment."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.length = len(buf)
        self.big = True

    def _get(self, fmt: str, off: int, size: int):
        if off < 0 or off + size > self.length:
            raise _Bounds(off)
        return struct.unpack_from((">" if self.big else "<") + fmt, self.buf, off)[0]

    def u8(self, off: int) -> int:
        return self._get("B", off, 1)

    def s8(self, off: int) -> int:
        return self._get("b", off, 1)

    def u16(self, off: int) -> int:
        return self._get("H", off, 2)

    def s16(self, off: int) -> int:
        return self._get("h", off, 2)

    def u32(self, off: int) -> int:
        return self._get("I", off, 4)

    def s32(self, off: int) -> int:
        return self._get("i", off, 4)

    def f32(self, off: int) -> float:
        return self._get("f", off, 4)

    def f64(self, off: int) -> float:
        return self._get("d", off, 8)

    def bytes(self, off: int, n: int) -> bytes:
        if off < 0 or n < 0 or off + n > self.length:
            raise _Bounds(off)
        return self.buf[off : off + n]


class _ExifWalker:
    """metadata-extractor's TiffReader + ExifTiffHandler, reduced to the standard EXIF directories."""

    def __init__(self, segment: bytes):
        self.r = _Reader(segment)
        self.directories: list[Directory] = []
        self.stack: list[Directory] = []
        self.current: Directory | None = None
        self.processed: set[int] = set()
        self.entries = 0
        self.depth = 0
        self.value_bytes = 0
        self.truncated = False

    # -- directory stack (DirectoryTiffHandler) -----------------------------------------------------------------

    def push(self, name: str) -> None:
        d = Directory(name)
        if self.current is not None:
            self.stack.append(self.current)
        self.current = d
        if len(self.directories) < MAX_DIRECTORIES:
            self.directories.append(d)

    def ending_ifd(self) -> None:
        self.current = self.stack.pop() if self.stack else None

    def error(self, msg: str) -> None:
        if self.current is not None and len(self.current.errors) < 32:
            self.current.errors.append(msg)

    # -- TiffReader.processTiff ---------------------------------------------------------------------------------

    def run(self, hdr: int) -> list[Directory]:
        r = self.r
        try:
            order = r.bytes(hdr, 2)
        except _Bounds:
            raise TiffError("EXIF block is too short for a TIFF header") from None
        if order == b"MM":
            r.big = True
        elif order == b"II":
            r.big = False
        else:
            raise TiffError(f"EXIF block has no TIFF byte-order mark (found {order!r})")
        try:
            marker = r.u16(hdr + 2)
            if marker not in (0x002A, 0x4F52, 0x5352):
                raise TiffError(f"EXIF block has an unexpected TIFF marker 0x{marker:X}")
            self.push(T.IFD0)
            first = to_int32(r.s32(hdr + 4) + hdr)
        except _Bounds:
            raise TiffError("EXIF block is too short for a TIFF header") from None
        if first >= r.length - 1:
            self.error("First IFD offset is beyond the end of the TIFF data segment -- trying default offset")
            first = hdr + 8
        try:
            self.process_ifd(first, hdr)
        except _Bounds:
            self.truncated = True
            return self.directories
        # ExifTiffHandler.completed: the thumbnail offset is reported from the start of the APP1 payload
        for d in self.directories:
            if d.name == T.THUMBNAIL:
                off = d.values[0x0201].get_integer() if 0x0201 in d.values else None
                if off is not None:
                    d.values[0x0201] = Value(INT, to_int32(off + hdr))
                break
        return self.directories

    # -- TiffReader.processIfd ----------------------------------------------------------------------------------

    def process_ifd(self, ifd: int, hdr: int) -> None:
        r = self.r
        reset_order = None
        self.depth += 1
        try:
            if ifd in self.processed or self.depth > MAX_DEPTH or len(self.directories) >= MAX_DIRECTORIES:
                return
            self.processed.add(ifd)
            if ifd >= r.length or ifd < 0:
                self.error("Ignored IFD marked to start outside data segment")
                return
            count = r.u16(ifd)
            if count > 0xFF and (count & 0xFF) == 0:  # byte order flipped by an editor for this IFD only
                reset_order = r.big
                count >>= 8
                r.big = not r.big
            if 2 + 12 * count + 4 + ifd > r.length:
                self.error("Illegally sized IFD")
                return
            invalid_formats = 0
            for i in range(count):
                self.entries += 1
                if self.entries > MAX_ENTRIES:
                    return
                t = ifd + 2 + 12 * i
                tag = r.u16(t)
                fmt = r.u16(t + 2)
                n = r.u32(t + 4)
                if fmt in FORMAT_SIZES:
                    byte_count = n * FORMAT_SIZES[fmt]
                elif fmt == 13:
                    byte_count = n * 4
                elif fmt == 0:
                    byte_count = 0
                else:
                    self.error(f"Invalid TIFF tag format code {fmt} for tag 0x{tag:04X}")
                    invalid_formats += 1
                    if invalid_formats > 5:
                        self.error("Stopping processing as too many errors seen in TIFF IFD")
                        return
                    continue
                if byte_count > 4:
                    off = r.u32(t + 8)
                    if off + byte_count > r.length:
                        self.error("Illegal TIFF tag pointer offset")
                        continue
                    value_off = hdr + off
                else:
                    value_off = t + 8
                if value_off < 0 or value_off > r.length or value_off + byte_count > r.length:
                    self.error("Illegal TIFF tag pointer offset")
                    continue
                is_pointer = False
                if byte_count == 4 * n:
                    for k in range(min(n, 64)):
                        name = self.sub_ifd_name(tag)
                        if name is None:
                            break
                        is_pointer = True
                        self.push(name)
                        sub = to_int32(hdr + r.s32(value_off + 4 * k))
                        self.process_ifd(sub, hdr)
                if is_pointer or self.custom_skip(tag, value_off, byte_count):
                    continue
                self.value_bytes += byte_count
                if self.value_bytes > MAX_VALUE_BYTES:
                    self.error("Stopping processing: tag values add up to more than the EXIF block can hold")
                    return
                value = self.read_value(fmt, value_off, n)
                if value is not None and self.current is not None:
                    self.current.values[tag] = value
            nxt = r.s32(ifd + 2 + 12 * count)
            if nxt != 0:
                nxt = to_int32(nxt + hdr)
                if nxt >= r.length or nxt < ifd:
                    return
                if self.has_follower():
                    self.process_ifd(nxt, hdr)
        finally:
            self.depth -= 1
            self.ending_ifd()
            if reset_order is not None:
                r.big = reset_order

    # -- ExifTiffHandler ----------------------------------------------------------------------------------------

    def sub_ifd_name(self, tag: int) -> str | None:
        cur = self.current.name if self.current is not None else None
        if tag == T.TAG_SUB_IFD_OFFSET:
            return T.SUBIFD
        if cur == T.IFD0:
            if tag == T.TAG_EXIF_SUB_IFD_OFFSET:
                return T.SUBIFD
            if tag == T.TAG_GPS_INFO_OFFSET:
                return T.GPS
        if cur == T.SUBIFD and tag == T.TAG_INTEROP_OFFSET:
            return T.INTEROP
        return None

    def has_follower(self) -> bool:
        cur = self.current
        if cur is None:
            return False
        if cur.name in (T.IFD0, T.IMAGE):
            self.push(T.IMAGE if T.TAG_PAGE_NUMBER in cur.values else T.THUMBNAIL)
            return True
        return cur.name == T.THUMBNAIL

    def custom_skip(self, tag: int, value_off: int, byte_count: int) -> bool:
        """Tags metadata-extractor hands to other readers (makernote, IPTC, XMP, PrintIM): not EXIF items here."""
        cur = self.current
        if cur is None:
            return True
        if tag == 0 and tag not in cur.values and byte_count == 0:
            return True
        if tag == T.TAG_MAKERNOTE and cur.name == T.SUBIFD:
            return True
        if cur.name == T.IFD0:
            if tag == T.TAG_IPTC_NAA:
                return value_off < self.r.length and self.r.u8(value_off) == 0x1C
            if tag == T.TAG_APPLICATION_NOTES:
                return True
        return tag == T.TAG_PRINT_IMAGE_MATCHING_INFO  # always its own PrintIM directory

    def read_value(self, fmt: int, off: int, n: int) -> Value | None:
        """TiffReader.processTag: the Java type each format/count combination is stored as."""
        r = self.r
        if fmt == 7:
            return Value(BYTES, tuple(b - 256 if b >= 128 else b for b in r.bytes(off, n)))
        if fmt == 2:
            raw = r.bytes(off, n)
            nul = raw.find(b"\x00")
            return Value(STR, raw if nul < 0 else raw[:nul])
        if fmt in (5, 10):
            get = r.u32 if fmt == 5 else r.s32
            if n == 1:
                return Value(RATIONAL, Rational(get(off), get(off + 4)))
            if n > 1:
                return Value(RATIONALS, tuple(Rational(get(off + 8 * i), get(off + 8 * i + 4)) for i in range(n)))
            return None
        if fmt == 11:
            if n == 1:
                return Value(FLOAT, r.f32(off))
            return Value(FLOATS, tuple(r.f32(off + 4 * i) for i in range(n)))
        if fmt == 12:
            if n == 1:
                return Value(DOUBLE, r.f64(off))
            # metadata-extractor steps 4 bytes per double here; the result is only ever printed as an array
            return Value(DOUBLES, tuple(r.f64(off + 4 * i) if off + 4 * i + 8 <= r.length else 0.0 for i in range(n)))
        if fmt == 6:
            if n == 1:
                return Value(INT, r.s8(off))
            return Value(BYTES, tuple(r.s8(off + i) for i in range(n)))
        if fmt == 1:
            if n == 1:
                return Value(INT, r.u8(off))
            return Value(SHORTS, tuple(r.bytes(off, n)))
        if fmt == 8:
            if n == 1:
                return Value(INT, r.s16(off))
            return Value(SHORTS, tuple(r.s16(off + 2 * i) for i in range(n)))
        if fmt == 3:
            if n == 1:
                return Value(INT, r.u16(off))
            return Value(INTS, tuple(r.u16(off + 2 * i) for i in range(n)))
        if fmt == 9:
            if n == 1:
                return Value(INT, r.s32(off))
            return Value(INTS, tuple(r.s32(off + 4 * i) for i in range(n)))
        if fmt == 4:
            if n == 1:
                return Value(LONG, r.u32(off))
            return Value(LONGS, tuple(r.u32(off + 4 * i) for i in range(n)))
        return None  # format 0 / 13 as a plain value: metadata-extractor reports an error and stores nothing


def read_exif_segment(segment: bytes) -> tuple[list[Directory], bool]:
    """Directories of one `Exif\\0\\0` APP1 payload, and whether the walk stopped at a read past its end."""
    walker = _ExifWalker(segment)
    dirs = walker.run(len(EXIF_PREAMBLE))
    return dirs, walker.truncated
