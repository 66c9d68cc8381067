"""The quickstart's learning measurements, each for the trained model beside its untrained control.

- `camera_id`: zero-shot camera identification of held-out photos: each photo's embedding (the mean of its
  non-overlapping crop embeddings) ranked against one text per camera Model (the mean embedding of that Model's
  training texts, CLIP-style prompt ensembling); top-1 against chance = 1 / #Models.
- `splice_sets`: cross-camera splices of held-out photos (`eval.synthetic`), same-content splices through two zoo
  cameras (`eval.same_content`) and through two plain edit chains outside the zoo (`--family edits`), localized with
  `eval.splice.evaluate` for the model, the control and a random map.
"""
from __future__ import annotations

import pathlib
import shutil

import numpy as np


def _rgb(rec: dict) -> np.ndarray:
    """uint8 RGB of a record's JPEG bytes."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(rec["image"])) as im:
        return np.asarray(im.convert("RGB"))


def _tiles(rgb: np.ndarray, crop: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    ys = range(0, h - crop + 1, crop)
    xs = range(0, w - crop + 1, crop)
    return np.stack([rgb[y:y + crop, x:x + crop] for y in ys for x in xs])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def camera_id(models: dict, train: list[dict], held_out: list[dict], crop: int) -> dict:
    """`models`: label -> ExifModel. Records: {"image": jpeg bytes, "exif_text", "model" (camera Model), "group"}.

    Returns {group: {label: {"top1", "n", "classes", "chance"}}} for each group ("real", "sim") and "all"."""
    tiles = [_tiles(_rgb(r), crop) for r in held_out]
    out: dict = {}
    groups = sorted({r["group"] for r in held_out}) + ["all"]
    for label, model in models.items():
        photo_emb = np.stack([_unit(model.encode_images(t)).mean(0) for t in tiles])
        text_emb = _unit(model.encode_texts([r["exif_text"] for r in train]))
        for group in groups:
            keep = [i for i, r in enumerate(held_out) if group in ("all", r["group"])]
            classes = sorted({r["model"] for r in train if group in ("all", r["group"])})
            if not keep or len(classes) < 2:
                continue
            protos = _unit(np.stack([text_emb[[j for j, r in enumerate(train) if r["model"] == c]].mean(0)
                                     for c in classes]))
            sims = _unit(photo_emb[keep]) @ protos.T
            truth = np.array([classes.index(held_out[i]["model"]) if held_out[i]["model"] in classes else -1
                              for i in keep])
            top1 = float((sims.argmax(1) == truth).mean())
            out.setdefault(group, {})[label] = {"top1": top1, "n": len(keep), "classes": len(classes),
                                                "chance": 1.0 / len(classes)}
    return out


def splice_sets(models: dict, sets: dict[str, pathlib.Path], out: pathlib.Path, crop: int, log) -> dict:
    """Localizes every `folder` dataset in `sets` (name -> root) with each model; returns
    {name: {label: summary, "random map": summary, "data_root", "eval_dir", "heatmaps"}}."""
    from eval import datasets
    from eval import splice as splice_eval
    from exif_jax.splice.embed import model_embed_fn

    res = {}
    for name, root in sets.items():
        samples = datasets.get_dataset("folder", root)
        entry = {"data_root": str(root), "images": len(samples),
                 "manipulated": sum(s.label for s in samples)}
        for i, (label, model) in enumerate(models.items()):
            eval_dir = out / name / ("model" if i == 0 else "untrained")
            if eval_dir.exists():
                shutil.rmtree(eval_dir)
            eval_dir.mkdir(parents=True)
            log(f"splices: {name}: localizing {len(samples)} images with {label}")
            r = splice_eval.evaluate(samples, model_embed_fn(model), eval_dir, heatmaps=(i == 0), seed=0,
                                     log=lambda m: None, patch=crop, num_per_dim=12)
            entry[label] = r["model"]
            if i == 0:
                entry["random map"] = r["random"]
                entry["eval_dir"] = str(eval_dir)
                entry["heatmaps"] = sorted(str(p) for p in (eval_dir / "heatmaps").rglob("*.png"))
        res[name] = entry
    return res
