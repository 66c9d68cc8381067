"""`exif-jax splice` end to end on JPEG/PNG/TIFF files, with a stand-in encoder in place of `exif_jax.load`."""
import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from PIL import Image

import exif_jax
from exif_jax.commands import splice as cmd
from exif_jax.splice import detection_score, legacy_invert, patch_grid
from test_splice_core import ref_volume  # tests/ is on sys.path (pytest rootdir-less import mode)


def colour_stats(x):
    """Stand-in encoder: per-channel mean and std, plus mean horizontal gradient per channel."""
    x = np.asarray(x, np.float32)
    grad = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2)), grad], axis=1) / 64.0 + 0.1


class FakeModel:
    def __init__(self):
        self.calls = []

    def encode_images(self, x):
        self.calls.append(x.shape)
        return colour_stats(x)


@pytest.fixture
def fake_model(monkeypatch):
    model = FakeModel()
    monkeypatch.setattr(exif_jax, "load", lambda weights, **kw: model)
    return model


def _photo(seed, h=160, w=760):
    rng = np.random.default_rng(seed)
    img = rng.normal(120, 20, (h, w, 3))
    img[40:130, 400:600] = rng.normal(60, 45, (90, 200, 3)) + [40, 0, 0]  # a differently textured region
    return np.clip(img, 0, 255).astype(np.uint8)


def test_cli_writes_outputs_and_skips_bad_images(tmp_path, fake_model, capsys):
    files = []
    for i, ext in enumerate(["jpg", "png", "tif"]):
        p = tmp_path / f"img{i}.{ext}"
        Image.fromarray(_photo(i)).save(p)
        files.append(p)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((60, 300, 3), np.uint8)).save(small)
    out = tmp_path / "out"
    rc = cmd.main([str(f) for f in files] + [str(bad), str(small), "--weights", "w.pth", "--out", str(out),
                                              "--save-embeddings", "--batch-size", "16"])
    assert rc == 1  # some images failed, the others were written
    err = capsys.readouterr().err
    assert "broken.jpg: cannot read image" in err and "small.png: image 300x60 is smaller" in err
    assert set(fake_model.calls) == {(16, 124, 124, 3)}  # fixed batch shape, last batch padded

    lines = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    for f, line in zip(files, lines):
        img = np.asarray(Image.open(f).convert("RGB"))
        g = patch_grid(*img.shape[:2])
        emb = np.load(out / f"{f.stem}.embeddings.npy")
        patches = np.stack([img[y:y + 124, x:x + 124] for y, x in g.origins()])
        np.testing.assert_allclose(emb, colour_stats(patches), rtol=1e-6)
        vol = ref_volume(emb.astype(np.float64), g.hi, g.wi, g.patch, g.stride)
        assert line["score"] == pytest.approx(vol.mean(), abs=1e-6)
        assert line["pair_score"] == pytest.approx(np.quantile(pdist(emb.astype(np.float64), "cosine"), 0.99),
                                                   abs=1e-6)
        cells = np.load(out / f"{f.stem}.heatmap_cells.npy")
        assert cells.shape == (g.hc, g.wc) and np.isfinite(cells).all()
        heat = Image.open(out / f"{f.stem}.heatmap.png")
        assert heat.size == (img.shape[1], img.shape[0]) and heat.mode == "RGB"


def test_cli_legacy_invert(tmp_path, fake_model):
    p = tmp_path / "a.png"
    img = _photo(5)
    Image.fromarray(img).save(p)
    cmd.main([str(p), "--weights", "w", "--out", str(tmp_path / "o"), "--save-embeddings", "--legacy-invert"])
    g = patch_grid(*img.shape[:2])
    patches = np.stack([img[y:y + 124, x:x + 124] for y, x in g.origins()])
    np.testing.assert_allclose(np.load(tmp_path / "o" / "a.embeddings.npy"), colour_stats(legacy_invert(patches)),
                               rtol=1e-6)
    rec = json.loads((tmp_path / "o" / "scores.jsonl").read_text())
    assert rec["legacy_invert"] is True
    assert rec["score"] == pytest.approx(detection_score(
        ref_volume(colour_stats(legacy_invert(patches)).astype(np.float64), g.hi, g.wi, 124, g.stride)), abs=1e-6)


def test_load_image_16bit_and_grey(tmp_path):
    import cv2

    from exif_jax.splice import load_image

    rgb16 = (np.random.default_rng(0).random((30, 40, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb16[:, :, ::-1])
    np.testing.assert_allclose(load_image(tmp_path / "rgb16.tif"), rgb16 / 257.0, atol=1.0)
    grey16 = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    out = load_image(tmp_path / "grey16.png")
    assert out.shape == (30, 40, 3)
    np.testing.assert_allclose(out[:, :, 1], grey16 / 257.0, atol=1.0)
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == 77).all()
