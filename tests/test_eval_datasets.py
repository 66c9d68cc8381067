"""Benchmark layouts and mask conventions on tiny hand-built dataset folders."""
import numpy as np
import pytest
from PIL import Image

from eval import datasets


def _img(path, h=40, w=60, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def _mask(path, m, color=None, quality=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is not None:
        rgb = np.zeros((*m.shape, 3), np.uint8)
        rgb[m] = color
        rgb[~m] = (255, 0, 0)
        Image.fromarray(rgb).save(path, quality=quality or 95)
    else:
        Image.fromarray(m.astype(np.uint8)).save(path)


def _region(h=40, w=60):
    m = np.zeros((h, w), bool)
    m[10:30, 20:45] = True
    return m


def _by_name(samples):
    return {s.name: s for s in samples}


def test_columbia_green_edgemask_and_authentic_label(tmp_path):
    _img(tmp_path / "4cam_auth" / "canong3_02_sub_01.tif")
    _img(tmp_path / "4cam_splc" / "canong3_canonxt_sub_01.tif")
    region = _region()
    _mask(tmp_path / "4cam_splc" / "edgemask" / "canong3_canonxt_sub_01_edgemask.jpg", region, color=(0, 255, 0))
    s = _by_name(datasets.get_dataset("columbia", tmp_path))
    assert s["auth/canong3_02_sub_01.tif"].label == 0  # the original labelled authentic images 1
    img, mask = s["splc/canong3_canonxt_sub_01.tif"].load()
    assert img.dtype == np.uint8 and img.shape == (40, 60, 3)
    iou = (mask & region).sum() / (mask | region).sum()
    assert iou > 0.95  # JPEG-compressed greens still count


def test_dso1_black_is_spliced(tmp_path):
    _img(tmp_path / "DSO-1" / "normal-1.png")
    _img(tmp_path / "DSO-1" / "splicing-1.png")
    region = _region()
    _mask(tmp_path / "DSO-1-Fake-Images-Masks" / "splicing-1.png", np.where(region, 0, 255))
    s = _by_name(datasets.get_dataset("dso_1", tmp_path))
    assert s["normal-1.png"].label == 0 and s["splicing-1.png"].label == 1
    np.testing.assert_array_equal(s["splicing-1.png"].load()[1], region)


def test_realistic_tampering_grey_counts(tmp_path):
    _img(tmp_path / "Canon_60D" / "pristine" / "r1.TIF")
    _img(tmp_path / "Canon_60D" / "tampered-realistic" / "r1.TIF")
    region = _region()
    m = np.zeros(region.shape, np.uint8)
    m[region] = 128  # grey = tampered too
    m[15:20, 25:30] = 255
    _mask(tmp_path / "Canon_60D" / "ground-truth" / "r1.PNG", m)
    s = _by_name(datasets.get_dataset("realistic_tampering", tmp_path))
    assert s["Canon_60D/pristine/r1.TIF"].label == 0
    np.testing.assert_array_equal(s["Canon_60D/tampered/r1.TIF"].load()[1], region)


@pytest.mark.parametrize("name", ["in_the_wild", "scene_completion", "casia_1", "casia_2", "folder"])
def test_other_layouts(tmp_path, name):
    region = _region()
    m = np.where(region, 255, 0)
    if name == "in_the_wild":
        _img(tmp_path / "images" / "a.jpg"); _mask(tmp_path / "masks" / "a.png", m)
        want = {"a.jpg": 1}
    elif name == "scene_completion":
        _img(tmp_path / "a.png"); _mask(tmp_path / "a_mask.png", m)
        want = {"a.png": 1}
    elif name == "casia_1":
        _img(tmp_path / "Au" / "Au_ani_0001.jpg"); _img(tmp_path / "Tp" / "Sp" / "Sp_D_1.jpg")
        _mask(tmp_path / "CASIA 1.0 groundtruth" / "Sp" / "Sp_D_1_gt.png", m)
        want = {"Au/Au_ani_0001.jpg": 0, "Tp/Sp_D_1.jpg": 1}
    elif name == "casia_2":
        _img(tmp_path / "Au" / "Au_1.jpg"); _img(tmp_path / "Tp" / "Tp_S_1.tif")
        _mask(tmp_path / "CASIA2.0_Groundtruth" / "Tp_S_1_gt.png", m)
        want = {"Au/Au_1.jpg": 0, "Tp/Tp_S_1.tif": 1}
    else:
        _img(tmp_path / "images" / "x.png"); _img(tmp_path / "images" / "y.jpg")
        _mask(tmp_path / "masks" / "x.png", m)
        want = {"x.png": 1, "y.jpg": 0}
    s = _by_name(datasets.get_dataset(name, tmp_path))
    assert {k: v.label for k, v in s.items()} == want
    for v in s.values():
        img, mask = v.load()
        if v.label:
            np.testing.assert_array_equal(mask, region)
        else:
            assert not mask.any()


def test_clear_errors(tmp_path):
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.get_dataset("columbia", tmp_path / "nope")
    with pytest.raises(datasets.DatasetError, match="4cam_auth: expected folder is missing"):
        datasets.get_dataset("columbia", tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "images" / "nomask.png").write_bytes(b"")
    s = _by_name(datasets.get_dataset("folder", tmp_path))
    with pytest.raises(datasets.DatasetError, match=r"bad\.jpg: cannot read image"):
        s["bad.jpg"].load()
    _img(tmp_path / "itw" / "images" / "a.jpg")
    with pytest.raises(datasets.DatasetError, match=r"a\.png: ground-truth mask missing"):
        datasets.get_dataset("in_the_wild", tmp_path / "itw")[0].load()
