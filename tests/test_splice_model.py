"""The splice command and the synthetic p-mAP with a real (tiny, random) exif-jax model loaded by `exif_jax.load`."""
import json

import numpy as np
import pytest
from flax import nnx
from PIL import Image

import exif_jax
from eval.splice import synthetic_localization
from exif_jax.commands import splice as cmd
from exif_jax.splice import patch_grid


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    """The smoke config's ViT (64 px crops), random init, exported and read back through `exif_jax.load`."""
    from configs import smoke
    from exif_jax.convert.formats import save_safetensors
    from exif_jax.models import build_model

    cfg = smoke.get_config().model
    path = tmp_path_factory.mktemp("w") / "smoke.safetensors"
    save_safetensors(build_model(cfg, nnx.Rngs(0)), cfg, path)
    return exif_jax.load(str(path), batch_size=16)


def test_cli_and_synthetic_pmap_with_smoke_vit(tmp_path, smoke_model, shared_data, monkeypatch):
    crop = int(smoke_model.config.image_size)  # the ViT takes only its training crop: the grid follows it
    monkeypatch.setattr(exif_jax, "load", lambda w, **kw: smoke_model)
    img = np.random.default_rng(0).integers(0, 256, (150, 420, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.jpg", quality=95)
    out = tmp_path / "out"
    assert cmd.main([str(tmp_path / "x.jpg"), "--weights", "smoke.safetensors", "--out", str(out),
                     "--save-embeddings", "--num-per-dim", "10", "--batch-size", "16"]) == 0
    dec = np.asarray(Image.open(tmp_path / "x.jpg").convert("RGB"))
    g = patch_grid(150, 420, patch=crop, num_per_dim=10)
    emb = np.load(out / "x.embeddings.npy")
    patches = np.stack([dec[y:y + crop, x:x + crop] for y, x in g.origins()])
    np.testing.assert_allclose(emb, smoke_model.encode_images(patches), rtol=1e-4, atol=1e-5)
    assert np.load(out / "x.heatmap_cells.npy").shape == (g.hc, g.wc)
    assert json.loads((out / "scores.jsonl").read_text())["patches"] == g.num_patches

    res = synthetic_localization(smoke_model, tmp_path / "syn", n=2, seed=3, size=(96, 128), num_per_dim=6,
                                 photos=[shared_data / "photos_dev" / "digicam_cc0"], log=lambda m: None)
    assert 0 < res["pmap"] <= 1 and 0 < res["random_pmap"] <= 1 and 0 < res["untrained_pmap"] <= 1
    assert res["model"]["manipulated_with_mask"] >= 1
