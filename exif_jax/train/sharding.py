"""Parameter placement from an ordered list of (regex over the leaf path, rule) pairs, resolved in one place.

Rules: `"replicate"`; `"fsdp"`: shard the largest dimension divisible by the `fsdp` axis size over `fsdp`
(replicated when the axis has size 1 or no dimension divides); or an explicit tuple of axis names / None per
dimension (a `PartitionSpec`). The first matching regex wins; unmatched leaves are replicated. Optimizer moments
carry their parameter's path inside theirs, so the same rules place them alike.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from exif_jax.train.mesh import BATCH_AXES


def path_str(path) -> str:
    """'a/b/0/kernel' for a jax key path."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def spec_for(path: str, shape: Sequence[int], rules, mesh: jax.sharding.Mesh) -> P:
    for pattern, rule in rules:
        if re.search(pattern, path):
            break
    else:
        return P()
    if rule == "replicate":
        return P()
    if rule == "fsdp":
        n = mesh.shape["fsdp"]
        if n == 1 or not shape:
            return P()
        dims = sorted(range(len(shape)), key=lambda d: (-shape[d], d))
        for d in dims:
            if shape[d] % n == 0:
                spec = [None] * len(shape)
                spec[d] = "fsdp"
                return P(*spec)
        return P()
    if isinstance(rule, (tuple, list)):
        if len(rule) > len(shape):
            raise ValueError(f"sharding rule {pattern!r} -> {rule} has more dims than {path} {tuple(shape)}")
        return P(*rule)
    raise ValueError(f"sharding rule {pattern!r}: unknown rule {rule!r} (use 'fsdp', 'replicate' or a tuple)")


def tree_shardings(tree: Any, rules, mesh: jax.sharding.Mesh) -> Any:
    """`NamedSharding` for every leaf (arrays or ShapeDtypeStructs) of `tree` by `rules`."""
    rules = [(str(p), r) for p, r in rules]

    def one(path, leaf):
        shape = getattr(leaf, "shape", ())
        return NamedSharding(mesh, spec_for(path_str(path), tuple(shape), rules, mesh))

    return jax.tree_util.tree_map_with_path(one, tree)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) dimension split over (`data`, `fsdp`)."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
