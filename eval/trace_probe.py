"""Can the image tower see these cameras at all? Supervised camera classification of held-out photos, per input filter.

    python -m eval.trace_probe --workdir runs/quickstart --out runs/trace_probe [--steps 600] [--group sim]

Trains the smoke config's image tower (narrow ResNet, 64 px crops) from scratch as a plain classifier (a camera-Model
head, cross-entropy, Adam 1e-3, batch 64 random crops) on the quickstart's training photos of `--group` (`sim`: the
simulated zoo; `real`; `all`), once per `--filters` value (`exif_jax.models.filters`: `none` = RGB as the original,
`highpass` = the noise residual), and scores the held-out photos (new content, seen cameras): per crop (the
non-overlapping 64 px tiles) and per photo (mean of the tiles' logits), beside chance. It isolates the tower from the
EXIF-text objective: if a filter's supervised classifier stays at chance on held-out content, contrastive training
with that filter cannot learn those traces in the same budget either. Writes `OUT/trace_probe.json` and `.md`.

Measured (quickstart workdir, 108 training / 36 held-out renders of 12 zoo cameras, 600 steps): RGB 0.10 per crop,
0.17 per photo; high-pass 0.58 / 0.72 (chance 0.083): see docs/TRACES.md.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np


def probe(train: list[dict], held_out: list[dict], image_filter: str, *, steps: int = 600, crop: int = 64,
          batch: int = 64, seed: int = 0, log=print) -> dict:
    """`train`/`held_out`: records with "image" (JPEG bytes) and "model" (label). Returns accuracies + chance."""
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from exif_jax.commands.quickstart_eval import _rgb, _tiles
    from exif_jax.models.filters import apply_filter
    from exif_jax.models.preprocess import normalize_images_np
    from exif_jax.models.resnet import ResNet50

    classes = sorted({r["model"] for r in train})
    held_out = [r for r in held_out if r["model"] in classes]
    if len(classes) < 2 or not held_out:
        raise ValueError(f"need >= 2 cameras in training and held-out photos of them (got {len(classes)} cameras, "
                         f"{len(held_out)} held-out photos)")
    xtr = [_rgb(r) for r in train]
    ytr = np.array([classes.index(r["model"]) for r in train])
    net = ResNet50(out_dim=len(classes), width=16, stages=(1, 1, 1, 1), rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(net, optax.adam(1e-3), wrt=nnx.Param)

    def logits(m, x, train_mode):
        return m(apply_filter(x, image_filter), train=train_mode)

    @nnx.jit
    def step(m, o, x, y):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(logits(m, x, True), y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(m)
        o.update(m, grads)
        return loss

    @nnx.jit
    def predict(m, x):
        return logits(m, x, False)

    rng = np.random.default_rng(seed)
    t0, losses = time.time(), []
    for it in range(steps):
        idx = rng.integers(len(xtr), size=batch)
        crops = []
        for i in idx:
            a = xtr[i]
            y0, x0 = rng.integers(a.shape[0] - crop + 1), rng.integers(a.shape[1] - crop + 1)
            crops.append(a[y0:y0 + crop, x0:x0 + crop])
        losses.append(float(step(net, opt, jnp.asarray(normalize_images_np(np.stack(crops))), jnp.asarray(ytr[idx]))))
        if (it + 1) % 100 == 0:
            log(f"[trace_probe] {image_filter}: step {it + 1}/{steps} loss {np.mean(losses[-100:]):.3f} "
                f"({time.time() - t0:.0f} s)")
    per_crop, per_photo = [], []
    for r in held_out:
        lo = np.asarray(predict(net, jnp.asarray(normalize_images_np(_tiles(_rgb(r), crop)))))
        y = classes.index(r["model"])
        per_crop.append(float((lo.argmax(1) == y).mean()))
        per_photo.append(float(lo.mean(0).argmax() == y))
    return {"filter": image_filter, "steps": steps, "classes": len(classes), "train_photos": len(train),
            "held_out_photos": len(held_out), "crop_top1": float(np.mean(per_crop)),
            "photo_top1": float(np.mean(per_photo)), "chance": 1.0 / len(classes),
            "final_train_loss": float(np.mean(losses[-100:]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.trace_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="a quickstart workdir (photos/plan.json, data/)")
    p.add_argument("--out", required=True)
    p.add_argument("--group", default="sim", choices=("sim", "real", "all"))
    p.add_argument("--filters", default="none,highpass")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from exif_jax.commands.quickstart_run import _held_out_records

    wd = pathlib.Path(a.workdir)
    plan_path = wd / "photos" / "plan.json"
    if not plan_path.is_file() or not (wd / "data" / "dataset_info.json").is_file():
        print(f"eval.trace_probe: {wd}: not a quickstart workdir (needs photos/plan.json and data/)", file=sys.stderr)
        return 2
    if a.steps < 1:
        print("eval.trace_probe: --steps must be positive", file=sys.stderr)
        return 2
    train, held = _held_out_records(wd / "data", json.loads(plan_path.read_text()))
    keep = (lambda r: True) if a.group == "all" else (lambda r: r["group"] == a.group)
    train, held = [r for r in train if keep(r)], [r for r in held if keep(r)]
    rows = []
    for f in [f.strip() for f in a.filters.split(",") if f.strip()]:
        try:
            rows.append(probe(train, held, f, steps=a.steps, seed=a.seed))
        except ValueError as e:
            print(f"eval.trace_probe: {e}", file=sys.stderr)
            return 2
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trace_probe.json").write_text(json.dumps({"workdir": str(wd), "group": a.group, "rows": rows}, indent=1))
    lines = [f"Supervised camera classifier, held-out photos of `{a.group}` cameras ({wd}):", "",
             "| input filter | steps | classes | held-out photos | per crop top-1 | per photo top-1 | chance |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['filter']} | {r['steps']} | {r['classes']} | {r['held_out_photos']} | {r['crop_top1']:.3f} | "
              f"{r['photo_top1']:.3f} | {r['chance']:.3f} |" for r in rows]
    (out / "trace_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
