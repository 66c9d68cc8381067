"""The trainer, top to bottom: config -> mesh -> data -> state (restored from WORKDIR if there) -> step -> loop
(step, log, eval, checkpoint) -> final checkpoint.

    from exif_jax.train.trainer import train
    final_metrics = train(config, "/tmp/run1")     # rerun with the same workdir to resume

Restart is not a special path: whatever the latest checkpoint in `WORKDIR/checkpoints` holds (state, optimizer,
RNG, step, and every process's grain iterator state) is where the loop continues, so a killed-and-restarted run
logs the same losses and ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from exif_jax.train import checkpointing, evaluate as eval_lib, mesh as mesh_lib, metrics as metrics_lib
from exif_jax.train import sharding, state as state_lib, step as step_lib


class NonFiniteError(RuntimeError):
    """Loss or gradient norm became NaN/Inf; the last good checkpoint is kept."""


class Interrupted(RuntimeError):
    """Ctrl-C twice: stopped without waiting for a checkpoint (the last saved one is kept)."""


CONTROL_KEYS = ("eval_loss", "eval_top1", "eval_top5", "eval_photo_top1", "eval_photo_top5")


class PipelineData:
    """Train/eval batches from `exif_jax.data.pipeline.make_dataset` for this process (its slice of the batch)."""

    def __init__(self, config):
        from exif_jax.data import pipeline

        self._pipeline = pipeline
        self.config = config
        self.info = pipeline.load_dataset_info(str(config.data.path)) if str(config.data.path) else None
        self.text_len = pipeline.resolve_text_len(config.data, self.info, None)
        self._said: set = set()

    def _say_once(self, msg: str) -> None:
        if msg not in self._said and jax.process_index() == 0:
            self._said.add(msg)
            print(f"[train] {msg}", flush=True)

    def _eval_batch_size(self, split: str, batch: int, passes: int) -> int:
        """The eval batch, shrunk (to a multiple of the device count) when the held-out split is smaller, so a
        small split is evaluated instead of silently dropped by `drop_remainder`; warns once."""
        records = ((self.info or {}).get("splits", {}).get(split) or {}).get("records")
        if not records:
            return batch
        n = int(records) * passes
        unit = jax.device_count()
        if n >= batch:
            if n % batch:
                self._say_once(f"eval: {n % batch} of the {n} held-out crops do not fill a batch of {batch} and are "
                               "not evaluated")
            return batch
        small = (n // unit) * unit
        if small == 0:
            return 0
        self._say_once(f"eval: the held-out split has {n} crops ({records} photos x {passes}), fewer than the eval "
                       f"batch {batch}; evaluating them in one batch of {small}"
                       + (f" ({n - small} left out: not a multiple of {unit} devices)" if small < n else ""))
        return small

    def _make(self, split, batch, **kw):
        c = self.config
        return self._pipeline.make_dataset(
            c.data, global_batch_size=batch, process_index=jax.process_index(), process_count=jax.process_count(),
            seed=int(c.seed), split=split, crop_size=int(c.data.crop), **kw)

    def train_iterator(self):
        return iter(self._make("train", int(self.config.batch_size)))

    def eval_batches(self):
        c = self.config
        batch = int(c.data.eval_batch_size) or int(c.batch_size)
        split = str(c.data.get("eval_split", "eval") or "eval")
        # Every held-out photo gives `eval_crops_per_image` crops, one per ordered pass (the crop offsets differ
        # between passes); one crop per photo per pass keeps a batch's photos distinct without the train-time
        # spreading, whose start-up would leave most photos of a small eval split with only some of their crops.
        passes = int(c.data.get("eval_crops_per_image", 1) or 1)
        batch = self._eval_batch_size(split, batch, passes)
        if batch == 0:
            self._say_once(f"no evaluation: the held-out split {split!r} has fewer crops than devices")
            return
        try:
            # views=1: held-out photos are scored one crop per row, whatever the training views
            it = iter(self._make(split, batch, crops_per_image=1, num_epochs=passes, shuffle=False, views=1))
        except self._pipeline.DataError as e:
            self._say_once(f"no evaluation: {e}")
            return
        for i, b in enumerate(it):
            if 0 <= int(c.data.eval_batches) <= i:  # -1: the whole held-out split
                break
            yield b


def _to_global(mesh):
    bs = sharding.batch_sharding(mesh)

    def to_global(local: dict) -> dict:
        return {k: jax.make_array_from_process_local_data(bs, np.asarray(v)) for k, v in local.items()}

    return to_global


def _check_finite(pending: list, step: int, ckpt_step: int | None, workdir) -> None:
    if not pending:
        return
    flags = np.asarray(jax.device_get([m["finite"] for _, m in pending]))
    if flags.all():
        return
    bad_step, bad = next((s, m) for (s, m), f in zip(pending, flags) if not f)
    loss, gnorm = float(bad["loss"]), float(bad["grad_norm"])
    kept = f"last good checkpoint: step {ckpt_step}" if ckpt_step is not None else "no checkpoint saved yet"
    raise NonFiniteError(f"non-finite training at step {bad_step} (loss={loss}, grad_norm={gnorm}); stopped at "
                         f"step {step}; {kept} in {workdir}/checkpoints (lower optim.lr or set optim.clip_norm)")


def train(config: ml_collections.ConfigDict, workdir: str, *, data: Any = None, build_model=None,
          stop_after: int | None = None) -> dict:
    """Trains (or resumes) `config` in `workdir`; returns the last logged metrics.

    `data`: an object with `train_iterator()` (process-local batches, `get_state`/`set_state`) and `eval_batches()`
    ; default: the grain pipeline over `config.data.path`. `build_model(model_cfg, rngs)`: default
    `exif_jax.models.build_model`. `stop_after`: leave the loop after this many steps of this call (tests).
    """
    from exif_jax.train import workdir as workdir_lib

    workdir = os.path.abspath(os.fspath(workdir))
    primary = jax.process_index() == 0
    workdir_lib.check_output_dir(workdir, "--workdir")
    # Before writing anything: a workdir whose checkpoints hold another model is refused (its config.json stays).
    workdir_lib.check_resume(workdir, config)
    mesh = mesh_lib.make_mesh(config.mesh)
    n_dev = mesh.devices.size
    n_views = step_lib.n_views(config)
    mesh_lib.batch_size_per_process(int(config.batch_size), mesh)
    total = int(config.total_steps)
    data = data or PipelineData(config)
    writer = metrics_lib.MetricsWriter(workdir, primary=primary, total_steps=total,
                                       wandb_project=str(config.get("wandb_project", "")), config=config)
    ckpt = checkpointing.Checkpointer(workdir, keep=int(config.keep_checkpoints),
                                      async_save=bool(config.async_checkpointing))
    to_global = _to_global(mesh)
    stop = {"signal": None}
    ckpt_at = {"step": None}

    def on_signal(signum, frame):
        del frame
        if signum == signal.SIGINT and stop["signal"] is not None:
            kept = f"step {ckpt_at['step']}" if ckpt_at["step"] is not None else "none yet"
            raise Interrupted(f"interrupted twice: stopped without saving; last checkpoint: {kept} in "
                              f"{workdir}/checkpoints")
        if signum == signal.SIGINT and primary:
            print("[train] Ctrl-C: saving a checkpoint after this step (Ctrl-C again stops without saving)",
                  flush=True)
        stop["signal"] = signum

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    last: dict = {}
    try:
        with jax.set_mesh(mesh):
            spec = state_lib.state_spec(config, mesh, build_model)
            train_it = data.train_iterator()
            latest = ckpt.latest_step()
            say = (lambda m: print(f"[train] {m}", flush=True)) if primary else None
            if latest is not None:
                state, meta, latest, damaged = ckpt.restore_newest_good(spec.abstract, train_it, log=say)
                start = int(latest)
                if damaged:
                    ckpt.close()  # set the damaged steps aside so this run can save those steps again
                    if primary:
                        checkpointing.set_aside(workdir, damaged, log=say)
                    multihost_utils.sync_global_devices("exif_jax_damaged_checkpoints_moved")
                    ckpt = checkpointing.Checkpointer(workdir, keep=int(config.keep_checkpoints),
                                                      async_save=bool(config.async_checkpointing))
                writer.truncate_after(start)
                logging.info("resumed from %s/checkpoints/%d", workdir, start)
                if primary:
                    print(f"[train] resumed from step {start} in {workdir}", flush=True)
            else:
                state = state_lib.init_state(config, mesh, spec, build_model)
                start = 0
            if primary:  # only now: a refused or failed restore leaves the saved config.json as it was
                checkpointing.write_config(workdir, config)
            ckpt_step = latest
            ckpt_at["step"] = latest
            step_fn = step_lib.jit_step(config, mesh, spec)
            encode_fn = eval_lib.make_encode_fn(spec.graphdef, mesh, spec.shardings)
            if primary:
                n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(spec.abstract))
                print(f"[train] mesh {dict(mesh.shape)} on {n_dev} devices / {jax.process_count()} processes; "
                      f"global batch {config.batch_size}; state {n_params / 1e6:.1f}M values; "
                      f"steps {start}->{total}", flush=True)
            control = _control_eval(config, mesh, spec, build_model, data, encode_fn, to_global, writer, primary)

            pending: list = []  # (step, device metrics) since the last log
            t_log, wait, steps_in_interval = time.time(), 0.0, 0
            t_start = time.time()
            start_for_rate = start
            step = start
            for step in range(start + 1, total + 1):
                t0 = time.time()
                batch = to_global(next(train_it))
                wait += time.time() - t0
                state, m = step_fn(state, batch)
                pending.append((step, m))
                steps_in_interval += 1
                if step == start + 1:  # keep compilation out of the throughput numbers and the ETA
                    jax.block_until_ready(m)
                    if primary:
                        print(f"[train] first step (compile + run) took {time.time() - t_start:.1f}s", flush=True)
                    t_log = t_start = time.time()
                    wait, steps_in_interval, start_for_rate = 0.0, 0, step
                is_last = step == total
                if step % int(config.log_every) == 0 or is_last:
                    if bool(config.nan_guard):
                        _check_finite(pending, step, ckpt_step, workdir)
                    scalars = {k: float(v) for k, v in jax.device_get(m).items()}
                    dt = time.time() - t_log
                    if steps_in_interval:
                        sps = steps_in_interval * int(config.batch_size) / max(dt, 1e-9)
                        scalars.update(samples_per_sec=sps, samples_per_sec_per_device=sps / n_dev,
                                       data_wait_frac=min(wait / max(dt, 1e-9), 1.0))
                        if n_views > 1:  # samples are examples (one text each); each holds n_views image crops
                            scalars.update(crops_per_sec=sps * n_views)
                    scalars.pop("finite", None)
                    if int(config.eval_every) > 0 and (step % int(config.eval_every) == 0 or is_last):
                        scalars.update(eval_lib.evaluate(state, data.eval_batches(), encode_fn, to_global))
                        scalars.update({f"{k}_margin": scalars[k] - control[f"control_{k}"] for k in CONTROL_KEYS
                                        if k != "eval_loss" and k in scalars and f"control_{k}" in control})
                    writer.write(step, scalars)
                    writer.progress(step, scalars, t_start, start_for_rate)
                    last = {"step": step, **scalars}
                    pending.clear()
                    t_log, wait, steps_in_interval = time.time(), 0.0, 0
                if jax.process_count() == 1:
                    preempted = stop["signal"] is not None
                else:  # all processes must agree: decided together at log steps only
                    preempted = step % int(config.log_every) == 0 and bool(
                        multihost_utils.process_allgather(np.int32(stop["signal"] is not None)).any())
                if step % int(config.checkpoint_every) == 0 or is_last or preempted:
                    if bool(config.nan_guard):
                        _check_finite(pending, step, ckpt_step, workdir)
                    ckpt.save(step, state, train_it, {"seed": int(config.seed)})
                    ckpt_step = ckpt_at["step"] = step
                if preempted:
                    if primary:
                        what = "Ctrl-C" if stop["signal"] == signal.SIGINT else "SIGTERM"
                        print(f"[train] {what}: saved checkpoint at step {step}; rerun the same command to resume",
                              flush=True)
                    break
                if stop_after is not None and step - start >= stop_after:
                    break
            ckpt.wait()
    finally:
        for sig, handler in old_handlers.items():  # a Ctrl-C while saving below must not be lost in a handler
            signal.signal(sig, handler)
        try:
            ckpt.close()
        finally:
            writer.close()
    return last


def _control_eval(config, mesh, spec, build_model, data, encode_fn, to_global, writer, primary) -> dict:
    """The untrained control: the config's own initialisation (seed `config.seed`, before step 1, without
    `model.init_from`), evaluated once exactly like the trained model and logged as `control_eval_*` at step 0.
    A resumed run reuses the logged row. Off with `eval_control=False` or without evaluation."""
    if int(config.eval_every) <= 0 or not bool(config.get("eval_control", True)):
        return {}
    logged = {k: v for k, v in writer.logged(0).items() if k.startswith("control_")} if primary else {}
    have = bool(logged)
    if jax.process_count() > 1:  # every process must take the same branch (the eval has collectives)
        have = bool(multihost_utils.broadcast_one_to_all(np.int32(have)))
    if have:
        return logged
    t0 = time.time()
    untrained = state_lib.init_state(config, mesh, spec, build_model, pretrained=False)
    res = eval_lib.evaluate(untrained, data.eval_batches(), encode_fn, to_global)
    del untrained
    control = {f"control_{k}": v for k, v in res.items() if k in CONTROL_KEYS}
    if control:
        writer.write(0, control)
        if primary:
            shown = " ".join(f"{k.removeprefix('control_')} {v:.3f}" for k, v in control.items())
            print(f"[train] untrained control (seed {int(config.seed)}, {time.time() - t0:.1f}s): {shown}", flush=True)
    return control
