"""Ingest at scale: the Apache Beam runner against the local one (same records, rejects, counts, tag table), the
TFDS view of the output, webdataset shards in img2dataset's layout downloaded over loopback HTTP -> ingest -> a few
train steps, `exif-jax yfcc-subset` on YFCC100M-layout files, and reruns with changed options."""
import bz2
import csv
import functools
import hashlib
import http.server
import io
import json
import lzma
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from exif_jax.data import records, tfrecord
from exif_jax.data.ingest import IngestConfig, run

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cfg(images, out, **kw):
    return IngestConfig(images=str(images), out=str(out), **{"shards": 3, "eval_fraction": 0.25, "progress": False,
                                                             "workers": 2, **kw})


def _records(out, info):
    """{photo_id: (image bytes, items, text, source)} read back with the CRC-checking reader or ArrayRecord."""
    got = {}
    for split in ("train", "eval"):
        for name in info["splits"][split]["shards"]:
            if name.endswith(".array_record"):
                import grain

                src = grain.sources.ArrayRecordDataSource([str(out / name)])
                raw = [src[i] for i in range(len(src))]
            else:
                raw = list(tfrecord.read_records(out / name))
            for rec in raw:
                assert isinstance(rec, bytes)
                r = records.parse_record(rec)
                assert r["photo_id"] not in got
                got[r["photo_id"]] = (r["image"], json.loads(r["exif_items"]), r["exif_text"], r["source"], split)
    return got


def _rejects(out):
    return sorted((out / "rejects.tsv").read_text(encoding="utf-8").splitlines())


def _same_dataset(a_out, a, b_out, b):
    assert _records(a_out, a) == _records(b_out, b)
    assert _rejects(a_out) == _rejects(b_out)
    for key in ("counts", "tag_table", "token_lengths", "text_len", "image_sizes", "renderer_spec", "source"):
        assert a[key] == b[key], key
    for split in ("train", "eval"):
        for key in ("records", "image_bytes", "max_short_side"):
            assert a["splits"][split][key] == b["splits"][split][key]


def _mixed_folder(shared_data, root):
    """Real photos from two collections plus inputs every runner must reject the same way."""
    me = shared_data / "photos_dev/metadata_extractor/images"
    man = {r["file"]: r for r in csv.DictReader(open(me.parent / "manifest.csv", encoding="utf-8"))}
    small = sorted(man, key=lambda f: int(man[f]["bytes"]))
    for f in small[:14]:  # includes too-small and too-few-tags photos
        shutil.copyfile(me / f, root / f)
    (root / "sub").mkdir()
    shutil.copyfile(me / small[3], root / "sub" / "copy.jpg")  # duplicate
    data = (me / small[20]).read_bytes()
    (root / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not a photo")
    return root


# ------------------------------------------------------------------------------------------------------- Beam
@pytest.fixture(scope="module")
def beam():
    try:
        import apache_beam
    except ModuleNotFoundError as e:
        if e.name != "apache_beam":  # installed but broken (a missing dependency): fail, never skip
            raise
        pytest.skip("apache-beam is not installed (pip install --no-deps -r requirements-scale.txt)")
    return apache_beam


def test_beam_runner_equals_local_runner(beam, shared_data, tmp_path):
    """Same record set, rejects, counts and tag table on a mixed folder (legacy texts: the tag table's 0.49
    threshold decides the texts) and on photos of the multi-photo collection (seen by neither runner's design)."""
    (tmp_path / "mixed").mkdir()
    mixed = _mixed_folder(shared_data, tmp_path / "mixed")
    multi = tmp_path / "multi"
    multi.mkdir()
    for f in sorted((shared_data / "photos_multi").glob("*.JPG"))[::5]:  # 42 photos, a few without EXIF
        shutil.copyfile(f, multi / f.name)
    for images, kw in ((mixed, {"renderer": "legacy", "format": "array_record"}),
                       (multi, {"renderer": "clean", "min_tags": 5})):
        local = run(_cfg(images, tmp_path / f"{images.name}_local", **kw))
        beamed = run(_cfg(images, tmp_path / f"{images.name}_beam", runner="beam", **kw))
        _same_dataset(tmp_path / f"{images.name}_local", local, tmp_path / f"{images.name}_beam", beamed)
        assert local["counts"]["rejected"] >= 3 and local["counts"]["accepted"] >= 10
    # the Beam output is a TFDS dataset too; its data source returns the original JPEG bytes
    import tensorflow_datasets as tfds

    src = tfds.builder_from_directory(str(tmp_path / "mixed_beam" / "tfds")).as_data_source("train")
    by_id = _records(tmp_path / "mixed_beam", json.loads((tmp_path / "mixed_beam" / "dataset_info.json").read_text()))
    for i in range(len(src)):
        r = src[i]
        assert r["image"] == (mixed / r["source"].decode()).read_bytes() == by_id[r["photo_id"].decode()][0]


# ------------------------------------------------------------------------------------------------------- TFDS
def test_tfds_view_of_the_output_without_tensorflow(shared_data, tmp_path):
    import tensorflow_datasets as tfds

    images = shared_data / "photos_dev/digicam_cc0"
    info = run(_cfg(images, tmp_path / "ar", format="array_record", workers=0))
    builder = tfds.builder_from_directory(str(tmp_path / "ar" / "tfds"))
    assert {s: builder.info.splits[s].num_examples for s in ("train", "eval")} == {
        s: info["splits"][s]["records"] for s in ("train", "eval")}
    src = builder.as_data_source("eval")
    assert len(src) == info["splits"]["eval"]["records"] >= 1
    for i in range(len(src)):
        r = src[i]
        assert r["image"] == (images / r["source"].decode()).read_bytes()
        assert isinstance(r["width"], int) and json.loads(r["exif_items"])
    assert "tensorflow" not in sys.modules  # TFDS read it with numpy only
    # TFRecord output: TFDS opens the metadata; random access needs ArrayRecord (TFDS says so)
    info = run(_cfg(images, tmp_path / "tf", workers=0))
    builder = tfds.builder_from_directory(str(tmp_path / "tf" / "tfds"))
    assert builder.info.splits["train"].num_examples == info["splits"]["train"]["records"]
    with pytest.raises(Exception, match="(?i)array_record|random access|not supported"):
        builder.as_data_source("train")


# ---------------------------------------------------------------------------------- loopback img2dataset layout
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture()
def loopback_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _exifread_json(data: bytes) -> str | None:
    """What img2dataset stores in the sample JSON under `exif` (ExifRead tags, details=False)."""
    import exifread

    try:
        return json.dumps({k: str(v).strip() for k, v in exifread.process_file(io.BytesIO(data), details=False).items()
                           if v is not None})
    except Exception:
        return None


def _download_like_img2dataset(rows, out, shard=0):
    """img2dataset's webdataset writer with `--resize_mode no --skip_reencode True --extract_exif True
    --save_additional_columns '["photo_id"]'`: `SSSSSIIII.jpg` + `.json` per success in `SSSSS.tar`, every URL's
    result in `SSSSS.parquet`, and `SSSSS_stats.json`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = []
    with tarfile.open(out / f"{shard:05d}.tar", "w") as tar:
        for i, row in enumerate(rows):
            key = f"{shard:05d}{i:04d}"
            meta = {"photo_id": row["photo_id"], "url": row["url"], "key": key, "status": "success",
                    "error_message": None, "width": None, "height": None, "original_width": None,
                    "original_height": None, "exif": None, "sha256": None}
            try:
                data = urllib.request.urlopen(row["url"], timeout=10).read()
            except urllib.error.URLError as e:
                meta.update(status="failed_to_download", error_message=str(e))
                results.append(meta)
                continue
            from PIL import Image

            w, h = Image.open(io.BytesIO(data)).size
            meta.update(width=w, height=h, original_width=w, original_height=h, exif=_exifread_json(data),
                        sha256=hashlib.sha256(data).hexdigest())
            for ext, payload in ((".jpg", data), (".json", json.dumps(meta, indent=4).encode())):
                ti = tarfile.TarInfo(key + ext)
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
            results.append(meta)
    pq.write_table(pa.Table.from_pylist(results), out / f"{shard:05d}.parquet")
    ok = sum(r["status"] == "success" for r in results)
    (out / f"{shard:05d}_stats.json").write_text(json.dumps({"count": len(results), "successes": ok,
                                                             "failed_to_download": len(results) - ok}))


def _yfcc_dataset_line(n, pid, url, video=False):
    """A `yfcc100m_dataset` line: 25 tab-separated fields (line number, id, hash, ..., URL at 17, marker last)."""
    f = [str(n), pid, hashlib.md5(pid.encode()).hexdigest(), "12345@N00", "user", "2010-01-01 00:00:00.0",
         "1262304000", "Camera", "title", "desc", "tags", "", "", "", "", f"http://www.flickr.com/photos/u/{pid}/",
         url, "Attribution License", "http://creativecommons.org/licenses/by/2.0/", "1", "1", "abc", "def", "jpg",
         "1" if video else "0"]
    assert len(f) == 25
    return "\t".join(f)


@pytest.fixture()
def yfcc_files(shared_data, loopback_server, tmp_path):
    """YFCC100M-layout files (bz2 dataset, xz EXIF) for the shared YFCC-style lines; URLs point at loopback."""
    www, base = loopback_server
    yfcc = shared_data / "yfcc_style"
    ids = dict(line.rstrip("\n").split("\t") for line in open(yfcc / "photo_ids.tsv", encoding="utf-8")
               if not line.startswith("photo_id"))
    exif_lines = (yfcc / "exif_lines_dev.tsv").read_text(encoding="utf-8").splitlines()
    src = shared_data / "photos_dev/metadata_extractor/images"
    lines = []
    for n, (pid, name) in enumerate(sorted(ids.items())):
        if (src / name).is_file():
            shutil.copyfile(src / name, www / f"{pid}.jpg")
        # every 9th is a video; every 7th has no URL on the server (a failed download)
        lines.append(_yfcc_dataset_line(n, pid, f"{base}/{pid}.jpg", video=n % 9 == 4))
    lines.append(_yfcc_dataset_line(len(lines), "999999999", f"{base}/video.mp4", video=True))
    (tmp_path / "yfcc100m_dataset.bz2").write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    (tmp_path / "yfcc100m_exif.xz").write_bytes(lzma.compress(("\n".join(exif_lines) + "\n").encode()))
    for n, pid in enumerate(sorted(ids)):
        if n % 7 == 3 and (www / f"{pid}.jpg").exists():
            (www / f"{pid}.jpg").unlink()
    return tmp_path / "yfcc100m_dataset.bz2", tmp_path / "yfcc100m_exif.xz", exif_lines, lines


def _ref_items(line):
    from exif_jax.exif.yfcc import parse_yfcc_line

    return parse_yfcc_line(line)


def test_yfcc_subset_streams_compressed_files(yfcc_files, tmp_path):
    import pyarrow.parquet as pq

    from exif_jax.commands.yfcc_subset import main

    dataset, exif, exif_lines, ds_lines = yfcc_files
    out = tmp_path / "subset.parquet"
    assert main(["--dataset", str(dataset), "--exif", str(exif), "--n", "30", "--seed", "0", "--out", str(out),
                 "--quiet"]) == 0
    table = pq.read_table(out).to_pylist()
    videos = {l.split("\t")[1] for l in ds_lines if l.split("\t")[-1] == "1"}
    rich = {pid for pid, items in map(_ref_items, exif_lines) if len(items) > 10}
    expected = sorted(rich - videos, key=lambda p: hashlib.sha1(f"0:{p}".encode()).digest()[:8])[:30]
    assert [r["photo_id"] for r in table] == expected  # uniform by seed: the 30 smallest sha1(seed:id)
    assert all(r["url"].endswith(f"/{r['photo_id']}.jpg") for r in table)
    sub_lines = (tmp_path / "subset_exif.tsv").read_text(encoding="utf-8").splitlines()
    assert sorted(l.split("\t")[0] for l in sub_lines) == sorted(expected) and set(sub_lines) <= set(exif_lines)
    assert main(["--dataset", str(dataset), "--exif", str(exif), "--n", "30", "--seed", "1", "--out",
                 str(tmp_path / "s1.parquet"), "--quiet"]) == 0
    assert [r["photo_id"] for r in pq.read_table(tmp_path / "s1.parquet").to_pylist()] != expected
    assert main(["--dataset", str(tmp_path / "nope.bz2"), "--exif", str(exif), "--n", "3", "--out", str(out)]) == 2


def test_loopback_download_to_webdataset_then_ingest_and_train(yfcc_files, tmp_path):
    """yfcc-subset -> download over 127.0.0.1 into img2dataset's webdataset layout -> ingest (EXIF from the
    YFCC lines, paired by the saved photo_id column; failed downloads counted) -> 3 train steps."""
    import pyarrow.parquet as pq

    from exif_jax.commands.yfcc_subset import main

    dataset, exif, exif_lines, _ = yfcc_files
    assert main(["--dataset", str(dataset), "--exif", str(exif), "--n", "40", "--out",
                 str(tmp_path / "subset.parquet"), "--quiet"]) == 0
    rows = pq.read_table(tmp_path / "subset.parquet").to_pylist()
    shards = tmp_path / "shards"
    shards.mkdir()
    try:  # the real downloader where the [img2dataset] extra is installed, else its exact layout
        import img2dataset  # noqa: F401

        subprocess.run([sys.executable, "-c", "import sys; from img2dataset import download; download("
                        "url_list=sys.argv[1], input_format='parquet', url_col='url', save_additional_columns="
                        "['photo_id'], output_format='webdataset', output_folder=sys.argv[2], resize_mode='no', "
                        "skip_reencode=True, extract_exif=True, processes_count=1, thread_count=4, "
                        "number_sample_per_shard=20, distributor='multiprocessing', enable_wandb=False)",
                        str(tmp_path / "subset.parquet"), str(shards)], check=True, capture_output=True,
                       timeout=120, env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    except ImportError:
        _download_like_img2dataset(rows[:20], shards, 0)
        _download_like_img2dataset(rows[20:], shards, 1)
    assert sorted(p.name for p in shards.iterdir()) == [f"0000{i}{ext}" for i in (0, 1)
                                                        for ext in (".parquet", ".tar", "_stats.json")]
    out = tmp_path / "data"
    info = run(_cfg(shards, out, yfcc_exif=str(tmp_path / "subset_exif.tsv"), renderer="clean", shards=2,
                    eval_fraction=0.2))
    lines = {pid: items for pid, items in map(_ref_items, exif_lines)}
    got = _records(out, info)
    results = pq.read_table(shards / "00000.parquet").to_pylist() + pq.read_table(shards / "00001.parquet").to_pylist()
    failed = [r for r in results if r["status"] != "success"]
    assert {"url", "photo_id", "key", "status", "error_message", "exif", "sha256"} <= set(results[0])
    assert failed and info["counts"]["rejected_by_reason"]["download_failed"] == len(failed)
    assert info["counts"]["inputs"] == len(rows) and info["source"] == "webdataset+yfcc"
    assert len(got) >= 15
    for pid, (image, items, text, source, split) in got.items():
        assert [tuple(i) for i in items] == lines[pid]
        assert image == urllib.request.urlopen(next(r["url"] for r in rows if r["photo_id"] == pid)).read()
    # the same shards without --yfcc-exif: EXIF read from the JPEG bytes (kept by --skip_reencode)
    own = run(_cfg(shards, tmp_path / "own", renderer="clean", shards=2))
    assert own["source"] == "webdataset" and own["counts"]["accepted"] >= len(got) - 3
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    r = subprocess.run([sys.executable, "-m", "exif_jax.cli", "train", "--config", "configs/smoke.py:runlocal",
                        "--workdir", str(tmp_path / "run"), f"--config.data.path={out}", "--config.total_steps=3",
                        "--config.log_every=1", "--config.eval_every=0", "--config.checkpoint_every=3",
                        "--config.batch_size=8", "--config.data.max_text_len=64", "--config.model.image_size=32",
                        "--config.data.crop=32", "--config.data.shuffle_window=8"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    losses = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in losses if "loss" in m][-1] == 3 and all(m["loss"] > 0 for m in losses if "loss" in m)


# ------------------------------------------------------------------------------------------ reruns and warnings
def test_rerun_with_changed_options_says_what_it_rebuilds(shared_data, tmp_path, capsys):
    images = shared_data / "photos_dev/digicam_cc0"
    run(_cfg(images, tmp_path, workers=0, eval_fraction=0.05, progress=True))
    err = capsys.readouterr().err
    assert "warning: only" in err and "held-out photo" in err  # 39 photos, 5% held out
    run(_cfg(images, tmp_path, workers=0, eval_fraction=0.05, progress=True))
    err = capsys.readouterr().err
    assert "options changed" not in err and "already complete" in err
    info = run(_cfg(images, tmp_path, workers=0, eval_fraction=0.25, renderer="clean", progress=True))
    err = capsys.readouterr().err
    line = next(l for l in err.splitlines() if "options changed" in l)
    assert "eval-fraction 0.05 -> 0.25" in line and "renderer legacy -> clean" in line and "rebuilding" in line
    assert info["renderer"] == "clean" and info["eval_fraction"] == 0.25
    # a saved tag table renders the same texts as the one computed over the same photos
    given = run(_cfg(images, tmp_path / "given", workers=0, eval_fraction=0.25, renderer="clean",
                     tag_table=str(tmp_path / "dataset_info.json")))
    assert given["tag_table"] == info["tag_table"]
    assert _records(tmp_path / "given", given) == _records(tmp_path, info)
