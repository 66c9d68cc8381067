"""A second image-level splice score: a high quantile of the patch-pair inconsistency.

The original evaluator's score is the mean of the consistency volume (`voting.detection_score`). A pasted region
holding a share `f` of the patches makes `2 f (1 - f)` of the patch pairs cross pairs, so it moves that mean by only
about `2 f (1 - f)` times the region's disagreement: a region of a few patches is lost in the image's own spread
(measured on same-content splices: detection AUC 0.64 for regions under 10% of the image, 0.92 above 20%;
docs/LEARNING.md).

The pair score is the `q`-quantile (default 0.99) of `1 - cos` over all distinct patch pairs. Once a region's cross
pairs are more than `1 - q` of all pairs (`f` above ~0.5% at q = 0.99) the quantile reads the region's
disagreement itself, whatever the region's size; on an authentic image it reads the image's own top 1% of pairs.
It is reported beside the original's score, never instead of it (so the published numbers keep their meaning), and
its untrained control is scored the same way: a random network also gives content outliers a high quantile.
"""
from __future__ import annotations

import numpy as np

PAIR_QUANTILE = 0.99


def pair_score(features, q: float = PAIR_QUANTILE) -> float:
    """`[N, D]` raw patch embeddings (N >= 2) -> the `q`-quantile (numpy's linear interpolation) of `1 - cos` over
    the `N (N - 1) / 2` distinct patch pairs, computed in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"expected [N, D] patch embeddings with N >= 2, got shape {f.shape}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    rows, cols = np.triu_indices(f.shape[0], 1)
    return float(np.quantile(1.0 - (f @ f.T)[rows, cols], q))
