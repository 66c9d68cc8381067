"""Zero-shot EXIF query accuracy on held-out photos, and region maps on same-content splices.

    python -m eval.query --weights W --dataset DIR --out OUT [--tags "Model,ISO Speed Ratings"] [--split eval]
        [--splices SPLICE_DIR] [--no-control]

`--dataset`: an `exif-jax ingest` output. For each tag, the candidates are every value of the tag in the dataset
(train and held-out split, as the dataset's renderer writes them); each photo of `--split` whose value is among them
is ranked (`exif_jax.query`), and top-1 is scored for every whole-photo view (`grid`: mean over the 9 x <= 9 patch
grid; `centre`: one centre crop) and prompt style (`matched`: texts of training photos with the value; `ensemble`:
training texts with the tag set to the value; `bare`: `Tag: value`; see `exif_jax.query.prompts`), beside:
- chance: 1 / #values;
- prior: always answering the training split's most frequent value (what a text-only guess gets on skewed tags);
- the untrained control (`ExifModel.untrained(0)`, same pipeline) and the margin.

`--splices`: a same-content splice folder (`python -m eval.same_content` layout: `images/`, `masks/`,
`manifest.jsonl` naming both cameras of each splice, `cameras.json`); per spliced image, the per-region map of
P(Model = camera) over the splice grid: the mean probability of the pasted region's camera inside vs outside the mask, and of the
host camera outside vs inside, for the model and the untrained control.

Writes `OUT/results.json`, `OUT/results.md` and (`--splices`) `OUT/maps/*.png`.
"""
from __future__ import annotations

import argparse
import io
import json
import pathlib
import sys
import time

import numpy as np

DEFAULT_TAGS = ("Make", "Model", "ISO Speed Ratings", "Sharpness", "Contrast", "Saturation", "White Balance",
                "White Balance Mode", "Software")


def split_photos(dataset_dir, split: str) -> list[tuple[str, np.ndarray, list]]:
    """(photo_id, uint8 RGB as stored, items) of every record of `split` (corrupt records skipped)."""
    from PIL import Image

    from exif_jax.data import records, tfrecord

    root = pathlib.Path(dataset_dir)
    info = json.loads((root / "dataset_info.json").read_text(encoding="utf-8"))
    out = []
    for shard in info["splits"][split]["shards"]:
        for raw in tfrecord.read_records(root / shard, verify=True):
            if isinstance(raw, tfrecord.CorruptRecord):
                continue
            rec = records.parse_record(raw, where=str(root / shard))
            with Image.open(io.BytesIO(rec["image"])) as im:
                rgb = np.asarray(im.convert("RGB"))
            out.append((rec["photo_id"], rgb, [tuple(it) for it in json.loads(rec["exif_items"])]))
    return out


def zero_shot_accuracy(model, dataset, photos, tags, *, views=("grid", "centre"),
                       styles=("matched", "ensemble", "bare"),
                       n_templates: int = 8) -> dict:
    """{tag: {"n", "values", "chance", "prior", f"{view}/{style}": top-1}} over `photos` (see the module doc)."""
    from exif_jax.query import core
    from exif_jax.query.images import encode_photos
    from exif_jax.query.prompts import rendered_value

    emb = {v: encode_photos(model, [p[1] for p in photos], view=v) for v in views}
    scale = model.logit_scale()
    out = {}
    for tag in tags:
        counts = dataset.values(tag)
        values = [v for v, _ in counts.most_common()]
        truth = [rendered_value(p[2], tag, dataset.renderer) for p in photos]
        keep = [i for i, t in enumerate(truth) if t in values]
        if len(values) < 2 or not keep:
            continue
        prior_value = (dataset.values(tag, splits=("train",)).most_common(1) or [(values[0], 0)])[0][0]
        row = {"n": len(keep), "values": len(values), "chance": 1.0 / len(values),
               "prior": float(np.mean([truth[i] == prior_value for i in keep]))}
        for style in styles:
            q = core.prepare(model, {tag: values}, dataset=dataset, prompts=style, n_templates=n_templates)[0]
            for view in views:
                probs = core.probabilities(emb[view][keep], q.text_embeddings, scale)
                pred = np.argmax(probs, axis=1)
                row[f"{view}/{style}"] = float(np.mean([values[j] == truth[i] for i, j in zip(keep, pred)]))
        out[tag] = row
    return out


def splice_maps(model, dataset, splice_dir, out_dir, *, num_per_dim: int = 30, n_templates: int = 8,
                write_png: bool = True) -> list[dict]:
    """Per spliced image: mean P(Model = pasted camera) inside / outside the mask, and the host camera's."""
    from exif_jax.query import core, maps as qmaps
    from exif_jax.query.images import photo_patches, stream_embeddings
    from exif_jax.splice.io import load_image
    from exif_jax.splice.io import write_png as save_png

    root = pathlib.Path(splice_dir)
    entries = manifest_entries(root)
    values = [v for v, _ in dataset.values("Model").most_common()]
    q = core.prepare(model, {"Model": values}, dataset=dataset, prompts=core.DEFAULT_STYLE,
                     n_templates=n_templates)[0]
    scale = model.logit_scale()
    patch = int(model.config.image_size)
    rows = []

    def gen():
        for e in entries:
            img = load_image(root / e["image"])
            pp = photo_patches(img, patch, view="grid", num_per_dim=num_per_dim, source=e["image"])
            pp.path, pp.image = e, img
            yield pp

    for pp, emb in stream_embeddings(model, gen()):
        e = pp.path
        mask = np.asarray(load_image(root / e["mask"]))[..., 0] > 127
        pasted, host = e["pasted_model"], e["host_model"]
        if pasted not in values or host not in values:
            continue
        idx = [values.index(pasted), values.index(host)]
        cells = qmaps.cell_maps(core.probabilities(emb, q.text_embeddings, scale)[:, idx], pp.grid)
        pix = qmaps.pixel_maps(cells, pp.grid)
        p_in, p_out = qmaps.inside_outside(pix[0], mask)
        h_in, h_out = qmaps.inside_outside(pix[1], mask)
        rows.append({"image": e["image"], "pasted": pasted, "host": host, "pasted_inside": p_in,
                     "pasted_outside": p_out, "host_inside": h_in, "host_outside": h_out,
                     "mask_fraction": float(mask.mean())})
        if write_png and out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            titles = [f"P(Model = {pasted}) pasted", f"P(Model = {host}) host"]
            heading = (f"{e['image']}  {model.label}  pasted-camera prob inside {p_in:.3f} / outside {p_out:.3f}"
                       f" ({len(values)} candidates)")
            save_png(out_dir / (pathlib.Path(e["image"]).stem + ".png"), qmaps.panels(pp.image, pix, titles, heading))
        pp.image = None
    return rows


def manifest_entries(root: pathlib.Path) -> list[dict]:
    """Spliced images of an `eval.same_content` folder as `{image, mask, pasted_model, host_model}` (EXIF Model
    of the donor and host cameras, from `cameras.json`)."""
    chains = json.loads((root / "cameras.json").read_text(encoding="utf-8"))["chains"]
    model_of = {c["id"]: c.get("model", c["id"]) for c in chains}
    out = []
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("label") != 1:
            continue
        out.append({"image": f"images/{rec['id']}.png", "mask": f"masks/{rec['id']}.png",
                    "pasted_model": model_of[rec["donor_camera"]], "host_model": model_of[rec["host_camera"]]})
    return out


def _md(results: dict) -> str:
    lines = [f"# Zero-shot EXIF queries: {results['model']} on {results['dataset']} ({results['split']} split)", ""]
    acc = results["accuracy"]
    ctrl = results.get("control", {})
    keys = results["columns"]
    default = results["default"]
    lines += [f"Each cell: trained / untrained control ({results.get('control_label', 'none')}); default "
              f"`{default}`; margin = trained - untrained for the default.", ""]
    head = "| tag | photos | values | chance | prior | " + " | ".join(keys) + (" | margin |" if ctrl else " |")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for tag, row in acc.items():
        cells = [tag, str(row["n"]), str(row["values"]), f"{row['chance']:.3f}", f"{row['prior']:.3f}"]
        u = ctrl.get(tag, {})
        cells += [f"{row[k]:.3f}" + (f" / {u[k]:.3f}" if k in u else "") for k in keys]
        if ctrl:
            cells.append(f"{row[default] - u.get(default, float('nan')):+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    if results.get("splices"):
        lines += ["", "## Region maps on same-content splices (P(Model = camera), mean over pixels)", "",
                  "| model | splices | pasted camera inside | pasted camera outside | host camera outside | "
                  "host camera inside | pasted inside > outside |", "|---|---|---|---|---|---|---|"]
        for name, rows in results["splices"].items():
            if not rows:
                continue
            m = {k: float(np.mean([r[k] for r in rows])) for k in
                 ("pasted_inside", "pasted_outside", "host_inside", "host_outside")}
            wins = sum(r["pasted_inside"] > r["pasted_outside"] for r in rows)
            lines.append(f"| {name} | {len(rows)} | {m['pasted_inside']:.3f} | {m['pasted_outside']:.3f} | "
                         f"{m['host_outside']:.3f} | {m['host_inside']:.3f} | {wins}/{len(rows)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.query", description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--dataset", required=True, help="exif-jax ingest output (candidates, templates, photos)")
    p.add_argument("--split", default="eval", help="photos scored (default: the held-out split)")
    p.add_argument("--tags", default=",".join(DEFAULT_TAGS), help="comma-separated tags (absent ones skipped)")
    p.add_argument("--splices", help="same-content splice folder for the region-map measurement")
    p.add_argument("--templates", type=int, default=8)
    p.add_argument("--no-control", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import exif_jax
    from exif_jax.query.core import DEFAULT_STYLE
    from exif_jax.query.prompts import DatasetError, load_dataset

    try:
        dataset = load_dataset(args.dataset)
        model = exif_jax.load(args.weights, step=args.step)
    except (DatasetError, OSError, ValueError, KeyError) as e:
        print(f"eval.query: {e}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    photos = split_photos(args.dataset, args.split)
    print(f"[eval.query] {model.label}: {len(photos)} {args.split} photos, tags {', '.join(tags)}", flush=True)
    t0 = time.perf_counter()
    results = {"model": model.label, "weights": str(args.weights), "step": model.step, "dataset": str(args.dataset),
               "split": args.split, "photos": len(photos),
               "columns": [f"{v}/{s}" for v in ("grid", "centre") for s in ("matched", "ensemble", "bare")],
               "default": f"grid/{DEFAULT_STYLE}"}
    results["accuracy"] = zero_shot_accuracy(model, dataset, photos, tags, n_templates=args.templates)
    models = [("model", model)]
    if not args.no_control:
        untrained = model.untrained(0)
        results["control"] = zero_shot_accuracy(untrained, dataset, photos, tags, n_templates=args.templates)
        results["control_label"] = untrained.label
        models.append(("untrained", untrained))
    if args.splices:
        results["splices"] = {}
        for name, m in models:
            label = model.label if name == "model" else m.label
            results["splices"][label] = splice_maps(m, dataset, args.splices,
                                                    out / "maps" if name == "model" else out / "maps_untrained",
                                                    n_templates=args.templates)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (out / "results.md").write_text(_md(results), encoding="utf-8")
    print(_md(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
