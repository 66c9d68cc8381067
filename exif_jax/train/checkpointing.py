"""Orbax checkpoints of the train state, the grain iterator state and run metadata; model restore for `load`.

Layout: `WORKDIR/config.json` (full config) and `WORKDIR/checkpoints/<step>/{state,data,meta}` managed by an
`ocp.CheckpointManager` (async saves, the latest `keep_checkpoints` kept). `data` holds one JSON file per process
with that process's iterator state, so a restart sees exactly the batches it would have seen.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

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


class Checkpointer:
    """Saves/restores `(state, data iterator, meta)` under `workdir/checkpoints`."""

    def __init__(self, workdir, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=int(keep), enable_async_checkpointing=bool(async_save),
                                               create=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": _grain_handler(),
                           "meta": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iter=None, meta: dict | None = None) -> None:
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
                               f"{str(e).splitlines()[0] if str(e) else ''}); delete this step directory to fall "
                               f"back to the previous one") from e
        return out["state"], dict(out["meta"] or {})

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def write_config(workdir, config: ml_collections.ConfigDict) -> None:
    path = pathlib.Path(workdir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def read_config(workdir) -> ml_collections.ConfigDict:
    path = pathlib.Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a trainer workdir?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def restore_model(workdir, step: int | None = None, build_model=None, info: dict | None = None):
    """`(model_cfg, ExifClip)` from a trainer workdir's latest (or given) checkpoint, on the first local device.

    Used by `exif_jax.load(workdir)`. Optimizer moments are read and dropped. `info` (a dict), when given, receives
    `step` (the restored step) and `name` (the config's `config_name`, when the workdir recorded one).
    """
    from exif_jax.train import mesh as mesh_lib, state as state_lib

    config = read_config(workdir)
    ckpt = Checkpointer(workdir, keep=int(config.get("keep_checkpoints", 3)), async_save=False)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{ckpt.directory}: no checkpoint to restore")
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.mesh.data, cfg.mesh.fsdp = 1, 1
        if "dcn_data" in cfg.mesh:
            cfg.mesh.dcn_data = 1  # trained on several slices, restored on one device
        mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.local_devices()[:1])
        with jax.set_mesh(mesh):
            spec = state_lib.state_spec(cfg, mesh, build_model)
            state, _ = ckpt.restore(step, spec.abstract)
        from flax import nnx

        model, _ = nnx.merge(spec.graphdef, state)
        if info is not None:
            info.update(step=int(step), name=str(config.get("config_name", "") or ""))
        return cfg.model, model
    finally:
        ckpt.close()
