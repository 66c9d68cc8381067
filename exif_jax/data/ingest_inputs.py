"""Listing the ingest's inputs in pieces, so that the Beam runner lists them on its workers, never on the launcher.

`ingest.prepare` lists everything in one process (a folder walk, every tar's headers, the YFCC file's line offsets),
which is what the local runner needs. At 100M photos the launching machine of a Beam job must not hold that list,
so `ingest_beam` starts from a handful of roots and byte ranges (`plan`, O(1) per photo) and expands them inside
the pipeline with the functions here. Each piece yields exactly the `_Photo` fields and rejects that `prepare`
gives for the same inputs, plus an `order` key that sorts like `prepare`'s listing order (the first of duplicate
photos wins in that order in both runners):

- a folder: `expand_dir` lists one directory (JPEGs, `not_jpeg` rejects, subfolders to expand next); the pipeline
  unrolls `EXPAND_LEVELS` levels, then walks each remaining subtree whole (`walk_dir`). order = the path's parts.
- webdataset tars: `find_tars` / `find_parquets` (one walk of the root, O(shards)), then `list_tar` per tar and
  `failed_downloads` per parquet. order = (the tar's parts, the sample key).
- YFCC lines and `--photo-ids`: byte ranges of the files (`byte_ranges`), read by `yfcc_ids` / `photo_id_lines`;
  the pipeline joins them by photo id (first YFCC line of an id wins; the last `--photo-ids` line of an id wins).
  order = the photo id (webdataset+YFCC keeps the tar order).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterator

from exif_jax.data import ingest, webdataset

EXPAND_LEVELS = 2  # folder levels listed one directory per element before whole subtrees are walked
CHUNK_BYTES = 64 << 20  # byte range of a YFCC / --photo-ids file read by one element


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the launcher knows before the pipeline runs: the mode, the roots and the byte ranges (no photos)."""

    images: str
    out: str
    source: str  # "files" | "webdataset" | "yfcc" | "webdataset+yfcc" (as in dataset_info.json)
    yfcc_path: str | None  # the uncompressed (seekable) YFCC EXIF file
    yfcc_ranges: tuple = ()
    photo_ids: str | None = None
    photo_id_ranges: tuple = ()

    @property
    def webdataset(self) -> bool:
        return self.source.startswith("webdataset")


def byte_ranges(path: str, chunk: int | None = None) -> tuple:
    """[start, end) byte ranges covering the file (at least one, even when it is empty)."""
    chunk = chunk or CHUNK_BYTES
    size = os.path.getsize(path)
    return tuple((s, min(s + chunk, size)) for s in range(0, max(size, 1), chunk))


def plan(cfg: ingest.IngestConfig, state: pathlib.Path, log=lambda *a: None) -> Plan:
    """Checks what the launcher can check without listing photos; decompresses a .gz/.bz2/.xz YFCC file once
    (streamed, bounded memory: lines must be seekable by byte offset)."""
    ingest._check_options(cfg)
    images = pathlib.Path(cfg.images)
    wds = webdataset.has_tars(images)
    yfcc_path, ranges, ids_ranges = None, (), ()
    if cfg.yfcc_exif is not None:
        src_lines = pathlib.Path(cfg.yfcc_exif)
        if not src_lines.is_file():
            raise ingest.IngestError(f"--yfcc-exif {src_lines}: no such file")
        if wds and cfg.photo_ids is not None:
            log("[ingest] webdataset input: photo ids come from the samples' JSON; --photo-ids is not used")
        if not wds:
            if cfg.photo_ids is None:
                raise ingest.IngestError("--yfcc-exif with a folder of JPEGs needs --photo-ids "
                                         "(photo_id<TAB>file_name)")
            try:
                open(cfg.photo_ids, "rb").close()
            except OSError as e:
                raise ingest.IngestError(f"--photo-ids {cfg.photo_ids}: {e.strerror or e}") from None
            ids_ranges = byte_ranges(cfg.photo_ids)
        yfcc_path = str(ingest._uncompressed_yfcc(src_lines, state))
        ranges = byte_ranges(yfcc_path)
    source = ("webdataset" if wds else "files") if yfcc_path is None else ("webdataset+yfcc" if wds else "yfcc")
    return Plan(str(images), str(cfg.out), source, yfcc_path, ranges,
                cfg.photo_ids if yfcc_path and not wds else None, ids_ranges)


def photo_row(p: ingest._Photo, order) -> dict:
    """A listed input as the pipeline carries it (what `ingest_beam` scans, dedups and writes)."""
    return {"order": order, "path": p.path, "source": p.source, "photo_id": p.photo_id,
            "line_offset": p.line_offset, "member_offset": p.member_offset, "member_size": p.member_size}


# ------------------------------------------------------------------------------------------------ folders
def expand_dir(images: str, out: str, rel: str) -> Iterator[tuple[str, object]]:
    """One directory of a folder input: ("photo", row), ("reject", (source, reason)) and ("dir", rel subfolder).

    The same rules as `ingest._walk_images` (os.walk with followlinks: entries that are directories after
    following links are folders; hidden names and the output folder are skipped)."""
    root = pathlib.Path(images)
    exclude = pathlib.Path(out).resolve()
    here = root / rel if rel else root
    with os.scandir(here) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name.startswith("."):
            continue
        path = here / e.name
        try:
            is_dir = e.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if path.resolve() != exclude:
                yield "dir", path.relative_to(root).as_posix()
            continue
        yield _file_entry(root, path)


def _file_entry(root: pathlib.Path, path: pathlib.Path) -> tuple[str, object]:
    rel = path.relative_to(root)
    if path.name.lower().endswith(ingest.JPEG_EXTENSIONS):
        relp = rel.as_posix()
        return "photo", photo_row(ingest._Photo(str(path), relp, relp), rel.parts)
    return "reject", (rel.as_posix(), f"not_jpeg: {path.suffix or 'no'} extension (only "
                                      f"{', '.join(ingest.JPEG_EXTENSIONS)} are read)")


def walk_dir(images: str, out: str, rel: str) -> Iterator[tuple[str, object]]:
    """A whole subtree (the local runner's walk), as ("photo", row) and ("reject", ...) items."""
    root = pathlib.Path(images)
    jpegs, others = ingest._walk_images(root / rel, exclude=pathlib.Path(out))
    for p in jpegs + others:
        yield _file_entry(root, p)


# ------------------------------------------------------------------------------------------------ webdataset
def find_tars(images: str) -> list[str]:
    return [p.relative_to(images).as_posix() for p in webdataset.list_tars(images)]


def find_parquets(images: str) -> list[str]:
    return [p.relative_to(images).as_posix() for p in webdataset.list_parquets(images)]


def list_tar(images: str, rel: str) -> Iterator[tuple[str, object]]:
    """One tar's samples ("photo", row) and problems ("reject", ...), as `ingest.prepare` lists them."""
    tar = pathlib.Path(images) / rel
    samples, problems = webdataset.list_samples(tar)
    for name, reason in problems:
        yield "reject", (f"{rel}/{name}", reason)
    parts = pathlib.PurePosixPath(rel).parts
    for smp in samples:
        pid = str(smp.meta.get("photo_id") or smp.key)
        p = ingest._Photo(str(tar), f"{rel}/{smp.key}.jpg", pid, member_offset=smp.offset, member_size=smp.size)
        yield "photo", photo_row(p, (parts, smp.key))


def failed_downloads(images: str, rel: str) -> list[tuple[str, str]]:
    return webdataset.failed_downloads_in(pathlib.Path(images) / rel)


# ------------------------------------------------------------------------------------------------ YFCC lines
def _lines(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every line that starts in [start, end): each line of the file in exactly one range."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the rest of the line that byte start-1 belongs to (just b"\n" if start begins a line)
        pos = f.tell()
        while pos < end:
            line = f.readline()
            if not line:
                return
            yield pos, line
            pos += len(line)


def yfcc_ids(path: str, start: int, end: int) -> Iterator[tuple[str, int]]:
    """(photo id, byte offset of its line), as `ingest._yfcc_offsets` reads them."""
    for pos, line in _lines(path, start, end):
        tab = line.find(b"\t")
        if tab > 0:
            yield line[:tab].strip().decode("utf-8", "replace"), pos


def photo_id_lines(path: str, start: int, end: int) -> Iterator[tuple[str, object]]:
    """`--photo-ids` lines as ("id", (photo id, (byte offset, file name))) or ("error", message)."""
    for pos, raw in _lines(path, start, end):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            yield "error", f"{path}: line at byte {pos}: not UTF-8 ({e})"
            continue
        if not line or (pos == 0 and line.lower().startswith("photo_id")):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            yield "error", f"{path}: line at byte {pos}: expected 'photo_id<TAB>file_name', got {line[:80]!r}"
            continue
        yield "id", (parts[0], (pos, parts[1]))


def join_yfcc(images: str, webdataset_mode: bool, joined) -> Iterator[tuple[str, object]]:
    """One photo id's CoGroupByKey result {"line": [offsets], "photo": [rows] or "name": [(offset, file)]} ->
    ("photo", row with its line offset) or ("reject", no_exif_line / missing_image), as `ingest.prepare`; and
    ("matched", 1) when the id has both a line and an input (none at all is an error, as in `prepare`)."""
    pid, groups = joined
    offsets = list(groups["line"])
    line = min(offsets) if offsets else None  # the first line of an id wins
    if webdataset_mode:
        rows = list(groups["photo"])
    else:
        names = sorted(groups["name"])
        if not names:
            return
        name = names[-1][1]  # the last --photo-ids line of an id wins
        rows = [photo_row(ingest._Photo(str(pathlib.Path(images) / name), name, pid), pid)]
    if rows and line is not None:
        yield "matched", 1
    for row in rows:
        if line is None:
            yield "reject", (row["source"], "no_exif_line: no line for this photo id in the YFCC EXIF file")
        elif row["member_offset"] < 0 and not os.path.isfile(row["path"]):
            yield "reject", (row["source"], f"missing_image: {row['path']} does not exist")
        else:
            yield "photo", {**row, "line_offset": line}
