"""Exact resume: `exif-jax train` killed with SIGKILL at a random step and restarted in the same workdir logs the
same losses and ends with the same parameters as an uninterrupted run (real grain pipeline over ingested photos,
orbax async checkpoints, 2 fake CPU devices per process). Also: config typos fail with one clear line."""
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = REPO / "exif_jax" / "assets" / "quickstart" / "photos"
STEPS = 9


def _env(devices=2, cache=None):
    env = dict(os.environ)
    # -O0 backend: compiles twice as fast; every run of a comparison uses the same flags.
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0",
               JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "photos"
    subprocess.run([sys.executable, "-m", "exif_jax.cli", "ingest", "--images", str(PHOTOS), "--out", str(out),
                    "--shards", "2", "--workers", "0", "--renderer", "clean", "--quiet"],
                   check=True, env=_env(1), cwd=REPO, capture_output=True)
    assert (out / "dataset_info.json").is_file()
    return out


def _cmd(workdir, data):
    return [sys.executable, "-m", "exif_jax.cli", "train", "--config", "configs/smoke.py:runlocal",
            "--workdir", str(workdir), f"--config.data.path={data}", f"--config.total_steps={STEPS}",
            "--config.checkpoint_every=3", "--config.log_every=1", "--config.eval_every=0",
            "--config.batch_size=8", "--config.data.max_text_len=32", "--config.model.vit.variant=mu/8",
            "--config.model.image_size=32", "--config.data.crop=32", "--config.data.shuffle_window=8"]


def _losses(workdir):
    rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_kill9_then_restart_equals_uninterrupted(dataset, tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    ref = subprocess.Popen(_cmd(ref_dir, dataset), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    kill_at = random.Random(os.getpid()).randint(4, STEPS - 2)  # checkpoints at 3, 6, 9
    cache = tmp_path / "jax_cache"  # the restart reuses the killed run's compiled step
    victim = subprocess.Popen(_cmd(run_dir, dataset), env=_env(cache=cache), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    seen, killed_at = [], None

    def finalized_checkpoint() -> bool:  # async saves: a step's directory gets its plain name once committed
        ckpt = run_dir / "checkpoints"
        return ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())

    for line in victim.stdout:
        seen.append(line)
        step = re.match(r"step (\d+)/", line)
        # kill at the drawn step, or later if no checkpoint is committed yet (else the restart starts from 0)
        if step and int(step.group(1)) >= kill_at and finalized_checkpoint():
            killed_at = int(step.group(1))
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=300)
    assert killed_at is not None and victim.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert max(_losses(run_dir)) == killed_at
    restart = subprocess.run(_cmd(run_dir, dataset), env=_env(cache=cache), cwd=REPO, capture_output=True, text=True,
                             timeout=300)
    assert restart.returncode == 0, restart.stdout[-2000:] + restart.stderr[-2000:]
    assert "resumed from step" in restart.stdout
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-3000:]

    ref_losses, run_losses = _losses(ref_dir), _losses(run_dir)
    assert sorted(ref_losses) == sorted(run_losses) == list(range(1, STEPS + 1))
    for s in ref_losses:
        assert run_losses[s] == pytest.approx(ref_losses[s], rel=1e-6, abs=0), s

    from flax import nnx

    from exif_jax.train.checkpointing import restore_model

    cfg_a, model_a = restore_model(ref_dir)
    _, model_b = restore_model(run_dir)
    assert cfg_a.vit.variant == "mu/8"
    flat_a, flat_b = dict(nnx.to_flat_state(nnx.state(model_a))), dict(nnx.to_flat_state(nnx.state(model_b)))
    assert flat_a.keys() == flat_b.keys()
    for k in flat_a:
        np.testing.assert_allclose(np.asarray(flat_b[k][...]), np.asarray(flat_a[k][...]), rtol=1e-6, atol=0,
                                   err_msg="/".join(map(str, k)))
    # `exif_jax.load(workdir)` (models' API) goes through restore_model and encodes with the trained weights
    import exif_jax

    loaded = exif_jax.load(str(ref_dir))
    emb = loaded.encode_texts(["Make: Canon, Model: Canon EOS 20D"])
    assert emb.shape == (1, int(cfg_a.embed_dim)) and np.isfinite(emb).all()
    # It trained on 32-token batches: a longer text is cut at 32 tokens, as its training texts were, not encoded
    # through position embeddings training never reached (reference: the tokenizer's own cut at 32).
    long_text = ", ".join(f"Tag {i}: value {i}" for i in range(40))
    assert loaded.trained_text_len == 32 and len(loaded.tokenizer.encode([long_text])["input_ids"][0]) > 32
    ref = loaded.tokenizer.encode([long_text], max_len=32)
    np.testing.assert_allclose(loaded.encode_texts([long_text]),
                               loaded.encode_tokens(ref["input_ids"], ref["attention_mask"]), rtol=1e-5, atol=1e-6)
    assert loaded.untrained(0).trained_text_len == 32
    # `model.init_from` (start a new run from trained weights) copies them into a fresh train state
    import jax

    from exif_jax.train import checkpointing, mesh as mesh_lib, state as state_lib

    cfg = checkpointing.read_config(ref_dir)
    cfg.model.init_from, cfg.mesh.data, cfg.mesh.fsdp = str(ref_dir), 1, 1
    mesh = mesh_lib.make_mesh(cfg.mesh, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        spec = state_lib.state_spec(cfg, mesh)
        init_model, opt = nnx.merge(spec.graphdef, state_lib.init_state(cfg, mesh, spec))
    flat_i = dict(nnx.to_flat_state(nnx.state(init_model, nnx.Param)))
    for k in flat_i:
        np.testing.assert_array_equal(np.asarray(flat_i[k][...]), np.asarray(flat_a[k][...]))
    assert int(opt.step[...]) == 0
    # the restored model is the trained one, not a fresh init
    fresh = dict(nnx.to_flat_state(nnx.state(type(model_a)(cfg_a, rngs=nnx.Rngs(0)))))
    k = next(k for k in flat_a if "kernel" in "/".join(map(str, k)))
    assert not np.allclose(np.asarray(fresh[k][...]), np.asarray(flat_a[k][...]))


@pytest.mark.parametrize("args,needle", [
    (["--config.optim.lrr=1"], "lrr"),
    (["--config", "configs/smoke.py:runlocl"], "unknown config arg 'runlocl'"),
])
def test_config_typos_fail_with_one_line(tmp_path, args, needle):
    base = ["--config", "configs/smoke.py:runlocal", "--workdir", str(tmp_path)]
    if args[0] == "--config":
        base = base[2:]
    r = subprocess.run([sys.executable, "-m", "exif_jax.cli", "train", *base, *args], env=_env(1), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("exif-jax train:") and needle in last, r.stderr[-1000:]


def test_views_train_end_to_end_and_a_bad_value_is_one_line(dataset, tmp_path):
    """data.views=2 with the within-photo term through the real pipeline and trainer: it trains, logs image
    crops/s = 2x examples/s, and its workdir loads for inference; data.views=0, or view_consistency without
    views, stops with one line naming the key."""
    import exif_jax

    work = tmp_path / "views"
    cmd = _cmd(work, dataset)
    cmd[cmd.index(f"--config.total_steps={STEPS}")] = "--config.total_steps=3"
    r = subprocess.run([*cmd, "--config.data.views=2", "--config.view_consistency=1.0"], env=_env(2), cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines()]
    timed = [x for x in rows if "samples_per_sec" in x]
    assert timed and all(x["crops_per_sec"] == pytest.approx(2 * x["samples_per_sec"]) for x in timed)
    assert all(np.isfinite(x["loss"]) for x in rows if "loss" in x)
    assert exif_jax.load(str(work)).encode_images(np.zeros((2, 32, 32, 3), np.uint8)).shape[0] == 2
    bad = subprocess.run([*_cmd(tmp_path / "bad", dataset), "--config.data.views=0"], env=_env(1), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("exif-jax train:") and "data.views=0" in last, bad.stderr[-1000:]
    bad = subprocess.run([*_cmd(tmp_path / "bad2", dataset), "--config.view_consistency=1.0"], env=_env(1),
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("exif-jax train:") and "view_consistency=1.0 needs data.views >= 2" in last, \
        bad.stderr[-1000:]
