"""Simulated cameras (`exif_jax.simulate`, `exif-jax simulate`) and same-content splices (`eval.same_content`).

References: our EXIF reader (metadata-extractor names) and Pillow's JPEG parser (quantization tables, chroma
sampling, and Pillow's own IJG tables at a given quality) read the written files back; OpenCV's demosaicing of a
flat colour checks the CFA codes; the splice layout is read by `eval.datasets` and rebuilt pixel by pixel from
`Camera.render`.
"""
from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from exif_jax.exif.reader import read_exif
from exif_jax.exif.render import get_renderer
from exif_jax.simulate import Look, SimulateError, default_zoo, quantization_tables, reference, render_zoo
from exif_jax.simulate import isp

PHOTOS = pathlib.Path(__file__).resolve().parents[1] / "exif_jax" / "assets" / "quickstart" / "photos"
SAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # JpegImagePlugin.get_sampling's values


def _photo(name="Nikon_E885.jpg", side=128):
    with Image.open(PHOTOS / name) as im:
        a = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(a[:side, :side])


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for name in ("Nikon_E885.jpg", "Kodak_DX4330.jpg", "Casio_EX-S1.jpg"):
        Image.fromarray(_photo(name, 96)).save(d / name.replace(".jpg", ".png"))
    return d


def test_zoo_is_fixed_and_distinct():
    a, b = default_zoo(), default_zoo()
    assert a == b and len(a) == 12
    assert len({c.id for c in a}) == len({c.model for c in a}) == 12
    chains = {(c.cfa, c.demosaic, c.iso, c.denoise, c.sharpen_amount, c.sensor_scale, c.resample_kernel,
               c.jpeg_quality, c.subsampling) for c in a}
    assert len(chains) == 12
    for field in ("cfa", "demosaic", "subsampling", "resample_kernel", "denoise"):  # every family is varied
        assert len({getattr(c, field) for c in a}) >= 3


def test_exif_read_back_describes_the_chain():
    rgb = _photo()
    look = Look((1.0, 1.0, 1.0), "daylight", "hard", "low")
    for cam in default_zoo()[:4]:
        items = read_exif(cam.render(rgb, look=look))
        tags = {tag: desc for _, tag, desc in items}
        assert tags["Make"] == cam.make and tags["Model"] == cam.model
        assert tags["ISO Speed Ratings"] == str(cam.iso)
        assert tags["Software"].startswith("exif-jax simulate")
        assert tags["Exif Image Width"] == "128 pixels" and tags["Exif Image Height"] == "128 pixels"
        assert tags["Sharpness"] == {"soft": "Low", "normal": "None", "hard": "Hard"}[cam.sharpness]
        assert tags["Contrast"] == "Hard" and tags["Saturation"] == "Low saturation"
        assert tags["White Balance"] == "Daylight" and tags["White Balance Mode"] == "Manual white balance"
        text = get_renderer("clean")(items)  # the trainer's default renderer keeps the camera's tags
        for tag in ("Make", "Model", "ISO Speed Ratings", "Sharpness", "White Balance", "Exif Image Width"):
            assert f"{tag}: {tags[tag]}" in text


def test_quantization_tables_and_subsampling_read_back_with_pillow():
    rgb = _photo()
    for cam in default_zoo():
        with Image.open(io.BytesIO(cam.render(rgb))) as im:
            assert [list(t) for t in im.quantization.values()] == quantization_tables(cam.jpeg_quality, cam.qtable_tilt)
            assert JpegImagePlugin.get_sampling(im) == SAMPLING[cam.subsampling]
    # Untilted tables are libjpeg's IJG tables at that quality (Pillow's own encoder as the reference).
    for q in (50, 75, 93):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=q)
        with Image.open(buf) as im:
            assert [list(t) for t in im.quantization.values()] == quantization_tables(q)
    tilted = quantization_tables(80, 0.5)[0]
    assert tilted[63] > quantization_tables(80)[0][63] and tilted[0] < quantization_tables(80)[0][0]


def test_cfa_codes_demosaic_a_flat_colour():
    colour = np.array([0.2, 0.5, 0.8], np.float32)
    flat = np.broadcast_to(colour, (16, 16, 3)).copy()
    for pattern in isp.CFA_CODES:
        for algo in isp.DEMOSAIC:
            out = isp.demosaic(isp.mosaic(flat, pattern), pattern, algo)
            np.testing.assert_allclose(out[4:12, 4:12], flat[4:12, 4:12], atol=0.01, err_msg=f"{pattern} {algo}")


def test_renders_keep_the_reference_mean_and_std_and_differ_only_locally():
    """No camera leaves a global colour/brightness signature: each render has the per-channel mean and std of the
    camera-independent reference of the photo; the cameras still differ in high-frequency statistics."""
    import cv2

    rgb = _photo(side=192)
    look = Look.for_photo(rgb)
    ref = reference(rgb, look) * 255.0
    hf = []
    for cam in default_zoo():
        with Image.open(io.BytesIO(cam.render(rgb, look=look))) as im:
            out = np.asarray(im.convert("RGB")).astype(np.float64)
        np.testing.assert_allclose(out.mean((0, 1)), ref.mean((0, 1)), atol=1.0, err_msg=cam.id)
        np.testing.assert_allclose(out.std((0, 1)), ref.std((0, 1)), rtol=0.015, err_msg=cam.id)
        hf.append(cv2.Laplacian(out.mean(2), cv2.CV_64F).std())
    assert max(hf) / min(hf) > 1.5  # local statistics differ between cameras
    assert Look.for_photo(rgb) == look and Look.for_photo(rgb, seed=1) != look  # per photo, not per camera


def test_render_zoo_is_deterministic_and_records_every_camera(small_photos, tmp_path):
    a = render_zoo(small_photos, tmp_path / "a", cameras=6, per_photo=2, seed=3, log=lambda m: None)
    b = render_zoo(small_photos, tmp_path / "b", cameras=6, per_photo=2, seed=3, log=lambda m: None)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jpg"))
    assert len(files_a) == 3 * 2
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    rec = json.loads((tmp_path / "a" / "cameras.json").read_text())
    assert rec == json.loads(json.dumps(a)) and rec["seed"] == 3 and rec["per_photo"] == 2
    assert [c["id"] for c in rec["cameras"]] == [c.id for c in default_zoo()[:6]]
    by_id = {c["id"]: c for c in rec["cameras"]}
    for c in rec["cameras"]:
        assert c["exif"]["Model"] == c["model"] and c["exif"]["ISO Speed Ratings"] == str(c["iso"])
    for p in rec["photos"]:
        assert p["file"].split("/")[0] == p["camera"]
        tags = {t: d for _, t, d in read_exif((tmp_path / "a" / p["file"]).read_bytes())}
        assert tags["Model"] == by_id[p["camera"]]["model"] == p["model"]
        assert pathlib.Path(p["source"]).parent == small_photos
    c = render_zoo(small_photos, tmp_path / "c", cameras=6, per_photo=2, seed=4, log=lambda m: None)
    assert [p["camera"] for p in c["photos"]] != [p["camera"] for p in a["photos"]] or \
        (tmp_path / "c" / c["photos"][0]["file"]).read_bytes() != (tmp_path / "a" / a["photos"][0]["file"]).read_bytes()


def test_cli_refuses_a_used_out_unless_force(small_photos, tmp_path, capsys):
    from exif_jax.commands import simulate

    out = tmp_path / "sim"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    assert simulate.main(["--photos", str(small_photos), "--out", str(out), "--cameras", "3"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "stale.txt").exists()
    assert simulate.main(["--photos", str(small_photos), "--out", str(out), "--cameras", "3", "--force"]) == 0
    assert not (out / "stale.txt").exists() and len(list(out.rglob("*.jpg"))) == 9
    assert simulate.main(["--photos", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert simulate.main(["--photos", str(small_photos), "--out", str(tmp_path / "y"), "--cameras", "40"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["zoo", "edits"])
def test_same_content_layout_and_pixels(small_photos, tmp_path, family):
    from eval import datasets, same_content

    out = same_content.generate(tmp_path / family, 6, photos=[small_photos], family=family, authentic_fraction=0.3,
                                seed=1, log=lambda m: None)
    samples = {s.name: s for s in datasets.get_dataset("folder", out)}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(samples) == len(manifest) == 6 and {m["label"] for m in manifest} == {0, 1}
    chains = {c["id"]: c for c in json.loads((out / "cameras.json").read_text())["chains"]}
    zoo = {c.id: c for c in default_zoo()}
    for m in manifest:
        img, mask = samples[f"{m['id']}.png"].load()
        assert m["host_camera"] in chains and img.shape[:2] == (m["height"], m["width"])
        if family != "zoo":
            continue
        rgb = np.asarray(Image.open(m["photo"]).convert("RGB"))

        def decoded(cid):
            return np.asarray(Image.open(io.BytesIO(zoo[cid].render(rgb, seed=1))).convert("RGB"))

        host = decoded(m["host_camera"])
        if m["label"] == 0:
            np.testing.assert_array_equal(img, host)
            continue
        assert m["donor_camera"] != m["host_camera"] and mask.any() and not mask.all()
        x0, y0, x1, y1 = m["region_bbox"]
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        np.testing.assert_array_equal(img[~mask], host[~mask])
        np.testing.assert_array_equal(img[mask], decoded(m["donor_camera"])[mask])
    with pytest.raises(SimulateError, match="not empty"):
        same_content.generate(out, 2, photos=[small_photos], family=family, log=lambda m: None)
