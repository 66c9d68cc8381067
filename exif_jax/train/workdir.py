"""Checks on a trainer workdir and its inputs that run before anything is written (and before JAX is imported).

- `check_workdir(path)`: a directory we can create/write (not a file, not under /proc).
- `check_data_path(config)`: `data.path` is an `exif-jax ingest` output; a folder of JPEGs gets the ingest command.
- `check_resume(workdir, config)`: the saved `config.json` of a workdir with checkpoints describes the same model;
  otherwise one line naming the changed keys (resuming would fail to restore, and overwriting `config.json` would
  make the trained checkpoints unloadable).

Each raises `WorkdirError` (a `ValueError`) with one line naming the path or keys.
"""
from __future__ import annotations

import json
import os
import pathlib

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")

# Model keys that change how a model runs, not what its checkpoint holds: a resume may change them.
RESUME_FREE_MODEL_KEYS = ("init_from", "dtype", "remat", "attention_impl")
# Trainer keys outside `model` that change the saved state's structure (optimizer moments).
RESUME_STATE_KEYS = ("optim.name", "optim.clip_norm")


class WorkdirError(ValueError):
    """A workdir or input that the trainer cannot use; one line naming the path or key."""


def is_remote(path: str) -> bool:
    return "://" in str(path)


def _nearest_existing(p: pathlib.Path) -> pathlib.Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path, flag: str = "--workdir") -> None:
    """`path` is (or can become) a writable directory; no file, no pseudo filesystem, no file as a parent."""
    if is_remote(path):
        return
    p = pathlib.Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise WorkdirError(f"{flag} {path}: is a file, not a directory")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise WorkdirError(f"{flag} {path}: {base} is a file, so no directory can be made under it")
    if str(base.resolve()).startswith(("/proc", "/sys")):
        raise WorkdirError(f"{flag} {path}: {base} is a kernel pseudo filesystem, not a place for files")
    if not os.access(base, os.W_OK | os.X_OK):
        raise WorkdirError(f"{flag} {path}: {base} is not writable")


def check_output_file(path, flag: str = "--out") -> None:
    """`path` can become a file: its parent is (or can become) a directory we may write."""
    p = pathlib.Path(path).expanduser().absolute()
    if p.is_dir():
        return  # directory outputs (hf) are checked by the caller
    check_output_dir(p.parent, flag=f"{flag} {path}: parent")


def checkpoint_steps(workdir) -> list[int]:
    """Finalised checkpoint steps in `workdir/checkpoints` (orbax names a committed step's folder by its number)."""
    d = pathlib.Path(workdir) / "checkpoints"
    if is_remote(workdir) or not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def _jpegs_in(path: pathlib.Path, limit: int = 1) -> int:
    n = 0
    for _root, _dirs, files in os.walk(path):
        n += sum(f.lower().endswith(JPEG_SUFFIXES) for f in files)
        if n >= limit:
            break
    return n


def check_data_path(config) -> None:
    """`data.path` is an ingested dataset (`dataset_info.json` or shards); a folder of photos gets a hint."""
    path = str(config.data.get("path", "") or "")
    if not path:
        raise WorkdirError("data.path is not set: pass --config.data.path=DIR (an `exif-jax ingest` output)")
    if is_remote(path):
        return
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise WorkdirError(f"data.path {path}: no such directory (make it with `exif-jax ingest --images PHOTOS "
                           f"--out {path}`)")
    if not p.is_dir():
        raise WorkdirError(f"data.path {path}: is a file; expected the folder `exif-jax ingest` wrote")
    names = [q.name for q in p.iterdir()]
    if "dataset_info.json" in names or any(n.startswith("train-") for n in names):
        return
    if _jpegs_in(p):
        raise WorkdirError(f"data.path {path}: a folder of photos, not an ingested dataset; run `exif-jax ingest "
                           f"--images {path} --out {path.rstrip('/')}_ingested --renderer clean` and train on that")
    raise WorkdirError(f"data.path {path}: no dataset_info.json or train-*.tfrecord shards; is it an "
                       "`exif-jax ingest` output?")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def saved_config(workdir) -> dict | None:
    path = pathlib.Path(workdir) / "config.json"
    if is_remote(workdir) or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{path}: unreadable ({e}); it describes the saved checkpoints, so it is left as it "
                           "is; restore it or use a new --workdir") from None


def changed_keys(saved: dict, config) -> tuple[list[str], list[str]]:
    """(keys that change the checkpoint's structure, other changed keys) between a saved config and `config`."""
    new = _flatten(json.loads(config.to_json_best_effort()))
    old = _flatten(saved)
    changed = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
    structural = [k for k in changed
                  if (k.startswith("model.") and k.split(".", 1)[1] not in RESUME_FREE_MODEL_KEYS)
                  or k in RESUME_STATE_KEYS]
    return structural, [k for k in changed if k not in structural]


def _show(d: dict, key: str):
    v = _flatten(d).get(key, "<unset>")
    return v


def check_resume(workdir, config) -> list[str]:
    """Before resuming: refuse a model that differs from the checkpoints'; returns the other changed keys (notes)."""
    if not checkpoint_steps(workdir):
        return []
    saved = saved_config(workdir)
    if saved is None:
        return []
    structural, other = changed_keys(saved, config)
    if structural:
        new = json.loads(config.to_json_best_effort())
        parts = [f"{k} {_show(saved, k)!r} -> {_show(new, k)!r}" for k in structural[:4]]
        more = f" and {len(structural) - 4} more" if len(structural) > 4 else ""
        raise WorkdirError(f"--workdir {workdir} holds checkpoints of another model ({'; '.join(parts)}{more}); "
                           "resume with the saved config (WORKDIR/config.json) or use a new --workdir")
    return other
