"""Candidate values of an EXIF tag -> the texts the text tower reads for them.

The model was trained on whole EXIF texts (`Make: Canon, Model: Canon EOS 20D, Software: ..., ISO Speed Ratings:
400, ...`), never on one tag alone. Two prompt styles:

`ensemble` (default when a dataset is known) - CLIP's prompt ensembling with the dataset's own texts as templates:
           `n_templates` photos of the dataset's training split (spread evenly over it, so over its cameras), each
           rendered with the dataset's renderer (`dataset_info.json`'s `renderer_spec` and `tag_table`) after
           setting TAG to the candidate (its items replaced; appended as `, TAG: value` when the renderer does not
           write TAG). A candidate's text embedding is the normalised mean of its templates' unit embeddings, so
           the other tags' values average out and what is left is what the candidate changes.
`matched`  per candidate, the texts of up to `n_templates` training photos whose TAG has that value (so the other
           tags agree with it: a Model's Make, Software and sizes), topped up with `ensemble` texts when fewer
           training photos have it; no image is looked at.
`bare`     `TAG: value` alone (what a user would type).

`python -m eval.query` measures both on held-out photos; the README gives the numbers.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
from collections.abc import Sequence

import numpy as np

PROMPT_STYLES = ("matched", "ensemble", "bare")
DEFAULT_N_TEMPLATES = 8
_PLACEHOLDER = "qqcandidateqq"  # survives both renderers unchanged (letters only, short); never a real value

Item = tuple[str, str, str]


class DatasetError(ValueError):
    """A dataset folder cannot be read as an exif-jax ingest output; the message names it."""


@dataclasses.dataclass
class Dataset:
    """What queries need from an ingest output: its renderer, tag table and the EXIF items of its photos."""

    path: str
    renderer: object  # callable items -> text | None
    tag_table: object  # exif_jax.exif.render.TagTable
    items: dict[str, list[list[Item]]]  # split -> item lists, in record order

    def tags(self) -> list[str]:
        """Tags of the tag table that the renderer writes, most frequent first (all if it writes every tag)."""
        written = getattr(self.renderer, "tags", None)
        names = [t for t in self.tag_table.tags_at_least(0.0)]
        return [t for t in names if written is None or t in written]

    def values(self, tag: str, splits: Sequence[str] = ("train", "eval")) -> collections.Counter:
        """Distinct values of `tag` as the renderer writes them, with their photo counts, over `splits`."""
        out: collections.Counter = collections.Counter()
        for split in splits:
            for items in self.items.get(split, []):
                v = rendered_value(items, tag, self.renderer)
                if v is not None:
                    out[v] += 1
        return out

    def examples(self, tag: str, split: str = "train") -> dict[str, list[list[Item]]]:
        """value -> item lists of the photos of `split` whose rendered `tag` is that value (record order)."""
        key = (tag, split)
        cache = self.__dict__.setdefault("_examples", {})
        if key not in cache:
            out: dict[str, list[list[Item]]] = collections.defaultdict(list)
            for items in self.items.get(split, []):
                v = rendered_value(items, tag, self.renderer)
                if v is not None:
                    out[v].append(items)
            cache[key] = dict(out)
        return cache[key]

    def templates(self, n: int = DEFAULT_N_TEMPLATES, split: str = "train") -> list[list[Item]]:
        """`n` item lists spread evenly over `split` (the training photos; all of them if fewer)."""
        lists = self.items.get(split) or self.items.get("eval") or []
        if not lists or n <= 0:
            return []
        idx = np.unique(np.linspace(0, len(lists) - 1, num=min(n, len(lists))).round().astype(int))
        return [lists[i] for i in idx]


def load_dataset(path, *, splits: Sequence[str] = ("train", "eval")) -> Dataset:
    """Reads `dataset_info.json` and the EXIF items of every record of an ingest output (images not decoded)."""
    from exif_jax.data import records, tfrecord
    from exif_jax.exif.render import TagTable, get_renderer

    root = pathlib.Path(path)
    info_path = root / "dataset_info.json"
    if not info_path.is_file():
        raise DatasetError(f"{root}: no dataset_info.json (is it an `exif-jax ingest` output folder?)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        table = TagTable.from_json(info, source=str(info_path))
        spec = dict(info.get("renderer_spec") or {"name": info.get("renderer", "clean")})
        renderer = get_renderer(spec.pop("name"), table, **spec)
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{info_path}: {e}") from None
    items: dict[str, list[list[Item]]] = {}
    for split in splits:
        lists = []
        for shard in (info.get("splits", {}).get(split, {}) or {}).get("shards", []):
            if not shard.endswith(".tfrecord"):
                lists.extend(_array_record_items(root / shard))
                continue
            for raw in tfrecord.read_records(root / shard, verify=True):
                if isinstance(raw, tfrecord.CorruptRecord):
                    continue  # counted by `python -m exif_jax.data.verify`; a query needs only the good ones
                rec = records.parse_record(raw, where=str(root / shard))
                lists.append([tuple(it) for it in json.loads(rec["exif_items"])])
        items[split] = lists
    return Dataset(str(root), renderer, table, items)


def _array_record_items(path: pathlib.Path) -> list[list[Item]]:
    from array_record.python.array_record_module import ArrayRecordReader

    from exif_jax.data import records

    reader = ArrayRecordReader(str(path))
    try:
        out = []
        for raw in reader.read_all():
            rec = records.parse_record(raw, where=str(path))
            out.append([tuple(it) for it in json.loads(rec["exif_items"])])
        return out
    finally:
        reader.close()


def rendered_value(items: Sequence[Item], tag: str, renderer) -> str | None:
    """The value `renderer` writes for `tag` in this photo's text (None when it writes none).

    Found by rendering the photo a second time with `tag` set to a placeholder: the text around the value is the
    same in both renderings, so every renderer rule (directory priority, cleaning, legacy refinement) applies and
    values containing ", " are read whole.
    """
    text = renderer(items)
    probe = renderer(set_tag(items, tag, _PLACEHOLDER))
    marker = f"{tag}: {_PLACEHOLDER}"
    if text is None or probe is None or marker not in probe:
        return None
    i = probe.index(marker)
    head, tail = probe[:i + len(tag) + 2], probe[i + len(marker):]
    if len(text) <= len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
        return None  # the photo has no value for `tag` (the probe added it)
    return text[len(head):len(text) - len(tail)] or None


def set_tag(items: Sequence[Item], tag: str, value: str) -> list[Item]:
    """The items with every item named `tag` replaced by one carrying `value` (added in the directory where the
    photo had it, else `Exif SubIFD`, or `Exif IFD0` for Make/Model/Software)."""
    directory = next((d for d, t, _ in items if t == tag), None)
    if directory is None:
        directory = "Exif IFD0" if tag in ("Make", "Model", "Software", "Orientation") else "Exif SubIFD"
    out, placed = [], False
    for d, t, v in items:
        if t == tag:
            if not placed:
                out.append((directory, tag, value))
                placed = True
            continue
        out.append((d, t, v))
    if not placed:
        out.append((directory, tag, value))
    return out


def template_text(items: Sequence[Item], tag: str, value: str, renderer) -> str:
    """One photo's text with `tag` set to `value` exactly as given (appended if the renderer drops the tag)."""
    probe = renderer(set_tag(items, tag, _PLACEHOLDER))
    if probe is not None and f"{tag}: {_PLACEHOLDER}" in probe:
        return probe.replace(f"{tag}: {_PLACEHOLDER}", f"{tag}: {value}", 1)
    base = renderer(items) or ""
    return f"{base}, {tag}: {value}" if base else f"{tag}: {value}"


def bare_text(tag: str, value: str) -> str:
    return f"{tag}: {value}"


def prompt_texts(tag: str, values: Sequence[str], *, style: str = "ensemble", templates=None,
                 renderer=None, dataset: Dataset | None = None, n_templates: int = DEFAULT_N_TEMPLATES
                 ) -> list[list[str]]:
    """Per candidate value, the texts whose embeddings are averaged (one text for `bare`).

    `matched`: the texts of up to `n_templates` training photos whose `tag` is the candidate (their other tags
    agree with it: a Model's Make, Software, sizes), topped up with `ensemble` texts when fewer photos have it.
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r} (choose from {', '.join(PROMPT_STYLES)})")
    if style == "bare" or not templates:
        return [[bare_text(tag, v)] for v in values]
    if renderer is None:
        raise ValueError("ensemble prompts need the dataset's renderer")
    subst = [[template_text(items, tag, v, renderer) for items in templates] for v in values]
    if style == "ensemble":
        return subst
    if dataset is None:
        raise ValueError("matched prompts need the dataset")
    examples = dataset.examples(tag)
    out = []
    for v, fallback in zip(values, subst):
        own = examples.get(v, [])
        if len(own) > n_templates:
            own = [own[i] for i in np.linspace(0, len(own) - 1, n_templates).round().astype(int)]
        texts = [t for t in (renderer(items) for items in own) if t]
        out.append(texts + fallback[:max(0, n_templates - len(texts))])
    return out


def text_embeddings(model, texts_per_value: Sequence[Sequence[str]]) -> np.ndarray:
    """`[V, D]` unit vectors: per value, the normalised mean of its texts' unit embeddings (CLIP's ensembling)."""
    from exif_jax.query.images import l2_normalize

    flat = [t for texts in texts_per_value for t in texts]
    emb = l2_normalize(np.asarray(model.encode_texts(flat)))
    out, i = [], 0
    for texts in texts_per_value:
        out.append(l2_normalize(emb[i:i + len(texts)].mean(axis=0)))
        i += len(texts)
    return np.stack(out) if out else np.zeros((0, emb.shape[-1] if emb.ndim == 2 else 0))


def training_dataset(weights) -> str | None:
    """The `data.path` a trainer workdir was trained on, when it is a readable ingest output here."""
    cfg = pathlib.Path(weights) / "config.json"
    try:
        path = json.loads(cfg.read_text(encoding="utf-8"))["data"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not path:
        return None
    p = pathlib.Path(path)
    if not p.is_absolute():
        p = (pathlib.Path.cwd() / p)
    return str(p) if (p / "dataset_info.json").is_file() else None
