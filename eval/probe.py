"""Linear probes on frozen patch features: `python -m eval.probe --task camera|manipulated ... --weights W --out DIR`.

- `camera`: camera make (or make+model) identification on a folder of photos, labels from EXIF
  (`exif_jax.exif.reader.read_exif_file`). Each photo gives `--patches` random 124 px crops; a scikit-learn
  logistic regression is trained on L2-normalized patch embeddings of the training photos and tested on held-out
  photos (split by photo, stratified; classes with fewer than two photos are dropped and listed). Reports patch
  accuracy and photo accuracy (summed log-probabilities of the photo's patches).
- `manipulated`: authentic vs manipulated on a CASIA layout (`--dataset casia_1|casia_2 --data-root DIR`): one
  feature per image (mean of its normalized patch embeddings), held-out split by image.

Every run also scores the untrained control (`ExifModel.untrained(0)`: same config, random weights) on the same
crops and split and reports the margin; `--no-control` turns it off. Writes `probe.json` (accuracies, classes,
confusion matrix, `untrained`, `margin`), `results.md` (model / untrained / margin / chance) and `confusion.png`
(true class by row, predicted by column, titled axes, colour bar). Python: `probe_train_test(train_feats,
train_labels, test_feats, test_labels)` for a given split, `fit_probe(feats, labels)` for a stratified one.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np


def random_crops(image: np.ndarray, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    ys = rng.integers(0, h - size + 1, k)
    xs = rng.integers(0, w - size + 1, k)
    return np.stack([image[y:y + size, x:x + size] for y, x in zip(ys, xs)])


def split_by_group(labels, test_fraction: float, seed: int):
    """Stratified split of items (photos) -> (train_idx, test_idx, dropped_classes)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test, dropped = [], [], []
    for c in sorted(set(labels.tolist())):
        idx = np.nonzero(labels == c)[0]
        if len(idx) < 2:
            dropped.append(c)
            continue
        idx = rng.permutation(idx)
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    return np.array(sorted(train), int), np.array(sorted(test), int), dropped


def _normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _classifier(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def probe_train_test(train_feats: list[np.ndarray], train_labels, test_feats: list[np.ndarray], test_labels, *,
                     aggregate: str = "patches", C: float = 1.0) -> dict:
    """Logistic regression on given training items, scored on given test items (`feats[i]`: `[K_i, D]` patch
    embeddings of item i). `aggregate="patches"`: one sample per patch, an item's class = the largest summed
    log-probability of its patches; `"mean"`: one sample per item (mean of its normalized patch embeddings).
    Test items of classes absent from training are scored too (they count as errors). Raises `ValueError` when
    training has fewer than two classes."""
    from sklearn.metrics import accuracy_score, confusion_matrix

    ytr, truth = np.asarray(train_labels), np.asarray(test_labels)
    classes = sorted(set(ytr.tolist()))
    if len(classes) < 2:
        raise ValueError(f"a probe needs at least two classes with training items, got {len(classes)}"
                         + (f" ({classes[0]})" if classes else ""))
    if len(test_feats) == 0:
        raise ValueError("no held-out items to score the probe on")
    if aggregate == "mean":
        x = lambda fs: np.stack([_normalize(f).mean(0) for f in fs])
        clf = _classifier(C).fit(x(train_feats), ytr)
        pred = clf.predict(x(test_feats))
        out = {"accuracy": float(accuracy_score(truth, pred))}
    else:
        xtr = np.concatenate([_normalize(f) for f in train_feats])
        yp = np.concatenate([[y] * len(f) for f, y in zip(train_feats, ytr)])
        clf = _classifier(C).fit(xtr, yp)
        patch_pred = [clf.predict(_normalize(f)) for f in test_feats]
        patch_acc = float(np.mean(np.concatenate([p == y for p, y in zip(patch_pred, truth)])))
        logp = [clf.predict_log_proba(_normalize(f)).sum(0) for f in test_feats]
        pred = np.array([clf.classes_[int(np.argmax(lp))] for lp in logp])
        out = {"patch_accuracy": patch_acc, "accuracy": float(accuracy_score(truth, pred))}
    names = sorted(set(truth.tolist()) | set(pred.tolist()))
    out.update(classes=[str(c) for c in classes], train_items=int(len(train_feats)), test_items=int(len(test_feats)),
               chance=float(1.0 / len(classes)), confusion_labels=[str(c) for c in names],
               confusion=confusion_matrix(truth, pred, labels=names).tolist(),
               predictions=[{"true": str(t), "pred": str(p)} for t, p in zip(truth, pred)])
    return out


def fit_probe(feats: list[np.ndarray], labels, *, test_fraction=0.3, seed=0, aggregate="patches", C=1.0) -> dict:
    """`feats[i]`: `[K_i, D]` patch embeddings of item i. Stratified split by item (`split_by_group`), then
    `probe_train_test`. Raises `ValueError` when the split leaves fewer than two classes or no held-out item."""
    tr, te, dropped = split_by_group(labels, test_fraction, seed)
    labels = np.asarray(labels)
    if len(te) == 0:
        raise ValueError("not enough items for a held-out split (need >= 2 items in some class)")
    out = probe_train_test([feats[i] for i in tr], labels[tr], [feats[i] for i in te], labels[te],
                           aggregate=aggregate, C=C)
    for p, i in zip(out["predictions"], te):
        p["item"] = int(i)
    out["dropped_classes"] = [str(c) for c in dropped]
    return out


def _text_image(text: str, fill="black"):
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text)
    img = Image.new("RGB", (x1 + 2, y1 + 2), "white")
    ImageDraw.Draw(img).text((1, 1), text, fill=fill)
    return img


def confusion_png(path, matrix, names, title=""):
    """Confusion matrix as a PNG, drawn with Pillow: rows = true class (axis title at the left, class names beside
    each row), columns = predicted class (axis title on top, names written vertically); cells shaded by the row's
    fraction with the count written in; a colour bar for the fraction at the right."""
    from PIL import Image, ImageDraw

    m = np.asarray(matrix, np.float64)
    n = len(names)
    labels = [str(s)[:40] for s in names]
    cell = 28
    name_w = 12 + 7 * max((len(s) for s in labels), default=1)
    left, top = 22 + name_w, 40 + name_w
    bar_x = left + n * cell + 24
    img = Image.new("RGB", (bar_x + 70, top + max(n * cell, 60) + 30), "white")
    d = ImageDraw.Draw(img)
    d.text((4, 4), title[:160], fill="black")
    d.text((left, 20), "predicted class", fill="black")
    true_title = _text_image("true class").rotate(90, expand=True)
    img.paste(true_title, (4, top + max(0, (n * cell - true_title.height) // 2)))
    rows = np.maximum(m.sum(1, keepdims=True), 1)
    for j in range(n):
        col = _text_image(labels[j]).rotate(90, expand=True)
        img.paste(col, (left + j * cell + (cell - col.width) // 2, top - 4 - col.height))
    for i in range(n):
        d.text((22, top + i * cell + 8), labels[i], fill="black")
        for j in range(n):
            v = m[i, j] / rows[i, 0]
            shade = int(255 * (1 - v))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            if m[i, j]:
                d.text((x0 + 4, y0 + 8), str(int(m[i, j])), fill="white" if v > 0.5 else "black")
    height = max(n * cell, 60)
    for k in range(height):  # colour bar: fraction of the true class's items, 1 at the top
        v = 1 - k / max(height - 1, 1)
        shade = int(255 * (1 - v))
        d.line([(bar_x, top + k), (bar_x + 14, top + k)], fill=(shade, shade, 255))
    d.rectangle([bar_x, top, bar_x + 14, top + height - 1], outline="black")
    d.text((bar_x + 18, top - 4), "1.0", fill="black")
    d.text((bar_x + 18, top + height - 10), "0.0", fill="black")
    d.text((bar_x - 6, top + height + 6), "row fraction", fill="black")
    img.save(str(path), format="PNG")


MAKE_ALIASES = {"fuji": "fujifilm", "eastman": "kodak", "asahi": "pentax", "hewlett-packard": "hp"}


def normalize_make(make: str) -> str:
    """'NIKON CORPORATION' / 'Nikon' -> 'nikon'; 'FUJI PHOTO FILM CO., LTD.' -> 'fujifilm' (first word + aliases)."""
    words = make.strip().lower().replace(",", " ").split()
    first = words[0].strip(".") if words else ""
    return MAKE_ALIASES.get(first, first)


def camera_items(photo_dirs, label: str = "make"):
    from eval.synthetic import camera_of

    items = []
    for root in photo_dirs:
        root = pathlib.Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: photo folder does not exist")
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg"):
                cam = camera_of(p)
                if cam:
                    items.append((p, normalize_make(cam.split(" / ")[0]) if label == "make" else cam))
    return items


def extract(items, embed_fn, k: int, size: int, seed: int, log=print):
    from exif_jax.splice.io import ImageError, load_image

    rng = np.random.default_rng(seed)
    feats, labels, used, skipped = [], [], [], []
    t0 = time.perf_counter()
    for n, (path, lab) in enumerate(items, 1):
        try:
            img = load_image(path)
        except ImageError as e:
            skipped.append(str(e))
            log(f"[{n}/{len(items)}] skipped: {e}")
            continue
        if min(img.shape[:2]) < size:
            skipped.append(f"{path}: smaller than {size} px")
            continue
        feats.append(np.asarray(embed_fn(random_crops(img, k, size, rng)), np.float32))
        labels.append(lab)
        used.append(str(path))
        if n % 10 == 0 or n == len(items):
            rate = n / (time.perf_counter() - t0)
            log(f"[{n}/{len(items)}] features ({rate:.2f} photos/s, ETA {(len(items) - n) / rate:.0f}s)")
    return feats, labels, used, skipped


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.probe", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, choices=("camera", "manipulated"))
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--photos", nargs="+", help="camera task: folders of camera JPEGs (recursive)")
    p.add_argument("--label", choices=("make", "model"), default="make", help="camera task: class = make (normalized, see normalize_make) or 'Make / Model'")
    p.add_argument("--dataset", choices=("casia_1", "casia_2", "folder"), default="casia_2")
    p.add_argument("--data-root", help="manipulated task: dataset root")
    p.add_argument("--patches", type=int, default=16, help="random crops per photo")
    p.add_argument("--patch-size", type=int, default=None, help="crop size (default: the model's config.image_size)")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-control", action="store_true", help="skip the untrained control row")
    p.add_argument("--control-seed", type=int, default=0, help="seed of the untrained control")
    args = p.parse_args(argv)
    try:
        if args.task == "camera":
            if not args.photos:
                raise ValueError("--photos is required for --task camera")
            items = camera_items(args.photos, args.label)
        else:
            from eval.datasets import get_dataset

            if not args.data_root:
                raise ValueError("--data-root is required for --task manipulated")
            items = [(s.path, "manipulated" if s.label else "authentic")
                     for s in get_dataset(args.dataset, args.data_root)]
    except (FileNotFoundError, ValueError) as e:
        print(f"eval.probe: {e}", file=sys.stderr)
        return 2
    if not items:
        print("eval.probe: no labelled images found", file=sys.stderr)
        return 2

    n_classes = len({lab for _, lab in items})
    if n_classes < 2:
        print(f"eval.probe: {n_classes} class ({items[0][1]!r}) among {len(items)} labelled images: a probe needs at "
              "least two", file=sys.stderr)
        return 2

    from exif_jax.splice.embed import load_model_or_report, model_embed_fn, model_patch_size

    model = load_model_or_report(args.weights, "eval.probe")
    if model is None:
        return 2
    size = args.patch_size or model_patch_size(model)
    aggregate = "patches" if args.task == "camera" else "mean"
    runs = [model] + ([] if args.no_control else [model.untrained(args.control_seed)])
    results = []
    for m in runs:
        label = getattr(m, "label", None) or str(args.weights)
        print(f"{label}: extracting features", flush=True)
        # The same seed for every model: identical crops, identical split.
        feats, labels, used, skipped = extract(items, model_embed_fn(m, args.batch_size), args.patches, size,
                                               args.seed)
        try:
            res = fit_probe(feats, labels, test_fraction=args.test_fraction, seed=args.seed, aggregate=aggregate)
        except ValueError as e:
            print(f"eval.probe: {e}", file=sys.stderr)
            return 2
        res.update(label=label, items=used, skipped=skipped)
        results.append(res)
    res = results[0]
    summary = {"task": args.task, "weights": str(args.weights), **res}
    if len(results) > 1:
        ctrl = results[1]
        summary["untrained"] = {k: ctrl[k] for k in ("label", "accuracy", "patch_accuracy", "confusion",
                                                     "confusion_labels") if k in ctrl}
        summary["margin"] = {k: res[k] - ctrl[k] for k in ("accuracy", "patch_accuracy") if k in res}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(summary, indent=2) + "\n")
    confusion_png(out / "confusion.png", res["confusion"], res["confusion_labels"],
                  f"{args.task} probe on {res['label']}: accuracy {res['accuracy']:.3f} ({res['test_items']} held-out)")
    keys = [("accuracy", "accuracy")] + ([("patch_accuracy", "patch accuracy")] if "patch_accuracy" in res else [])
    header = "| model | " + " | ".join(t for _, t in keys) + " |"
    lines = [header, "|---" * (len(keys) + 1) + "|"]
    for r in results:
        lines.append(f"| {r['label']} | " + " | ".join(f"{r[k]:.3f}" for k, _ in keys) + " |")
    if len(results) > 1:
        lines.append("| margin (trained - untrained) | "
                     + " | ".join(f"{summary['margin'][k]:+.3f}" for k, _ in keys) + " |")
    lines.append(f"| chance | " + " | ".join(f"{res['chance']:.3f}" for _ in keys) + " |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(f"# {args.task} probe\n\n{res['test_items']} held-out items, "
                                    f"{len(res['classes'])} classes.\n\n{table}")
    print(table)
    if res["dropped_classes"]:
        print(f"dropped {len(res['dropped_classes'])} class(es) with fewer than two photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
