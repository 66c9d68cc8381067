"""Ingest photos + EXIF into sharded TFRecord (or ArrayRecord) files for training: `exif-jax ingest`.

1. **scan** (worker processes): read each input, hash its bytes, fully decode it with Pillow (detects corrupt and
   truncated JPEGs), read its EXIF (from the file, or from its YFCC line matched by photo id). Results are appended
   to `OUT/.ingest/scan.jsonl` as they arrive, so an interrupted scan resumes where it stopped (keyed by path, size
   and mtime). Only a small summary per photo stays in memory (EXIF items are streamed back from disk when needed),
   so the ingest scales to millions of photos.
2. **filter**: drop duplicates (content hash; the first path in sorted order wins), too-few-tags and too-small
   inputs; build the tag frequency table over everything accepted (the legacy renderer needs all of it before it
   renders anything); render every text once for renderer drops and token length statistics.
3. **write** (worker processes): split train/eval by a hash of the photo id; assign photos to shards
   deterministically; each worker re-reads its photos, renders their text, writes the shard to a temporary name,
   fsyncs and renames it, and the shard is recorded in `OUT/.ingest/shards.json` with a fingerprint of its content.
   A rerun skips shards whose fingerprint matches, so rerunning into the same output is idempotent and an
   interrupted run resumes without duplicates or losses; shards of an older plan and temporary files are removed.

Outputs: `{train,eval}-XXXXX-of-YYYYY.{tfrecord,array_record}`, `dataset_info.json`, `rejects.tsv`.
A bad input never stops the job: it gets a line in `rejects.tsv` with its reason.
"""
from __future__ import annotations

import bz2
import collections
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import multiprocessing
import os
import pathlib
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence

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
    eval_shards: int | None = None  # default: about as many records per shard as train, at least 1
    workers: int = 0  # 0: in this process
    eval_fraction: float = 0.05
    renderer: str = "legacy"
    crop: int = 124
    min_tags: int = 10
    format: str = "tfrecord"
    progress: bool = True


@dataclasses.dataclass(slots=True)
class _Photo:
    """What stays in memory per input (no pixels, no EXIF items)."""

    path: str
    source: str
    photo_id: str
    line_offset: int = -1  # YFCC mode: byte offset of the photo's line in the (uncompressed) EXIF file
    key: str = ""  # scan cache key
    reason: str | None = None
    sha256: str = ""
    width: int = 0
    height: int = 0
    n_items: int = 0
    items_sha: str = ""
    make: str = ""
    model: str = ""


# ---------------------------------------------------------------------------------------------- EXIF sources


def _items_digest(items) -> str:
    return hashlib.sha1(json.dumps([list(it) for it in items], ensure_ascii=False).encode("utf-8")).hexdigest()


def _make_model(items: Sequence[Sequence[str]]) -> tuple[str, str]:
    found = {}
    for directory, tag, desc in items:
        if tag in ("Make", "Model") and (tag not in found or directory == "Exif IFD0"):
            found[tag] = desc.replace("\x00", "").strip()
    return found.get("Make", ""), found.get("Model", "")


def _read_line_items(yfcc_path: str, offset: int) -> list:
    from exif_jax.exif.yfcc import parse_yfcc_line

    with open(yfcc_path, "rb") as f:
        f.seek(offset)
        return [list(it) for it in parse_yfcc_line(f.readline())[1]]


def _file_items(data: bytes, source: str) -> list:
    from exif_jax.exif.reader import read_exif

    return [list(it) for it in read_exif(data, source=source)]


# ------------------------------------------------------------------------------------------------- pass 1: scan


def _validate_image(data: bytes) -> tuple[int, int, str | None]:
    """(width, height, reject reason or None) after a full Pillow decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
            if fmt not in ("JPEG", "MPO"):  # MPO: a JPEG with extra frames appended (iPhones, 3D cameras)
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


def _scan_one(task: tuple[int, str, str, str | None, int]) -> dict:
    """Worker: scan one image. task = (index, path, source name, YFCC file or None, line offset)."""
    index, path, source, yfcc_path, offset = task
    out = {"index": index, "reason": None, "items": None}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        out["reason"] = f"unreadable: {e.strerror or e}"
        return out
    out["sha256"] = hashlib.sha256(data).hexdigest()
    w, h, reason = _validate_image(data)
    out.update(width=w, height=h, reason=reason)
    if reason is not None:
        return out
    if yfcc_path is None:
        from exif_jax.exif import ExifError

        try:
            items = _file_items(data, source)
        except ExifError as e:
            out["reason"] = f"exif_error: {e}"
            return out
        out["items"] = items  # kept in the scan cache so later passes need not re-read the images
    else:
        items = _read_line_items(yfcc_path, offset)
    if not items:
        out["reason"] = "no_exif: no EXIF items" + ("" if yfcc_path else " in the file")
    out["n_items"] = len(items)
    out["items_sha"] = _items_digest(items)
    out["make"], out["model"] = _make_model(items)
    return out


def _cache_key(photo: _Photo, yfcc_sig: str) -> str | None:
    try:
        st = os.stat(photo.path)
    except OSError:
        return None
    return f"{photo.source}\0{st.st_size}\0{st.st_mtime_ns}\0{yfcc_sig}\0{photo.line_offset}"


_SUMMARY = ("reason", "sha256", "width", "height", "n_items", "items_sha", "make", "model")


def _apply(photo: _Photo, r: dict) -> None:
    for k in _SUMMARY:
        if k in r:
            setattr(photo, k, r[k])


def _load_scan_cache(path: pathlib.Path, wanted: dict[str, _Photo]) -> int:
    """Fills in photos whose scan result is cached; returns how many."""
    n = 0
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    photo = wanted.get(r["key"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by an interruption
                if photo is not None and not photo.sha256 and not photo.reason:
                    _apply(photo, r)
                    n += 1
    return n


def _iter_cached_items(path: pathlib.Path, keys: dict[str, _Photo]) -> Iterator[tuple[_Photo, list]]:
    """Streams (photo, EXIF items) back from the scan cache, once per wanted key."""
    left = dict(keys)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not left:
                return
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            photo = left.pop(r.get("key"), None)
            if photo is not None:
                yield photo, r["items"]
    if left:
        raise IngestError(f"{path}: scan cache lost {len(left)} entries; delete {path.parent} and rerun")


def _pool_map(fn, tasks: Sequence, workers: int, progress: Progress, initializer=None, initargs=()) -> Iterable:
    if workers <= 1 or len(tasks) <= 1:
        if initializer is not None:
            initializer(*initargs)
        for t in tasks:
            r = fn(t)
            progress.update()
            yield r
        return
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once JAX/threads live in the parent
    with ctx.Pool(min(workers, len(tasks)), initializer=initializer, initargs=initargs) as pool:
        for r in pool.imap_unordered(fn, tasks, chunksize=1 if len(tasks) < 1000 else 16):
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
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise IngestError(f"--photo-ids {path}: {e.strerror or e}") from None
    with f:
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


def _uncompressed_yfcc(path: pathlib.Path, state: pathlib.Path) -> pathlib.Path:
    """Lines must be seekable by byte offset: a .gz/.bz2/.xz file is decompressed once into the state folder."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix)
    if opener is None:
        return path
    st = path.stat()
    target = state / f"yfcc_exif.{st.st_size}.{st.st_mtime_ns}.tsv"
    if not target.exists():
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        with opener(path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        os.replace(tmp, target)
    return target


def _yfcc_offsets(path: pathlib.Path, wanted: set[str]) -> dict[str, int]:
    """photo id -> byte offset of its first line (only for wanted ids; items are parsed later, on demand)."""
    offsets, pos = {}, 0
    with open(path, "rb") as f:
        for line in f:
            tab = line.find(b"\t")
            if tab > 0:
                pid = line[:tab].strip().decode("utf-8", "replace")
                if pid in wanted and pid not in offsets:
                    offsets[pid] = pos
            pos += len(line)
    return offsets


# ------------------------------------------------------------------------------------------------ pass 3: write


def split_of(photo_id: str, eval_fraction: float) -> str:
    """Deterministic held-out split by photo: `eval` iff sha1(photo_id) falls in the first `eval_fraction`."""
    h = int.from_bytes(hashlib.sha1(photo_id.encode("utf-8")).digest()[:8], "big")
    return "eval" if h < eval_fraction * 2.0 ** 64 else "train"


def shard_name(split: str, index: int, count: int, fmt: str) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.{FORMAT_EXT[fmt]}"


_WRITER_CONTEXT: dict = {}


def _init_writer(context: dict) -> None:
    """Pool initializer: renderer (rebuilt from its spec and the dataset's tag table) and the YFCC file."""
    from exif_jax.exif.render import TagTable, get_renderer

    spec = dict(context["renderer_spec"])
    _WRITER_CONTEXT.clear()
    _WRITER_CONTEXT.update(context)
    _WRITER_CONTEXT["render"] = get_renderer(spec.pop("name"), TagTable.from_json(context["tag_table"]), **spec)


def _write_shard(task: tuple[str, str, list[_Photo]]) -> dict:
    """Worker: write one shard to a temporary name, fsync, then rename into place."""
    final, fmt, photos = task
    render, yfcc = _WRITER_CONTEXT["render"], _WRITER_CONTEXT["yfcc"]
    tmp = f"{final}.tmp-{os.getpid()}"
    n = 0
    try:
        if fmt == "array_record":
            from array_record.python.array_record_module import ArrayRecordWriter

            writer = ArrayRecordWriter(tmp, "group_size:1")
        else:
            writer = tfrecord.TFRecordWriter(tmp)
        for p in photos:
            with open(p.path, "rb") as f:
                image = f.read()
            items = _read_line_items(yfcc, p.line_offset) if yfcc else _file_items(image, p.source)
            if hashlib.sha256(image).hexdigest() != p.sha256 or _items_digest(items) != p.items_sha:
                raise IngestError(f"{p.path}: changed during ingest (content differs from the scan); "
                                  "rerun the same command")
            text = render([tuple(it) for it in items])
            if text is None:
                raise IngestError(f"{p.path}: renderer dropped it while writing but not while planning")
            writer.write(records.make_record(image=image, photo_id=p.photo_id, items=items, text=text,
                                             width=p.width, height=p.height, make=p.make, model=p.model,
                                             source=p.source))
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


def _fingerprint(photos: Sequence[_Photo], context_digest: str) -> str:
    h = hashlib.sha256(context_digest.encode())
    for p in photos:
        h.update(json.dumps([p.photo_id, p.sha256, p.items_sha, p.source, p.width, p.height], ensure_ascii=False)
                 .encode("utf-8"))
    return h.hexdigest()


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


def suggest_text_len(max_tokens: int) -> int:
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS

    return next((b for b in DEFAULT_BUCKETS if b >= max_tokens), max(DEFAULT_BUCKETS))


def _write_rejects(path: pathlib.Path, rejects: list[tuple[str, str]]) -> None:
    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")

    lines = ["file\treason"] + [f"{clean(f)}\t{clean(r)}" for f, r in sorted(rejects)]
    _atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------- driver


def run(cfg: IngestConfig) -> dict:
    """Runs the ingest; returns the dataset_info dict (also written to OUT/dataset_info.json)."""
    from exif_jax.exif.render import TagTable, get_renderer
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS, ExifTokenizer

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
    get_renderer(cfg.renderer, TagTable())  # fail fast on an unknown renderer name
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)

    rejects: list[tuple[str, str]] = []
    photos: list[_Photo] = []
    yfcc_mode = cfg.yfcc_exif is not None
    yfcc_path, yfcc_sig = None, ""
    if yfcc_mode:
        src_lines = pathlib.Path(cfg.yfcc_exif)
        if not src_lines.is_file():
            raise IngestError(f"--yfcc-exif {src_lines}: no such file")
        ids = _read_photo_ids(pathlib.Path(cfg.photo_ids))
        yfcc_path = _uncompressed_yfcc(src_lines, state)
        st = yfcc_path.stat()
        yfcc_sig = f"{yfcc_path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        offsets = _yfcc_offsets(yfcc_path, set(ids))
        if not offsets:
            raise IngestError(f"--yfcc-exif {src_lines}: no line matches a photo id of {cfg.photo_ids}")
        for pid, name in sorted(ids.items()):
            p = images / name
            if pid not in offsets:
                rejects.append((name, "no_exif_line: no line for this photo id in the YFCC EXIF file"))
            elif not p.is_file():
                rejects.append((name, f"missing_image: {p} does not exist"))
            else:
                photos.append(_Photo(str(p), name, pid, offsets[pid]))
    else:
        for p in _walk_images(images):
            rel = p.relative_to(images).as_posix()
            photos.append(_Photo(str(p), rel, rel))
    n_prescan = len(rejects)
    if not photos:
        raise IngestError(f"--images {images}: no JPEG files ({', '.join(JPEG_EXTENSIONS)}) found"
                          + (" matching the photo ids" if yfcc_mode else ""))

    # ---- pass 1: scan (cached across interruptions)
    cache_path = state / "scan.jsonl"
    for p in photos:
        p.key = _cache_key(p, yfcc_sig) or ""
    by_key = {p.key: p for p in photos if p.key}
    cached = _load_scan_cache(cache_path, by_key)
    todo = [p for p in photos if not p.sha256 and not p.reason]
    log(f"[ingest] {len(photos)} inputs, {cached} already scanned, {len(todo)} to scan "
        f"with {max(cfg.workers, 1)} process(es)")
    prog = Progress(len(todo), "scan", "files", enabled=cfg.progress)
    tasks = [(i, p.path, p.source, str(yfcc_path) if yfcc_path else None, p.line_offset) for i, p in enumerate(todo)]
    with open(cache_path, "a", encoding="utf-8") as cache_f:
        for r in _pool_map(_scan_one, tasks, cfg.workers, prog):
            photo = todo[r["index"]]
            _apply(photo, r)
            if "sha256" in r and photo.key:  # unreadable files are retried next time
                cache_f.write(json.dumps({"key": photo.key, **{k: r.get(k) for k in _SUMMARY},
                                          "items": r.get("items")}, ensure_ascii=False) + "\n")
                cache_f.flush()
    prog.close()

    # ---- pass 2: filter, tag table, render once (drops + token lengths)
    accepted: list[_Photo] = []
    seen_hash: dict[str, str] = {}
    for p in photos:  # sorted by source (files) / photo id (YFCC): the first of duplicates wins
        if p.reason:
            rejects.append((p.source, p.reason))
        elif p.sha256 in seen_hash:
            rejects.append((p.source, f"duplicate: same bytes as {seen_hash[p.sha256]}"))
        else:
            seen_hash[p.sha256] = p.source
            if p.n_items < cfg.min_tags:
                rejects.append((p.source, f"too_few_tags: {p.n_items} EXIF items < --min-tags {cfg.min_tags}"))
            elif min(p.width, p.height) < cfg.crop:
                rejects.append((p.source, f"too_small: {p.width}x{p.height} is smaller than the {cfg.crop} px crop"))
            else:
                accepted.append(p)
    del seen_hash

    def iter_items(group: Sequence[_Photo]) -> Iterator[tuple[_Photo, list]]:
        if yfcc_mode:
            for p in sorted(group, key=lambda p: p.line_offset):
                yield p, _read_line_items(str(yfcc_path), p.line_offset)
        else:
            yield from _iter_cached_items(cache_path, {p.key: p for p in group})

    tag_table = TagTable()
    for _, items in iter_items(accepted):
        tag_table.update([tuple(it) for it in items])
    # canonical (sorted) counts: the stream order above depends on scan order, the output must not
    tag_table = TagTable.from_json({k: dict(sorted(v.items())) if isinstance(v, dict) else v
                                    for k, v in tag_table.to_json().items()})
    render = get_renderer(cfg.renderer, tag_table)
    spec = render.spec() if hasattr(render, "spec") else {"name": cfg.renderer}
    tokenizer = ExifTokenizer()
    dropped: set[str] = set()
    lengths: dict[str, int] = {}
    chunk: list[tuple[_Photo, str]] = []

    def flush_tokens():
        for (p, _), n in zip(chunk, tokenizer.token_lengths([t for _, t in chunk])):
            lengths[p.photo_id] = int(n)
        chunk.clear()

    for p, items in iter_items(accepted):
        text = render([tuple(it) for it in items])
        if text is None:
            dropped.add(p.photo_id)
            rejects.append((p.source, f"renderer_dropped: the {cfg.renderer} renderer drops it ({p.n_items} items)"))
        else:
            chunk.append((p, text))
            if len(chunk) >= 1024:
                flush_tokens()
    flush_tokens()
    kept = [p for p in accepted if p.photo_id not in dropped]
    if not kept:
        _write_rejects(out / "rejects.tsv", rejects)
        raise IngestError(f"no usable photos among {len(photos) + n_prescan} inputs; see {out / 'rejects.tsv'}")
    _write_rejects(out / "rejects.tsv", rejects)

    # ---- plan shards
    by_split: dict[str, list[_Photo]] = {s: [] for s in SPLITS}
    for p in kept:
        by_split[split_of(p.photo_id, cfg.eval_fraction)].append(p)
    plan: dict[str, list[_Photo]] = {}
    for split, group in by_split.items():
        if not group:
            continue
        group.sort(key=lambda p: hashlib.sha1(p.photo_id.encode("utf-8")).hexdigest())
        if split == "train":
            n = cfg.shards
        else:
            n = cfg.eval_shards or max(1, round(cfg.shards * len(group) / max(len(by_split["train"]), 1)))
        n = min(n, len(group))  # never an empty shard
        for i in range(n):
            plan[shard_name(split, i, n, cfg.format)] = group[i::n]

    tag_json = tag_table.to_json()
    context = {"renderer_spec": spec, "tag_table": tag_json, "yfcc": str(yfcc_path) if yfcc_path else None}
    context_digest = hashlib.sha256(json.dumps(
        [SCHEMA_VERSION, cfg.format, spec, tag_json], sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    journal_path = state / "shards.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    tasks, fingerprints = [], {}
    for name, group in plan.items():
        fingerprints[name] = fp = _fingerprint(group, context_digest)
        done, path = journal.get(name), out / name
        if done and done.get("fingerprint") == fp and path.exists() and path.stat().st_size == done.get("bytes"):
            continue
        tasks.append((str(path), cfg.format, group))
    for p in out.iterdir():  # shards of an earlier plan (other shard count/format), temporary files of a crash
        stale = p.name not in plan and p.name.startswith(tuple(f"{s}-" for s in SPLITS)) and (
            p.name.endswith(tuple(FORMAT_EXT.values())))
        if p.is_file() and (stale or ".tmp-" in p.name):
            p.unlink()
            journal.pop(p.name, None)
    log(f"[ingest] {len(kept)} photos -> {len(plan)} shards ({len(plan) - len(tasks)} already complete); "
        f"{len(rejects)} rejected")
    prog = Progress(len(tasks), "write", "shards", enabled=cfg.progress)
    for res in _pool_map(_write_shard, tasks, cfg.workers, prog, initializer=_init_writer, initargs=(context,)):
        name = os.path.basename(res["path"])
        journal[name] = {"fingerprint": fingerprints[name], "records": res["records"], "bytes": res["bytes"]}
        _atomic_write_text(journal_path, json.dumps(journal, indent=1, sort_keys=True))
    prog.close()

    # ---- dataset_info.json (no timestamps: a rerun writes the same bytes)
    max_len = max(DEFAULT_BUCKETS)
    token_lengths = [lengths[p.photo_id] for p in kept]
    reason_counts = collections.Counter(r.split(":", 1)[0] for _, r in rejects)
    info = {
        "format": cfg.format,
        "schema_version": SCHEMA_VERSION,
        "features": records.FEATURES,
        "renderer": cfg.renderer,
        "renderer_spec": spec,
        "source": "yfcc" if yfcc_mode else "files",
        "crop": cfg.crop,
        "min_tags": cfg.min_tags,
        "eval_fraction": cfg.eval_fraction,
        "counts": {"inputs": len(photos) + n_prescan, "accepted": len(kept), "rejected": len(rejects),
                   "rejected_by_reason": dict(sorted(reason_counts.items())),
                   **{s: len(by_split[s]) for s in SPLITS}},
        "splits": {},
        "tag_table": tag_json,
        "token_lengths": {**_stats(token_lengths), "truncated_at": max_len,
                          "num_truncated": sum(n > max_len for n in token_lengths)},
        "text_len": suggest_text_len(max(token_lengths)),  # no text truncated at this length
        "text_len_p99": suggest_text_len(_stats(token_lengths)["p99"]),  # 1% truncated: cheaper text tower
        "image_sizes": {"width": _stats([p.width for p in kept]), "height": _stats([p.height for p in kept]),
                        "short_side": _stats([min(p.width, p.height) for p in kept])},
    }
    for split in SPLITS:
        names = sorted(n for n in plan if n.startswith(f"{split}-"))
        info["splits"][split] = {
            "records": sum(len(plan[n]) for n in names),
            "shards": names,
            "records_per_shard": [len(plan[n]) for n in names],
            "bytes": sum((out / n).stat().st_size for n in names),
            "image_bytes": sum(os.path.getsize(p.path) for p in by_split[split]),
            "max_short_side": max((min(p.width, p.height) for p in by_split[split]), default=0),
        }
    _atomic_write_text(out / "dataset_info.json", json.dumps(info, indent=1, ensure_ascii=False))
    log(f"[ingest] done: train {info['splits']['train']['records']} / eval {info['splits']['eval']['records']} "
        f"records in {out}; text_len {info['text_len']} (max {info['token_lengths'].get('max')} tokens)")
    return info
