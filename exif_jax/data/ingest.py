"""Ingest photos + EXIF into sharded TFRecord (or ArrayRecord) files for training: `exif-jax ingest`.

Two passes:

1. **scan** (worker processes): read each input, hash its bytes, fully decode it with Pillow (detects corrupt and
   truncated JPEGs), read its EXIF (from the file, or from a YFCC line matched by photo id). Results are appended
   to `OUT/.ingest/scan.jsonl` as they arrive, so an interrupted scan resumes where it stopped (keyed by path, size
   and mtime).
2. **write**: drop duplicates (content hash), too-few-tags and too-small inputs; build the tag frequency table over
   everything accepted (the legacy renderer needs it); render text; split train/eval by a hash of the photo id;
   assign photos to shards deterministically; write each shard to a temporary name, fsync, rename, and record it
   in `OUT/.ingest/shards.json` with a fingerprint of its content. A rerun skips shards whose fingerprint matches,
   so rerunning into the same output is idempotent and an interrupted run resumes without duplicates or losses.

Outputs: `{train,eval}-XXXXX-of-YYYYY.{tfrecord,array_record}`, `dataset_info.json`, `rejects.tsv`.
A bad input never stops the job: it gets a line in `rejects.tsv` with its reason.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import pathlib
import sys
from collections.abc import Iterable, Sequence

from exif_jax.data import records, tfrecord
from exif_jax.data.progress import Progress

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
SCHEMA_VERSION = 1
STATE_DIR = ".ingest"
SPLITS = ("train", "eval")
FORMAT_EXT = {"tfrecord": "tfrecord", "array_record": "array_record"}

# Reject reason codes (first word of each rejects.tsv reason).
REASONS = ("unreadable", "not_an_image", "not_jpeg", "corrupt_jpeg", "truncated_jpeg", "too_large", "no_exif",
           "exif_error", "no_exif_line", "missing_image", "too_few_tags", "too_small", "duplicate",
           "renderer_dropped")


class IngestError(RuntimeError):
    """A problem with the ingest request itself (not with one input file)."""


@dataclasses.dataclass
class IngestConfig:
    images: str
    out: str
    yfcc_exif: str | None = None
    photo_ids: str | None = None
    shards: int = 16
    eval_shards: int | None = None  # default: enough for ~ the same records per shard as train, at least 1
    workers: int = 0  # 0: in this process
    eval_fraction: float = 0.05
    renderer: str = "legacy"
    crop: int = 124
    min_tags: int = 10
    format: str = "tfrecord"
    progress: bool = True


# ------------------------------------------------------------------------------------------------- pass 1: scan


def _validate_image(data: bytes) -> tuple[int, int, str | None]:
    """(width, height, reject reason or None) after a full Pillow decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
            if fmt != "JPEG":
                return w, h, f"not_jpeg: {fmt} image"
            im.load()  # full decode; raises on truncated or corrupt entropy-coded data
    except UnidentifiedImageError:
        return 0, 0, "not_an_image: Pillow cannot identify it"
    except Image.DecompressionBombError as e:
        return 0, 0, f"too_large: {e}"
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e).replace("\t", " ").replace("\n", " ")
        return 0, 0, ("truncated_jpeg: " if "truncated" in msg.lower() else "corrupt_jpeg: ") + msg
    return w, h, None


def _scan_one(task: tuple[str, str, bool]) -> dict:
    """Worker: scan one image file. task = (absolute path, source name, read EXIF from file)."""
    path, source, want_exif = task
    out = {"source": source, "path": path, "reason": None, "items": None}
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        out["reason"] = f"unreadable: {e.strerror or e}"
        return out
    out.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=hashlib.sha256(data).hexdigest())
    w, h, reason = _validate_image(data)
    out.update(width=w, height=h, reason=reason)
    if reason is None and want_exif:
        from exif_jax.exif import ExifError
        from exif_jax.exif.reader import read_exif

        try:
            items = read_exif(data, source=source)
        except ExifError as e:
            out["reason"] = f"exif_error: {e}"
            return out
        if not items:
            out["reason"] = "no_exif: the file has no EXIF metadata"
        out["items"] = [list(it) for it in items]
    return out


def _cache_key(source: str, size: int, mtime_ns: int, want_exif: bool) -> str:
    return f"{source}\0{size}\0{mtime_ns}\0{int(want_exif)}"


def _load_scan_cache(path: pathlib.Path) -> dict[str, dict]:
    cache = {}
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    cache[r["key"]] = r["result"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by an interruption
    return cache


def _pool_map(fn, tasks: Sequence, workers: int, progress: Progress) -> Iterable:
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            r = fn(t)
            progress.update()
            yield r
        return
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once JAX/threads live in the parent
    with ctx.Pool(min(workers, len(tasks))) as pool:
        for r in pool.imap_unordered(fn, tasks, chunksize=1):
            progress.update()
            yield r


def _walk_images(root: pathlib.Path) -> list[pathlib.Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(JPEG_EXTENSIONS):
                files.append(pathlib.Path(dirpath) / name)
    return sorted(files)


def _read_photo_ids(path: pathlib.Path) -> dict[str, str]:
    ids = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (lineno == 1 and line.lower().startswith("photo_id")):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise IngestError(f"{path}:{lineno}: expected 'photo_id<TAB>file_name', got {line[:80]!r}")
            ids[parts[0]] = parts[1]
    if not ids:
        raise IngestError(f"{path}: no photo_id<TAB>file_name lines")
    return ids


def _make_model(items: Sequence[Sequence[str]]) -> tuple[str, str]:
    found = {}
    for directory, tag, desc in items:
        if tag in ("Make", "Model") and (tag not in found or directory == "Exif IFD0"):
            found[tag] = desc.replace("\x00", "").strip()
    return found.get("Make", ""), found.get("Model", "")


# ------------------------------------------------------------------------------------------------ pass 2: write


def split_of(photo_id: str, eval_fraction: float) -> str:
    """Deterministic held-out split by photo: `eval` iff sha1(photo_id) falls in the first `eval_fraction`."""
    h = int.from_bytes(hashlib.sha1(photo_id.encode("utf-8")).digest()[:8], "big")
    return "eval" if h < eval_fraction * 2.0 ** 64 else "train"


def shard_name(split: str, index: int, count: int, fmt: str) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.{FORMAT_EXT[fmt]}"


def _fingerprint(entries: Sequence[dict], fmt: str) -> str:
    h = hashlib.sha256(f"exif-jax/{SCHEMA_VERSION}/{fmt}".encode())
    for e in entries:
        h.update(json.dumps([e["photo_id"], e["sha256"], e["text"], e["source"], e["items"]],
                            ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def _write_shard(task: tuple[str, str, list[dict]]) -> dict:
    """Worker: write one shard to a temporary name, fsync, then rename into place."""
    final, fmt, entries = task
    tmp = f"{final}.tmp-{os.getpid()}"
    n = 0
    try:
        if fmt == "array_record":
            from array_record.python.array_record_module import ArrayRecordWriter

            writer = ArrayRecordWriter(tmp, "group_size:1")
            put = writer.write
        else:
            writer = tfrecord.TFRecordWriter(tmp)
            put = writer.write
        for e in entries:
            with open(e["path"], "rb") as f:
                image = f.read()
            if hashlib.sha256(image).hexdigest() != e["sha256"]:
                raise IngestError(f"{e['path']}: file changed during ingest (content hash differs from the scan); "
                                  "rerun the same command")
            put(records.make_record(image=image, photo_id=e["photo_id"], items=e["items"], text=e["text"],
                                    width=e["width"], height=e["height"], make=e["make"], model=e["model"],
                                    source=e["source"]))
            n += 1
        if fmt == "array_record":
            writer.close()
        else:
            writer.flush(fsync=True)
            writer.close()
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"path": final, "records": n, "bytes": os.path.getsize(final)}


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _stats(values: Sequence[int]) -> dict:
    import numpy as np

    if not len(values):
        return {"count": 0}
    a = np.asarray(values, np.int64)
    return {"count": int(a.size), "min": int(a.min()), "mean": round(float(a.mean()), 2),
            "p50": int(np.percentile(a, 50)), "p95": int(np.percentile(a, 95)), "p99": int(np.percentile(a, 99)),
            "max": int(a.max())}


def _token_lengths(texts: Sequence[str]) -> list[int]:
    """Untruncated token length (with [CLS]/[SEP]) of each text."""
    from exif_jax.text.tokenizer import ExifTokenizer

    tok = ExifTokenizer()
    return [int(n) for i in range(0, len(texts), 512) for n in tok.token_lengths(list(texts[i:i + 512]))]


def suggest_text_len(max_tokens: int) -> int:
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS

    return next((b for b in DEFAULT_BUCKETS if b >= max_tokens), max(DEFAULT_BUCKETS))


def run(cfg: IngestConfig) -> dict:
    """Runs the ingest; returns the dataset_info dict (also written to OUT/dataset_info.json)."""
    from exif_jax.exif.render import TagTable, get_renderer

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if cfg.progress else (lambda *a: None)
    images = pathlib.Path(cfg.images)
    out = pathlib.Path(cfg.out)
    if not images.is_dir():
        raise IngestError(f"--images {images}: not a directory")
    if cfg.format not in FORMAT_EXT:
        raise IngestError(f"--format {cfg.format!r}: expected one of {', '.join(FORMAT_EXT)}")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise IngestError(f"--eval-fraction {cfg.eval_fraction}: must be in [0, 1)")
    if cfg.shards < 1 or cfg.crop < 1:
        raise IngestError("--shards and --crop must be positive")
    if (cfg.yfcc_exif is None) != (cfg.photo_ids is None):
        raise IngestError("--yfcc-exif and --photo-ids go together (EXIF lines are matched to files by photo id)")
    get_renderer(cfg.renderer, TagTable.from_item_lists([]))  # fail fast on an unknown renderer name
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)

    rejects: list[tuple[str, str]] = []
    # ---- inputs: (abs path, source name, photo id, yfcc items or None)
    inputs: list[tuple[str, str, str, list | None]] = []
    yfcc_mode = cfg.yfcc_exif is not None
    if yfcc_mode:
        from exif_jax.exif.yfcc import iter_yfcc_file

        ids = _read_photo_ids(pathlib.Path(cfg.photo_ids))
        lines: dict[str, list] = {}
        for pid, items in iter_yfcc_file(cfg.yfcc_exif):
            if pid is not None and pid not in lines:
                lines[pid] = [list(it) for it in items]
        if not lines:
            raise IngestError(f"--yfcc-exif {cfg.yfcc_exif}: no parseable EXIF lines")
        for pid, name in sorted(ids.items()):
            p = images / name
            if pid not in lines:
                rejects.append((name, "no_exif_line: no line for this photo id in the YFCC EXIF file"))
            elif not p.is_file():
                rejects.append((name, f"missing_image: {p} does not exist"))
            else:
                inputs.append((str(p), name, pid, lines[pid]))
        for pid in sorted(set(lines) - set(ids)):
            rejects.append((f"photo_id:{pid}", "missing_image: photo id not in --photo-ids"))
    else:
        for p in _walk_images(images):
            rel = p.relative_to(images).as_posix()
            inputs.append((str(p), rel, rel, None))
    n_prescan = len(rejects)
    if not inputs:
        raise IngestError(f"--images {images}: no JPEG files ({', '.join(JPEG_EXTENSIONS)}) found"
                          + (" matching the photo ids" if yfcc_mode else ""))

    # ---- pass 1: scan (cached across interruptions)
    cache_path = state / "scan.jsonl"
    cache = _load_scan_cache(cache_path)
    results: dict[str, dict] = {}
    todo = []
    for path, source, _, _ in inputs:
        try:
            st = os.stat(path)
            key = _cache_key(source, st.st_size, st.st_mtime_ns, not yfcc_mode)
        except OSError:
            key = None
        if key in cache:
            results[source] = dict(cache[key], path=path)
        else:
            todo.append((path, source, not yfcc_mode))
    log(f"[ingest] {len(inputs)} inputs, {len(inputs) - len(todo)} already scanned, {len(todo)} to scan "
        f"with {max(cfg.workers, 1)} process(es)")
    prog = Progress(len(todo), "scan", "files", enabled=cfg.progress)
    with open(cache_path, "a", encoding="utf-8") as cache_f:
        for r in _pool_map(_scan_one, todo, cfg.workers, prog):
            results[r["source"]] = r
            if "size" in r:
                key = _cache_key(r["source"], r["size"], r["mtime_ns"], not yfcc_mode)
                cache_f.write(json.dumps({"key": key, "result": {k: v for k, v in r.items() if k != "path"}},
                                         ensure_ascii=False) + "\n")
                cache_f.flush()
    prog.close()

    # ---- filter: reasons, duplicates, tags, size
    accepted: list[dict] = []
    seen_hash: dict[str, str] = {}
    for path, source, pid, yitems in inputs:  # sorted by source / photo id: first one wins a duplicate
        r = results[source]
        if r.get("reason"):
            rejects.append((source, r["reason"]))
            continue
        items = yitems if yfcc_mode else r["items"]
        if not items:
            rejects.append((source, "no_exif: no EXIF items"))
            continue
        if r["sha256"] in seen_hash:
            rejects.append((source, f"duplicate: same bytes as {seen_hash[r['sha256']]}"))
            continue
        seen_hash[r["sha256"]] = source
        if len(items) < cfg.min_tags:
            rejects.append((source, f"too_few_tags: {len(items)} EXIF items < --min-tags {cfg.min_tags}"))
            continue
        if min(r["width"], r["height"]) < cfg.crop:
            rejects.append((source, f"too_small: {r['width']}x{r['height']} is smaller than the {cfg.crop} px crop"))
            continue
        make, model = _make_model(items)
        accepted.append({"path": path, "source": source, "photo_id": pid, "items": items, "sha256": r["sha256"],
                         "width": r["width"], "height": r["height"], "make": make, "model": model})

    tag_table = TagTable.from_item_lists([[tuple(it) for it in e["items"]] for e in accepted])
    render = get_renderer(cfg.renderer, tag_table)
    kept = []
    for e in accepted:
        text = render([tuple(it) for it in e["items"]])
        if text is None:
            rejects.append((e["source"], f"renderer_dropped: the {cfg.renderer} renderer drops it "
                                         f"({len(e['items'])} items)"))
            continue
        e["text"] = text
        kept.append(e)
    if not kept:
        raise IngestError(f"no usable photos among {len(inputs)} inputs; see {out / 'rejects.tsv'}")
    _write_rejects(out / "rejects.tsv", rejects)

    # ---- plan shards
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for e in kept:
        e["split"] = split_of(e["photo_id"], cfg.eval_fraction)
        by_split[e["split"]].append(e)
    plan: dict[str, list[dict]] = {}
    for split, entries in by_split.items():
        if not entries:
            continue
        entries.sort(key=lambda e: hashlib.sha1(e["photo_id"].encode("utf-8")).hexdigest())
        if split == "train":
            n = cfg.shards
        else:
            n = cfg.eval_shards or max(1, round(cfg.shards * len(entries) / max(len(by_split["train"]), 1)))
        n = min(n, len(entries))  # never an empty shard
        for i in range(n):
            plan[shard_name(split, i, n, cfg.format)] = entries[i::n]

    journal_path = state / "shards.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    tasks, shard_meta = [], {}
    for name, entries in plan.items():
        fp = _fingerprint(entries, cfg.format)
        shard_meta[name] = fp
        done = journal.get(name)
        path = out / name
        if done and done.get("fingerprint") == fp and path.exists() and path.stat().st_size == done.get("bytes"):
            continue
        tasks.append((str(path), cfg.format, entries))
    # remove shards of an earlier plan (other shard counts/format) and temporary files of interrupted writes
    for p in out.iterdir():
        stale_shard = p.name not in plan and any(p.name.startswith(f"{s}-") for s in SPLITS) and (
            p.name.endswith(tuple(FORMAT_EXT.values())) or ".tmp-" in p.name)
        if stale_shard or (".tmp-" in p.name and p.is_file()):
            p.unlink()
            journal.pop(p.name, None)
    log(f"[ingest] {len(kept)} photos -> {len(plan)} shards ({len(plan) - len(tasks)} already complete); "
        f"{len(rejects)} rejected")
    prog = Progress(len(tasks), "write", "shards", enabled=cfg.progress)
    for res in _pool_map(_write_shard, tasks, cfg.workers, prog):
        name = os.path.basename(res["path"])
        journal[name] = {"fingerprint": shard_meta[name], "records": res["records"], "bytes": res["bytes"]}
        _atomic_write_text(journal_path, json.dumps(journal, indent=1, sort_keys=True))
    prog.close()

    # ---- dataset_info.json
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS

    lengths = _token_lengths([e["text"] for e in kept])
    max_len = max(DEFAULT_BUCKETS)
    reason_counts = collections.Counter(r.split(":", 1)[0] for _, r in rejects)
    tt = tag_table.to_json()
    info = {
        "format": cfg.format,
        "schema_version": SCHEMA_VERSION,
        "features": records.FEATURES,
        "renderer": cfg.renderer,
        "renderer_spec": render.spec() if hasattr(render, "spec") else {"name": cfg.renderer},
        "source": "yfcc" if yfcc_mode else "files",
        "crop": cfg.crop,
        "min_tags": cfg.min_tags,
        "eval_fraction": cfg.eval_fraction,
        "counts": {"inputs": len(inputs) + n_prescan,
                   "accepted": len(kept), "rejected": len(rejects),
                   "rejected_by_reason": dict(sorted(reason_counts.items())),
                   **{s: len(by_split[s]) for s in SPLITS}},
        "splits": {},
        "tag_table": json.loads(tt) if isinstance(tt, str) else tt,
        "token_lengths": {**_stats(lengths), "truncated_at": max_len, "num_truncated": sum(n > max_len for n in lengths)},
        "text_len": suggest_text_len(max(lengths)),
        "image_sizes": {"width": _stats([e["width"] for e in kept]), "height": _stats([e["height"] for e in kept]),
                        "short_side": _stats([min(e["width"], e["height"]) for e in kept])},
    }
    for split in SPLITS:
        names = sorted(n for n in plan if n.startswith(f"{split}-"))
        info["splits"][split] = {
            "records": sum(len(plan[n]) for n in names),
            "shards": names,
            "records_per_shard": [len(plan[n]) for n in names],
            "bytes": sum((out / n).stat().st_size for n in names),
            "image_bytes": sum(os.path.getsize(e["path"]) for e in by_split[split]),
            "max_short_side": max((min(e["width"], e["height"]) for e in by_split[split]), default=0),
        }
    _atomic_write_text(out / "dataset_info.json", json.dumps(info, indent=1, ensure_ascii=False, sort_keys=False))
    log(f"[ingest] done: train {info['splits']['train']['records']} / eval {info['splits']['eval']['records']} "
        f"records in {out}; text_len {info['text_len']} (max {info['token_lengths'].get('max')} tokens)")
    return info


def _write_rejects(path: pathlib.Path, rejects: list[tuple[str, str]]) -> None:
    lines = ["file\treason"]
    for f, r in sorted(rejects):
        clean = lambda s: s.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        lines.append(f"{clean(f)}\t{clean(r)}")
    _atomic_write_text(path, "\n".join(lines) + "\n")
