"""Fit a training run into a time budget: time a few steps, then fix the run length.

Used by the quickstart and `eval.learning`, in one of two ways:
- **in the run** (`warm_steps=0`): the timed steps are the run's own first steps (same workdir; a later `train`
  resumes from them), so they must lie inside the LR warmup, which does not depend on the run length: the finished
  run then equals one started with its final length. Nothing is thrown away, but the first steps run with a cold
  input pipeline.
- **after a warm start** (`warm_steps > 0`): a throwaway run in `WORKDIR/calibration` trains `warm_steps` steps
  first, so that the input pipeline reaches its steady rate (the decoded-photo cache full, decoding overlapped with
  the steps), then times `calib_steps` more; the folder is removed and the real run starts from step 0. On
  `eval.learning --real`'s 221 photos the first pass decodes every photo, and the in-run rate (10.2 steps/s timed,
  30% data wait) was 2/3 of the steady one (15.2 steps/s median, 10% data wait): that run trained 18 of its 30 minutes.
  One timed interval can also run fast: on a shared 2-core VM two single 50-step intervals timed 9.05 and 9.63
  steps/s for runs that then went at 6.91 and 8.21 (medians; both timings above the runs' 90th percentiles): the
  first was on course for ~35 minutes of a 30-minute budget (and restarted), the second trained 33.
  `timed_intervals=K` times K intervals and keeps the slowest.
"""
from __future__ import annotations

import json
import math
import pathlib
import shutil
import time

CALIBRATION_DIR = "calibration"  # the throwaway run's folder inside the workdir (warm_steps > 0)


def _last_rate(workdir: pathlib.Path, batch_size: int, intervals: int = 1) -> float:
    """Steps per second of the slowest of the last `intervals` logged intervals of the run in `workdir` (1.0 if
    none was logged)."""
    path = workdir / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
    rows = [r for r in rows if "samples_per_sec" in r]
    return min(r["samples_per_sec"] for r in rows[-intervals:]) / batch_size if rows else 1.0


def steps_for_minutes(cfg, workdir, minutes: float, *, calib_steps: int, use_fraction: float,
                      warm_steps: int = 0, timed_intervals: int = 1) -> tuple[int, float]:
    """Returns `(total_steps, steps_per_second)` for a run of `cfg` (whose `total_steps` must exceed the steps timed
    here) that fits `minutes` from this call on, using `use_fraction` of the time left (the rest is for evals,
    checkpoints and a busy machine).

    `warm_steps=0`: trains `calib_steps` steps in `workdir` itself (the run's first steps; the result is at least
    `calib_steps + 10`). `warm_steps > 0`: trains `warm_steps` (rounded up to a multiple of `calib_steps`) +
    `timed_intervals` x `calib_steps` steps in `workdir/calibration`, takes the rate of the slowest of those
    intervals, removes that folder and leaves `workdir` untouched; the result is at least `calib_steps + 10`."""
    from exif_jax.train.trainer import train as run_train

    t0 = time.time()
    # timed intervals: several after a warm start; without one, the second half of the run's own first steps
    intervals = max(int(timed_intervals), 1) if warm_steps > 0 else 1
    workdir = pathlib.Path(workdir)
    cfg.eval_every = 0
    if warm_steps <= 0:  # the run's own first steps: they count towards its length
        run_dir, n, done = workdir, calib_steps, calib_steps
        cfg.log_every = max(calib_steps // 2, 1)  # the rate of the second half excludes the first step's compile
        cfg.checkpoint_every = calib_steps  # the run resumes from here
    else:  # a throwaway run: nothing of it is kept
        run_dir, done = workdir / CALIBRATION_DIR, 0
        n = (math.ceil(warm_steps / calib_steps) + intervals) * calib_steps
        cfg.log_every = calib_steps  # the last logged intervals are the timed ones
        cfg.checkpoint_every = 10 * n  # nothing saved
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted calibration's leftovers: never resumed from
    try:
        run_train(cfg, str(run_dir), stop_after=n)
        rate = _last_rate(run_dir, int(cfg.batch_size), intervals)
    finally:
        if run_dir != workdir:
            shutil.rmtree(run_dir, ignore_errors=True)
    left = max(minutes * 60.0 - (time.time() - t0), 0.0)
    return max(done + int(use_fraction * left * rate), calib_steps + 10), rate
