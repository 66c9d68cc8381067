"""TFRecord files of `tf.train.Example` without TensorFlow: framing with masked CRC32C, and a minimal protobuf codec.

TFRecord framing (as TensorFlow's `tf.io.TFRecordWriter` writes it), per record::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with `masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`.

`read_records` verifies both CRCs. A bad data CRC (length intact) skips that one record; a bad length CRC or a
truncated tail loses the rest of the file (the framing cannot be trusted past it). Either way a `CorruptRecord`
(file, offset, reason) is yielded in place of the data so callers can count and log it, never feed it.

`encode_example` / `decode_example` implement exactly the subset of `tensorflow/core/example/example.proto` used
here (`Example{Features{map<string, Feature>}}`, `Feature` = `BytesList` | `FloatList` | `Int64List`), with
deterministic output (features sorted by name, packed numeric lists as TensorFlow writes them). The tests check
both directions against the generated protobuf classes shipped with tensorflow-datasets.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterator, Mapping, Sequence

import google_crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_U32 = struct.Struct("<I")


def crc32c(data: bytes) -> int:
    return google_crc32c.value(data)


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord frame (header, data, footer) for `data`."""
    length = struct.pack("<Q", len(data))
    return length + _U32.pack(masked_crc32c(length)) + data + _U32.pack(masked_crc32c(data))


class TFRecordWriter:
    """Writes framed records to `path` (a plain local file). Use as a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._f = open(self.path, "wb")
        self.num_records = 0
        self.num_bytes = 0

    def write(self, data: bytes) -> None:
        frame = frame_record(data)
        self._f.write(frame)
        self.num_records += 1
        self.num_bytes += len(frame)

    def flush(self, fsync: bool = False) -> None:
        self._f.flush()
        if fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass(frozen=True)
class CorruptRecord:
    """Stands in for a record that failed its CRC check (never contains data)."""

    path: str
    offset: int
    reason: str
    rest_of_file_lost: bool

    def __str__(self) -> str:
        tail = " (rest of file skipped)" if self.rest_of_file_lost else ""
        return f"{self.path}: corrupt TFRecord at byte {self.offset}: {self.reason}{tail}"


class TFRecordFileReader:
    """Sequential CRC-checking reader of one TFRecord file; `tell`/`seek` give an exact resumable position.

    `next()` returns the record bytes, a `CorruptRecord`, or raises StopIteration at the end of the file (or after a
    corruption that makes the rest of the file unreadable).
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = os.fspath(path)
        self._f = open(self.path, "rb")
        self._verify = verify
        self._dead = False  # framing lost: nothing more can be read from this file

    def tell(self) -> int:
        return -1 if self._dead else self._f.tell()

    def seek(self, offset: int) -> None:
        self._dead = offset < 0
        if not self._dead:
            self._f.seek(offset)

    def close(self) -> None:
        self._f.close()

    def __iter__(self):
        return self

    def _lost(self, offset: int, reason: str) -> CorruptRecord:
        self._dead = True
        return CorruptRecord(self.path, offset, reason, rest_of_file_lost=True)

    def __next__(self) -> bytes | CorruptRecord:
        if self._dead:
            raise StopIteration
        offset = self._f.tell()
        header = self._f.read(12)
        if not header:
            raise StopIteration
        if len(header) < 12:
            return self._lost(offset, f"truncated header ({len(header)} of 12 bytes)")
        length, length_crc = _HEADER.unpack(header)
        if self._verify and masked_crc32c(header[:8]) != length_crc:
            return self._lost(offset, "length CRC mismatch")
        data = self._f.read(length)
        footer = self._f.read(4)
        if len(data) < length or len(footer) < 4:
            return self._lost(offset, f"truncated record (expected {length + 16} bytes)")
        if self._verify and masked_crc32c(data) != _U32.unpack(footer)[0]:
            return CorruptRecord(self.path, offset, "data CRC mismatch", rest_of_file_lost=False)
        return data


def read_records(path: str | os.PathLike, verify: bool = True) -> Iterator[bytes | CorruptRecord]:
    reader = TFRecordFileReader(path, verify=verify)
    try:
        yield from reader
    finally:
        reader.close()


# ---------------------------------------------------------------------------------------------- protobuf codec
# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


def _encode_feature(value) -> bytes:
    if isinstance(value, (bytes, str, int, float, np.integer, np.floating)):
        value = [value]
    value = list(value)
    if value and all(isinstance(v, (bytes, str)) for v in value):
        inner = b"".join(_field(1, v.encode("utf-8") if isinstance(v, str) else v) for v in value)
        return _field(1, inner)  # Feature.bytes_list
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        packed = b"".join(_varint(int(v)) for v in value)
        return _field(3, _field(1, packed) if value else b"")  # Feature.int64_list (packed)
    if all(isinstance(v, (float, np.floating)) for v in value):
        packed = np.asarray(value, "<f4").tobytes()
        return _field(2, _field(1, packed))  # Feature.float_list (packed)
    raise TypeError(f"cannot encode feature value {value!r:.80}: use bytes/str, int or float lists")


def encode_example(features: Mapping[str, object]) -> bytes:
    """Serialized `tf.train.Example` with features sorted by name.

    Values: `bytes`/`str` (-> BytesList), `int` (-> Int64List), `float` (-> FloatList), or lists of one kind.
    """
    entries = b"".join(
        _field(1, _field(1, name.encode("utf-8")) + _field(2, _encode_feature(features[name])))
        for name in sorted(features)
    )
    return _field(1, entries)  # Example.features; Features.feature (map entries)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _iter_fields(buf: bytes):
    """Yields (field_number, wire_type, value) where value is int for varints/fixed, bytes for len-delimited."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _read_varint(buf, pos)
        elif wt == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > end:
                raise ValueError("truncated length-delimited field")
            val, pos = buf[pos:pos + n], pos + n
        elif wt == 1:
            val, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wt == 5:
            val, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos > end:
            raise ValueError("truncated field")
        yield num, wt, val


def _signed64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _decode_feature(buf: bytes):
    for num, wt, val in _iter_fields(buf):
        if num == 1 and wt == 2:  # BytesList
            return [bytes(v) for n, w, v in _iter_fields(val) if n == 1 and w == 2]
        if num == 3 and wt == 2:  # Int64List (packed or not)
            out = []
            for n, w, v in _iter_fields(val):
                if n != 1:
                    continue
                if w == 0:
                    out.append(_signed64(v))
                else:
                    p = 0
                    while p < len(v):
                        x, p = _read_varint(v, p)
                        out.append(_signed64(x))
            return out
        if num == 2 and wt == 2:  # FloatList (packed or not)
            out = []
            for n, w, v in _iter_fields(val):
                if n != 1:
                    continue
                if w == 5:
                    out.append(float(np.frombuffer(struct.pack("<I", v), "<f4")[0]))
                else:
                    out.extend(np.frombuffer(v, "<f4").tolist())
            return out
    return []


def decode_example(data: bytes) -> dict[str, list]:
    """Parses a serialized `tf.train.Example` into `{name: list of bytes | int | float}`.

    Raises ValueError on malformed protobuf bytes.
    """
    out: dict[str, list] = {}
    for num, wt, features in _iter_fields(data):
        if num != 1 or wt != 2:
            continue
        for n, w, entry in _iter_fields(features):
            if n != 1 or w != 2:
                continue
            name, value = None, b""
            for en, ew, ev in _iter_fields(entry):
                if en == 1 and ew == 2:
                    name = bytes(ev).decode("utf-8")
                elif en == 2 and ew == 2:
                    value = ev
            if name is not None:
                out[name] = _decode_feature(value)
    return out


def count_records(paths: Sequence[str | os.PathLike]) -> tuple[int, list[CorruptRecord]]:
    """(number of good records, corrupt records) over the files, verifying CRCs."""
    good, bad = 0, []
    for p in paths:
        for rec in read_records(p):
            if isinstance(rec, CorruptRecord):
                bad.append(rec)
            else:
                good += 1
    return good, bad
