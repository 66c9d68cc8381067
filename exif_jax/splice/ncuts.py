"""Two-cluster normalized-cuts map: spectral clustering of the cell affinity `1 - volume` (as the original)."""
from __future__ import annotations

import numpy as np


def normalized_cut(volume, hc: int, wc: int, seed: int = 0) -> np.ndarray:
    """`[M, M]` consistency volume -> `(hc, wc)` float32 map of cluster labels {0, 1} (seeded, deterministic)."""
    import sklearn.cluster

    affinity = 1.0 - np.asarray(volume, np.float64)
    sc = sklearn.cluster.SpectralClustering(n_clusters=2, affinity="precomputed", random_state=seed)
    labels = sc.fit_predict(affinity)
    return labels.reshape(hc, wc).astype(np.float32)
