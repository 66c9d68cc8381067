"""Splice localization vs a direct transcription of the original loop-based evaluator (voting loops + cKDTree)."""
import numpy as np
import pytest
import torch
import torchvision.transforms as T
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from exif_jax.splice import (GridError, batched, consistency_volume, detection_score, extract_patches,
                             legacy_invert, localize, localize_embeddings, mean_shift, patch_grid)
from exif_jax.splice.meanshift import TIE_RTOL
from exif_jax.splice.ncuts import normalized_cut


# ---------------------------------------------------------------- reference: the original evaluator, transcribed
def ref_volume(feats, hi, wi, patch, stride):
    spread = max(1, patch // stride)
    hc, wc = hi + spread - 1, wi + spread - 1
    responses = np.zeros((hc, wc, hc, wc))
    counts = np.zeros((hc, wc, hc, wc)) + 1e-4
    f = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    for a, b, c, d in np.mgrid[0:hi, 0:wi, 0:hi, 0:wi].reshape(4, -1).T:
        sim = 1 - f[np.ravel_multi_index((a, b), (hi, wi))] @ f[np.ravel_multi_index((c, d), (hi, wi))]
        responses[a:a + spread, b:b + spread, c:c + spread, d:d + spread] += sim
        counts[a:a + spread, b:b + spread, c:c + spread, d:d + spread] += 1
    return responses / counts


def ref_mean_shift(points_, heat_shape, window=10, iters=5, tree_on_copy=False):
    points = np.array(points_, dtype=np.float64)  # float64 + C order: cKDTree keeps a view, as in the original
    kdt = cKDTree(points.copy() if tree_on_copy else points)
    assert np.shares_memory(kdt.data, points) != tree_on_copy
    eps = np.percentile(cdist(points, points, metric="euclidean"), window)
    # The only deviation from the original: rows at exactly eps (common: the volume has duplicate rows) count as
    # within it, instead of depending on how r*r rounds inside the tree. Same slack as TIE_RTOL.
    eps = eps * (1 + TIE_RTOL)
    for _ in range(iters):
        for i in range(points.shape[0]):
            nearest = kdt.query_ball_point(points[i], r=eps)
            points[i] = np.mean(points[nearest], axis=0)
    val = [kdt.count_neighbors(cKDTree(np.array([points[i]])), r=eps) for i in range(points.shape[0])]
    ind = np.nonzero(val == np.max(val))
    return np.mean(points[ind[0]], axis=0).reshape(heat_shape)


def released_mean_shift(points_, heat_shape, window=10, iters=5, stay_put=None):
    """`EXIF_SC.mean_shift` of the released code, verbatim but for the tie slack, fed what it is fed there: the
    float32 consistency map (torch voting). `np.copy` keeps float32, so `cKDTree` builds on a float64 COPY: every
    query sees the initial rows while the updates (float32 means of the current rows) go to `points`.
    `stay_put` (a list): the one change of ours -- a row whose query finds no row keeps its value (the released
    code takes the mean of no rows: NaN); each such visit's row index is appended to the list."""
    points = np.copy(points_)
    assert points.dtype == np.float32
    kdt = cKDTree(points)
    assert not np.shares_memory(kdt.data, points)
    eps_5 = np.percentile(cdist(points, points, metric="euclidean"), window) * (1 + TIE_RTOL)
    for _ in range(iters):
        for point_ind in range(points.shape[0]):
            point = points[point_ind]
            nearest_inds = kdt.query_ball_point(point, r=eps_5)
            if stay_put is not None and not nearest_inds:
                stay_put.append(point_ind)
                continue
            points[point_ind] = np.mean(points[nearest_inds], axis=0)
    val = [kdt.count_neighbors(cKDTree(np.array([points[i]])), r=eps_5) for i in range(points.shape[0])]
    ind = np.nonzero(val == np.max(val))
    return np.mean(points[ind[0]], axis=0).reshape(heat_shape)


def ref_pipeline(feats, grid):
    import cv2

    vol = ref_volume(feats, grid.hi, grid.wi, grid.patch, grid.stride)
    ms = released_mean_shift(vol.reshape(grid.num_cells, -1).astype(np.float32), (grid.hc, grid.wc))
    return vol, vol.mean(), ms, cv2.resize(ms.astype(np.float32), (grid.width, grid.height),
                                           interpolation=cv2.INTER_LINEAR)


def spliced_features(grid, seed, dim=24, splice=True):
    """Real-ish embeddings: one camera everywhere, another inside a rectangle, per-patch noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim)
    f = base + 0.35 * rng.normal(size=(grid.num_patches, dim))
    if splice:
        ys, xs = grid.origins().T
        inside = (ys >= grid.height * 0.2) & (ys < grid.height * 0.7) & (xs >= grid.width * 0.45) & (xs < grid.width * 0.8)
        f[inside] += 1.2 * rng.normal(size=dim)
    return f.astype(np.float32)


# ---------------------------------------------------------------- grid
@pytest.mark.parametrize("h,w", [(568, 757), (757, 568), (124, 154), (1000, 1500), (300, 301)])
def test_grid_matches_original_formula(h, w):
    g = patch_grid(h, w, max_cells=None)
    stride = (max(h, w) - 124) // 30
    assert g.stride == stride
    assert (g.hi, g.wi) == (1 + (h - 124) // stride, 1 + (w - 124) // stride)
    assert (g.hc, g.wc) == (g.hi + max(1, 124 // stride) - 1, g.wi + max(1, 124 // stride) - 1)


def test_columbia_size_grid():
    g = patch_grid(568, 757)
    assert (g.stride, g.hi, g.wi, g.hc, g.wc) == (21, 22, 31, 26, 35)


@pytest.mark.parametrize("h,w", [(568, 757), (757, 568), (1000, 1500), (4000, 6000), (900, 840)])
def test_max_cells_leaves_paper_grids_alone(h, w):
    assert patch_grid(h, w) == patch_grid(h, w, max_cells=None)


@pytest.mark.parametrize("h,w,patch", [(124, 124, 124), (124, 154, 124), (160, 160, 124), (300, 301, 124),
                                       (100, 80, 64), (130, 130, 64), (600, 600, 124), (64, 3000, 64)])
def test_max_cells_bounds_small_images(h, w, patch):
    """The original grid of a small image has about H x W cells; the cap raises the stride just enough."""
    g = patch_grid(h, w, patch)
    assert max(g.hc, g.wc) <= 35
    if g.stride > 1:  # the smallest stride that fits: one less would not
        tighter = patch_grid(h, w, patch, max_cells=None).__class__(
            height=h, width=w, patch=patch, stride=g.stride - 1,
            hi=1 + (h - patch) // (g.stride - 1), wi=1 + (w - patch) // (g.stride - 1))
        assert max(tighter.hc, tighter.wc) > 35 or g.stride - 1 < (max(h, w) - patch) // 30


@pytest.mark.parametrize("h,w", [(100, 500), (123, 400), (50, 33)])
def test_too_small_image_is_a_clear_error(h, w):
    with pytest.raises(GridError, match=r"photo\.jpg: image \d+x\d+"):
        patch_grid(h, w, source="photo.jpg")


def test_extract_patches_raster_order():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(170, 300, 3), dtype=np.uint8)
    g = patch_grid(170, 300)
    patches = extract_patches(img, g)
    assert patches.shape == (g.num_patches, 124, 124, 3) and patches.dtype == np.uint8
    k = 0
    for hy in range(g.hi):
        for wx in range(g.wi):
            y, x = hy * g.stride, wx * g.stride
            np.testing.assert_array_equal(patches[k], img[y:y + 124, x:x + 124])
            k += 1


# ---------------------------------------------------------------- faithfulness
FAITHFUL_CASES = [
    # (height, width, patch, num_per_dim, seed, splice)
    (166, 754, 124, 30, 0, True),  # paper patch size; stride 21, 3x31 patches, 7x35 cells
    (96, 128, 32, 8, 1, True),
    (100, 140, 32, 9, 2, True),
    (96, 128, 32, 8, 3, False),  # authentic: one camera only
]


@pytest.mark.parametrize("h,w,patch,npd,seed,splice", FAITHFUL_CASES)
def test_matches_original_loop_algorithm(h, w, patch, npd, seed, splice):
    g = patch_grid(h, w, patch, npd)
    feats = spliced_features(g, seed, splice=splice)
    vol_ref, score_ref, ms_ref, heat_ref = ref_pipeline(feats.astype(np.float64), g)

    vol = np.asarray(consistency_volume(feats, g))
    np.testing.assert_allclose(vol, vol_ref.reshape(g.num_cells, -1), rtol=0, atol=1e-10)
    res = localize_embeddings(feats, g)
    assert abs(res.score - score_ref) < 1e-5
    assert res.cells.shape == (g.hc, g.wc)
    np.testing.assert_allclose(res.cells, ms_ref, rtol=0, atol=1e-5)
    assert res.heatmap.shape == (h, w)
    np.testing.assert_allclose(res.heatmap, heat_ref, rtol=0, atol=1e-5)


def test_in_place_tree_semantics_matter():
    """The in-place variant (a tree sharing memory with the rows it updates) gives a different map than the
    released code's float32 run; `neighbours="current"` reproduces the former, the default the latter."""
    g = patch_grid(96, 128, 32, 8)
    feats = spliced_features(g, 1).astype(np.float64)
    x = ref_volume(feats, g.hi, g.wi, g.patch, g.stride).reshape(g.num_cells, -1)
    in_place = mean_shift(x, g.hc, g.wc, neighbours="current")
    released = released_mean_shift(x.astype(np.float32), (g.hc, g.wc))
    assert np.abs(in_place - ref_mean_shift(x, (g.hc, g.wc))).max() < 1e-5
    assert np.abs(mean_shift(x.astype(np.float32), g.hc, g.wc) - released).max() < 1e-5
    assert np.abs(in_place - released).max() > 1e-3


@pytest.mark.parametrize("seed", [1, 2])
def test_default_matches_released_code_fed_float32_maps(seed):
    g = patch_grid(96, 128, 32, 8)
    x = np.asarray(consistency_volume(spliced_features(g, seed), g), np.float32)  # what torch voting hands over
    np.testing.assert_allclose(mean_shift(x, g.hc, g.wc), released_mean_shift(x, (g.hc, g.wc)), rtol=0, atol=2e-6)


@pytest.mark.parametrize("seed", [1, 2])
def test_initial_neighbours_option_matches_tree_on_copy(seed):
    """`neighbours="initial"` = the released code as it runs (float32 maps -> cKDTree holds a float64 copy)."""
    g = patch_grid(96, 128, 32, 8)
    x = ref_volume(spliced_features(g, seed).astype(np.float64), g.hi, g.wi, g.patch, g.stride).reshape(g.num_cells, -1)
    want = ref_mean_shift(x, (g.hc, g.wc), tree_on_copy=True)
    np.testing.assert_allclose(mean_shift(x, g.hc, g.wc, neighbours="initial"), want, rtol=0, atol=1e-5)


def test_a_row_left_with_no_neighbours_stays_put_where_the_released_code_has_no_map():
    """Patch embeddings of a trained model's splice (tests/data, 19 x 19 cells) on which the released code breaks:
    on pass 5 a moved row lies 1.063 from every initial row for eps 1.048, `np.mean` of no rows is NaN, the NaN
    spreads and the final `cKDTree` refuses it. Ours keeps such a row where it is and equals that reading."""
    import pathlib

    d = np.load(pathlib.Path(__file__).parent / "data" / "empty_neighbourhood_features.npz")
    g = patch_grid(int(d["height"]), int(d["width"]), int(d["patch"]), int(d["num_per_dim"]))
    x = np.asarray(consistency_volume(d["features"], g), np.float32)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        with pytest.raises(ValueError, match="must be finite"):
            released_mean_shift(x, (g.hc, g.wc))
    empty = []
    want = released_mean_shift(x, (g.hc, g.wc), stay_put=empty)
    assert len(empty) >= 1 and np.isfinite(want).all()
    got = mean_shift(x, g.hc, g.wc)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_parallel_mode_is_jacobi_mean_shift():
    g = patch_grid(96, 128, 32, 8)
    x = np.asarray(consistency_volume(spliced_features(g, 4), g))
    eps = np.percentile(cdist(x, x), 10) * (1 + TIE_RTOL)
    p = x.copy()
    for _ in range(5):
        w = cdist(p, p) <= eps
        p = (w @ p) / w.sum(1, keepdims=True)
    cnt = (cdist(p, p) <= eps).sum(1)
    want = p[cnt == cnt.max()].mean(0).reshape(g.hc, g.wc)
    np.testing.assert_allclose(mean_shift(x, g.hc, g.wc, mode="parallel"), want, atol=1e-6)


def test_splice_region_stands_out():
    g = patch_grid(166, 754, 124, 30)
    res = localize_embeddings(spliced_features(g, 7), g)
    auth = localize_embeddings(spliced_features(g, 7, splice=False), g)
    assert res.score > auth.score  # detection: spliced image has the larger mean inconsistency
    heat = res.heatmap
    # ground truth: pixels where most covering patches carry the second camera's embedding
    ys, xs = g.origins().T
    spliced = (ys >= g.height * 0.2) & (ys < g.height * 0.7) & (xs >= g.width * 0.45) & (xs < g.width * 0.8)
    votes, total = np.zeros((g.height, g.width)), np.zeros((g.height, g.width))
    for (y, x), s in zip(g.origins(), spliced):
        votes[y:y + g.patch, x:x + g.patch] += s
        total[y:y + g.patch, x:x + g.patch] += 1
    inside = votes > 0.5 * np.maximum(total, 1)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(inside.ravel(), heat.ravel())
    assert max(auc, 1 - auc) > 0.9, auc


def test_ncuts_seeded_two_clusters():
    g = patch_grid(96, 128, 32, 8)
    vol = np.asarray(consistency_volume(spliced_features(g, 5), g))
    a = normalized_cut(vol, g.hc, g.wc, seed=3)
    b = normalized_cut(vol, g.hc, g.wc, seed=3)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}


# ---------------------------------------------------------------- embedding input
def test_legacy_invert_matches_torchvision_float_cast():
    """The original fed float patches (0..255) to ToPILImage, which multiplies by 255 and casts to uint8."""
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    pil = T.ToPILImage()(torch.from_numpy(patch).permute(2, 0, 1).float())
    np.testing.assert_array_equal(np.asarray(pil), legacy_invert(patch))
    np.testing.assert_array_equal(legacy_invert(np.array([0, 1, 128, 255], np.uint8)), [0, 255, 128, 1])


def test_batched_pads_to_fixed_size():
    seen = []

    def encode(x):
        seen.append(x.shape[0])
        return x.reshape(len(x), -1)[:, :5].astype(np.float32) * 2

    patches = np.random.default_rng(1).integers(0, 256, size=(23, 4, 4, 3), dtype=np.uint8)
    out = batched(encode, batch_size=8)(patches)
    assert seen == [8, 8, 8]
    np.testing.assert_array_equal(out, patches.reshape(23, -1)[:, :5].astype(np.float32) * 2)


def test_localize_uses_embed_fn_on_patches():
    img = np.random.default_rng(2).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    img[20:70, 60:110] //= 3
    res = localize(img, lambda p: p.reshape(len(p), -1, 3).mean(1), patch=32, num_per_dim=8)
    g = res.grid
    assert res.embeddings.shape == (g.num_patches, 3)
    assert np.isfinite(res.heatmap).all() and res.heatmap.shape == (96, 128)
    assert np.isclose(res.score, detection_score(consistency_volume(res.embeddings, g)))


def test_one_compilation_serves_nearby_sizes():
    from exif_jax.splice import meanshift

    rng = np.random.default_rng(0)
    before = meanshift._sequential._cache_size()  # the in-place variant's kernel
    for hc, wc in [(7, 9), (8, 8), (6, 10)]:  # M = 63, 64, 60: one padded size (64)
        x = rng.random((hc * wc, hc * wc))
        got = mean_shift(x, hc, wc, neighbours="current")
        want = ref_mean_shift(x, (hc, wc))
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert meanshift._sequential._cache_size() - before <= 1
