"""webdataset tar shards as img2dataset writes them: `KEY.jpg` + `KEY.json` (+ `KEY.txt`) per sample, a
`NNNNN.parquet` of every URL's result and `NNNNN_stats.json` per shard.

`list_samples(tar)` reads only the tar headers and the small JSON members: the JPEG stays in place and is read
later by its data offset (`exif_jax.data.ingest.read_input`), so a shard is never unpacked. `failed_downloads(root)`
reads the parquet files (pyarrow) for the URLs img2dataset could not fetch, so a dataset's rejects account for
every URL of the list. Download with `--output_format webdataset --resize_mode no --skip_reencode True
--extract_exif True` to keep each photo's original bytes (and so its EXIF and JPEG traces).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tarfile

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")


@dataclasses.dataclass(frozen=True)
class Sample:
    key: str
    tar: str
    offset: int  # byte offset of the JPEG data inside the tar
    size: int
    meta: dict  # the sample's JSON (url, key, status, width, height, exif, saved extra columns such as photo_id)


def list_tars(root: str | os.PathLike) -> list[pathlib.Path]:
    root = pathlib.Path(root)
    return sorted(p for p in root.rglob("*.tar") if not any(part.startswith(".") for part in p.relative_to(root).parts))


def has_tars(root: str | os.PathLike) -> bool:
    return any(True for _ in pathlib.Path(root).glob("*.tar"))


def list_samples(tar_path: str | os.PathLike) -> tuple[list[Sample], list[tuple[str, str]]]:
    """(samples with a JPEG, problems as (name, reason)) of one tar; a damaged tar keeps the samples before the
    damage and reports the rest as one problem."""
    tar_path = os.fspath(tar_path)
    images: dict[str, tarfile.TarInfo] = {}
    metas: dict[str, dict] = {}
    problems: list[tuple[str, str]] = []
    try:
        with tarfile.open(tar_path, "r:") as tf:
            try:
                for m in tf:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key, dot, ext = base.partition(".")
                    key = m.name[: len(m.name) - len(base)] + key
                    if not dot or base.startswith("."):
                        continue
                    ext = "." + ext.lower()
                    if ext in IMAGE_EXTENSIONS:
                        images[key] = m
                    elif ext == ".json":
                        try:
                            metas[key] = json.loads(tf.extractfile(m).read())
                        except (ValueError, OSError) as e:
                            problems.append((f"{key}.json", f"bad_metadata: {e}"))
            except (tarfile.TarError, OSError, EOFError) as e:
                problems.append((os.path.basename(tar_path), f"unreadable: tar damaged after {len(images)} "
                                 f"images ({e})"))
    except (tarfile.TarError, OSError) as e:
        return [], [(os.path.basename(tar_path), f"unreadable: not a tar file ({e})")]
    samples = [Sample(k, tar_path, m.offset_data, m.size, metas.get(k, {})) for k, m in sorted(images.items())]
    return samples, problems


def list_parquets(root: str | os.PathLike) -> list[pathlib.Path]:
    return sorted(pathlib.Path(root).rglob("*.parquet"))


def failed_downloads(root: str | os.PathLike) -> list[tuple[str, str]]:
    """(url, "download_failed: <img2dataset's error message>") for each URL img2dataset did not store."""
    out = []
    for f in list_parquets(root):
        out += failed_downloads_in(f)
    return out


def failed_downloads_in(parquet: str | os.PathLike) -> list[tuple[str, str]]:
    """The failed downloads listed in one of img2dataset's `NNNNN.parquet` result files."""
    import pyarrow.parquet as pq

    f = pathlib.Path(parquet)
    table = pq.read_table(f, columns=None)
    cols = table.column_names
    if "status" not in cols:
        return []
    out = []
    rows = table.select([c for c in ("url", "key", "status", "error_message") if c in cols]).to_pylist()
    for r in rows:
        if r.get("status") != "success":
            msg = (r.get("error_message") or r.get("status") or "?").replace("\t", " ").replace("\n", " ")
            out.append((r.get("url") or r.get("key") or f.name, f"download_failed: {msg}"))
    return out
