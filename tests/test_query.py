"""Zero-shot EXIF queries (`exif_jax.query`, `ExifModel.query`, `exif-jax query`) with a tiny random smoke model.

References are independent: patches cut by hand with numpy from the grid formula, softmax from scipy, EXIF values
read with Pillow, region maps averaged by explicit loops over patches.
"""
import json
import shutil

import numpy as np
import pytest
from flax import nnx
from PIL import Image
from scipy.special import softmax

import exif_jax
from exif_jax.commands import query as cmd
from exif_jax.exif.reader import read_exif_file
from exif_jax.exif.render import get_renderer
from exif_jax.inference import ExifModel
from exif_jax.query import maps as qmaps
from exif_jax.query import prompts as pr
from exif_jax.splice.grid import patch_grid

PHOTOS = ("metadata_extractor/images/Sony DigitalMavica.jpg", "metadata_extractor/images/FujiFilm DX-5.jpg",
          "metadata_extractor/images/FujiFilm DS-7 (1).jpg", "exif_samples_small/images/Canon_PowerShot_S40.jpg")


@pytest.fixture(scope="module")
def model():
    from configs import smoke
    from exif_jax.models import build_model

    cfg = smoke.get_config().model  # narrow ResNet on 64 px crops, 64-d joint space
    return ExifModel(build_model(cfg, nnx.Rngs(3)), cfg, batch_size=16, name="tiny")


@pytest.fixture(scope="module")
def photos(shared_data):
    return [shared_data / "photos_dev" / p for p in PHOTOS]


@pytest.fixture(scope="module")
def dataset(photos, tmp_path_factory):
    from exif_jax.data.ingest import IngestConfig, run

    src = tmp_path_factory.mktemp("photos")
    for p in photos:
        shutil.copy(p, src / p.name)
    out = tmp_path_factory.mktemp("ds") / "ds"
    run(IngestConfig(images=str(src), out=str(out), shards=1, eval_fraction=0.0, renderer="clean", crop=64,
                     min_tags=5, progress=False))
    return pr.load_dataset(out)


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference_photo_embedding(model, image, n):
    """Patches at (i * stride, j * stride), stride = (long side - P) // n, cut by hand; normalised mean."""
    p = int(model.config.image_size)
    h, w = image.shape[:2]
    stride = (max(h, w) - p) // n
    crops = [image[y:y + p, x:x + p] for y in range(0, h - p + 1, stride) for x in range(0, w - p + 1, stride)]
    return _unit(_unit(model.encode_images(np.stack(crops))).mean(0))


def test_ranking_is_softmax_of_scaled_cosines(model, photos):
    rng = np.random.default_rng(0)
    arrays = [np.asarray(Image.open(photos[0]).convert("RGB")), rng.integers(0, 256, (90, 150, 3), np.uint8)]
    values = ["SONY", "FUJIFILM", "Canon", "NIKON"]
    got = model.query(arrays + [str(photos[1])], {"Make": values, "ISO Speed Ratings": ["100", "400"]},
                      prompts="bare", num_per_dim=5)
    arrays.append(np.asarray(Image.open(photos[1]).convert("RGB")))
    scale = model.logit_scale()
    for image, res in zip(arrays, got):
        img = _reference_photo_embedding(model, image, 5)
        for tag, vals in (("Make", values), ("ISO Speed Ratings", ["100", "400"])):
            txt = _unit(model.encode_texts([f"{tag}: {v}" for v in vals]))
            ref = softmax(scale * txt @ img)
            order = np.argsort(-ref, kind="stable")
            assert [v for v, _ in res[tag]] == [vals[i] for i in order]
            np.testing.assert_allclose([p for _, p in res[tag]], ref[order], rtol=1e-4, atol=1e-6)
    # centre crop view and encode_image_files
    centre = model.encode_image_files([photos[0]], view="centre")
    im0 = arrays[0]
    y, x = (im0.shape[0] - 64) // 2, (im0.shape[1] - 64) // 2
    np.testing.assert_allclose(centre[0], _unit(model.encode_images(im0[None, y:y + 64, x:x + 64])[0]), atol=1e-5)


def test_ensemble_prompts_set_the_tag_in_dataset_texts(model, dataset, photos):
    templates = dataset.templates(8)
    assert len(templates) == len(PHOTOS)  # fewer photos than templates: all of them
    texts = pr.prompt_texts("Make", ["Acme", "Zeta"], templates=templates, renderer=dataset.renderer)
    for value, per_value in zip(["Acme", "Zeta"], texts):
        assert len(per_value) == len(templates)
        for t, items in zip(per_value, templates):
            assert t.startswith(f"Make: {value}, ")  # clean writes Make first
            assert t.split(", ", 1)[1] == dataset.renderer(items).split(", ", 1)[1]  # the rest is the photo's
    emb = pr.text_embeddings(model, texts)
    ref = _unit(np.stack([_unit(model.encode_texts(t)).mean(0) for t in texts]))
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    # matched: the texts of the photos that have the value, topped up with substituted templates
    matched = pr.prompt_texts("Make", ["FUJIFILM", "Acme"], style="matched", templates=templates,
                              renderer=dataset.renderer, dataset=dataset, n_templates=3)
    fuji = [dataset.renderer(items) for items in dataset.items["train"]
            if pr.rendered_value(items, "Make", dataset.renderer) == "FUJIFILM"]
    top_up = pr.template_text(templates[0], "Make", "FUJIFILM", dataset.renderer)
    assert len(fuji) == 2 and matched[0] == fuji + [top_up] and matched[1] == texts[0][:3]
    # a tag the template photos lack is appended, not lost
    t = pr.template_text([("Exif IFD0", "Make", "X")], "Sharpness", "Hard", get_renderer("clean"))
    assert t == "Make: X, Sharpness: Hard"


def test_rendered_values_match_pillow(dataset, photos):
    clean = get_renderer("clean")
    for p in photos:
        exif = Image.open(p).getexif()
        items = read_exif_file(p)
        for tag, code in (("Make", 271), ("Model", 272)):
            ref = " ".join(str(exif[code]).replace("\x00", " ").split())
            assert pr.rendered_value(items, tag, clean) == ref
    flash = [("Exif SubIFD", "Flash", "Flash did not fire, auto"), ("Exif IFD0", "Make", "A")]
    assert pr.rendered_value(flash, "Flash", clean) == "Flash did not fire, auto"  # ", " inside a value
    assert pr.rendered_value(flash, "Sharpness", clean) is None
    assert dataset.values("Make") == {"SONY": 1, "FUJIFILM": 2, "Canon": 1}


def test_region_maps_average_the_patches_covering_each_cell():
    g = patch_grid(100, 190, patch=40, num_per_dim=6)
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(size=(g.num_patches, 3)), axis=1)
    cells = qmaps.cell_maps(probs, g)
    assert cells.shape == (3, g.hc, g.wc)
    spread = max(1, 40 // g.stride)
    for a in range(g.hc):
        for b in range(g.wc):
            cover = [i * g.wi + j for i in range(g.hi) for j in range(g.wi)
                     if i <= a < i + spread and j <= b < j + spread]
            np.testing.assert_allclose(cells[:, a, b], probs[cover].mean(0), atol=1e-12)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert qmaps.inside_outside(np.arange(16.0).reshape(4, 4), mask) == (3.5, 11.5)


def test_cli_json_schema_maps_and_bad_files(model, dataset, photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: model)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    rc = cmd.main([*map(str, photos[:3]), str(bad), "--weights", "w", "--tag", "make", "--values-from",
                   dataset.path, "--json", "--top", "3", "--grid", "4", "--maps", str(tmp_path / "maps")])
    out, err = capsys.readouterr()
    assert rc == 1 and "broken.jpg" in err and "1 skipped" in err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 3
    values = ["FUJIFILM", "SONY", "Canon"]  # dataset order: most frequent first
    for rec, p in zip(lines, photos):
        assert {"file", "tag", "ranking", "weights", "step", "patch"} <= set(rec)
        assert rec["tag"] == "Make" and rec["patch"] == 64 and rec["weights"] == "w" and rec["step"] is None
        assert [v for v, _ in rec["ranking"]] and {v for v, _ in rec["ranking"]} == set(values)
        probs = [q for _, q in rec["ranking"]]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
        ref = model.query([p], {"Make": values}, dataset=dataset, num_per_dim=30)[0]["Make"]
        assert [v for v, _ in rec["ranking"]] == [v for v, _ in ref]  # --maps ranks over the map grid
        np.testing.assert_allclose(probs, [q for _, q in ref], atol=1e-5)
    assert "untrained (seed 0)" in err and "chance 0.333" in err
    maps = [json.loads(x) for x in (tmp_path / "maps" / "maps.jsonl").read_text().splitlines()]
    assert len(maps) == 3
    m = maps[0]
    cells = np.load(tmp_path / "maps" / m["npy"])
    assert cells.shape == (3, *m["cells"]) and np.all((cells >= 0) & (cells <= 1))
    assert Image.open(tmp_path / "maps" / m["png"]).size[0] > 4 * 320


def test_cli_usage_errors_are_one_line(model, dataset, photos, monkeypatch, capsys):
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: model)
    base = [str(photos[0]), "--weights", "w"]
    for extra in (["--tag", "Colour", "--values", "a|b"], ["--tag", "Make", "--values", " | "],
                  ["--tag", "Lens Model", "--values-from", dataset.path], ["--tag", "all", "--values", "a"]):
        assert cmd.main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("exif-jax query:")
        if extra[1] != "all":
            assert "known tags: " in err and "Make" in err.split("known tags: ")[1]
    assert cmd.main(base + ["--tag", "all", "--values-from", dataset.path, "--no-control"]) == 0
    out = capsys.readouterr().out
    assert "predicted above chance" in out and "Model:" in out


def test_encode_images_names_the_shape_it_was_given(model):
    with pytest.raises(ValueError, match=r"float32 array of shape \(2, 64, 64\)"):
        model.encode_images(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"float64 array of shape \(1, 64, 64, 3\)"):
        model.encode_images(np.zeros((1, 64, 64, 3)))
    with pytest.raises(ValueError, match="2 items of different shapes"):
        model.encode_images([np.zeros((64, 64, 3), np.uint8), np.zeros((70, 64, 3), np.uint8)])
