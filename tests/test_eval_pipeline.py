"""eval.synthetic -> eval.splice end to end, and eval.probe, with stand-in encoders."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

import exif_jax
from eval import datasets, probe, splice as esplice, synthetic
from exif_jax.splice import localize


def colour_stats(x):
    x = np.asarray(x, np.float32)
    grad = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2)), grad], axis=1) / 64.0 + 0.1


class FakeModel:
    def encode_images(self, x):
        return colour_stats(x)


SMALL = dict(patch=32, num_per_dim=8)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("syn")
    synthetic.generate(out, n=6, photos=[shared_data / "photos_dev" / "digicam_cc0"], size=(96, 128),
                       authentic_fraction=0.3, seed=1, log=lambda m: None)
    return out


def test_synthetic_splices_are_cross_camera_and_unresampled(synthetic_dir):
    recs = [json.loads(line) for line in (synthetic_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and {r["label"] for r in recs} == {0, 1}
    for r in recs:
        img = np.asarray(Image.open(synthetic_dir / "images" / f"{r['id']}.png"))
        assert img.shape == (96, 128, 3)
        if r["label"]:
            assert r["host_camera"] != r["donor_camera"]
            mask = np.asarray(Image.open(synthetic_dir / "masks" / f"{r['id']}.png")) > 0
            assert 0.03 < mask.mean() < 0.5
            # host pixels outside the mask are an exact crop of the host photo (no resampling)
            host = np.asarray(Image.open(r["host"]).convert("RGB"))
            ys, xs = np.nonzero(~mask)
            y0, x0 = ys[0], xs[0]
            found = np.argwhere((host[:, :, 0] == img[y0, x0, 0]) & (host[:, :, 1] == img[y0, x0, 1]))
            assert any(np.array_equal(host[y - y0:y - y0 + 96, x - x0:x - x0 + 128][~mask], img[~mask])
                       for y, x in found if y >= y0 and x >= x0 and y - y0 + 96 <= host.shape[0]
                       and x - x0 + 128 <= host.shape[1])
        else:
            assert not (synthetic_dir / "masks" / f"{r['id']}.png").exists()


def test_evaluate_folder_dataset(synthetic_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    (data / "images" / "zz_broken.png").write_bytes(b"garbage")
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: FakeModel())
    out = tmp_path / "out"
    rc = esplice.main(["--dataset", "folder", "--data-root", str(data), "--weights", "fake", "--out", str(out),
                       "--patch", "32", "--num-per-dim", "8"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in res["skipped"]] == ["zz_broken.png"]
    per = [json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines()]
    assert len(per) == 6 and len(list((out / "heatmaps").glob("*.png"))) == 6
    samples = {s.name: s for s in datasets.get_dataset("folder", data)}
    pmaps = []
    for rec in per:
        if rec["label"] == 0:
            assert "pmap" not in rec
            continue
        img, mask = samples[rec["name"]].load()
        heat = localize(img, colour_stats, **SMALL).heatmap.ravel()
        h = (heat - heat.min()) / (heat.max() - heat.min())
        want = max(average_precision_score(mask.ravel(), h), average_precision_score(mask.ravel(), 1 - h))
        assert rec["pmap"] == pytest.approx(want, abs=1e-9)
        pmaps.append(want)
    assert res["model"]["pmap"] == pytest.approx(np.mean(pmaps))
    labels, scores = [r["label"] for r in per], [r["score"] for r in per]
    assert res["model"]["det_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert 0 < res["random_map"]["pmap"] < 1
    md = (out / "results.md").read_text()
    assert "| random map |" in md and "p-mAP" in md


def test_probe_separates_cameras_by_photo():
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for c in range(3):
        tint = rng.normal(size=8) * 3
        for _ in range(5):
            feats.append(tint + rng.normal(size=(12, 8)))
            labels.append(f"cam{c}")
    res = probe.fit_probe(feats, labels, test_fraction=0.4, seed=0)
    tr, te, dropped = probe.split_by_group(labels, 0.4, 0)
    assert not set(tr) & set(te) and not dropped and len(te) == 6
    assert res["accuracy"] == 1.0 and res["patch_accuracy"] > 0.9
    truth = [p["true"] for p in res["predictions"]]
    pred = [p["pred"] for p in res["predictions"]]
    assert res["confusion"] == confusion_matrix(truth, pred, labels=res["confusion_labels"]).tolist()


PROBE_PHOTOS = ["FujiFilm FinePix1400Zoom (2).jpg", "FujiFilm FinePixS1Pro (1).jpg", "FujiFilm FinePixS1Pro (5).jpg",
                "Sony Cybershot (2).jpg", "Sony Cybershot (6).jpg", "Sony Cybershot (4).jpg",
                "Canon IXUS v3.jpg", "Canon PowerShot S30 (2).jpg", "Nikon D1X.jpg"]


def test_probe_command_on_real_photos(tmp_path, shared_data, monkeypatch):
    src = shared_data / "photos_dev" / "metadata_extractor" / "images"
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PROBE_PHOTOS:
        shutil.copy(src / name, photos / name)
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: FakeModel())
    out = tmp_path / "probe"
    assert probe.main(["--task", "camera", "--photos", str(photos), "--weights", "fake", "--out", str(out),
                       "--patches", "6", "--no-control"]) == 0
    res = json.loads((out / "probe.json").read_text())
    assert res["classes"] == ["canon", "fujifilm", "sony"]  # EXIF makes; Nikon has one photo only
    assert res["dropped_classes"] == ["nikon"]
    assert res["test_items"] == 3 and 0 <= res["accuracy"] <= 1
    assert Image.open(out / "confusion.png").size[0] > 50


def test_probe_manipulated_task_on_casia_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for i in range(6):
        (tmp_path / "Au").mkdir(exist_ok=True)
        (tmp_path / "Tp").mkdir(exist_ok=True)
        Image.fromarray(rng.normal(128, 10, (130, 140, 3)).clip(0, 255).astype(np.uint8)).save(tmp_path / "Au" / f"a{i}.png")
        tp = rng.normal(128, 10, (130, 140, 3))
        tp[:, 30:120] = rng.normal(60, 40, (130, 90, 3))
        Image.fromarray(tp.clip(0, 255).astype(np.uint8)).save(tmp_path / "Tp" / f"t{i}.png")
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: FakeModel())
    out = tmp_path / "probe"
    assert probe.main(["--task", "manipulated", "--dataset", "casia_2", "--data-root", str(tmp_path), "--weights",
                       "fake", "--out", str(out), "--patches", "4", "--test-fraction", "0.5", "--no-control"]) == 0
    res = json.loads((out / "probe.json").read_text())
    assert res["classes"] == ["authentic", "manipulated"] and res["test_items"] == 6
    assert res["accuracy"] == 1.0
