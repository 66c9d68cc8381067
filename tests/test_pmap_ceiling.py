"""eval.pmap_ceiling: patch shares against explicit loops, and oracles that find what the grid can resolve and miss
what it cannot, beside a random map."""
import json

import numpy as np
import pytest
from PIL import Image

from eval import pmap_ceiling
from exif_jax.splice.grid import patch_grid


def _folder(root, masks: dict, size=(384, 512)):
    """A `folder` dataset: grey images, `masks` {name: bool [H, W]}; one authentic image besides."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in list(masks) + ["authentic"]:
        Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(root / "images" / f"{name}.png")
    for name, m in masks.items():
        Image.fromarray(m.astype(np.uint8) * 255).save(root / "masks" / f"{name}.png")
    return root


def test_patch_shares_equal_an_explicit_loop():
    rng = np.random.default_rng(1)
    mask = rng.random((200, 300)) < 0.3
    g = patch_grid(200, 300, 64, 10)
    loops = [mask[y:y + 64, x:x + 64].mean() for y, x in g.origins()]
    np.testing.assert_allclose(pmap_ceiling.patch_shares(mask, g), loops, atol=1e-12)


def test_oracles_find_a_large_region_and_miss_one_under_half_a_patch(tmp_path, capsys):
    h, w = 384, 512
    big = np.zeros((h, w), bool)
    big[100:300, 150:400] = True  # 25% of the image, several patches across
    tiny = np.zeros((h, w), bool)
    tiny[200:230, 250:280] = True  # 30 x 30 px: under half of every 64 px patch that covers it
    root = _folder(tmp_path / "set", {"big": big, "tiny": tiny})
    out = tmp_path / "ceiling.json"
    assert pmap_ceiling.main(["--dataset", "folder", "--data-root", str(root), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["images"] == 2  # the authentic image is not scored
    by = {r["name"]: r for r in res["records"]}
    for kind in ("hard", "soft"):
        assert by["big.png"][kind]["pmap"] > 0.9 > by["big.png"]["random_map"]["pmap"]
    assert by["tiny.png"]["hard"]["pmap"] < 0.2  # no patch is mostly spliced: the ideal patch classifier is blind
    assert by["tiny.png"]["soft"]["pmap"] > by["tiny.png"]["hard"]["pmap"]
    text = capsys.readouterr().out
    assert "hard: p-mAP" in text and "soft: p-mAP" in text and "random_map: p-mAP" in text


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "folder", "--data-root", "/nonexistent/set"], "data directory does not exist"),
    (["--dataset", "folder", "--data-root", ".", "--patch", "0"], "--patch must be >= 1"),
])
def test_cli_reports_bad_input_in_one_line(argv, words, capsys):
    assert pmap_ceiling.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err


def test_cli_says_when_no_image_has_a_mask(tmp_path, capsys):
    root = _folder(tmp_path / "set", {})
    assert pmap_ceiling.main(["--dataset", "folder", "--data-root", str(root)]) == 2
    assert "no spliced image with a mask" in capsys.readouterr().err
