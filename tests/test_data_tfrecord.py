"""TFRecord framing and tf.train.Example codec against independent references.

References: a bitwise CRC-32C written here from the Castagnoli polynomial (RFC 3720 check value), the framing as
TensorFlow documents it (tensorflow/core/lib/io/record_writer.cc), and the generated `tf.train.Example` protobuf
classes shipped with tensorflow-datasets (the same .proto TensorFlow compiles).
"""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exif_jax.data import records, tfrecord


def ref_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def ref_masked(data: bytes) -> int:
    c = ref_crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def ref_read_tfrecord(path):
    """Independent reader: verifies both CRCs of every record, raises on any mismatch."""
    out = []
    with open(path, "rb") as f:
        while True:
            header = f.read(8)
            if not header:
                return out
            (length,) = struct.unpack("<Q", header)
            (lcrc,) = struct.unpack("<I", f.read(4))
            assert lcrc == ref_masked(header), f"{path}: length CRC"
            data = f.read(length)
            (dcrc,) = struct.unpack("<I", f.read(4))
            assert dcrc == ref_masked(data), f"{path}: data CRC"
            out.append(data)


def test_crc32c_check_value_and_random_bytes():
    assert ref_crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfrecord.crc32c(data) == ref_crc32c(data)
        assert tfrecord.masked_crc32c(data) == ref_masked(data)


def test_frame_layout_matches_tensorflow_format():
    data = b"hello tfrecord"
    frame = tfrecord.frame_record(data)
    length = struct.pack("<Q", len(data))
    assert frame == length + struct.pack("<I", ref_masked(length)) + data + struct.pack("<I", ref_masked(data))


def _pb():
    from tensorflow_datasets.proto import tf_example_pb2

    return tf_example_pb2


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.one_of(st.binary(max_size=40), st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=5),
              st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4)),
    max_size=6))
def test_example_codec_agrees_with_protobuf(features):
    pb = _pb()
    data = tfrecord.encode_example(features)
    msg = pb.Example.FromString(data)  # protobuf parses what we wrote
    assert set(msg.features.feature) == set(features)
    for k, v in features.items():
        f = msg.features.feature[k]
        if isinstance(v, bytes):
            assert list(f.bytes_list.value) == [v]
        elif isinstance(v[0], int):
            assert list(f.int64_list.value) == v
        else:
            assert list(f.float_list.value) == pytest.approx(v)
    # and we parse what protobuf writes (deterministic serialization, unpacked forms never appear there)
    assert tfrecord.decode_example(msg.SerializeToString()) == {
        k: ([v] if isinstance(v, bytes) else list(msg.features.feature[k].float_list.value) or v)
        for k, v in features.items()}


def test_decode_accepts_unpacked_int64_as_older_writers_emit():
    # Int64List.value as unpacked varints (field 1, wire type 0), built by hand: proto2-style writers do this.
    inner = b"".join(b"\x08" + tfrecord._varint(v) for v in (3, 300, -1))
    feature = tfrecord._field(3, inner)
    entry = tfrecord._field(1, b"n") + tfrecord._field(2, feature)
    data = tfrecord._field(1, tfrecord._field(1, entry))
    assert list(_pb().Example.FromString(data).features.feature["n"].int64_list.value) == [3, 300, -1]
    assert tfrecord.decode_example(data) == {"n": [3, 300, -1]}


def _write(path, payloads):
    with tfrecord.TFRecordWriter(path) as w:
        for p in payloads:
            w.write(p)


def test_writer_output_readable_by_independent_reader(tmp_path):
    payloads = [bytes([i]) * (i * 37) for i in range(20)]
    _write(tmp_path / "a.tfrecord", payloads)
    assert ref_read_tfrecord(tmp_path / "a.tfrecord") == payloads
    assert list(tfrecord.read_records(tmp_path / "a.tfrecord")) == payloads


def _offsets(payloads):
    offs, o = [], 0
    for p in payloads:
        offs.append(o)
        o += len(p) + 16
    return offs


def test_flipped_data_byte_skips_one_record_and_continues(tmp_path):
    payloads = [f"record {i} ".encode() * 10 for i in range(6)]
    path = tmp_path / "a.tfrecord"
    _write(path, payloads)
    raw = bytearray(path.read_bytes())
    raw[_offsets(payloads)[2] + 12 + 5] ^= 0x40  # inside record 2's data
    path.write_bytes(bytes(raw))
    with pytest.raises(AssertionError, match="data CRC"):
        ref_read_tfrecord(path)
    out = list(tfrecord.read_records(path))
    assert [o for o in out if isinstance(o, bytes)] == payloads[:2] + payloads[3:]
    bad = [o for o in out if isinstance(o, tfrecord.CorruptRecord)]
    assert len(bad) == 1 and bad[0].offset == _offsets(payloads)[2] and not bad[0].rest_of_file_lost
    assert "data CRC" in str(bad[0]) and str(path) in str(bad[0])


def test_flipped_length_byte_loses_rest_of_file(tmp_path):
    payloads = [f"r{i}".encode() * 30 for i in range(6)]
    path = tmp_path / "a.tfrecord"
    _write(path, payloads)
    raw = bytearray(path.read_bytes())
    raw[_offsets(payloads)[3] + 1] ^= 0x01  # record 3's length
    path.write_bytes(bytes(raw))
    out = list(tfrecord.read_records(path))
    assert out[:3] == payloads[:3]
    assert len(out) == 4 and isinstance(out[3], tfrecord.CorruptRecord) and out[3].rest_of_file_lost
    good, bad = tfrecord.count_records([path])
    assert good == 3 and len(bad) == 1


@pytest.mark.parametrize("cut", [3, 14, 40])
def test_truncated_tail_detected(tmp_path, cut):
    payloads = [b"x" * 50, b"y" * 50, b"z" * 50]
    path = tmp_path / "a.tfrecord"
    _write(path, payloads)
    path.write_bytes(path.read_bytes()[:-cut])
    out = list(tfrecord.read_records(path))
    assert out[:2] == payloads[:2]
    assert len(out) == 3 and isinstance(out[2], tfrecord.CorruptRecord) and "truncated" in out[2].reason


def test_record_schema_roundtrip_and_errors():
    pb = _pb()
    data = records.make_record(image=b"\xff\xd8\xff", photo_id="42", items=[("Exif IFD0", "Make", "Canon")],
                               text="make: Canon", width=640, height=480, make="Canon", model="EOS", source="a.jpg")
    msg = pb.Example.FromString(data)
    assert msg.features.feature["width"].int64_list.value == [640]
    assert msg.features.feature["image"].bytes_list.value == [b"\xff\xd8\xff"]
    assert set(msg.features.feature) == set(records.FEATURES)
    r = records.parse_record(data)
    assert r["image"] == b"\xff\xd8\xff" and r["height"] == 480 and r["exif_text"] == "make: Canon"
    other = tfrecord.encode_example({"image/encoded": b"..", "label": 3})
    with pytest.raises(records.SchemaError, match=r"x\.tfrecord: wrong feature schema: missing image, photo_id"):
        records.parse_record(other, where="x.tfrecord")
    with pytest.raises(records.SchemaError, match="not a tf.train.Example"):
        records.parse_record(b"\x0a\xff\xff", where="x.tfrecord")
