"""Linear probes on frozen patch features: `python -m eval.probe --task camera|manipulated ... --weights W --out DIR`.

- `camera`: camera make (or make+model) identification on a folder of photos, labels from EXIF
  (`exif_jax.exif.reader.read_exif_file`). Each photo gives `--patches` random 124 px crops; a scikit-learn
  logistic regression is trained on L2-normalized patch embeddings of the training photos and tested on held-out
  photos (split by photo, stratified; classes with fewer than two photos are dropped and listed). Reports patch
  accuracy and photo accuracy (summed log-probabilities of the photo's patches).
- `manipulated`: authentic vs manipulated on a CASIA layout (`--dataset casia_1|casia_2 --data-root DIR`): one
  feature per image (mean of its normalized patch embeddings), held-out split by image.

Writes `probe.json` (accuracies, classes, confusion matrix) and `confusion.png`.
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


def fit_probe(feats: list[np.ndarray], labels, *, test_fraction=0.3, seed=0, aggregate="patches", C=1.0) -> dict:
    """`feats[i]`: `[K_i, D]` patch embeddings of item i. Logistic regression on patches (or per-item means)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, confusion_matrix

    tr, te, dropped = split_by_group(labels, test_fraction, seed)
    if len(tr) == 0 or len(te) == 0:
        raise ValueError("not enough items for a held-out split (need >= 2 items in some class)")
    labels = np.asarray(labels)
    classes = sorted(set(labels[tr].tolist()))
    if aggregate == "mean":
        x = np.stack([_normalize(f).mean(0) for f in feats])
        clf = LogisticRegression(C=C, max_iter=2000).fit(x[tr], labels[tr])
        pred = clf.predict(x[te])
        out = {"accuracy": float(accuracy_score(labels[te], pred))}
        truth = labels[te]
    else:
        xtr = np.concatenate([_normalize(feats[i]) for i in tr])
        ytr = np.concatenate([[labels[i]] * len(feats[i]) for i in tr])
        clf = LogisticRegression(C=C, max_iter=2000).fit(xtr, ytr)
        patch_pred = [clf.predict(_normalize(feats[i])) for i in te]
        patch_acc = float(np.mean(np.concatenate([p == labels[i] for p, i in zip(patch_pred, te)])))
        logp = [clf.predict_log_proba(_normalize(feats[i])).sum(0) for i in te]
        pred = np.array([clf.classes_[int(np.argmax(lp))] for lp in logp])
        truth = labels[te]
        out = {"patch_accuracy": patch_acc, "accuracy": float(accuracy_score(truth, pred))}
    names = sorted(set(truth.tolist()) | set(pred.tolist()))
    out.update(classes=[str(c) for c in classes], dropped_classes=[str(c) for c in dropped],
               train_items=int(len(tr)), test_items=int(len(te)), chance=float(1.0 / max(1, len(classes))),
               confusion_labels=[str(c) for c in names],
               confusion=confusion_matrix(truth, pred, labels=names).tolist(),
               predictions=[{"item": int(i), "true": str(t), "pred": str(p)} for i, t, p in zip(te, truth, pred)])
    return out


def confusion_png(path, matrix, names, title=""):
    """Confusion matrix as a PNG (rows = true class, columns = predicted), drawn with Pillow."""
    from PIL import Image, ImageDraw

    m = np.asarray(matrix, np.float64)
    n = len(names)
    cell, left, top = 28, 12 + 7 * min(40, max((len(s) for s in names), default=1)), 40
    img = Image.new("RGB", (left + n * cell + 10, top + n * cell + 10), "white")
    d = ImageDraw.Draw(img)
    d.text((4, 4), title[:120], fill="black")
    rows = np.maximum(m.sum(1, keepdims=True), 1)
    for i in range(n):
        d.text((4, top + i * cell + 8), str(names[i])[:40], fill="black")
        for j in range(n):
            v = m[i, j] / rows[i, 0]
            shade = int(255 * (1 - v))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            if m[i, j]:
                d.text((x0 + 4, y0 + 8), str(int(m[i, j])), fill="white" if v > 0.5 else "black")
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

    import exif_jax
    from exif_jax.splice.embed import model_embed_fn, model_patch_size

    model = exif_jax.load(args.weights)
    embed = model_embed_fn(model, args.batch_size)
    feats, labels, used, skipped = extract(items, embed, args.patches, args.patch_size or model_patch_size(model),
                                           args.seed)
    res = fit_probe(feats, labels, test_fraction=args.test_fraction, seed=args.seed,
                    aggregate="patches" if args.task == "camera" else "mean")
    res.update(task=args.task, weights=str(args.weights), items=used, skipped=skipped)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(res, indent=2) + "\n")
    confusion_png(out / "confusion.png", res["confusion"], res["confusion_labels"],
                  f"{args.task}: accuracy {res['accuracy']:.3f} ({res['test_items']} held-out)")
    msg = f"{args.task}: accuracy {res['accuracy']:.3f} on {res['test_items']} held-out items " \
          f"({len(res['classes'])} classes, chance {res['chance']:.3f})"
    if "patch_accuracy" in res:
        msg += f", patch accuracy {res['patch_accuracy']:.3f}"
    print(msg)
    if res["dropped_classes"]:
        print(f"dropped {len(res['dropped_classes'])} class(es) with fewer than two photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
