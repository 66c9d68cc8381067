"""What limits learning on real camera traces: `python -m eval.ablate --out DIR [--steps N] [--only NAME ...]`.

    python -m eval.ablate --out runs/ablate --steps 500                 # the grid below, one variant after another
    python -m eval.ablate --out runs/ablate --steps 500 --only baseline crop_96
    python -m eval.ablate --list

Runs `eval.learning.run` (the `--real` benchmark: ingest, split by photo per camera, train `configs/real_cameras.py`,
score the trained model and its untrained control on held-out photos) once per variant, every variant with the SAME
step count and seed, without the simulated zoo (`zoo=0`) and without the transfer test (`transfer=False`: the
same-content splices are not among the ablated metrics and cost most of the evaluation), one factor at a time. Every
variant pins the settings the grid was measured with (`GRID`: 256-token texts, one crop per text, no within-photo
term; `configs/real_cameras.py` has defaulted to 64 tokens, two crops and the term since):

| variant | factor | change |
|---|---|---|
| `baseline` | - | 64 px crops, tower width 16, every training photo, N steps |
| `photos_2` | photos per camera | at most 2 training photos of any camera (held-out photos unchanged) |
| `photos_1` | photos per camera | 1 training photo of each camera |
| `crop_96` | crop size | 96 px crops (`crop=96`; the evaluation's crops and splice patches follow the config) |
| `width_24` | tower width | 24 stem channels (`width=24`) |
| `steps_half` | steps | N / 2 |
| `steps_double` | steps | 2 N |
| `seed_1` | training seed | the baseline with another initialisation and data order (`seed=1`): how far two runs of
  one setting differ |
| `crop_96_seed_1` | crop size | `crop_96` with seed 1: does the crop's gain hold at another seed |
| `highpass` | input filter | the high-pass residual input (`filter=highpass`, docs/TRACES.md) |
| `rgb_highpass` | input filter | RGB plus the amplified residual (`filter=rgb+highpass`) |
| `rgb_highpass_seed_1` | input filter | `rgb_highpass` with seed 1 |

The data are ingested and split once (`DIR/prepared/data`); every variant's `DIR/runs/NAME/data` links to it, so
all variants train on the same split and are scored on the same held-out photos. `photos_2` links to
`DIR/prepared/data_cap2` (`photos_1`: `data_cap1`): the same held-out shard (a link to the same file) and training
shards that keep at most 2 photos of each camera (`cap_training_photos`, seeded; records copied byte for byte). A
variant whose `learning.json` already matches its steps and config is not rerun (an interrupted grid resumes), and
the report lists every finished variant, so `--only NAME` adds a variant to an existing grid.

Writes `DIR/ablations.json`, `DIR/ablations.md` (per variant and metric: trained / untrained control of that
variant's architecture / chance or random map) and `DIR/ablations.png` (a panel per metric: bars = trained, black
tick = untrained control, dashed line = chance). Train times are recorded but are not speeds (the grid runs niced
beside other jobs). Python: `run_grid(out, steps=N, only=None)` returns the `ablations.json` dict.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import sys

import numpy as np

from eval import learning


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    factor: str
    value: str
    steps_scale: float = 1.0  # x the baseline step count
    config_arg: str = ""  # extra configs/real_cameras.py args
    max_train_per_camera: int | None = None  # cap on training photos per camera (None: all)


# The grid was measured with one crop per text, 256-token texts and no within-photo term (the config's defaults
# then); it pins them so that its variants keep meaning what they measured.
GRID = "text_len=256,views=1,consist=0"
RGB = f"filter=none,{GRID}"  # the grid studies the RGB tower (measured before the residual input was a default) ...
VARIANTS = (
    Variant("baseline", "-", "64 px crops, width 16, all training photos, RGB input", config_arg=RGB),
    Variant("photos_2", "photos per camera", "at most 2 training photos per camera", config_arg=RGB,
            max_train_per_camera=2),
    Variant("photos_1", "photos per camera", "1 training photo per camera", config_arg=RGB, max_train_per_camera=1),
    Variant("crop_96", "crop size", "96 px crops", config_arg=f"{RGB},crop=96"),
    Variant("width_24", "tower width", "24 stem channels", config_arg=f"{RGB},width=24"),
    Variant("steps_half", "steps", "half the steps", config_arg=RGB, steps_scale=0.5),
    Variant("steps_double", "steps", "double the steps", config_arg=RGB, steps_scale=2.0),
    Variant("seed_1", "training seed", "seed 1 (run-to-run yardstick)", config_arg=f"{RGB},seed=1"),
    Variant("crop_96_seed_1", "crop size", "96 px crops, seed 1", config_arg=f"{RGB},crop=96,seed=1"),
    # ... and this factor is the change to it: the high-pass residual input (docs/TRACES.md)
    Variant("highpass", "input filter", "high-pass residual input", config_arg=f"filter=highpass,{GRID}"),
    Variant("rgb_highpass", "input filter", "RGB plus the amplified residual",
            config_arg=f"filter=rgb+highpass,{GRID}"),
    Variant("rgb_highpass_seed_1", "input filter", "RGB plus the amplified residual, seed 1",
            config_arg=f"filter=rgb+highpass,{GRID},seed=1"),
)

# (column, path into an eval.learning result, chance: a number or a path into the trained result)
METRICS = (
    ("camera top-1, whole photo", ("camera", "photo_top1"), ("camera", "chance_top1")),
    ("camera top-1, one patch", ("camera", "patch_top1"), ("camera", "chance_top1")),
    ("pair AUC", ("pair_auc",), 0.5),
    ("splice p-mAP", ("cross_camera_splices", "model", "pmap"), ("cross_camera_splices", "random_map", "pmap")),
    ("splice det AUC", ("cross_camera_splices", "model", "det_auc"), 0.5),
)


class AblationError(RuntimeError):
    """A usage or data problem; the message names the variant or file."""


def variant_steps(variant: Variant, steps: int) -> int:
    return max(1, int(round(steps * variant.steps_scale)))


def select(only) -> list[Variant]:
    if not only:
        return list(VARIANTS)
    names = {v.name: v for v in VARIANTS}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise AblationError(f"--only {' '.join(unknown)}: unknown variant (known: {', '.join(names)})")
    return [v for v in VARIANTS if v.name in only]


# ----------------------------------------------------------------------------------------------------- data


def cap_training_photos(src: pathlib.Path, dst: pathlib.Path, k: int, seed: int = 0, kinds=None) -> dict:
    """`dst` = `src` (an `eval.learning.prepare` data folder) with at most `k` training photos of each camera,
    chosen at random (seeded) among its training photos; held-out shards are links to `src`'s files, so the test
    set is unchanged. Records are copied byte for byte. Returns the new split summary (also `dst/split.json`).
    `kinds` (e.g. `("camera",)`): cap only training photos of these `split.json` kinds and keep the others (zoo
    renders, natural photos) whole, so a capped run with the zoo changes only the real cameras' photos."""
    from eval.training_mix import MixError, training_mix

    try:
        return training_mix(src, dst, cap=k, kinds=kinds, seed=seed)
    except MixError as e:
        raise AblationError(str(e)) from None


def _link(path: pathlib.Path, target: pathlib.Path) -> None:
    if path.is_symlink() or path.exists():
        if path.is_symlink() and path.resolve() == target.resolve():
            return
        raise AblationError(f"{path}: exists and is not a link to {target} (remove it to rerun this variant)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target.absolute(), target_is_directory=True)


# ------------------------------------------------------------------------------------------------------ grid


def summarize(variant: Variant, steps: int, result: dict) -> dict:
    """One row of the grid: each metric's trained / untrained / chance from an eval.learning result."""
    metrics = {}
    for col, path, chance in METRICS:
        c = chance if isinstance(chance, float) else learning._get(result.get("trained"), chance)
        metrics[col] = {"trained": learning._get(result.get("trained"), path),
                        "untrained": learning._get(result.get("untrained"), path),
                        "chance": c}
    t = result.get("train", {})
    return {"name": variant.name, "factor": variant.factor, "value": variant.value, "steps": steps,
            "config_arg": variant.config_arg, "max_train_per_camera": variant.max_train_per_camera,
            "train_photos": result.get("data", {}).get("train"),
            "held_out_photos": result.get("trained", {}).get("camera", {}).get("photos"),
            "cameras": result.get("trained", {}).get("camera", {}).get("cameras"),
            "model": result.get("trained", {}).get("label"), "control": (result.get("untrained") or {}).get("label"),
            "first_loss": t.get("first_loss"), "last_loss": t.get("last_loss"),
            "train_seconds_niced": t.get("seconds"), "metrics": metrics}


def _matches(result: dict, steps: int, variant: Variant) -> bool:
    t = result.get("train", {})
    return (t.get("steps") == steps and t.get("config_arg", "") == variant.config_arg
            and result.get("data", {}).get("max_train_per_camera") == variant.max_train_per_camera
            and result.get("untrained") is not None)


def run_grid(out, *, steps: int, only=None, photos=learning.REAL_PHOTOS, natural=learning.NATURAL_PHOTOS,
             seed: int = 0, log=print) -> dict:
    """Prepares the data once, runs `eval.learning.run` for each selected variant (skipping those already done),
    writes `ablations.json`, `ablations.md`, `ablations.png` under `out` and returns the json dict."""
    out = pathlib.Path(out).absolute()
    variants = select(only)
    if steps < 1:
        raise AblationError(f"--steps {steps}: must be >= 1")
    out.mkdir(parents=True, exist_ok=True)
    learning.prepare(out / "prepared", photos, natural, seed=seed, zoo=0, log=log)
    base_data = out / "prepared" / "data"
    rows = []
    for v in VARIANTS:
        n = variant_steps(v, steps)
        vdir = out / "runs" / v.name
        done = vdir / "learning.json"
        if v not in variants:  # not asked for: reported when already run with these steps
            if done.is_file() and _matches(json.loads(done.read_text()), n, v):
                rows.append(summarize(v, n, json.loads(done.read_text())))
            continue
        data = base_data
        if v.max_train_per_camera is not None:
            data = out / "prepared" / f"data_cap{v.max_train_per_camera}"
            cap_training_photos(base_data, data, v.max_train_per_camera, seed)
        _link(vdir / "data", data)
        if done.is_file() and _matches(json.loads(done.read_text()), n, v):
            log(f"[ablate] {v.name}: reusing {done}")
            result = json.loads(done.read_text())
        else:
            log(f"[ablate] {v.name} ({v.factor}: {v.value}): {n} steps -> {vdir}")
            result = learning.run(vdir, photos=photos, natural=natural, real=True, steps=n,
                                  config_arg=v.config_arg, zoo=0, seed=seed, transfer=False, log=log)
        rows.append(summarize(v, n, result))
        _write(out, steps, seed, rows)  # after every variant: a finished variant is never lost
    _write(out, steps, seed, rows)
    plot(out / "ablations.png", rows)
    return json.loads((out / "ablations.json").read_text())


# ---------------------------------------------------------------------------------------------------- report


def _f(x):
    return "-" if x is None else f"{x:.3f}"


def table_md(rows) -> str:
    cols = [c for c, _, _ in METRICS]
    lines = ["| factor | value | steps | train photos | " + " | ".join(cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"**{_f(m['trained'])}** / {_f(m['untrained'])} / {_f(m['chance'])}"
                 for m in (r["metrics"][c] for c in cols)]
        lines.append(f"| {r['factor']} | {r['value']} | {r['steps']} | {r['train_photos']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def margins_md(rows) -> str:
    cols = [c for c, _, _ in METRICS]
    lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            m = r["metrics"][c]
            cells.append("-" if m["trained"] is None or m["untrained"] is None else f"{m['trained'] - m['untrained']:+.3f}")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: pathlib.Path, steps: int, seed: int, rows) -> None:
    doc = {"baseline_steps": steps, "seed": seed, "zoo": 0, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
           "variants": rows}
    (out / "ablations.json").write_text(json.dumps(doc, indent=2) + "\n")
    held = collections.Counter((r["held_out_photos"], r["cameras"]) for r in rows).most_common(1)
    where = f"{held[0][0][0]} held-out photos of {held[0][0][1]} cameras" if held else "held-out photos"
    md = ["# Ablations of the real-camera learning benchmark", "",
          f"`python -m eval.ablate`: `eval.learning --real` with {steps} baseline steps, seed {seed}, no simulated "
          f"zoo, one factor changed at a time; scored on {where} (the same photos for every variant). Each cell: "
          "**trained** / untrained control of that variant's architecture / chance (random map for p-mAP).", "",
          table_md(rows), "", "Margins (trained - untrained):", "", margins_md(rows), "",
          "Runs: `runs/<variant>/results.md` (every metric), `runs/<variant>/train` (the model). Train times are "
          "not speeds (niced, beside other jobs).", ""]
    (out / "ablations.md").write_text("\n".join(md), encoding="utf-8")


def plot(path: pathlib.Path, rows) -> None:
    """A panel per metric: a bar per variant (trained), a black tick at its untrained control, a dashed line at
    chance (the baseline's; for p-mAP each variant's random map is a grey tick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c, _, _ in METRICS]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.8), sharey=False)
    x = np.arange(len(rows))
    colours = plt.get_cmap("tab10")(np.arange(len(rows)) % 10)
    for ax, col in zip(np.atleast_1d(axes), cols):
        ms = [r["metrics"][col] for r in rows]
        t = [np.nan if m["trained"] is None else m["trained"] for m in ms]
        u = [np.nan if m["untrained"] is None else m["untrained"] for m in ms]
        ch = [np.nan if m["chance"] is None else m["chance"] for m in ms]
        ax.bar(x, t, color=colours, width=0.7, label="trained")
        ax.scatter(x, u, marker="_", s=400, color="black", linewidths=2.5, zorder=3, label="untrained control")
        if len(set(np.round(ch, 6))) > 1:
            ax.scatter(x, ch, marker="_", s=400, color="grey", linewidths=1.5, zorder=3, label="random map")
            ax.legend(handles=ax.collections[-1:], fontsize=7, loc="upper right")
        else:
            ax.axhline(ch[0], color="grey", linestyle="--", linewidth=1, label="chance")
        for xi, ti in zip(x, t):
            if not np.isnan(ti):
                ax.text(xi, ti + 0.015, f"{ti:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(col, fontsize=10)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    steps = rows[0]["steps"] if rows else 0
    fig.suptitle(f"eval.ablate: one factor at a time (baseline {steps} steps); bar = trained, black tick = "
                 "untrained control", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.ablate", description=__doc__.split("\n")[0])
    p.add_argument("--out", help="output folder (prepared data, runs/<variant>, ablations.{json,md,png})")
    p.add_argument("--steps", type=int, default=500, help="baseline training steps (default 500)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these variants (see --list)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    args = p.parse_args(argv)
    if args.list:
        for v in VARIANTS:
            print(f"{v.name:14s} {v.factor:18s} {v.value}")
        return 0
    if not args.out:
        print("eval.ablate: --out is required", file=sys.stderr)
        return 2
    try:
        select(args.only)
        if args.steps < 1:
            raise AblationError(f"--steps {args.steps}: must be >= 1")
        run_grid(args.out, steps=args.steps, only=args.only, seed=args.seed)
    except (AblationError, learning.LearningError) as e:
        print(f"eval.ablate: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
