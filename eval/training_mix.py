"""A data folder with a changed training mix: fewer photos of each camera (`cap`) or some kinds repeated (`repeat`).

`training_mix(src, dst, cap=K, repeat=R, kinds=("camera",))` writes `dst` from `src` (an `eval.learning.prepare`
data folder): training shards that keep at most K photos of each camera of those kinds (chosen at random, seeded) and
hold each of their records R times; records of other kinds (zoo renders, natural photos) are kept once. Held-out
shards are links to `src`'s files, so the test set is unchanged. Records are copied byte for byte.

Why repeat: the simulated zoo and the natural photos share the training crops with the real cameras. With 1 zoo
render per natural photo the real cameras get 49% of the crops instead of 66%, and naming them falls with it
(docs/LEARNING.md). Writing each real-camera photo twice gives them back their share, as a dataset mixture weight
would, while every zoo render and natural photo stays in training. The copies are spread over the epoch (a seeded
permutation of all records), not appended after it, which the pipeline's shuffle window (128 records) would keep
apart from the first copies; each copy gets its own random crops (the pipeline draws crop offsets per record read).
"""
from __future__ import annotations

import json
import pathlib

import numpy as np


class MixError(ValueError):
    """A bad cap or repeat, or `src` is not an eval.learning data folder; the message names which."""


def training_mix(src: pathlib.Path, dst: pathlib.Path, *, cap: int | None = None, repeat: int = 1, kinds=None,
                 seed: int = 0) -> dict:
    """Writes `dst` (see the module docstring) unless its split.json exists; returns its split summary (also
    `dst/split.json`). `kinds=None`: every training photo is capped and repeated."""
    from eval import learning
    from exif_jax.data.records import parse_record
    from exif_jax.data.tfrecord import CorruptRecord, TFRecordWriter, read_records

    if cap is not None and cap < 1:
        raise MixError(f"max training photos per camera {cap}: must be >= 1")
    if repeat < 1:
        raise MixError(f"repeat {repeat}: must be >= 1")
    if (dst / "split.json").is_file():
        return json.loads((dst / "split.json").read_text())
    if not (src / "split.json").is_file():
        raise MixError(f"{src}: no split.json (not an eval.learning data folder)")
    summary = json.loads((src / "split.json").read_text())
    kind = learning.photo_kinds(summary)
    shards = sorted(src.glob("train-*-of-*.tfrecord"))
    raw, cams, ids = [], [], []
    for shard in shards:
        for i, rec in enumerate(read_records(shard)):
            if isinstance(rec, CorruptRecord):
                continue
            r = parse_record(rec, f"{shard}#{i}")
            raw.append(rec)
            cams.append(learning._camera(r))
            ids.append(r["photo_id"])
    chosen = np.array([kinds is None or kind.get(pid, "camera") in kinds for pid in ids], bool)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(raw), bool)
    if cap is not None:
        keep = ~chosen  # records of other kinds are kept whole
        for cam in sorted({c for c, ch in zip(cams, chosen) if ch}):
            idx = sorted((i for i, c in enumerate(cams) if c == cam and chosen[i]), key=lambda i: ids[i])
            keep[rng.permutation(idx)[:cap]] = True
    order = [i for i in range(len(raw)) if keep[i]]
    if repeat > 1:
        order = order + [i for i in order if chosen[i]] * (repeat - 1)
        order = [order[j] for j in np.random.default_rng(seed + 1).permutation(len(order))]
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        for f in tmp.iterdir():
            f.unlink()
    tmp.mkdir(parents=True, exist_ok=True)
    kept = [raw[i] for i in order]
    n = max(1, min(len(shards), len(kept)))
    names = [f"train-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)]
    for i, name in enumerate(names):
        with TFRecordWriter(tmp / name) as w:
            for rec in kept[i::n]:
                w.write(rec)
    for shard in sorted(src.glob("eval-*-of-*.tfrecord")):
        (tmp / shard.name).symlink_to(shard.absolute())
    info = json.loads((src / "dataset_info.json").read_text())
    info["splits"] = dict(info.get("splits", {}), train=dict(
        (info.get("splits") or {}).get("train", {}), records=len(kept), shards=names,
        records_per_shard=[len(kept[i::n]) for i in range(n)],
        bytes=sum((tmp / nm).stat().st_size for nm in names)))
    info["counts"] = dict(info.get("counts", {}), train=len(kept))
    dropped = {pid for pid, kp in zip(ids, keep) if not kp}
    for it in summary["items"]:
        if it["split"] == "train" and it["photo_id"] in dropped:
            it["split"] = "dropped"
    summary.update(train=int(keep.sum()), photos=summary["photos"] - len(dropped))
    if cap is not None:
        info["max_train_per_camera"] = cap
        summary.update(dropped=len(dropped), max_train_per_camera=cap)
        if kinds is not None:
            info["max_train_per_camera_kinds"] = summary["max_train_per_camera_kinds"] = sorted(kinds)
    if repeat > 1:
        info["repeat"] = repeat
        summary.update(repeat=repeat, train_records=len(kept))
        if kinds is not None:
            info["repeat_kinds"] = summary["repeat_kinds"] = sorted(kinds)
    (tmp / "dataset_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    (tmp / "split.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    tmp.rename(dst)  # complete or absent: a crash never leaves a half-written folder that looks prepared
    return summary
