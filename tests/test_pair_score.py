"""The pair score (exif_jax.splice.pair_score): against scipy's condensed cosine distances, and what it is for."""
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from sklearn.metrics import roc_auc_score

from exif_jax.splice import grid as grid_lib
from exif_jax.splice.pair_score import pair_score
from exif_jax.splice.pipeline import localize_embeddings


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 1.0])
def test_pair_score_is_a_quantile_of_the_distinct_pairs_cosine_distances(q):
    f = np.random.default_rng(0).normal(size=(57, 24)) * np.linspace(0.5, 3.0, 57)[:, None]  # norms differ
    assert pair_score(f, q) == pytest.approx(np.quantile(pdist(f, "cosine"), q), abs=1e-12)


def test_pair_score_refuses_what_has_no_pairs_or_no_quantile():
    with pytest.raises(ValueError, match="N >= 2"):
        pair_score(np.ones((1, 8)))
    with pytest.raises(ValueError, match="N >= 2"):
        pair_score(np.ones(8))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        pair_score(np.eye(4), 1.5)


def test_localize_reports_the_pair_score_of_its_patch_embeddings():
    g = grid_lib.patch_grid(384, 384, 64, 16)
    f = np.random.default_rng(1).normal(size=(g.num_patches, 16)).astype(np.float32)
    res = localize_embeddings(f, g)
    assert res.pair_score == pytest.approx(np.quantile(pdist(f.astype(np.float64), "cosine"), 0.99), abs=1e-12)


def _image(rng, spread: float, region: int):
    """Patch embeddings of a 17 x 17 grid: one camera direction plus content noise of `spread`, and a `region` x
    `region` block of patches from another camera (0: authentic)."""
    cams = np.eye(2, 32)
    f = np.tile(cams[0], (17, 17, 1)) + rng.normal(0.0, spread, (17, 17, 32))
    if region:
        f[3:3 + region, 5:5 + region] += cams[1] - cams[0]
    return f.reshape(-1, 32)


def test_a_small_pasted_region_moves_the_pair_score_where_the_mean_is_lost_in_the_content_spread():
    # Images differ in how much their content spreads the embeddings (0.04-0.12 per dimension): that spread moves the mean
    # 1 - cos of every image, while a 3 x 3 region (3% of the patches, 6% of the pairs) moves it much less; the
    # top 1% of the pairs are the region's cross pairs whatever the spread.
    rng = np.random.default_rng(0)
    spreads = np.linspace(0.04, 0.12, 12)
    images = [(_image(rng, s, 0), 0) for s in spreads] + [(_image(rng, s, 3), 1) for s in spreads]
    labels = [y for _, y in images]
    mean = [float(pdist(f, "cosine").mean()) for f, _ in images]
    pair = [pair_score(f) for f, _ in images]
    assert roc_auc_score(labels, pair) == 1.0
    assert roc_auc_score(labels, mean) < 0.8
