"""`exif-jax exif`, run in-process: YFCC lines (against the original repository's golden texts), JPEGs (against the
Pillow-read manifest and the Java metadata-extractor dumps), and per-file errors."""
import csv
import json
import re
import shutil

import pytest

from exif_jax.commands.exif import main


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def golden(shared_data):
    with open(shared_data / "yfcc_style" / "legacy_golden_dev.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_yfcc_json_legacy_reproduces_golden_texts(shared_data, golden, capsys):
    lines = shared_data / "yfcc_style" / "exif_lines_dev.tsv"
    rc, out, err = _run(capsys, ["--yfcc", str(lines), "--json"])
    assert rc == 0 and err == ""
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["photo_id"] for o in objs] == [str(g["photo_id"]) for g in golden]
    assert [o["text"] for o in objs] == [g["text"] for g in golden]  # includes one null (3-item line)
    first = objs[0]
    assert set(first) == {"photo_id", "items", "text"}
    assert first["items"][:2] == [["Exif IFD0", "Make", "Apple"], ["Exif IFD0", "Model", "iPhone 4"]]
    # same texts with the original's own fraction file as --tag-table
    rc, out2, _ = _run(capsys, ["--yfcc", str(lines), "--json", "--tag-table",
                                str(shared_data / "yfcc_style" / "legacy_tag_fractions_dev.json")])
    assert rc == 0 and [json.loads(x)["text"] for x in out2.splitlines()] == [g["text"] for g in golden]


def test_yfcc_text_mode_clean_and_garbage(tmp_path, capsys):
    f = tmp_path / "lines.tsv"
    f.write_text("5\tExif+IFD0.Make:Canon,Exif+IFD0.Model:Canon+EOS+20D,Exif+SubIFD.F-Number:f%2F2.8\n"
                 "\nnot a line\n6\tGPS.GPS+Altitude:3+metres\n")
    rc, out, err = _run(capsys, ["--yfcc", str(f), "--renderer", "clean"])
    assert rc == 0
    assert out.splitlines()[:4] == ["5: 3 items", "  [Exif IFD0] Make = Canon", "  [Exif IFD0] Model = Canon EOS 20D",
                                    "  [Exif SubIFD] F-Number = f/2.8"]
    assert "  text: Make: Canon, Model: Canon EOS 20D, F-Number: f/2.8" in out
    assert "6: 1 items" in out and "  text: (dropped by the renderer)" in out  # no default clean tag in line 6
    assert err.strip() == f"exif-jax exif: {f}: skipped 1 of 4 lines without a valid 'Directory.Tag:value' item"
    rc, out, _ = _run(capsys, ["--yfcc", str(f), "--renderer", "clean", "--tags", "Model,Make", "--text-only"])
    assert out.splitlines() == ["5\tModel: Canon EOS 20D, Make: Canon", "6\t"]


def test_usage_and_file_errors(tmp_path, capsys):
    rc, _, err = _run(capsys, [])
    assert rc == 2 and "give either IMAGE... or --yfcc" in err
    rc, _, err = _run(capsys, ["--yfcc", str(tmp_path / "missing.tsv")])
    assert rc == 1 and err.strip() == f"exif-jax exif: error: {tmp_path / 'missing.tsv'}: No such file or directory"
    junk = tmp_path / "junk.tsv"
    junk.write_text("photo_id\tfile_name\n1\tphoto.jpg\n")
    rc, out, err = _run(capsys, ["--yfcc", str(junk)])
    assert rc == 1 and out == "" and "no YFCC EXIF line" in err
    bad_table = tmp_path / "table.json"
    bad_table.write_text("[1, 2]")
    rc, _, err = _run(capsys, ["--yfcc", str(junk), "--tag-table", str(bad_table)])
    assert rc == 2 and err.count("\n") == 1 and "table.json" in err
    rc, _, err = _run(capsys, ["--yfcc", str(junk), "--renderer", "legacy", "--tags", "Make"])
    assert rc == 2 and "--tags/--makernotes apply to the clean renderer only" in err
    assert _run(capsys, ["--help"])[0] == 0


def _manifest(shared_data):
    with open(shared_data / "photos_dev" / "metadata_extractor" / "manifest.csv", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_images_json_items_and_text(shared_data, capsys):
    from exif_jax.exif.reader import read_exif_file

    images = shared_data / "photos_dev" / "metadata_extractor" / "images"
    names = ["Apple iPhone 4.jpg", "Canon EOS 20D (2).jpg", "VTech Kidizoom camera.jpg"]
    manifest = _manifest(shared_data)
    rc, out, err = _run(capsys, [str(images / n) for n in names] + ["--json"])
    assert rc == 0 and err == ""
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["file"] for o in objs] == [str(images / n) for n in names]
    for name, obj in zip(names, objs):
        assert obj["items"] == [list(it) for it in read_exif_file(images / name)]
        # Make/Model as Pillow reads them, first in the clean text
        assert obj["text"].startswith(f"Make: {manifest[name]['Make']}, Model: {manifest[name]['Model']}")
    assert "Exposure Time: 1/15 sec, F-Number: f/2.8" in objs[0]["text"]
    # legacy over the given images: the 3-item VTech file is dropped, the others have legacy-cleaned values
    rc, out, _ = _run(capsys, [str(images / n) for n in names] + ["--json", "--renderer", "legacy"])
    texts = [json.loads(line)["text"] for line in out.splitlines()]
    assert texts[2] is None and "Exposure Time: 1/15sec" in texts[0] and texts[0].startswith("Make: Apple, Model: iPhone4")


def test_bad_images_are_reported_and_the_rest_printed(shared_data, tmp_path, capsys):
    src = shared_data / "photos_dev" / "metadata_extractor" / "images" / "Apple iPhone 4.jpg"
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(src, folder / "a.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "b.jpg").write_bytes(b"this is not a JPEG at all")
    (folder / "c.JPG").write_bytes(src.read_bytes()[:300])  # truncated inside the EXIF block
    missing = tmp_path / "missing.jpg"
    rc, out, err = _run(capsys, [str(folder), str(missing), "--text-only"])
    assert rc == 1
    assert out.splitlines()[0].startswith(f"{folder / 'a.jpg'}\tMake: Apple, Model: iPhone 4")
    errors = err.strip().splitlines()
    # 2 or 3 failed: the truncated file may be an error or an empty item list, both allowed for a truncated file
    assert re.fullmatch(r"exif-jax exif: [23] of 4 files failed", errors[-1])
    # the truncated file: an error, or its items with a warning naming the damage
    assert all(line.startswith(("exif-jax exif: error: ", "exif-jax exif: warning: ")) for line in errors[:-1])
    assert len(errors) in (3, 4)
    for bad in (folder / "b.jpg", missing):
        assert sum(str(bad) in line for line in errors) == 1
    # the truncated file is either an error naming it or printed with the items the reader could recover
    assert str(folder / "c.JPG") in err or str(folder / "c.JPG") in out
    assert "notes.txt" not in out + err


def test_missing_cuda_driver_plugin_traceback_becomes_one_line(capsys, caplog):
    import logging

    from exif_jax.cli import _NoCudaPluginTraceback

    log = logging.getLogger("exif_jax_test.xla_bridge")
    flt = _NoCudaPluginTraceback()
    log.addFilter(flt)
    try:
        try:
            raise RuntimeError("Unable to load CUDA. Is it installed?")
        except RuntimeError:
            log.error("Jax plugin configuration error: Exception when calling jax_plugins.xla_cuda12.initialize()",
                      exc_info=True)
        log.error("Jax plugin configuration error: Exception when calling jax_plugins.xla_tpu.initialize()")
    finally:
        log.removeFilter(flt)
    err = capsys.readouterr().err
    assert err.count("no NVIDIA driver") == 1 and "Traceback" not in err and "Unable to load CUDA" not in err
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "xla_tpu" in logged[0]  # other plugin errors pass through unchanged
