"""Orbax checkpoints of the train state, the grain iterator state and run metadata; model restore for `load`.

Layout: `WORKDIR/config.json` (full config) and `WORKDIR/checkpoints/<step>/{state,data,meta}` managed by an
`ocp.CheckpointManager` (async saves, the latest `keep_checkpoints` kept). `data` holds one JSON file per process
with that process's iterator state, so a restart sees exactly the batches it would have seen.

Damage: once a step is committed, `checkpoints/<step>/exif_jax_checksums.json` records the CRC32C of every file
(local workdirs), so flipped bytes that the array decoder would read silently are found too. Restoring takes the
newest step that verifies and restores (`restore_newest_good`, used by the trainer, `exif_jax.load`, export and
splice), says which damaged steps it skipped, and raises `CheckpointError` (one line) when none is readable.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from typing import Any, Callable

import jax
import ml_collections
import orbax.checkpoint as ocp


def _grain_handler():
    import grain

    return grain.checkpoint.CheckpointHandler()


def _grain_save(it):
    import grain

    return grain.checkpoint.CheckpointSave(it)


def _grain_restore(it):
    import grain

    return grain.checkpoint.CheckpointRestore(it)


CHECKSUMS = "exif_jax_checksums.json"


class CheckpointError(ValueError):
    """No usable checkpoint (missing, damaged, or of another model); the message is one line naming the folder."""


def _crc32c_file(path: pathlib.Path) -> str:
    import google_crc32c

    c = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            c.update(chunk)
    return c.hexdigest().decode()


def _step_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def seal_step(step_dir: pathlib.Path) -> None:
    """Writes the CRC32C of every file of a committed step (atomically: a temporary file renamed)."""
    sums = {str(p.relative_to(step_dir)): [p.stat().st_size, _crc32c_file(p)] for p in _step_files(step_dir)}
    tmp = step_dir / (CHECKSUMS + ".tmp")
    tmp.write_text(json.dumps(sums, indent=0, sort_keys=True))
    os.replace(tmp, step_dir / CHECKSUMS)


def verify_step(step_dir: pathlib.Path) -> str | None:
    """None when the step's files match its checksums (or it has none); else what is wrong, in a few words."""
    path = step_dir / CHECKSUMS
    if not path.is_file():
        return None
    try:
        sums = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"{CHECKSUMS} unreadable"
    for rel, (size, crc) in sorted(sums.items()):
        f = step_dir / rel
        if not f.is_file():
            return f"{rel} missing"
        if f.stat().st_size != size:
            return f"{rel} has {f.stat().st_size} bytes, {size} were written"
        if _crc32c_file(f) != crc:
            return f"{rel} changed since it was written (checksum mismatch)"
    return None


class _OrbaxErrorsReachUs(logging.Filter):
    """orbax logs a failed background save (a full disk, say) as several ERROR records with tracebacks, then raises
    it in the caller at the next wait/save, where the trainer reports it in one line; drop the log copies."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        if "orbax" in (record.pathname or ""):
            return False
        # asyncio's "Task exception was never retrieved" for the same failed orbax writes, at exit
        return not (record.name == "asyncio" and "orbax" in str(record.msg) + str(record.args))


_FILTER = _OrbaxErrorsReachUs()


def _excepthook_without_closed_loop_noise(previous):
    """After a failed async write, tensorstore completes the other pending writes into orbax's already closed
    event loop and prints each `RuntimeError: Event loop is closed` through `sys.excepthook`: noise about a
    failure the trainer has reported in one line."""

    def hook(exc_type, exc, tb):
        if exc_type is RuntimeError and str(exc) == "Event loop is closed":
            return
        previous(exc_type, exc, tb)

    hook.exif_jax_quiet = True
    return hook


def _quiet_orbax_error_logs() -> None:
    import sys

    if not getattr(sys.excepthook, "exif_jax_quiet", False):
        sys.excepthook = _excepthook_without_closed_loop_noise(sys.excepthook)
    for name in ("absl", "", "asyncio"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for h in logger.handlers:
            if _FILTER not in h.filters:
                h.addFilter(_FILTER)


class Checkpointer:
    """Saves/restores `(state, data iterator, meta)` under `workdir/checkpoints`."""

    def __init__(self, workdir, keep: int = 3, async_save: bool = True):
        _quiet_orbax_error_logs()
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=int(keep), enable_async_checkpointing=bool(async_save),
                                               create=True, cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": _grain_handler(),
                           "meta": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self.manager.all_steps())

    def _local(self) -> bool:
        return "://" not in str(self.directory)

    def seal_committed(self) -> None:
        """Checksums for committed steps that have none yet (process 0, local folders)."""
        if jax.process_index() != 0 or not self._local() or not self.directory.is_dir():
            return
        for d in self.directory.iterdir():
            if d.is_dir() and d.name.isdigit() and not (d / CHECKSUMS).exists() and (d / "commit_success.txt").exists():
                try:
                    seal_step(d)
                except OSError:
                    pass  # a full disk: the step stays usable, only without checksums

    def _write_failed(self, e: Exception) -> CheckpointError:
        text = " ".join(str(e).split())
        code = re.search(r"os_error_code='?(\d+)", text)
        reason = os.strerror(int(code.group(1))) if code else (text[:160] or type(e).__name__)
        kept = ", ".join(str(s) for s in self.all_steps()) or "none"
        return CheckpointError(f"{self.directory}: writing a checkpoint failed ({reason}; a full disk or a file "
                               f"size limit?); the steps saved before are kept: {kept}")

    def save(self, step: int, state, data_iter=None, meta: dict | None = None) -> None:
        try:
            self._save(step, state, data_iter, meta)
        except CheckpointError:
            raise
        except (ValueError, OSError, RuntimeError) as e:
            raise self._write_failed(e) from None

    def check_room(self, state) -> None:
        """Refuses to start a save that cannot fit (free disk space, the process's file size limit): a write that
        fails half-way inside orbax's background threads is reported noisily; this one line is not."""
        if not self._local():
            return
        need = sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(state) if hasattr(x, "dtype"))
        kept = ", ".join(str(s) for s in self.all_steps()) or "none"
        import resource
        import shutil

        base = self.directory if self.directory.exists() else self.directory.parent
        free = shutil.disk_usage(base).free
        if free < need * 1.05 + (16 << 20):
            raise CheckpointError(f"{self.directory}: no room for a checkpoint ({free / 2**20:.0f} MiB free, "
                                  f"~{need / 2**20:.0f} MiB needed); the steps saved before are kept: {kept}")
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and limit < need:
            raise CheckpointError(f"{self.directory}: the file size limit (ulimit -f: {limit / 2**20:.1f} MiB) is "
                                  f"below a checkpoint's ~{need / 2**20:.0f} MiB; the steps saved before are kept: "
                                  f"{kept}")

    def _save(self, step: int, state, data_iter=None, meta: dict | None = None) -> None:
        if not self.manager.is_saving_in_progress():
            self.seal_committed()
        self.check_room(state)
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(dict(meta or {}, step=int(step)))}
        if data_iter is not None:
            items["data"] = _grain_save(data_iter)
        self.manager.save(int(step), args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, abstract_state, data_iter=None) -> tuple[Any, dict]:
        """Restores into `abstract_state`'s shapes/shardings and (in place) into `data_iter`."""
        items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
        if data_iter is not None:
            items["data"] = _grain_restore(data_iter)
        try:
            out = self.manager.restore(int(step), args=ocp.args.Composite(**items))
        except Exception as e:  # noqa: BLE001 - re-raised with the path and what to do
            raise RuntimeError(f"{self.directory / str(step)}: cannot restore checkpoint ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})") from e
        return out["state"], dict(out["meta"] or {})

    def restore_newest_good(self, abstract_state, data_iter=None, step: int | None = None,
                            log: Callable[[str], None] | None = print) -> tuple[Any, dict, int, list[int]]:
        """`(state, meta, step, damaged_steps)` from the newest step that verifies and restores (or `step` only).

        Each damaged step is named in one `log` line; no readable step raises `CheckpointError`.
        """
        steps = self.all_steps()
        if step is not None:
            if int(step) not in steps:
                have = ", ".join(map(str, steps)) or "none"
                raise CheckpointError(f"{self.directory}: no checkpoint at step {step} (steps saved: {have})")
            steps = [int(step)]
        if not steps:
            raise CheckpointError(f"{self.directory}: no checkpoint to restore")
        damaged, problems = [], []
        for s in reversed(steps):
            problem = verify_step(self.directory / str(s)) if self._local() else None
            if problem is None:
                try:
                    state, meta = self.restore(s, abstract_state, data_iter)
                    return state, meta, s, damaged
                except RuntimeError as e:
                    cause = e.__cause__ or e
                    problem = f"{type(cause).__name__}: {' '.join(str(cause).split())[:160]}"
            damaged.append(s)
            problems.append(f"step {s}: {problem}")
            older = [o for o in steps if o < s]
            if log is not None:
                nxt = f"trying step {older[-1]}" if older else "no older step"
                log(f"checkpoint {self.directory / str(s)} is damaged ({problem}); {nxt}")
        raise CheckpointError(f"{self.directory}: no readable checkpoint ({'; '.join(problems)[:400]})")

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except (ValueError, OSError, RuntimeError) as e:
            raise self._write_failed(e) from None
        self.seal_committed()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            except (ValueError, OSError, RuntimeError):
                pass  # the failure itself was raised by wait()


def set_aside(workdir, steps: list[int], log: Callable[[str], None] | None = print) -> None:
    """Moves damaged step folders to `WORKDIR/checkpoints_damaged/` (kept for inspection, out of orbax's way so
    training can save those steps again)."""
    src = pathlib.Path(workdir).absolute() / "checkpoints"
    dst = pathlib.Path(workdir).absolute() / "checkpoints_damaged"
    for s in steps:
        dst.mkdir(exist_ok=True)
        target = dst / str(s)
        n = 1
        while target.exists():
            target, n = dst / f"{s}.{n}", n + 1
        os.replace(src / str(s), target)
        if log is not None:
            log(f"moved the damaged checkpoint of step {s} to {target}")


def write_config(workdir, config: ml_collections.ConfigDict) -> None:
    path = pathlib.Path(workdir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("config.json.tmp")  # atomic: a full disk or a kill never leaves half a config.json
    tmp.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_config(workdir) -> ml_collections.ConfigDict:
    path = pathlib.Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a trainer workdir?")
    try:
        return ml_collections.ConfigDict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({' '.join(str(e).split())[:120]}); it describes the "
                              "checkpoints, restore it from a copy") from None


def _stderr(msg: str) -> None:
    import sys

    print(f"exif-jax: {msg}", file=sys.stderr, flush=True)


def _trained_text_len(cfg) -> int | None:
    """The fixed token length of the training batches (`exif_jax.train.step.text_len`), or None when neither the
    config nor a reachable dataset_info.json says (step.text_len's fallback of 64 is a guess, not a record)."""
    if int(cfg.data.get("max_text_len", 0) or 0) > 0:
        return int(cfg.data.max_text_len)
    try:
        from exif_jax.data.pipeline import load_dataset_info

        info = load_dataset_info(str(cfg.data.path)) if str(cfg.data.get("path", "")) else None
    except (ImportError, ValueError, OSError):
        info = None
    return int(info["text_len"]) if info and info.get("text_len") else None


def restore_model(workdir, step: int | None = None, build_model=None, info: dict | None = None,
                  log: Callable[[str], None] | None = _stderr):
    """`(model_cfg, ExifClip)` from a trainer workdir's latest (or given) checkpoint, on the first local device.

    Used by `exif_jax.load(workdir)`. Optimizer moments are read and dropped. A damaged newest step is skipped
    (saying so through `log`) for the newest good one; with `step` only that step is tried. `info` (a dict), when given, receives
    `step` (the restored step), `name` (the config's `config_name`, when the workdir recorded one) and `text_len`
    (the token length its text batches had, when the workdir's config or dataset says; else None).
    """
    from exif_jax.train import mesh as mesh_lib, state as state_lib

    config = read_config(workdir)
    ckpt = Checkpointer(workdir, keep=int(config.get("keep_checkpoints", 3)), async_save=False)
    try:
        if not ckpt.all_steps():
            raise CheckpointError(f"{ckpt.directory}: no checkpoint to restore")
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.mesh.data, cfg.mesh.fsdp = 1, 1
        if "dcn_data" in cfg.mesh:
            cfg.mesh.dcn_data = 1  # trained on several slices, restored on one device
        mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.local_devices()[:1])
        with jax.set_mesh(mesh):
            spec = state_lib.state_spec(cfg, mesh, build_model)
            state, _, step, _ = ckpt.restore_newest_good(spec.abstract, step=step, log=log)
        from flax import nnx

        model, _ = nnx.merge(spec.graphdef, state)
        if info is not None:
            info.update(step=int(step), name=str(config.get("config_name", "") or ""), text_len=_trained_text_len(cfg))
        return cfg.model, model
    finally:
        ckpt.close()
