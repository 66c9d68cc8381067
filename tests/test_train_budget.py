"""`exif_jax.train.budget.steps_for_minutes`: the run length from a timed start, with a stand-in trainer that logs
a known rate (the arithmetic is checked against the rate and the budget, not against the helper's own output)."""
from __future__ import annotations

import json
import pathlib

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


def test_steps_for_minutes_after_a_warm_start_times_the_last_steps_in_a_throwaway_folder(tmp_path, monkeypatch):
    calls = []

    def fake_train(cfg, workdir, stop_after=None):
        calls.append((workdir, stop_after, cfg.log_every, cfg.checkpoint_every, cfg.eval_every))
        wd = tmp_path / "run" / "calibration"
        assert workdir == str(wd)
        wd.mkdir(parents=True)
        # the cold first pass is slow, the warm interval at the end is 4x faster: only the last row counts
        rows = [{"step": 10, "samples_per_sec": 40.0}, {"step": 20, "samples_per_sec": 40.0},
                {"step": 30, "samples_per_sec": 160.0}]
        (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (wd / "checkpoints").mkdir()

    monkeypatch.setattr("exif_jax.train.trainer.train", fake_train)
    cfg = ml_collections.ConfigDict({"batch_size": 16, "total_steps": 1000, "log_every": 1, "checkpoint_every": 1,
                                     "eval_every": 5})
    (tmp_path / "run" / "calibration").mkdir(parents=True)  # an interrupted calibration's leftovers
    (tmp_path / "run" / "calibration" / "metrics.jsonl").write_text('{"step": 10, "samples_per_sec": 1.0}\n')
    steps, rate = budget.steps_for_minutes(cfg, tmp_path / "run", 2.0, calib_steps=10, use_fraction=0.5,
                                           warm_steps=15)
    assert rate == 160.0 / 16  # steps/s of the last 10 steps, after the warm start
    # warm_steps 15 -> 20 (a multiple of the timed 10), + 10 timed: one call of 30 steps, logging every 10
    assert calls == [(str(tmp_path / "run" / "calibration"), 30, 10, 300, 0)]
    # the real run starts from step 0: 2 minutes (minus the stand-in's near-zero time), half used at 10 steps/s
    assert 595 <= steps <= 600
    assert list((tmp_path / "run").iterdir()) == []  # the throwaway folder is gone; the workdir holds nothing
    # no time left: still the timed steps plus 10
    calls.clear()
    assert budget.steps_for_minutes(cfg, tmp_path / "run", 0.0, calib_steps=10, use_fraction=0.5,
                                    warm_steps=15)[0] == 20


def test_steps_for_minutes_keeps_the_slowest_of_several_timed_intervals(tmp_path, monkeypatch):
    """`timed_intervals=3` (eval.learning): 3 intervals after the warm start are timed and the slowest counts; one
    fast interval alone would overrun the budget."""
    calls = []

    def fake_train(cfg, workdir, stop_after=None):
        calls.append((stop_after, cfg.log_every))
        wd = pathlib.Path(workdir)
        wd.mkdir(parents=True)
        rows = [{"step": 10, "samples_per_sec": 40.0}, {"step": 20, "samples_per_sec": 40.0},
                {"step": 30, "samples_per_sec": 160.0}, {"step": 40, "samples_per_sec": 120.0},
                {"step": 50, "samples_per_sec": 200.0}]
        (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    monkeypatch.setattr("exif_jax.train.trainer.train", fake_train)
    cfg = ml_collections.ConfigDict({"batch_size": 16, "total_steps": 1000, "log_every": 1, "checkpoint_every": 1,
                                     "eval_every": 5})
    steps, rate = budget.steps_for_minutes(cfg, tmp_path / "run", 2.0, calib_steps=10, use_fraction=0.5,
                                           warm_steps=15, timed_intervals=3)
    assert calls == [(50, 10)]  # warm 15 -> 20, + 3 x 10 timed
    assert rate == 120.0 / 16  # the slowest of the last three intervals, not the last (200) nor the cold ones (40)
    assert 446 <= steps <= 450  # 2 minutes, half used, at 7.5 steps/s
    assert not (tmp_path / "run" / "calibration").exists()
