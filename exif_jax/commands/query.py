"""`exif-jax query PATH... --weights W --tag TAG`: ask photos about their camera, zero-shot.

Per photo, the candidate values of TAG ranked with probabilities: softmax over the model's logit scale of the
cosine between the photo embedding (the mean of its patch embeddings over the splice grid, or `--view centre`: one
centre crop) and each candidate's text embedding (`--prompts matched`, the default with a dataset: the texts of
training photos with that value; `ensemble`: the dataset's texts with TAG set to the candidate, averaged; `bare`:
`TAG: value`). Candidates: `--values "v1|v2|..."`, or every value of TAG in an ingest
output (`--values-from DATASET_DIR`); without either, the values of the dataset a trainer workdir was trained on.

    exif-jax query photos/ --weights runs/smoke --tag Make --values "Canon|NIKON|SONY"
    exif-jax query a.jpg b.jpg --weights runs/smoke --tag Model --values-from data/photos --top 3 --json
    exif-jax query spliced.jpg --weights runs/smoke --tag Model --values-from data/zoo --maps out/
    exif-jax query photos/ --weights runs/smoke --tag all --values-from data/photos

`--json`: one line per photo and tag, `{"file", "tag", "ranking": [[value, prob], ...], "weights", "step", "patch",
"view", "patches", "truth"}` (`patch`: crop size in pixels; `truth`: the photo's own EXIF value, or null).
`--maps OUT`: per-region probability maps of the top values over the patch grid, `OUT/<stem>.<tag>.png` (photo +
one panel per value, fixed 0..1 colour scale, colour bar) and `OUT/<stem>.<tag>.npy` (`[K, Hc, Wc]` cell maps,
values in `OUT/maps.jsonl`). Photos whose own EXIF has a value of TAG among the candidates are scored: top-1
beside chance and the untrained control (`--no-control` skips it). A bad or too small photo: one line, skipped,
counted; exit 1 if any was skipped. Usage errors (unknown tag, no candidates): one line, exit 2.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import pathlib
import sys
import time

import numpy as np

PROG = "exif-jax query"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos (JPEG/PNG/TIFF) or folders of them")
    p.add_argument("--weights", required=True, help="trainer workdir, exported .safetensors, hf dir or original .pth")
    p.add_argument("--step", type=int, default=None, help="checkpoint step of a trainer workdir (default: latest)")
    p.add_argument("--tag", required=True, help="EXIF tag name as rendered (e.g. Make, Model, 'ISO Speed Ratings'), "
                                                "or 'all' for every tag of the dataset's tag table")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--values", help="candidate values separated by |, e.g. 'Canon|NIKON|SONY'")
    src.add_argument("--values-from", metavar="DATASET_DIR",
                     help="an `exif-jax ingest` output: every value of the tag there is a candidate, and its texts "
                          "are the prompt templates")
    p.add_argument("--templates-from", metavar="DATASET_DIR",
                   help="prompt templates from this ingest output (default: --values-from, else the dataset a "
                        "trainer workdir was trained on)")
    p.add_argument("--prompts", choices=("auto", "matched", "ensemble", "bare"), default="auto",
                   help="matched = texts of the dataset's training photos with that value (topped up with ensemble "
                        "texts; the default when a dataset is known); ensemble = the dataset's texts with the tag "
                        "set to each candidate, averaged; bare = 'Tag: value' (the default without a dataset)")
    p.add_argument("--templates", type=int, default=8, help="texts averaged per candidate (matched/ensemble)")
    p.add_argument("--top", type=int, default=5, help="values shown per photo and tag (default 5; maps: at most 4)")
    p.add_argument("--json", action="store_true", help="one JSON line per photo and tag on stdout")
    p.add_argument("--maps", metavar="OUT", help="write per-region probability maps (PNG + .npy) to this folder")
    p.add_argument("--view", choices=("grid", "centre"), default="grid",
                   help="whole-photo embedding: mean over the patch grid (default) or one centre crop")
    p.add_argument("--grid", type=int, default=8, help="patch grid steps along the long side for the ranking")
    p.add_argument("--map-grid", type=int, default=30, help="patch grid steps for --maps (ranking uses it too)")
    p.add_argument("--batch-size", type=int, default=64, help="patches per encoder call (fixed, last padded)")
    p.add_argument("--no-control", action="store_true", help="do not score the untrained control")
    return p


def _fail(msg: str) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return 2


def _truth(path: pathlib.Path, tags, renderer) -> dict:
    """The photo's own rendered values of `tags` (from its EXIF), {} when it has none or is not a JPEG."""
    from exif_jax.exif import ExifError
    from exif_jax.exif.reader import read_exif_file
    from exif_jax.query.prompts import rendered_value

    try:
        items = [tuple(it) for it in read_exif_file(path)]
    except (ExifError, OSError, ValueError):
        return {}
    return {t: v for t in tags if (v := rendered_value(items, t, renderer)) is not None}


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how often chance alone gets k or more of n right."""
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def _photos(paths, patch, view, num_per_dim, failed: list, report: bool = True):
    """PhotoPatches of each readable photo; a bad one is appended to `failed` (and reported on stderr)."""
    from exif_jax.query.images import PhotoError, as_image, photo_patches

    for k, path in enumerate(paths, 1):
        try:
            image = as_image(path, str(path))
            pp = photo_patches(image, patch, view=view, num_per_dim=num_per_dim, source=str(path))
        except PhotoError as e:
            failed.append(str(path))
            if report:
                print(f"[{k}/{len(paths)}] skipped: {e}", file=sys.stderr)
            continue
        pp.index, pp.path, pp.image = k, path, image
        yield pp


def _score(model, queries, paths, truths, args, patch, view, num_per_dim) -> dict[str, list[int]]:
    """Per tag, [hits, scored] for photos whose EXIF value is a candidate (one pass, no output)."""
    from exif_jax.query.core import probabilities
    from exif_jax.query.images import photo_embedding, stream_embeddings

    scored = {q.tag: [0, 0] for q in queries}
    scale = model.logit_scale()
    photos = _photos(paths, patch, view, num_per_dim, [], report=False)
    for pp, emb in stream_embeddings(model, _drop_images(photos), args.batch_size):
        e = photo_embedding(emb)[None]
        for q in queries:
            t = truths.get(str(pp.path), {}).get(q.tag)
            if t in q.values:
                probs = probabilities(e, q.text_embeddings, scale)[0]
                scored[q.tag][0] += int(q.values[int(np.argmax(probs))] == t)
                scored[q.tag][1] += 1
    return scored


def _drop_images(photos):
    for pp in photos:
        pp.image = None  # keep memory flat: only patches are needed
        yield pp


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from exif_jax.commands.splice import expand_inputs, unique_stems

    paths = expand_inputs(args.paths)
    if not paths:
        return _fail("no photos found in the given paths")
    if args.top < 1 or args.templates < 1 or args.grid < 1 or args.map_grid < 1 or args.batch_size < 1:
        return _fail("--top, --templates, --grid, --map-grid and --batch-size must be >= 1")

    import exif_jax
    from exif_jax.exif.render import get_renderer
    from exif_jax.query import core, maps as qmaps, prompts as pr
    from exif_jax.query.images import photo_embedding, stream_embeddings

    # ---- candidates and templates (before the model: usage errors come fast)
    dataset = None
    ds_path = args.values_from or args.templates_from
    if ds_path is None and args.prompts != "bare":
        ds_path = pr.training_dataset(args.weights)
    if ds_path is not None:
        try:
            dataset = pr.load_dataset(ds_path)
        except (pr.DatasetError, OSError, ValueError) as e:
            if args.values_from or args.templates_from:
                return _fail(f"cannot read dataset: {e}")
            print(f"{PROG}: note: the weights' training data {ds_path} is unreadable ({e}); bare prompts",
                  file=sys.stderr)
    if args.prompts in ("matched", "ensemble") and dataset is None:
        return _fail(f"--prompts {args.prompts} needs a dataset: give --values-from or --templates-from")
    known = core.known_tags(dataset)
    if args.tag.strip().lower() == "all":
        if args.values is not None:
            return _fail("--tag all takes its values from a dataset; give --values-from DATASET_DIR, not --values")
        if dataset is None:
            return _fail("--tag all needs a dataset's tag table: give --values-from DATASET_DIR")
        tags = {t: [v for v, _ in dataset.values(t).most_common()] for t in known}
        tags = {t: v for t, v in tags.items() if len(v) >= 2}
        if not tags:
            return _fail(f"{dataset.path}: no tag has two or more values; known tags: {', '.join(known)}")
    else:
        try:
            tag = core.canonical_tag(args.tag, known)
        except core.QueryError as e:
            return _fail(str(e))
        if args.values is not None:
            values = [v.strip() for v in args.values.split("|") if v.strip()]
        elif dataset is not None:
            values = [v for v, _ in dataset.values(tag).most_common()]
        else:
            return _fail("give the candidates: --values 'v1|v2|...' or --values-from DATASET_DIR")
        if not values:
            where = f" in {dataset.path}" if args.values is None else ""
            return _fail(f"{tag}: no candidate values{where}; known tags: {', '.join(known)}")
        tags = {tag: values}

    try:
        model = exif_jax.load(args.weights, step=args.step, batch_size=args.batch_size)
    except (OSError, ValueError, KeyError) as e:
        msg = str(e) if str(args.weights) in str(e) else f"{args.weights}: {e}"
        return _fail(f"cannot load weights: {msg}")
    try:
        queries = core.prepare(model, tags, dataset=dataset, prompts=args.prompts, n_templates=args.templates)
    except core.QueryError as e:
        return _fail(str(e))

    patch = int(model.config.image_size)
    view, num_per_dim = (("grid", args.map_grid) if args.maps else (args.view, args.grid))
    maps_out = pathlib.Path(args.maps) if args.maps else None
    if maps_out is not None:
        maps_out.mkdir(parents=True, exist_ok=True)
    renderer = dataset.renderer if dataset is not None else get_renderer("clean")
    truths = {str(p): _truth(p, list(tags), renderer) for p in paths}
    scale = model.logit_scale()
    stems = dict(zip(map(str, paths), unique_stems(paths)))
    n_top = min(args.top, 4)
    log = sys.stderr if args.json else sys.stdout
    prompt_note = queries[0].style + (f" (up to {args.templates} texts per value from {dataset.path})"
                                      if queries[0].style != "bare" else "")
    print(f"{model.label or 'model'}: {len(paths)} photo(s), {len(tags)} tag(s), view {view} "
          f"({patch} px patches), prompts {prompt_note}", file=log, flush=True)

    failed: list[str] = []
    hits = {q.tag: [0, 0, collections.Counter()] for q in queries}  # hits, scored, truth counts
    t0 = time.perf_counter()
    done = 0
    photos = _photos(paths, patch, view, num_per_dim, failed)
    for pp, emb in stream_embeddings(model, photos, args.batch_size):
        done += 1
        e = photo_embedding(emb)[None]
        lines = []
        for q in queries:
            probs = core.probabilities(e, q.text_embeddings, scale)[0]
            rank = core.ranking(q.values, probs, args.top)
            truth = truths[str(pp.path)].get(q.tag)
            if truth in q.values:
                hits[q.tag][0] += int(rank[0][0] == truth)
                hits[q.tag][1] += 1
                hits[q.tag][2][truth] += 1
            if args.json:
                print(json.dumps({"file": str(pp.path), "tag": q.tag, "ranking": [[v, round(p, 6)] for v, p in rank],
                                  "weights": str(args.weights), "step": model.step, "patch": patch, "view": view,
                                  "patches": int(len(emb)), "truth": truth}, ensure_ascii=False), flush=True)
            else:
                mark = "" if truth is None else f"  [EXIF: {truth}{' - top-1' if rank[0][0] == truth else ''}]"
                lines.append(f"  {q.tag}: " + ", ".join(f"{v} {p:.2f}" for v, p in rank) + mark)
            if maps_out is not None and pp.grid is not None:
                _write_maps(maps_out, stems[str(pp.path)], pp, emb, q, scale, n_top, model, qmaps, core)
        if not args.json:
            rate = done / (time.perf_counter() - t0)
            print(f"[{pp.index}/{len(paths)}] {pp.path.name} ({len(emb)} patches, {rate:.1f} photos/s)", flush=True)
            print("\n".join(lines), flush=True)
        pp.image = None
    elapsed = time.perf_counter() - t0

    ok = len(paths) - len(failed)
    print(f"{ok} photo(s) in {elapsed:.1f} s ({ok / max(elapsed, 1e-9):.2f} photos/s)"
          + (f"; {len(failed)} skipped" if failed else ""), file=log)
    if any(h[1] for h in hits.values()):
        control = None
        if not args.no_control:
            untrained = model.untrained(0)
            uq = core.prepare(untrained, tags, dataset=dataset, prompts=args.prompts, n_templates=args.templates)
            control = _score(untrained, uq, paths, truths, args, patch, view, num_per_dim)
        _summary(queries, hits, control, log, model.label)
    return 1 if failed else 0


def _write_maps(out, stem, pp, emb, q, scale, n_top, model, qmaps, core):
    from exif_jax.query.images import photo_embedding
    from exif_jax.splice.io import write_png

    patch_probs = core.probabilities(emb, q.text_embeddings, scale)  # [N, V] per patch
    whole = core.probabilities(photo_embedding(emb)[None], q.text_embeddings, scale)[0]
    order = np.argsort(-whole, kind="stable")[:n_top]
    cells = qmaps.cell_maps(patch_probs[:, order], pp.grid)
    safe_tag = "".join(c if c.isalnum() else "_" for c in q.tag)
    np.save(out / f"{stem}.{safe_tag}.npy", cells.astype(np.float32))
    pixels = qmaps.pixel_maps(cells, pp.grid)
    titles = [f"{q.values[i]} (whole {whole[i]:.2f})" for i in order]
    heading = f"{pp.path.name}  {q.tag}  {model.label}  P(value) per region over {len(q.values)} candidates"
    write_png(out / f"{stem}.{safe_tag}.png", qmaps.panels(pp.image, pixels, titles, heading))
    with open(out / "maps.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"file": str(pp.path), "tag": q.tag, "npy": f"{stem}.{safe_tag}.npy",
                            "png": f"{stem}.{safe_tag}.png", "values": [q.values[i] for i in order],
                            "whole": [float(whole[i]) for i in order], "cells": list(cells.shape[1:]),
                            "stride": pp.grid.stride, "patch": pp.grid.patch}, ensure_ascii=False) + "\n")


def _summary(queries, hits, control, log, label) -> None:
    """Top-1 per tag beside chance (1/#values), the majority baseline (always answering the most frequent value
    among these photos: skewed tags make uniform chance too easy) and the untrained control. A tag counts as
    predicted above chance when a one-sided binomial test rejects the larger of chance and the majority baseline
    (p < 0.05) and the model beats the untrained control."""
    print("top-1 against each photo's own EXIF value (photos whose value is a candidate):", file=log)
    above = []
    for q in queries:
        k, n, counts = hits[q.tag]
        if not n:
            continue
        chance = 1.0 / len(q.values)
        majority = max(counts.values()) / n
        p = binomial_tail(k, n, max(chance, majority))
        line = (f"  {q.tag}: {label} {k / n:.3f} ({k}/{n}); chance {chance:.3f} ({len(q.values)} values), "
                f"majority {majority:.3f}")
        beats_control = True
        if control is not None:
            ck, cn = control[q.tag]
            line += f", untrained (seed 0) {ck / cn:.3f}, margin {k / n - ck / cn:+.3f}"
            beats_control = k / n > ck / cn
        line += f"; p = {p:.2g} vs max(chance, majority)"
        print(line, file=log)
        if p < 0.05 and beats_control:
            above.append(q.tag)
    if len(queries) > 1:
        print("predicted above chance (p < 0.05 against chance and majority, above the untrained control): "
              f"{', '.join(above) or 'none'}", file=log)


if __name__ == "__main__":
    sys.exit(main())
