"""eval.metrics against scikit-learn on random maps with ties."""
import numpy as np
import pytest
from sklearn.metrics import (average_precision_score, f1_score, jaccard_score, matthews_corrcoef,
                             roc_auc_score)

from eval import metrics


def _case(seed, n=400, ties=True):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[0], y[1] = True, False
    s = rng.random(n) + 0.8 * y
    if ties:
        s = np.round(s * 8) / 8  # heavy ties, like a bilinearly upsampled cell map
    return y, s


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_and_auc_match_sklearn(seed):
    y, s = _case(seed, ties=seed % 2 == 0)
    assert metrics.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_curves_match_sklearn(seed):
    y, s = _case(seed)
    best = {"f1": 0.0, "mcc": 0.0, "ciou": 0.0}
    for t in np.r_[np.inf, np.unique(s)]:
        p = s >= t
        best["f1"] = max(best["f1"], f1_score(y, p, zero_division=0))
        best["mcc"] = max(best["mcc"], matthews_corrcoef(y, p))
        best["ciou"] = max(best["ciou"], jaccard_score(y, p, average="macro", zero_division=0))
    curves = metrics.threshold_curves(y, s)
    for k, v in best.items():
        assert curves[k].max() == pytest.approx(v, abs=1e-12), k


def test_localization_takes_best_of_map_and_inverse():
    y, s = _case(9, n=30 * 40)
    mask, smap = y.reshape(30, 40), s.reshape(30, 40)
    m = metrics.localization_metrics(mask, smap)
    inv = metrics.localization_metrics(mask, -smap)
    for k in metrics.LOC_KEYS:
        assert m[k] == pytest.approx(inv[k], abs=1e-12), k
    scaled = metrics.minmax(smap)
    scaled = scaled.ravel()
    assert m["pmap"] == pytest.approx(max(average_precision_score(y, scaled), average_precision_score(y, 1 - scaled)))
    want_mcc = max(matthews_corrcoef(y, scaled > 0.5), matthews_corrcoef(y, (1 - scaled) > 0.5))
    want_f1 = max(f1_score(y, scaled > 0.5), f1_score(y, (1 - scaled) > 0.5))
    assert m["mcc@0.5"] == pytest.approx(want_mcc) and m["f1@0.5"] == pytest.approx(want_f1)


def test_perfect_and_detection():
    mask = np.zeros((20, 20), bool)
    mask[5:12, 3:9] = True
    m = metrics.localization_metrics(mask, mask.astype(float) * 0.3 + 1.0)
    assert m["pmap"] == 1 and m["ciou"] == 1 and m["mcc"] == 1 and m["f1"] == 1
    labels, scores = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    d = metrics.detection_metrics(labels, scores)
    assert d["det_ap"] == pytest.approx(average_precision_score(labels, scores))
    assert d["det_auc"] == pytest.approx(roc_auc_score(labels, scores))


def test_summary_averages_manipulated_images_only():
    recs = [{"label": 0, "score": 0.1}, {"label": 1, "score": 0.9, **{k: 0.5 for k in metrics.LOC_KEYS}},
            {"label": 1, "score": 0.2, **{k: 1.0 for k in metrics.LOC_KEYS}}]
    out = metrics.summarize(recs)
    assert out["pmap"] == 0.75 and out["manipulated_with_mask"] == 2
    assert out["det_auc"] == pytest.approx(roc_auc_score([0, 1, 1], [0.1, 0.9, 0.2]))


def test_summary_scores_the_pair_score_beside_the_score_only_when_every_image_has_one():
    labels, scores, pair = [0, 1, 0, 1, 1], [0.3, 0.2, 0.1, 0.6, 0.25], [0.5, 0.9, 0.2, 0.4, 0.7]
    recs = [{"label": y, "score": s, "pair_score": p} for y, s, p in zip(labels, scores, pair)]
    out = metrics.summarize(recs)
    assert out["det_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["pair_det_auc"] == pytest.approx(roc_auc_score(labels, pair))
    assert out["pair_det_ap"] == pytest.approx(average_precision_score(labels, pair))
    recs[0].pop("pair_score")
    assert "pair_det_auc" not in metrics.summarize(recs) and "det_auc" in metrics.summarize(recs)

