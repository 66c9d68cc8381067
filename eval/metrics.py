"""Splice localization and detection metrics (vectorized threshold sweeps; cross-checked against scikit-learn).

Localization, per manipulated image (ground-truth mask with at least one spliced pixel), each the better of the
map and the inverted map (the zero-shot map has no sign: which cluster is "spliced" is unknown):
- `pmap`: average precision of the pixel scores (sklearn's step-wise AP; the paper's p-mAP once averaged).
- `ciou`: class-balanced IoU `(IoU_spliced + IoU_authentic) / 2` at the best single threshold.
- `mcc`, `f1`: best over thresholds, and `mcc@0.5`, `f1@0.5` on the map min-max scaled to [0, 1].
Detection, over all images: `det_ap` (average precision) and `det_auc` (ROC AUC) of the image scores (`score`,
the original's mean of the consistency volume), and `pair_det_ap`, `pair_det_auc` of the pair score
(`pair_score`, exif_jax.splice.pair_score) when every record has one.

Fixes relative to the original evaluator: localization is averaged over manipulated images only (authentic
images have no positive pixel, so AP is undefined for them); cIoU uses logical masks (the original applied `~` to
uint8 masks, giving 254/255 instead of False/True) and one threshold for both classes (the original picked the
best threshold for each class separately); thresholds are every distinct score, not a 1000-step grid on [0, 1].
"""
from __future__ import annotations

import numpy as np

REGION_BANDS = ((0.0, 0.1), (0.1, 0.2), (0.2, 1.0))  # pasted fraction of the image; the last band includes 1.0


def in_band(f, i: int, bands=REGION_BANDS) -> bool:
    """Whether a pasted fraction `f` (None: unknown) lies in band `i` of `bands` (half-open; the last is closed)."""
    lo, hi = bands[i]
    return f is not None and lo <= f and (f < hi or (i == len(bands) - 1 and f <= hi))


def _sweep(y_true, score):
    """Cumulative (tp, fp) for `pred = score >= t` at every distinct t, descending, plus `t = +inf` first."""
    y = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(score, np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each tie group
    tp = np.r_[0, np.cumsum(y)[last]].astype(np.float64)
    fp = np.r_[0, (last + 1) - np.cumsum(y)[last]].astype(np.float64)
    thresholds = np.r_[np.inf, s[last]]
    return tp, fp, thresholds, float(y.sum()), float((~y).sum())


def average_precision(y_true, score) -> float:
    """Step-wise average precision, `sum_k (R_k - R_{k-1}) P_k` (equals `sklearn.metrics.average_precision_score`)."""
    tp, fp, _, pos, _ = _sweep(y_true, score)
    if pos == 0:
        return float("nan")
    precision = np.divide(tp[1:], tp[1:] + fp[1:])
    return float(np.sum(np.diff(tp) / pos * precision))


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (trapezoids over tie groups; equals `sklearn.metrics.roc_auc_score`)."""
    tp, fp, _, pos, neg = _sweep(y_true, score)
    if pos == 0 or neg == 0:
        return float("nan")
    return float(np.trapezoid(tp / pos, fp / neg))


def _safe_div(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def threshold_curves(y_true, score) -> dict[str, np.ndarray]:
    """F1, MCC and class-balanced IoU for every threshold of the sweep (predict-nothing included)."""
    tp, fp, thr, pos, neg = _sweep(y_true, score)
    fn, tn = pos - tp, neg - fp
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = _safe_div(tp * tn - fp * fn, denom)
    iou_pos = _safe_div(tp, tp + fp + fn)
    iou_neg = _safe_div(tn, tn + fn + fp)
    return {"thresholds": thr, "f1": f1, "mcc": mcc, "ciou": (iou_pos + iou_neg) / 2}


def _at(y_true, pred) -> tuple[float, float]:
    y = np.asarray(y_true).ravel().astype(bool)
    p = np.asarray(pred).ravel().astype(bool)
    tp = float(np.sum(y & p)); fp = float(np.sum(~y & p)); fn = float(np.sum(y & ~p)); tn = float(np.sum(~y & ~p))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    d = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return f1, ((tp * tn - fp * fn) / d if d else 0.0)


def minmax(score_map) -> np.ndarray:
    m = np.asarray(score_map, np.float64)
    lo, hi = np.nanmin(m), np.nanmax(m)
    return np.zeros_like(m) if hi <= lo else (m - lo) / (hi - lo)


def localization_metrics(mask, score_map) -> dict[str, float]:
    """Per-image localization metrics, each the better of the map and its inversion (see module docstring)."""
    mask = np.asarray(mask).astype(bool)
    score = np.nan_to_num(minmax(score_map), nan=0.0)
    if mask.shape != score.shape:
        raise ValueError(f"mask {mask.shape} and map {score.shape} differ in shape")
    out: dict[str, float] = {}
    for name, s in (("map", score), ("inv", 1.0 - score)):
        curves = threshold_curves(mask, s)
        f1_05, mcc_05 = _at(mask, s > 0.5)
        vals = {"pmap": average_precision(mask, s), "ciou": float(curves["ciou"].max()),
                "f1": float(curves["f1"].max()), "mcc": float(curves["mcc"].max()),
                "f1@0.5": f1_05, "mcc@0.5": mcc_05}
        for k, v in vals.items():
            out[k] = max(out.get(k, -np.inf), v)
    return out


def detection_metrics(labels, scores) -> dict[str, float]:
    labels = np.asarray(labels).astype(int)
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=0.0)
    return {"det_ap": average_precision(labels, scores), "det_auc": roc_auc(labels, scores)}


LOC_KEYS = ("pmap", "ciou", "mcc", "f1", "mcc@0.5", "f1@0.5")


def detection_scores(records: list[dict]) -> list[tuple[str, str]]:
    """(record key, metric prefix) of the image scores to rank: `score` always, `pair_score` when every record has
    one (results written before the pair score have none)."""
    pair = bool(records) and all(r.get("pair_score") is not None for r in records)
    return [("score", "")] + ([("pair_score", "pair_")] if pair else [])


def summarize(records: list[dict]) -> dict[str, float]:
    """Dataset metrics from per-image records (`label`, `score`, optional `pair_score`, and localization keys for
    manipulated images)."""
    loc = [r for r in records if r.get("label") == 1 and "pmap" in r]
    out: dict[str, float] = {"images": len(records), "manipulated_with_mask": len(loc)}
    for k in LOC_KEYS:
        out[k] = float(np.mean([r[k] for r in loc])) if loc else float("nan")
    labels = [r["label"] for r in records]
    if len(set(labels)) == 2:
        for score, prefix in detection_scores(records):
            out.update({prefix + k: v for k, v in detection_metrics(labels, [r[score] for r in records]).items()})
    return out
