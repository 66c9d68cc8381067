"""`exif-jax ingest` on real camera JPEGs: independent CRC-checking read-back, byte-identical JPEGs, counts,
rejects, idempotent reruns, resume after interruption, YFCC pairing, ArrayRecord output."""
import csv
import io
import json
import shutil
import struct
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from exif_jax.data import ingest as ingest_lib
from exif_jax.data import records, tfrecord
from exif_jax.data.ingest import IngestConfig, IngestError, run

# ---------------------------------------------------------------- independent TFRecord reader (table CRC-32C)
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _TABLE.append(_c)


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_all_checked(path):
    from tensorflow_datasets.proto import tf_example_pb2

    out = []
    with open(path, "rb") as f:
        while header := f.read(8):
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", f.read(4))[0] == _masked(header), f"{path}: bad length CRC"
            data = f.read(length)
            assert struct.unpack("<I", f.read(4))[0] == _masked(data), f"{path}: bad data CRC"
            ex = tf_example_pb2.Example.FromString(data)
            out.append({k: (v.bytes_list.value[0] if v.HasField("bytes_list") else v.int64_list.value[0])
                        for k, v in ex.features.feature.items()})
    return out


# ------------------------------------------------------------------------------------------------ fixtures
BAD = {  # file -> expected reason code
    "broken/truncated.jpg": "truncated_jpeg",
    "broken/notes.jpg": "not_an_image",
    "broken/drawing.jpg": "not_jpeg",
    "broken/no exif.jpeg": "no_exif",
    "dup/copy of first.JPG": "duplicate",
    "Olympus C3030Z.jpg": "too_small",
    "VTech Kidizoom camera.jpg": "too_few_tags",
    "readme.txt": "not_jpeg",  # not a JPEG extension: counted, not silently ignored
}


def _manifest(shared_data):
    path = shared_data / "photos_dev/metadata_extractor/manifest.csv"
    return {r["file"]: r for r in csv.DictReader(open(path, encoding="utf-8"))}


@pytest.fixture(scope="module")
def photo_dir(shared_data, tmp_path_factory):
    """12 small real photos (2 in a sub-folder) plus the BAD inputs."""
    src = shared_data / "photos_dev/metadata_extractor/images"
    man = _manifest(shared_data)
    good = sorted((r for r in man.values() if min(int(r["width"]), int(r["height"])) >= 124
                   and int(r["n_exif_tags"]) >= 15), key=lambda r: int(r["bytes"]))[:12]
    root = tmp_path_factory.mktemp("photos")
    (root / "sub dir").mkdir()
    (root / "broken").mkdir()
    (root / "dup").mkdir()
    names = {}
    for i, r in enumerate(good):
        rel = f"sub dir/{r['file']}" if i % 6 == 5 else r["file"]
        shutil.copyfile(src / r["file"], root / rel)
        names[rel] = r
    first = sorted(names)[0]
    shutil.copyfile(root / first, root / "dup/copy of first.JPG")  # sorts after `first`: the copy is rejected
    data = (src / good[-1]["file"]).read_bytes()
    (root / "broken/truncated.jpg").write_bytes(data[: len(data) * 2 // 3])
    (root / "broken/notes.jpg").write_text("not a picture\n")
    Image.new("RGB", (200, 200), "red").save(root / "broken/drawing.jpg", "PNG")
    Image.new("RGB", (200, 200), "blue").save(root / "broken/no exif.jpeg", "JPEG")
    for f in ("Olympus C3030Z.jpg", "VTech Kidizoom camera.jpg"):
        shutil.copyfile(src / f, root / f)
    (root / "readme.txt").write_text("not a JPEG extension")
    return root, names


def _cfg(images, out, **kw):
    return IngestConfig(images=str(images), out=str(out), **{"shards": 3, "eval_fraction": 0.25, "progress": False,
                                                             **kw})


@pytest.fixture(scope="module")
def ingested(photo_dir, tmp_path_factory):
    images, names = photo_dir
    out = tmp_path_factory.mktemp("out")
    info = run(_cfg(images, out, workers=2))
    return out, info


def _snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------------- tests
def test_roundtrip_every_record_crc_checked_and_byte_identical(photo_dir, ingested, shared_data):
    images, names = photo_dir
    out, info = ingested
    shards = sorted(out.glob("*.tfrecord"))
    assert [p.name for p in shards] == sorted(info["splits"]["train"]["shards"] + info["splits"]["eval"]["shards"])
    recs = {p.name: read_all_checked(p) for p in shards}
    all_recs = [r for rs in recs.values() for r in rs]
    accepted = set(names)
    assert sorted(r["source"].decode() for r in all_recs) == sorted(accepted)
    for r in all_recs:
        src = r["source"].decode()
        assert r["image"] == (images / src).read_bytes()  # JPEG bytes untouched
        m = names[src]
        assert (r["width"], r["height"]) == (int(m["width"]), int(m["height"]))  # Pillow's manifest
        assert r["make"].decode().strip() == m["Make"].strip() and r["model"].decode().strip() == m["Model"].strip()
        items = json.loads(r["exif_items"])
        assert len(items) >= 15 and all(len(it) == 3 for it in items)
        assert r["exif_text"] and r["photo_id"].decode() == src
    # counts in dataset_info.json match what is on disk
    for split in ("train", "eval"):
        s = info["splits"][split]
        got = [len(recs[n]) for n in s["shards"]]
        assert got == s["records_per_shard"] and sum(got) == s["records"] == info["counts"][split]
        assert s["bytes"] == sum((out / n).stat().st_size for n in s["shards"])
    c = info["counts"]
    assert c["accepted"] == len(all_recs) == len(accepted)
    assert c["inputs"] == c["accepted"] + c["rejected"] == len(names) + len(BAD)
    assert json.loads((out / "dataset_info.json").read_text()) == info
    assert info["tag_table"]["num_images"] == len(accepted)
    assert info["token_lengths"]["count"] == len(accepted) and info["text_len"] >= info["token_lengths"]["max"]


def test_split_is_by_photo_id_hash(ingested):
    import hashlib

    out, info = ingested
    for split in ("train", "eval"):
        for n in info["splits"][split]["shards"]:
            for r in read_all_checked(out / n):
                h = int.from_bytes(hashlib.sha1(r["photo_id"]).digest()[:8], "big") / 2.0 ** 64
                assert (h < 0.25) == (split == "eval")
    assert info["counts"]["eval"] >= 1 and info["counts"]["train"] >= 1


def test_rejects_tsv_names_every_bad_input_with_its_reason(ingested):
    out, info = ingested
    lines = (out / "rejects.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file\treason"
    got = {f: r.split(":", 1)[0] for f, r in (line.split("\t") for line in lines[1:])}
    assert got == BAD
    assert info["counts"]["rejected_by_reason"] == {v: list(BAD.values()).count(v) for v in set(BAD.values())}


def test_rerun_is_idempotent_and_interrupted_run_resumes(photo_dir, ingested, tmp_path, monkeypatch, capsys):
    images, _ = photo_dir
    ref_out, _ = ingested
    ref = _snapshot(ref_out)
    out = tmp_path / "o"
    # 1) interrupted in the scan after 4 files
    real_scan, calls = ingest_lib._scan_one, []

    def flaky_scan(task):
        calls.append(task)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_scan(task)

    monkeypatch.setattr(ingest_lib, "_scan_one", flaky_scan)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(images, out, workers=0))
    # 2) interrupted while writing, after the first shard, with a half-written temp file left behind
    monkeypatch.setattr(ingest_lib, "_scan_one", real_scan)
    real_write, writes = ingest_lib._write_shard, []

    def flaky_write(task):
        writes.append(task)
        if len(writes) == 2:
            with open(task[0] + ".tmp-12345", "wb") as f:
                f.write(b"partial")
            raise KeyboardInterrupt
        return real_write(task)

    monkeypatch.setattr(ingest_lib, "_write_shard", flaky_write)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(images, out, workers=0, progress=True))
    assert "4 already scanned" in capsys.readouterr().err
    # 3) resume: same bytes as the uninterrupted run, no temp files, no duplicates
    monkeypatch.setattr(ingest_lib, "_write_shard", real_write)
    run(_cfg(images, out, workers=0, progress=True))
    err = capsys.readouterr().err
    assert "1 already complete" in err and "[write]" in err and "ETA" in err
    assert _snapshot(out) == ref
    assert not list(out.glob("*.tmp-*"))
    # 4) a rerun rewrites nothing and leaves every byte as it was
    writes.clear()
    monkeypatch.setattr(ingest_lib, "_write_shard", flaky_write)
    run(_cfg(images, out, workers=0))
    assert writes == [] and _snapshot(out) == ref
    # 5) a different shard count replaces the old shards instead of mixing with them
    monkeypatch.setattr(ingest_lib, "_write_shard", real_write)
    info = run(_cfg(images, out, workers=0, shards=2))
    names = sorted(p.name for p in out.glob("*.tfrecord"))
    assert names == sorted(info["splits"]["train"]["shards"] + info["splits"]["eval"]["shards"])
    assert sum(len(read_all_checked(out / n)) for n in names) == info["counts"]["accepted"]


def _parse_yfcc_reference(line):
    pid, rest = line.rstrip("\n").split("\t", 1)
    items = []
    for raw in rest.split(","):
        key, value = raw.split(":", 1)
        d, t = key.split(".", 1)
        items.append([urllib.parse.unquote_plus(x) for x in (d, t, value)])
    return pid, items


def test_yfcc_lines_paired_by_photo_id(photo_dir, shared_data, tmp_path):
    images, names = photo_dir
    yfcc = shared_data / "yfcc_style"
    ids = dict(line.rstrip("\n").split("\t") for line in open(yfcc / "photo_ids.tsv", encoding="utf-8")
               if not line.startswith("photo_id"))
    lines = dict(_parse_yfcc_reference(line) for line in open(yfcc / "exif_lines_dev.tsv", encoding="utf-8"))
    info = run(_cfg(images, tmp_path, yfcc_exif=str(yfcc / "exif_lines_dev.tsv"),
                    photo_ids=str(yfcc / "photo_ids.tsv"), workers=0, renderer="clean"))
    recs = [r for p in sorted(tmp_path.glob("*.tfrecord")) for r in read_all_checked(p)]
    top_level = {n for n in names if "/" not in n}  # photo_ids.tsv names files at the top of --images
    expected = {pid for pid, f in ids.items() if f in top_level and f not in ("Olympus C3030Z.jpg",)
                and len(lines[pid]) >= 10}
    assert len(expected) >= 8 and {r["photo_id"].decode() for r in recs} == expected
    for r in recs:
        pid = r["photo_id"].decode()
        assert json.loads(r["exif_items"]) == lines[pid]
        assert r["image"] == (images / ids[pid]).read_bytes()
    rejects = dict(line.split("\t") for line in (tmp_path / "rejects.tsv").read_text().splitlines()[1:])
    assert sum(r.startswith("missing_image") for r in rejects.values()) == len(ids) - len(
        [f for f in ids.values() if (images / f).is_file()])
    assert info["renderer"] == "clean" and info["source"] == "yfcc"
    # the same lines gzip-compressed (as YFCC100M ships them) give the same shards
    import gzip

    gz = tmp_path / "lines.tsv.gz"
    gz.write_bytes(gzip.compress((yfcc / "exif_lines_dev.tsv").read_bytes()))
    run(_cfg(images, tmp_path / "gz", yfcc_exif=str(gz), photo_ids=str(yfcc / "photo_ids.tsv"), workers=0,
             renderer="clean"))
    for name in info["splits"]["train"]["shards"]:
        assert (tmp_path / "gz" / name).read_bytes() == (tmp_path / name).read_bytes()


def test_array_record_output_holds_the_same_records(photo_dir, ingested, tmp_path):
    import grain

    images, _ = photo_dir
    ref_out, ref_info = ingested
    info = run(_cfg(images, tmp_path, workers=0, format="array_record"))
    assert info["counts"] == ref_info["counts"]
    for split in ("train", "eval"):
        for tf_name, ar_name in zip(ref_info["splits"][split]["shards"], info["splits"][split]["shards"]):
            assert ar_name == tf_name.replace(".tfrecord", ".array_record")
            src = grain.sources.ArrayRecordDataSource([str(tmp_path / ar_name)])
            assert [src[i] for i in range(len(src))] == [r for r in tfrecord.read_records(ref_out / tf_name)]
    # and the converter gives the same result from the TFRecord output
    from exif_jax.data.convert import convert

    conv = tmp_path / "converted"
    cinfo = convert(ref_out, conv, progress=False)
    assert cinfo["format"] == "array_record" and cinfo["splits"]["train"]["records"] == info["counts"]["train"]
    for name in info["splits"]["train"]["shards"]:
        a = grain.sources.ArrayRecordDataSource([str(conv / name)])
        b = grain.sources.ArrayRecordDataSource([str(tmp_path / name)])
        assert [a[i] for i in range(len(a))] == [b[i] for i in range(len(b))]


def test_pipeline_reads_ingested_photos(ingested):
    from exif_jax.data.pipeline import make_dataset

    out, info = ingested
    ds = make_dataset({"path": str(out), "shuffle_window": 4}, global_batch_size=4, process_index=0,
                      process_count=1, seed=0, split="train", crop_size=124, crops_per_image=2)
    it = iter(ds)
    b = next(it)
    it.close()
    assert b["image"].shape == (4, 124, 124, 3) and b["input_ids"].shape == (4, info["text_len"])


def test_cli_summary_and_one_line_errors(photo_dir, tmp_path, capsys):
    from exif_jax.commands.ingest import main

    images, _ = photo_dir
    assert main(["--images", str(images), "--out", str(tmp_path / "o"), "--shards", "2", "--workers", "0",
                 "--quiet"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{tmp_path / 'o'}: ") and "training and" in out and "held-out photos in 2 + " in out
    assert out.endswith(".") and "\n" not in out and "{" not in out  # one sentence, not a dict
    assert "inputs rejected (2 not jpeg, 1 duplicate," in out and "listed in" in out
    assert main(["--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"exif-jax ingest: error: --images {tmp_path / 'nope'}: not a directory"
    (tmp_path / "empty").mkdir()
    assert main(["--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o3"), "--quiet"]) == 1
    assert "no JPEG files" in capsys.readouterr().err
    (tmp_path / "x.tsv").write_text("1\tExif+IFD0.Make:X\n")
    assert main(["--images", str(images), "--out", str(tmp_path / "o4"), "--yfcc-exif", str(tmp_path / "x.tsv"),
                 "--quiet"]) == 1
    assert "--yfcc-exif with a folder of JPEGs needs --photo-ids" in capsys.readouterr().err


def test_all_shared_camera_photos(shared_data, tmp_path):
    """The one full-size run: all 101 metadata-extractor JPEGs (97 MB), two worker processes."""
    src = shared_data / "photos_dev/metadata_extractor/images"
    info = run(_cfg(src, tmp_path, workers=2, shards=4, eval_fraction=0.05))
    man = _manifest(shared_data)
    small = {f for f, r in man.items() if min(int(r["width"]), int(r["height"])) < 124}
    assert len(small) == 6  # as documented in the shared data README
    rejects = dict(line.split("\t") for line in (tmp_path / "rejects.tsv").read_text().splitlines()[1:])
    assert {f for f, r in rejects.items() if r.startswith("too_small")} == small
    n = 0
    for split in ("train", "eval"):
        for name in info["splits"][split]["shards"]:
            for rec in tfrecord.read_records(tmp_path / name):
                assert isinstance(rec, bytes)
                r = records.parse_record(rec)
                assert r["image"] == (src / r["source"]).read_bytes()
                n += 1
    assert n == info["counts"]["accepted"] == len(man) - len(rejects) and n >= 90


def test_iphone_mpo_jpegs_are_accepted(shared_data, tmp_path):
    """iPhones write MPO files (a JPEG plus appended frames); Pillow calls them MPO, they are still JPEGs."""
    src = tmp_path / "in"
    src.mkdir()
    for f in sorted((shared_data / "photos_dev/digicam_cc0").glob("Apple__*")):
        shutil.copyfile(f, src / f.name)
    assert "MPO" in {Image.open(p).format for p in src.iterdir()}
    info = run(_cfg(src, tmp_path / "out", workers=0, shards=1, eval_fraction=0.0))
    assert info["counts"]["accepted"] == 2 and info["counts"]["rejected"] == 0


def test_verify_reports_clean_and_damaged_datasets(ingested, tmp_path, capsys):
    from exif_jax.data.verify import main

    out, info = ingested
    assert main([str(out), "--quiet"]) == 0
    assert "all records verified" in capsys.readouterr().out
    damaged = tmp_path / "d"
    shutil.copytree(out, damaged)
    name = info["splits"]["train"]["shards"][0]
    raw = bytearray((damaged / name).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (damaged / name).write_bytes(bytes(raw))
    assert main([str(damaged), "--quiet"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(name in line and "CRC mismatch" in line for line in lines)
    assert any(f"{name}: {info['splits']['train']['records_per_shard'][0] - 1} good records" in line for line in lines)
