"""`exif_jax.train.budget.steps_for_minutes`: the run length from a timed start, with a stand-in trainer that logs
a known rate (the arithmetic is checked against the rate and the budget, not against the helper's own output)."""
from __future__ import annotations

import json

import ml_collections

from exif_jax.train import budget


def test_steps_for_minutes_fits_the_budget_at_the_logged_rate(tmp_path, monkeypatch):
    calls = []

    def fake_train(cfg, workdir, stop_after=None):
        calls.append((dict(cfg), workdir, stop_after))
        rows = [{"step": 5, "loss": 3.0, "samples_per_sec": 64.0}, {"step": 10, "loss": 2.9, "samples_per_sec": 80.0}]
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    monkeypatch.setattr("exif_jax.train.trainer.train", fake_train)
    cfg = ml_collections.ConfigDict({"batch_size": 16, "total_steps": 1000, "log_every": 1, "checkpoint_every": 1,
                                     "eval_every": 5})
    steps, rate = budget.steps_for_minutes(cfg, tmp_path, 2.0, calib_steps=10, use_fraction=0.5)
    assert rate == 80.0 / 16  # the last logged rate (after the first step's compile), per step
    # 2 minutes, minus the (near-zero) time of the stand-in, half of it used at 5 steps/s: 10 + ~300
    assert 305 <= steps <= 310
    assert calls == [(dict(cfg), str(tmp_path), 10)] and cfg.eval_every == 0 and cfg.checkpoint_every == 10
    # no time left: still the timed steps plus 10
    assert budget.steps_for_minutes(cfg, tmp_path, 0.0, calib_steps=10, use_fraction=0.5)[0] == 20
