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

Inputs: a folder of JPEGs (walked recursively; files without a JPEG extension are counted as `not_jpeg`
rejects), or webdataset tar shards as img2dataset writes them (`KEY.jpg` + `KEY.json`, and its `*.parquet` of
results, whose failed downloads become `download_failed` rejects); EXIF from the JPEG bytes or from YFCC100M lines
paired by photo id. The same per-photo functions (`_scan_one`, `_write_shard`) run under the process pool here and
under Apache Beam (`exif_jax.data.ingest_beam`, `--runner beam`).

Outputs: `{train,eval}-XXXXX-of-YYYYY.{tfrecord,array_record}`, `dataset_info.json`, `rejects.tsv`, and the TFDS
metadata in `tfds/` (`exif_jax.data.tfds_meta`). A bad input never stops the job: it gets a line in `rejects.tsv`.
"""
from __future__ import annotations

import bisect
import bz2
import collections
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import math
import multiprocessing
import os
import pathlib
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence

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
    tag_table: str | None = None  # a tag table JSON / dataset_info.json to render with (default: computed here)
    runner: str = "local"  # "local" (process pool) | "beam"
    beam_options: str = ""  # Beam pipeline options, e.g. "--runner=DataflowRunner --project=P --region=R ..."
    tfds_metadata: bool = True


MIN_EVAL_PHOTOS = 32  # fewer held-out photos than this make held-out retrieval metrics noise: warn


@dataclasses.dataclass(slots=True)
class _Photo:
    """What stays in memory per input (no pixels, no EXIF items)."""

    path: str
    source: str
    photo_id: str
    line_offset: int = -1  # YFCC mode: byte offset of the photo's line in the (uncompressed) EXIF file
    member_offset: int = -1  # webdataset: byte offset of the JPEG inside the tar (`path`); -1 = a plain file
    member_size: int = 0
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


def read_input(path: str, member_offset: int = -1, member_size: int = 0) -> bytes:
    """The photo's bytes: a whole file, or one member of an (uncompressed) tar by its data offset and size."""
    with open(path, "rb") as f:
        if member_offset < 0:
            return f.read()
        f.seek(member_offset)
        data = f.read(member_size)
    if len(data) != member_size:
        raise OSError(f"{path}: tar member at byte {member_offset} is cut short")
    return data


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


def scan_task(index: int, p: "_Photo", yfcc_path) -> tuple:
    return (index, p.path, p.source, str(yfcc_path) if yfcc_path else None, p.line_offset, p.member_offset,
            p.member_size)


def _scan_one(task: tuple) -> dict:
    """The per-photo function of both runners: read one input, hash it, decode it fully, read its EXIF.

    task = (index, path, source name, YFCC file or None, line offset, tar member offset, tar member size)."""
    index, path, source, yfcc_path, offset, member_offset, member_size = task
    out = {"index": index, "reason": None, "items": None}
    try:
        data = read_input(path, member_offset, member_size)
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


def _walk_images(root: pathlib.Path, exclude: pathlib.Path | None = None) -> tuple[list[pathlib.Path], list]:
    """(JPEG files, other files) under `root`, sorted; hidden files/folders and the `exclude` folder are skipped."""
    files, others = [], []
    exclude = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (exclude is None or (pathlib.Path(dirpath) / d).resolve() != exclude))
        for name in filenames:
            if not name.startswith("."):
                (files if name.lower().endswith(JPEG_EXTENSIONS) else others).append(pathlib.Path(dirpath) / name)
    return sorted(files), sorted(others)


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
            image = read_input(p.path, p.member_offset, p.member_size)
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


def _stats(values) -> dict:
    """count/min/mean/p50/p95/p99/max of ints, given as a sequence or as a histogram {value: count}.

    Percentiles are numpy's default (linear interpolation) computed from the histogram, so the Beam runner (which
    only has combined histograms) and the local runner write the same numbers."""
    hist = values if isinstance(values, Mapping) else collections.Counter(int(v) for v in values)
    hist = {int(k): int(n) for k, n in hist.items() if n}
    total = sum(hist.values())
    if not total:
        return {"count": 0}
    keys = sorted(hist)
    cum, acc = [], 0
    for k in keys:
        acc += hist[k]
        cum.append(acc)

    def order_stat(i: int) -> int:  # the i-th smallest value (0-based)
        return keys[bisect.bisect_right(cum, i)]

    def percentile(q: float) -> int:
        pos = q / 100.0 * (total - 1)
        lo = int(math.floor(pos))
        a, b = order_stat(lo), order_stat(min(lo + 1, total - 1))
        return int(a + (b - a) * (pos - lo))

    mean = sum(k * n for k, n in hist.items()) / total
    return {"count": total, "min": keys[0], "mean": round(float(mean), 2), "p50": percentile(50),
            "p95": percentile(95), "p99": percentile(99), "max": keys[-1]}


def suggest_text_len(max_tokens: int) -> int:
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS

    return next((b for b in DEFAULT_BUCKETS if b >= max_tokens), max(DEFAULT_BUCKETS))


def _write_rejects(path: pathlib.Path, rejects: list[tuple[str, str]]) -> None:
    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")

    lines = ["file\treason"] + [f"{clean(f)}\t{clean(r)}" for f, r in sorted(rejects)]
    _atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------- driver


@dataclasses.dataclass
class Prepared:
    """What both runners start from: the inputs in a fixed order and the rejects found before any scan."""

    photos: list[_Photo]
    rejects: list[tuple[str, str]]
    yfcc_path: pathlib.Path | None
    yfcc_sig: str
    source: str  # "files" | "webdataset" | "yfcc" | "webdataset+yfcc"
    state: pathlib.Path


OPTION_KEYS = ("images", "yfcc_exif", "photo_ids", "shards", "eval_shards", "eval_fraction", "renderer", "crop",
               "min_tags", "format", "tag_table")


def _check_options(cfg: IngestConfig) -> None:
    from exif_jax.exif.render import TagTable, get_renderer

    if not pathlib.Path(cfg.images).is_dir():
        raise IngestError(f"--images {cfg.images}: not a directory")
    if cfg.format not in FORMAT_EXT:
        raise IngestError(f"--format {cfg.format!r}: expected one of {', '.join(FORMAT_EXT)}")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise IngestError(f"--eval-fraction {cfg.eval_fraction}: must be in [0, 1)")
    if cfg.shards < 1 or cfg.crop < 1 or (cfg.eval_shards is not None and cfg.eval_shards < 1):
        raise IngestError("--shards, --eval-shards and --crop must be positive")
    if cfg.photo_ids is not None and cfg.yfcc_exif is None:
        raise IngestError("--photo-ids needs --yfcc-exif (EXIF lines are matched to files by photo id)")
    if cfg.tag_table is not None and not pathlib.Path(cfg.tag_table).is_file():
        raise IngestError(f"--tag-table {cfg.tag_table}: no such file")
    get_renderer(cfg.renderer, TagTable())  # fail fast on an unknown renderer name


def prepare(cfg: IngestConfig, log=lambda *a: None) -> Prepared:
    """Validates the request and lists the inputs (files, tar members, YFCC line offsets) in a fixed order."""
    from exif_jax.data import webdataset

    _check_options(cfg)
    images, out = pathlib.Path(cfg.images), pathlib.Path(cfg.out)
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    rejects: list[tuple[str, str]] = []
    photos: list[_Photo] = []
    wds = webdataset.has_tars(images)
    if wds:  # img2dataset output: samples inside tars; photo id = the saved `photo_id` column, else the key
        for tar in webdataset.list_tars(images):
            samples, problems = webdataset.list_samples(tar)
            rel = tar.relative_to(images).as_posix()
            rejects += [(f"{rel}/{name}", reason) for name, reason in problems]
            for smp in samples:
                pid = str(smp.meta.get("photo_id") or smp.key)
                photos.append(_Photo(str(tar), f"{rel}/{smp.key}.jpg", pid, member_offset=smp.offset,
                                     member_size=smp.size))
        rejects += webdataset.failed_downloads(images)
    yfcc_path, yfcc_sig = None, ""
    if cfg.yfcc_exif is not None:
        src_lines = pathlib.Path(cfg.yfcc_exif)
        if not src_lines.is_file():
            raise IngestError(f"--yfcc-exif {src_lines}: no such file")
        if wds:
            by_id = {}
            for p in photos:
                by_id.setdefault(p.photo_id, p)
            if cfg.photo_ids is not None:
                log("[ingest] webdataset input: photo ids come from the samples' JSON; --photo-ids is not used")
        else:
            if cfg.photo_ids is None:
                raise IngestError("--yfcc-exif with a folder of JPEGs needs --photo-ids (photo_id<TAB>file_name)")
            ids = _read_photo_ids(pathlib.Path(cfg.photo_ids))
            by_id = {pid: _Photo(str(images / name), name, pid) for pid, name in sorted(ids.items())}
        yfcc_path = _uncompressed_yfcc(src_lines, state)
        st = yfcc_path.stat()
        yfcc_sig = f"{yfcc_path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        offsets = _yfcc_offsets(yfcc_path, set(by_id))
        if not offsets:
            raise IngestError(f"--yfcc-exif {src_lines}: no line matches a photo id of "
                              f"{'the webdataset samples' if wds else cfg.photo_ids}")
        kept = []
        for p in (photos if wds else by_id.values()):
            if p.photo_id not in offsets:
                rejects.append((p.source, "no_exif_line: no line for this photo id in the YFCC EXIF file"))
            elif p.member_offset < 0 and not os.path.isfile(p.path):
                rejects.append((p.source, f"missing_image: {p.path} does not exist"))
            else:
                p.line_offset = offsets[p.photo_id]
                kept.append(p)
        photos = kept
        if not wds:
            photos.sort(key=lambda p: p.photo_id)
    elif not wds:
        jpegs, others = _walk_images(images, exclude=out)
        for p in jpegs:
            rel = p.relative_to(images).as_posix()
            photos.append(_Photo(str(p), rel, rel))
        for p in others:
            rejects.append((p.relative_to(images).as_posix(),
                            f"not_jpeg: {p.suffix or 'no'} extension (only {', '.join(JPEG_EXTENSIONS)} are read)"))
    if not photos:
        raise IngestError(f"--images {images}: no JPEG files ({', '.join(JPEG_EXTENSIONS)}) found"
                          + (" in its tar shards" if wds else "") + (" matching the photo ids" if yfcc_path else ""))
    source = ("webdataset" if wds else "files") if yfcc_path is None else ("webdataset+yfcc" if wds else "yfcc")
    return Prepared(photos, rejects, yfcc_path, yfcc_sig, source, state)


def filter_reason(p, min_tags: int, crop: int) -> str | None:
    """Why a scanned, non-duplicate photo is not used (None: it is). `p` has n_items, width and height."""
    if p.n_items < min_tags:
        return f"too_few_tags: {p.n_items} EXIF items < --min-tags {min_tags}"
    if min(p.width, p.height) < crop:
        return f"too_small: {p.width}x{p.height} is smaller than the {crop} px crop"
    return None


def canonical_tag_table(table):
    """The same JSON whatever order photos were counted in (runners and worker counts must agree)."""
    from exif_jax.exif.render import TagTable

    return TagTable.from_json({k: dict(sorted(v.items())) if isinstance(v, dict) else v
                               for k, v in table.to_json().items()})


def load_tag_table(path: str):
    from exif_jax.exif.render import TagTable

    try:
        return TagTable.from_json(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IngestError(f"--tag-table {path}: not a tag table ({e})") from None


def shard_counts(n_train: int, n_eval: int, cfg: IngestConfig) -> dict[str, int]:
    """Shards per split: `--shards` for train, `--eval-shards` or proportional for eval; never an empty shard."""
    n = {"train": min(cfg.shards, n_train),
         "eval": min(cfg.eval_shards or max(1, round(cfg.shards * n_eval / max(n_train, 1))), n_eval)}
    return {k: v for k, v in n.items() if v > 0}


def options_changes(state: pathlib.Path, cfg: IngestConfig) -> list[str]:
    """What differs from the options of the last run into this output ("key old -> new"), and records these."""
    now = {k: getattr(cfg, k) for k in OPTION_KEYS}
    now["images"] = str(pathlib.Path(cfg.images).resolve())
    path = state / "options.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    _atomic_write_text(path, json.dumps(now, indent=1, sort_keys=True))
    if not isinstance(before, dict):
        return []
    return [f"{k.replace('_', '-')} {before.get(k)} -> {now[k]}" for k in OPTION_KEYS if before.get(k) != now[k]]


def eval_warning(n_eval: int, n_total: int, cfg: IngestConfig) -> str | None:
    """A held-out split too small to measure anything gets a warning (with a fraction that would do, if any)."""
    if cfg.eval_fraction <= 0 or n_eval >= MIN_EVAL_PHOTOS:
        return None
    if n_total >= 2 * MIN_EVAL_PHOTOS:
        want = math.ceil(100 * MIN_EVAL_PHOTOS / n_total) / 100
        return (f"warning: only {n_eval} held-out photo(s) (--eval-fraction {cfg.eval_fraction:g} of {n_total}); "
                f"held-out metrics need about {MIN_EVAL_PHOTOS}: rerun with --eval-fraction {want:g}")
    if n_eval < 4:
        return (f"warning: only {n_eval} held-out photo(s) of {n_total}: held-out metrics will be noise; "
                + ("use --eval-fraction 0.25 for a small folder, or add photos" if cfg.eval_fraction < 0.25
                   else "add photos"))
    return None


def build_info(cfg: IngestConfig, prep_source: str, spec: dict, tag_json: dict, counts: dict, rejects,
               shards: dict[str, list[tuple[str, int]]], hists: dict[str, dict[str, collections.Counter]],
               image_bytes: dict[str, int], max_short: dict[str, int], out: pathlib.Path) -> dict:
    """dataset_info.json from counts and histograms (both runners; no timestamps, so a rerun writes the same bytes).

    shards: split -> [(name, records)]; hists: "all"/"train"/"eval" -> {"tokens", "width", "height", "short_side"}."""
    from exif_jax.text.tokenizer import DEFAULT_BUCKETS

    max_len = max(DEFAULT_BUCKETS)
    tok = hists["all"]["tokens"]
    tstats = _stats(tok)
    reason_counts = collections.Counter(r.split(":", 1)[0] for _, r in rejects)
    info = {
        "format": cfg.format,
        "schema_version": SCHEMA_VERSION,
        "features": records.FEATURES,
        "renderer": cfg.renderer,
        "renderer_spec": spec,
        "source": prep_source,
        "crop": cfg.crop,
        "min_tags": cfg.min_tags,
        "eval_fraction": cfg.eval_fraction,
        "counts": {"inputs": counts["accepted"] + len(rejects), "accepted": counts["accepted"],
                   "rejected": len(rejects), "rejected_by_reason": dict(sorted(reason_counts.items())),
                   **{s: counts[s] for s in SPLITS}},
        "splits": {},
        "tag_table": tag_json,
        "token_lengths": {**tstats, "truncated_at": max_len,
                          "num_truncated": sum(n for v, n in tok.items() if v > max_len)},
        "text_len": suggest_text_len(tstats["max"]),  # no text truncated at this length
        "text_len_p99": suggest_text_len(tstats["p99"]),  # 1% truncated: cheaper text tower
        "image_sizes": {k: _stats(hists["all"][k]) for k in ("width", "height", "short_side")},
    }
    for split in SPLITS:
        names = sorted(shards.get(split, []))
        info["splits"][split] = {
            "records": sum(n for _, n in names),
            "shards": [name for name, _ in names],
            "records_per_shard": [n for _, n in names],
            "bytes": sum((out / name).stat().st_size for name, _ in names),
            "image_bytes": image_bytes.get(split, 0),
            "max_short_side": max_short.get(split, 0),
        }
    return info


def summary_sentence(info: dict, out: str) -> str:
    """The one-sentence result of an ingest, for people (dataset_info.json has the numbers)."""
    c, s = info["counts"], info["splits"]
    fmt = {"tfrecord": "TFRecord", "array_record": "ArrayRecord"}.get(info["format"], info["format"])
    n_sh = {k: len(s[k]["shards"]) for k in SPLITS}
    rej = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(c["rejected_by_reason"].items(),
                                                                   key=lambda kv: (-kv[1], kv[0])))
    text = (f"{out}: {c['train']} training and {c['eval']} held-out photos in {n_sh['train']} + {n_sh['eval']} "
            f"{fmt} shards ({info['renderer']} EXIF texts, up to {info['token_lengths'].get('max')} tokens, "
            f"text_len {info['text_len']})")
    if c["rejected"]:
        text += f"; {c['rejected']} of {c['inputs']} inputs rejected ({rej}), listed in {out}/rejects.tsv"
    else:
        text += f"; all {c['inputs']} inputs used"
    return text + "."


def run(cfg: IngestConfig) -> dict:
    """Runs the ingest; returns the dataset_info dict (also written to OUT/dataset_info.json)."""
    if cfg.runner == "beam":
        from exif_jax.data import ingest_beam

        return ingest_beam.run(cfg)
    if cfg.runner != "local":
        raise IngestError(f"--runner {cfg.runner!r}: expected local or beam")
    from exif_jax.exif.render import TagTable, get_renderer
    from exif_jax.text.tokenizer import ExifTokenizer

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if cfg.progress else (lambda *a: None)
    out = pathlib.Path(cfg.out)
    prep = prepare(cfg, log)
    photos, rejects, yfcc_path, state = prep.photos, list(prep.rejects), prep.yfcc_path, prep.state
    yfcc_mode = yfcc_path is not None
    changes = options_changes(state, cfg)

    # ---- pass 1: scan (cached across interruptions)
    cache_path = state / "scan.jsonl"
    for p in photos:
        p.key = _cache_key(p, prep.yfcc_sig) or ""
        if p.member_offset >= 0:
            p.key += f"\0{p.member_offset}"
    by_key = {p.key: p for p in photos if p.key}
    cached = _load_scan_cache(cache_path, by_key)
    todo = [p for p in photos if not p.sha256 and not p.reason]
    log(f"[ingest] {len(photos)} inputs, {cached} already scanned, {len(todo)} to scan "
        f"with {max(cfg.workers, 1)} process(es)")
    prog = Progress(len(todo), "scan", "files", enabled=cfg.progress)
    tasks = [scan_task(i, p, yfcc_path) for i, p in enumerate(todo)]
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
    for p in photos:  # in listing order (sorted by source / photo id): the first of duplicates wins
        if p.reason:
            rejects.append((p.source, p.reason))
        elif p.sha256 in seen_hash:
            rejects.append((p.source, f"duplicate: same bytes as {seen_hash[p.sha256]}"))
        else:
            seen_hash[p.sha256] = p.source
            reason = filter_reason(p, cfg.min_tags, cfg.crop)
            if reason:
                rejects.append((p.source, reason))
            else:
                accepted.append(p)
    del seen_hash

    def iter_items(group: Sequence[_Photo]) -> Iterator[tuple[_Photo, list]]:
        if yfcc_mode:
            for p in sorted(group, key=lambda p: p.line_offset):
                yield p, _read_line_items(str(yfcc_path), p.line_offset)
        else:
            yield from _iter_cached_items(cache_path, {p.key: p for p in group})

    if cfg.tag_table is not None:
        tag_table = load_tag_table(cfg.tag_table)
    else:
        tag_table = TagTable()
        for _, items in iter_items(accepted):
            tag_table.update([tuple(it) for it in items])
        tag_table = canonical_tag_table(tag_table)
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
    _write_rejects(out / "rejects.tsv", rejects)
    if not kept:
        raise IngestError(f"no usable photos among {len(photos) + len(prep.rejects)} inputs; "
                          f"see {out / 'rejects.tsv'}")

    # ---- plan shards: within a split, photos sorted by sha1(photo id), dealt round-robin
    by_split: dict[str, list[_Photo]] = {s: [] for s in SPLITS}
    for p in kept:
        by_split[split_of(p.photo_id, cfg.eval_fraction)].append(p)
    n_shards = shard_counts(len(by_split["train"]), len(by_split["eval"]), cfg)
    plan: dict[str, list[_Photo]] = {}
    for split, n in n_shards.items():
        group = sorted(by_split[split], key=lambda p: hashlib.sha1(p.photo_id.encode("utf-8")).hexdigest())
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
    removed = 0
    for p in out.iterdir():  # shards of an earlier plan (other shard count/format), temporary files of a crash
        stale = p.name not in plan and p.name.startswith(tuple(f"{s}-" for s in SPLITS)) and (
            p.name.endswith(tuple(FORMAT_EXT.values())))
        if p.is_file() and (stale or ".tmp-" in p.name):
            p.unlink()
            journal.pop(p.name, None)
            removed += stale
    if changes:
        log(f"[ingest] options changed since the last run into {out} ({'; '.join(changes)}): rebuilding "
            f"{len(tasks)} of {len(plan)} shards" + (f", removing {removed} old ones" if removed else "")
            + " (scan results are reused)")
    log(f"[ingest] {len(kept)} photos -> {len(plan)} shards ({len(plan) - len(tasks)} already complete); "
        f"{len(rejects)} rejected")
    warning = eval_warning(len(by_split["eval"]), len(kept), cfg)
    if warning:
        print(f"[ingest] {warning}", file=sys.stderr, flush=True)
    prog = Progress(len(tasks), "write", "shards", enabled=cfg.progress)
    for res in _pool_map(_write_shard, tasks, cfg.workers, prog, initializer=_init_writer, initargs=(context,)):
        name = os.path.basename(res["path"])
        journal[name] = {"fingerprint": fingerprints[name], "records": res["records"], "bytes": res["bytes"]}
        _atomic_write_text(journal_path, json.dumps(journal, indent=1, sort_keys=True))
    prog.close()

    # ---- dataset_info.json
    hists = {k: {f: collections.Counter() for f in ("tokens", "width", "height", "short_side")}
             for k in ("all", *SPLITS)}
    image_bytes, max_short = collections.Counter(), {}
    for split in SPLITS:
        for p in by_split[split]:
            for k in ("all", split):
                h = hists[k]
                h["tokens"][lengths[p.photo_id]] += 1
                h["width"][p.width] += 1
                h["height"][p.height] += 1
                h["short_side"][min(p.width, p.height)] += 1
            image_bytes[split] += p.member_size if p.member_offset >= 0 else os.path.getsize(p.path)
            max_short[split] = max(max_short.get(split, 0), min(p.width, p.height))
    counts = {"accepted": len(kept), **{s: len(by_split[s]) for s in SPLITS}}
    shards = {s: [(n, len(g)) for n, g in plan.items() if n.startswith(f"{s}-")] for s in SPLITS}
    info = build_info(cfg, prep.source, spec, tag_json, counts, rejects, shards, hists, image_bytes, max_short, out)
    finish(cfg, info, out, log)
    return info


def finish(cfg: IngestConfig, info: dict, out: pathlib.Path, log) -> None:
    """Writes dataset_info.json and the TFDS metadata; logs the result."""
    _atomic_write_text(out / "dataset_info.json", json.dumps(info, indent=1, ensure_ascii=False))
    if cfg.tfds_metadata:
        from exif_jax.data import tfds_meta

        try:
            tfds_meta.write(out, info)
        except Exception as e:  # the TFDS view is an extra: never lose a finished ingest over it
            print(f"[ingest] warning: TFDS metadata not written ({type(e).__name__}: {e})", file=sys.stderr)
    log(f"[ingest] done: train {info['splits']['train']['records']} / eval {info['splits']['eval']['records']} "
        f"records in {out}; text_len {info['text_len']} (max {info['token_lengths'].get('max')} tokens)")
