"""Fit a training run into a time budget: time a few steps, then fix the run length.

Used by the quickstart and `eval.learning`. The timed steps are the run's own first steps (same workdir; a later
`train` resumes from them), so they must lie inside the LR warmup, which does not depend on the run length: the
finished run then equals one started with its final length.
"""
from __future__ import annotations

import json
import pathlib
import time


def steps_for_minutes(cfg, workdir, minutes: float, *, calib_steps: int, use_fraction: float) -> tuple[int, float]:
    """Trains `calib_steps` steps of `cfg` (whose `total_steps` must exceed them) in `workdir` and returns
    `(total_steps, steps_per_second)`: the steps that fit `minutes` from this call on, using `use_fraction` of the
    time left (the rest is for evals, checkpoints and a busy machine), and at least `calib_steps + 10`."""
    from exif_jax.train.trainer import train as run_train

    t0 = time.time()
    cfg.log_every = max(calib_steps // 2, 1)  # the rate of the second half excludes the first step's compile
    cfg.checkpoint_every = calib_steps
    cfg.eval_every = 0
    run_train(cfg, str(workdir), stop_after=calib_steps)
    path = pathlib.Path(workdir) / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
    rows = [r for r in rows if "samples_per_sec" in r]
    rate = rows[-1]["samples_per_sec"] / cfg.batch_size if rows else 1.0
    left = max(minutes * 60.0 - (time.time() - t0), 0.0)
    return max(calib_steps + int(use_fraction * left * rate), calib_steps + 10), rate
