"""The Beam runner lists its inputs inside the pipeline (on its workers), never on the launching process, and still
gives the local runner's records, rejects and counts: a nested folder, YFCC lines paired through `--photo-ids`, and
webdataset tars paired with YFCC lines; the byte ranges that split YFCC / photo-id files cover every line once."""
import io
import json
import logging
import random
import re
import shutil
import tarfile

import pytest

from exif_jax.data import ingest, ingest_inputs, webdataset
from exif_jax.data.ingest import run
from test_ingest_scale import _cfg, _rejects, _same_dataset

ME = "photos_dev/metadata_extractor/images"


@pytest.fixture(scope="module")
def beam():
    try:
        import apache_beam
    except ModuleNotFoundError as e:
        if e.name != "apache_beam":  # installed but broken: fail, never skip
            raise
        pytest.skip("apache-beam is not installed (pip install --no-deps -r requirements-scale.txt)")
    return apache_beam


def _no_launcher_listing(monkeypatch):
    """From here on, the launching process may not list a folder, a tar or a line file (the workers are separate
    processes started by the DirectRunner's multi-processing mode, which keep the real functions)."""
    def refuse(*a, **k):
        raise AssertionError("the launching process listed inputs")

    for mod, name in ((ingest, "prepare"), (ingest, "_walk_images"), (ingest, "_yfcc_offsets"),
                      (ingest, "_read_photo_ids"), (webdataset, "list_samples"), (webdataset, "list_tars"),
                      (webdataset, "failed_downloads"), (ingest_inputs, "expand_dir"), (ingest_inputs, "walk_dir")):
        monkeypatch.setattr(mod, name, refuse)


def _creates(beam, plan):
    """The values of every Create in the listing part of the pipeline graph (built, not run)."""
    from exif_jax.data.ingest_beam import list_inputs

    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, beam.Create):
                if node.full_label != "no errors":
                    found.append(list(node.transform.values))

    pl = beam.Pipeline(runner="DirectRunner")
    list_inputs(beam, pl, plan)
    pl.visit(Visitor())
    return found


def test_beam_lists_a_nested_folder_on_its_workers(beam, shared_data, tmp_path, monkeypatch, caplog):
    src = shared_data / ME
    every = sorted(p.name for p in src.glob("*.jpg"))
    names, extra = every[:40:4], every[41]
    images = tmp_path / "img"
    for i, name in enumerate(names):  # photos at every depth, deeper than the levels listed one by one
        folder = images / ["", "a", "a/b", "a/b/c/d", "sub"][i % 5]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, folder / name)
    (images / "sub-a").mkdir()
    shutil.copyfile(src / extra, images / "sub" / "b.jpg")  # same bytes: sorted as paths, sub/ comes first
    shutil.copyfile(src / extra, images / "sub-a" / "b.jpg")  # (as strings, "sub-a/" < "sub/")
    shutil.copyfile(src / names[2], images / "a/b/c/d/dup.jpg")
    (images / ".hidden").mkdir()
    shutil.copyfile(src / names[3], images / ".hidden" / "skipped.jpg")
    (images / "a/b/c/notes.txt").write_text("not a photo")
    kw = {"renderer": "clean", "min_tags": 5}
    local = run(_cfg(images, tmp_path / "local", **kw))
    assert (tmp_path / "local/rejects.tsv").read_text().count("duplicate: same bytes as") == 2

    plan = ingest_inputs.plan(_cfg(images, tmp_path / "beam", **kw), tmp_path / "state")
    assert _creates(beam, plan) == [[""]]  # the graph starts from the root folder alone
    _no_launcher_listing(monkeypatch)
    caplog.set_level(logging.INFO)
    beamed = run(_cfg(images, tmp_path / "beam", runner="beam", **kw))
    assert "prism" not in caplog.text.lower()  # Beam's DirectRunner would try to download the Prism runner first
    _same_dataset(tmp_path / "local", local, tmp_path / "beam", beamed)
    assert "sub-a/b.jpg\tduplicate: same bytes as sub/b.jpg" in _rejects(tmp_path / "beam")
    assert beamed["counts"]["inputs"] == len(names) + 4  # the hidden folder is skipped by both


def _tar(path, samples):
    with tarfile.open(path, "w") as tar:
        for key, data, meta in samples:
            for ext, payload in ((".jpg", data), (".json", json.dumps(meta).encode())):
                ti = tarfile.TarInfo(key + ext)
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))


def test_beam_pairs_yfcc_lines_inside_the_pipeline(beam, shared_data, tmp_path, monkeypatch):
    """YFCC lines joined by photo id with CoGroupByKey on the workers (first line of an id wins, last
    --photo-ids line of an id wins), for a folder and for webdataset tars; files split into many byte ranges."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    yfcc = shared_data / "yfcc_style"
    ids = [l.split("\t") for l in (yfcc / "photo_ids.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    lines = (yfcc / "exif_lines_dev.tsv").read_text(encoding="utf-8").splitlines()
    images = tmp_path / "img"
    images.mkdir()
    have = [(pid, name) for pid, name in ids if (shared_data / ME / name).is_file()][:24]
    for pid, name in have[:20]:  # the last 4 are missing_image
        shutil.copyfile(shared_data / ME / name, images / name)
    first = next(l for l in lines if l.startswith(have[0][0] + "\t"))
    pid1 = have[1][0]
    (tmp_path / "lines.tsv").write_text("\n".join(lines + [first.replace("Exif", "Xexif")]) + "\n", encoding="utf-8")
    (tmp_path / "ids.tsv").write_text("photo_id\tfile_name\n" + "".join(
        f"{pid}\t{name}\n" for pid, name in have) + f"{pid1}\t{have[2][1]}\n" + "424242\tnone.jpg\n", encoding="utf-8")
    monkeypatch.setattr(ingest_inputs, "CHUNK_BYTES", 997)  # ~ 100 byte ranges, lines cut anywhere
    kw = {"yfcc_exif": str(tmp_path / "lines.tsv"), "renderer": "clean", "shards": 2}
    local = run(_cfg(images, tmp_path / "local", photo_ids=str(tmp_path / "ids.tsv"), **kw))
    assert {"no_exif_line", "missing_image"} <= set(local["counts"]["rejected_by_reason"])

    # the same photos as webdataset tars (img2dataset's layout), photo ids in the samples' JSON
    tars = tmp_path / "tars"
    tars.mkdir()
    rows = [(f"{i:09d}", (images / name).read_bytes(), {"photo_id": pid, "status": "success"})
            for i, (pid, name) in enumerate(have[:20])]
    rows.append(("000000099", rows[0][1], {"photo_id": "424242"}))  # no YFCC line
    _tar(tars / "00000.tar", rows[:12])
    _tar(tars / "00001.tar", rows[12:])
    pq.write_table(pa.Table.from_pylist([{"url": "http://x/1.jpg", "status": "failed_to_download",
                                          "error_message": "timeout"}, {"url": "http://x/2.jpg",
                                                                        "status": "success"}]), tars / "00000.parquet")
    wds_local = run(_cfg(tars, tmp_path / "wds_local", **kw))
    assert wds_local["source"] == "webdataset+yfcc" and "download_failed" in wds_local["counts"]["rejected_by_reason"]

    plan = ingest_inputs.plan(_cfg(images, tmp_path / "beam", photo_ids=str(tmp_path / "ids.tsv"), **kw),
                              tmp_path / "state")
    creates = _creates(beam, plan)
    assert len(creates) == 2 and len(creates[0]) > 50 and all(len(r) == 2 for c in creates for r in c)  # ranges
    _no_launcher_listing(monkeypatch)
    beamed = run(_cfg(images, tmp_path / "beam", photo_ids=str(tmp_path / "ids.tsv"), runner="beam", **kw))
    _same_dataset(tmp_path / "local", local, tmp_path / "beam", beamed)
    wds_beamed = run(_cfg(tars, tmp_path / "wds_beam", runner="beam", **kw))
    _same_dataset(tmp_path / "wds_local", wds_local, tmp_path / "wds_beam", wds_beamed)
    # a malformed --photo-ids line found by a worker stops the job with one line naming the file and the byte offset
    bad = tmp_path / "bad_ids.tsv"
    bad.write_text("photo_id\tfile_name\n" + f"{have[0][0]}\t{have[0][1]}\n" + "no tab here\n", encoding="utf-8")
    offset = len(f"photo_id\tfile_name\n{have[0][0]}\t{have[0][1]}\n".encode())
    with pytest.raises(ingest.IngestError, match=f"bad_ids.tsv: line at byte {offset}: expected 'photo_id<TAB>"):
        run(_cfg(images, tmp_path / "bad", photo_ids=str(bad), runner="beam", **kw))


def test_byte_ranges_cover_every_line_once(tmp_path):
    rng = random.Random(0)
    text = b"".join(rng.choice([b"", b"\t", b"12\tab", b"x" * rng.randint(1, 300)]) + b"\n" for _ in range(500))
    path = tmp_path / "lines.tsv"
    path.write_bytes(text + b"last line without newline")
    expected = [(m.start(), m.group()) for m in re.finditer(rb"[^\n]*\n|[^\n]+$", path.read_bytes())]
    assert len(expected) == 501
    for chunk in (1, 7, 64, 4096, 1 << 20):
        got = [x for r in ingest_inputs.byte_ranges(str(path), chunk) for x in ingest_inputs._lines(str(path), *r)]
        assert got == expected, chunk
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    assert ingest_inputs.byte_ranges(str(empty)) == ((0, 0),)
    assert [x for r in ingest_inputs.byte_ranges(str(empty)) for x in ingest_inputs._lines(str(empty), *r)] == []
