"""Fault injection: every command run as users run it (a subprocess), fed the faults users hit.

Each fault asserts: the exit code (2 for usage errors), one line of ours naming the file or key, no traceback, and
nothing lost (checkpoints, config.json, metrics.jsonl, records, results: checksums before and after). One tiny
trained workdir (the smoke config `:runlocal`, 4 steps, checkpoints at 2 and 4, on an ingest of the bundled
photos) is shared by the module; faults that damage it work on copies. The catalogue with outcomes is
docs/FAULTS.md. Argument faults are found before JAX is imported, so most of them cost a fraction of a second.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import random
import re
import resource
import shutil
import signal
import subprocess
import time

import pytest

from faults_util import (PHOTOS, REPO, assert_fault, assert_no_traceback, cmd, env, our_lines, run,
                         same_safetensors, steps_of, tree_sums, workdir_sums)

TRAIN = ["--config", "smoke:runlocal", "--config.total_steps=4", "--config.checkpoint_every=2",
         "--config.log_every=2", "--config.eval_every=4", "--config.batch_size=8", "--config.data.max_text_len=32",
         "--config.data.crop=32", "--config.model.image_size=32", "--config.data.shuffle_window=8"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """`data` (ingest of the bundled photos), `work` (trained 4 steps), `cache` (JAX compilation cache)."""
    root = tmp_path_factory.mktemp("faults")
    data, work, cache = root / "data", root / "work", root / "jax_cache"
    r = run("ingest", "--images", PHOTOS, "--out", data, "--shards", "2", "--workers", "0", "--renderer", "clean",
            "--eval-fraction", "0.25", "--crop", "32", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("train", "--workdir", work, f"--config.data.path={data}", *TRAIN, env_=env(cache))
    assert r.returncode == 0, r.stderr[-3000:]
    assert_no_traceback(r)
    assert steps_of(work) == [2, 4]
    return {"root": root, "data": data, "work": work, "cache": cache, "train_out": r.stdout}


def copy_work(base, tmp_path, name="w") -> pathlib.Path:
    dst = tmp_path / name
    shutil.copytree(base["work"], dst)
    return dst


def train_args(base, workdir, *extra):
    return ["train", "--workdir", workdir, f"--config.data.path={base['data']}", *TRAIN, *extra]


# ------------------------------------------------------------------------------------------- argument faults
def test_argument_faults_are_one_line_usage_errors(base, tmp_path):
    """Faults found from the arguments alone: exit 2, one line naming the key or path, before anything is
    written (the trained workdir given as --workdir stays byte-identical)."""
    work, data = base["work"], base["data"]
    before = workdir_sums(work)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    bad_syntax = tmp_path / "bad_syntax.py"
    bad_syntax.write_text("def get_config(:\n")
    no_getter = tmp_path / "no_getter.py"
    no_getter.write_text("X = 1\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    tw = ["train", "--workdir"]
    cases = [  # (argv, needles)
        (["trian"], ["unknown command 'trian'", "exif-jax train"]),
        (["train", "--config", "smoke"], ["--workdir are required"]),
        (tw + [a_file, "--config", "smoke"], [str(a_file), "is a file"]),
        (tw + [a_file / "sub", "--config", "smoke"], [str(a_file), "is a file"]),
        (tw + ["/proc/exif_jax_run", "--config", "smoke"], ["/proc", "pseudo filesystem"]),
        (tw + [tmp_path / "n1", "--config", "smok"], ["smok", "did you mean 'smoke'"]),
        (tw + [tmp_path / "n2", "--config", str(tmp_path)], [str(tmp_path), "directory"]),
        (tw + [tmp_path / "n3", "--config", str(bad_syntax)], [str(bad_syntax), "syntax error"]),
        (tw + [tmp_path / "n4", "--config", str(no_getter)], [str(no_getter), "get_config"]),
        (tw + [tmp_path / "n5", "--config", "smoke:runlocl"], ["unknown config arg 'runlocl'"]),
        (tw + [tmp_path / "n6", "--config", "smoke:steps=many"], ["steps", "integer"]),
        (tw + [tmp_path / "n7", "--config", "smoke", "--config.data.pth=x"], ["data.pth", "data.path"]),
        (tw + [tmp_path / "n8", "--config", "smoke", "--config.batch_size=eight"], ["batch_size", "integer"]),
        (tw + [tmp_path / "n9", "--config", "smoke", "--config.model=1"], ["model", "group"]),
        (tw + [tmp_path / "n10", "--config", "smoke", "--config.nan_guard=maybe"], ["nan_guard", "boolean"]),
        (tw + [tmp_path / "n11", "--config"], ["--config needs a value"]),
        (tw + [tmp_path / "n12", "--config", "smoke", "--bogus-flag"], ["--bogus-flag"]),
        (tw + [tmp_path / "n13", "--config", "smoke", f"--config.data.path={tmp_path / 'nope'}"],
         ["nope", "exif-jax ingest"]),
        (tw + [tmp_path / "n14", "--config", "smoke", f"--config.data.path={PHOTOS}"],
         [str(PHOTOS), "folder of photos", "exif-jax ingest --images"]),
        (tw + [tmp_path / "n15", "--config", "smoke", f"--config.data.path={a_file}"], [str(a_file), "is a file"]),
        (tw + [tmp_path / "n16", "--config", "smoke", f"--config.data.path={empty}"], [str(empty), "dataset_info"]),
        (tw + [tmp_path / "n17", "--config", "smoke"], ["data.path is not set"]),
        # resuming the trained workdir with another model, or another optimizer: refused, config.json kept
        (tw + [work, "--config", "smoke:runlocal,tower=vit", f"--config.data.path={data}"],
         ["another model", "model.image_tower 'resnet50' -> 'vit'"]),
        (tw + [work, *TRAIN, "--config.optim.name=adam_l2", f"--config.data.path={data}"],
         ["another model", "optim.name"]),
        (tw + [work, *TRAIN, "--config.model.embed_dim=32", f"--config.data.path={data}"], ["model.embed_dim"]),
        (["compile", "--config", "smoke", "--topology", "v9z-4"], ["unknown topology 'v9z-4'"]),
        (["compile", "--config", "smoke"], ["--topology are required"]),
        (["configs", "smok"], ["smok", "did you mean"]),
        (["export", "--weights", work, "--format", "safetensors", "--out", a_file / "x.safetensors"],
         [str(a_file), "is a file"]),
        (["export", "--weights", work, "--format", "safetensors", "--out", "/proc/x.safetensors"], ["/proc"]),
        (["export", "--weights", tmp_path / "missing", "--format", "safetensors", "--out", tmp_path / "o.st"],
         ["missing", "no such file"]),
        (["export", "--weights", work, "--format", "safetensors", "--out", empty], [str(empty), "directory"]),
        (["export", "--weights", work, "--step", "-1", "--format", "safetensors", "--out", tmp_path / "o"],
         ["--step"]),
    ]
    failures = []
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # each is a short, mostly import-bound process
        results = list(pool.map(lambda case: run(*case[0], timeout=180), cases))
    for (argv, needles), r in zip(cases, results):
        try:
            assert_fault(r, 2, *needles)
        except AssertionError as e:
            failures.append(f"{argv}: {e}")
    assert not failures, "\n".join(failures)
    assert workdir_sums(work) == before
    assert not any((tmp_path / f"n{i}").exists() for i in range(1, 18))  # nothing created for refused runs
    assert not (pathlib.Path("/proc/exif_jax_run")).exists()


def test_cli_polish(tmp_path):
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(r"exif-jax \d+\.\d+\.\d+\n", r.stdout)
    r = run("configs")
    assert r.returncode == 0 and {"smoke", "paper_rn50", "vit_b16"} <= {l.split()[0] for l in
                                                                        r.stdout.splitlines() if l and l[0] != "("}
    # configs by name from any directory, --print-config shows the resolved config (overrides applied)
    r = run("train", "--config", "smoke:runlocal", "--config.optim.lr=0.5", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["config_name"] == "smoke" and cfg["optim"]["lr"] == 0.5 and cfg["total_steps"] == 30
    r = run("train", "--config", "configs/smoke.py", "--print-config", cwd=tmp_path)  # repo-relative, elsewhere
    assert r.returncode == 0 and json.loads(r.stdout)["total_steps"] == 700


# ------------------------------------------------------------------------------------------- exif
def test_exif_faults(tmp_path):
    good = PHOTOS / "Nikon_E885.jpg"
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:3000])  # breaks off inside the EXIF segment
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.jpg"
    text.write_text("not a jpeg")
    r = run("exif", cut)  # damaged: the items before the damage, and a warning naming the file
    assert_no_traceback(r)
    assert r.returncode == 0 and "40 items" in r.stdout
    msgs = our_lines(r)
    assert len(msgs) == 1 and str(cut) in msgs[0] and "damaged" in msgs[0]
    assert_fault(run("exif", empty), 1, str(empty), "no JPEG")
    assert_fault(run("exif", tmp_path / "missing.jpg"), 1, "missing.jpg", lines=2)  # the file, then the count
    r = run("exif", text, good)  # one bad file among good ones: the others are printed, exit 1
    assert r.returncode == 1 and "notes.jpg" in our_lines(r)[0] and "Nikon_E885.jpg: " in r.stdout
    garbage = tmp_path / "lines.tsv"
    garbage.write_text("this is\nnot a YFCC\tEXIF file\n")
    assert_fault(run("exif", "--yfcc", garbage), 1, str(garbage), "no YFCC EXIF line", lines=2)
    bad_table = tmp_path / "table.json"
    bad_table.write_text("{not json")
    r = run("exif", good, "--tag-table", bad_table, "--renderer", "legacy")
    assert_no_traceback(r)
    assert r.returncode in (1, 2) and len(our_lines(r)) == 1 and "table.json" in our_lines(r)[0]


# ------------------------------------------------------------------------------------------- export / load
def _export(base, weights, out, *extra, env_=None):
    return run("export", "--weights", weights, "--format", "safetensors", "--out", out, *extra,
               env_=env_ or env(base["cache"]))


def _damage_random_bytes(step_dir: pathlib.Path, rng: random.Random, n: int = 16) -> None:
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size > 64
             and p.name != "exif_jax_checksums.json"]
    for f in rng.sample(files, min(3, len(files))):
        data = bytearray(f.read_bytes())
        for _ in range(n):
            data[rng.randrange(len(data))] = rng.randrange(256)
        f.write_bytes(bytes(data))


def test_damaged_checkpoints_fall_back_to_the_newest_good_step(base, tmp_path):
    rng = random.Random(1234)
    faults = {
        "random bytes at random offsets": lambda d: _damage_random_bytes(d, rng),
        "a truncated array file": lambda d: _truncate_largest(d),
        "a deleted manifest": lambda d: (d / "state" / "manifest.ocdbt").unlink(),
        "an emptied metadata file": lambda d: (d / "state" / "_METADATA").write_bytes(b""),
    }
    ref = tmp_path / "ref.safetensors"
    assert _export(base, base["work"], ref, "--step", "2").returncode == 0
    for i, (what, damage) in enumerate(faults.items()):
        work = copy_work(base, tmp_path, f"w{i}")
        damage(work / "checkpoints" / "4")
        before = workdir_sums(work)
        out = tmp_path / f"out{i}" / "m.safetensors"
        r = _export(base, work, out)
        assert_no_traceback(r)
        assert r.returncode == 0, (what, r.stderr[-2000:])
        msgs = our_lines(r)
        assert len(msgs) == 1 and "checkpoints/4 is damaged" in msgs[0] and "trying step 2" in msgs[0], (what, msgs)
        assert "(step 2)" in r.stdout
        assert same_safetensors(out, ref), what  # exactly the step-2 weights
        assert workdir_sums(work) == before, what  # reading never moves or deletes anything


def _truncate_largest(step_dir: pathlib.Path) -> None:
    f = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_export_faults(base, tmp_path, monkeypatch):
    work = copy_work(base, tmp_path)
    before = workdir_sums(work)
    # every step damaged: one line, nothing written, nothing deleted
    for s in steps_of(work):
        _truncate_largest(work / "checkpoints" / str(s))
    damaged = workdir_sums(work)
    r = _export(base, work, tmp_path / "new" / "m.safetensors")
    assert_fault(r, 1, "no readable checkpoint", "step 4", "step 2", lines=3)  # 2 fallback notes + the error
    assert not (tmp_path / "new").exists()  # no empty output folder left behind
    assert workdir_sums(work) == damaged
    good = base["work"]
    # a step that does not exist: names the steps there are
    assert_fault(_export(base, good, tmp_path / "m.safetensors", "--step", "3"), 1, "no checkpoint at step 3",
                 "2, 4")
    assert not (tmp_path / "m.safetensors").exists()
    # the output exists and --force is not given: kept as it was
    existing = tmp_path / "existing.safetensors"
    existing.write_bytes(b"keep me")
    assert_fault(_export(base, good, existing), 1, str(existing), "--force")
    assert existing.read_bytes() == b"keep me"
    # a damaged config.json: one line naming it; the file stays for the user to restore
    broken = copy_work(base, tmp_path, "broken_config")
    (broken / "config.json").write_text("{ half a config")
    assert_fault(_export(base, broken, tmp_path / "b.safetensors"), 1, "config.json", "unreadable")
    assert (broken / "config.json").read_text() == "{ half a config"
    # PyTorch missing (a `torch` that cannot be imported shadows the real one): one line naming the extra
    shadow = tmp_path / "no_torch" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    no_torch = env(base["cache"], PYTHONPATH=f"{tmp_path / 'no_torch'}{os.pathsep}{REPO}")
    for fmt, out in (("original", tmp_path / "o.pth"), ("hf", tmp_path / "hf_out")):
        r = run("export", "--weights", good, "--format", fmt, "--out", out, env_=no_torch)
        assert_fault(r, 1, "exif-jax[torch]", f"--format {fmt}")
        assert not out.exists()
    fake_pth = tmp_path / "model.pth"
    fake_pth.write_bytes(b"PK")
    assert_fault(run("export", "--weights", fake_pth, "--format", "safetensors", "--out", tmp_path / "x.st",
                     env_=no_torch), 1, "exif-jax[torch]", "model.pth")
    # the narrow ResNet cannot take the original layout: said so, no file
    r = run("export", "--weights", good, "--format", "original", "--out", tmp_path / "narrow.pth",
            env_=env(base["cache"]))
    assert_fault(r, 1, "narrow ResNet")
    assert not (tmp_path / "narrow.pth").exists()
    # a full disk (file size limit): one line, no partial file, no empty folder
    out = tmp_path / "full" / "m.safetensors"
    r = _export_limited(base, good, out, limit=1 << 20)
    assert_fault(r, 1, "m.safetensors")
    assert not (tmp_path / "full").exists()
    # a good export: files 0644, the narrow ResNet named
    out = tmp_path / "ok" / "m.safetensors"
    r = _export(base, good, out)
    assert r.returncode == 0 and "resnet w16" in r.stdout
    assert oct(out.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    assert workdir_sums(base["work"]) == workdir_sums(good) and workdir_sums(work) == damaged


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG (a full disk)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _export_limited(base, weights, out, limit):
    return subprocess.run(cmd("export", "--weights", weights, "--format", "safetensors", "--out", out),
                          env=env(base["cache"]), cwd=REPO, capture_output=True, text=True, timeout=240,
                          preexec_fn=_limit_file_size(limit))


# ------------------------------------------------------------------------------------------- training
def _popen_train(base, workdir, *extra):
    return subprocess.Popen(cmd(*train_args(base, workdir, *extra)), env=env(base["cache"]), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_training_faults_lose_nothing(base, tmp_path):
    # 1. the newest checkpoint damaged: training resumes from the newest good step, sets the damaged one aside
    #    (kept, byte for byte), and goes on.
    work = copy_work(base, tmp_path)
    _damage_random_bytes(work / "checkpoints" / "4", random.Random(7))
    damaged = tree_sums(work / "checkpoints" / "4")
    r = run(*train_args(base, work, "--config.total_steps=6"), env_=env(base["cache"]))
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from step 2" in r.stdout and "is damaged" in r.stdout and "checkpoints_damaged" in r.stdout
    assert tree_sums(work / "checkpoints_damaged" / "4") == damaged
    assert steps_of(work) == [2, 4, 6]
    rows = [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if "loss" in x] == [2, 4, 6]  # the re-done steps logged once
    # 2. Ctrl-C during training: a checkpoint at the step reached, one line, exit 0
    work2 = copy_work(base, tmp_path, "w2")
    p = _popen_train(base, work2, "--config.total_steps=400", "--config.log_every=1", "--config.eval_every=0")
    _wait_for_step(p, 6)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in out + err and p.returncode == 0, (out[-1500:], err[-1500:])
    saved = int(re.search(r"Ctrl-C: saved checkpoint at step (\d+)", out).group(1))
    assert saved >= 6 and max(steps_of(work2)) == saved
    # 3. SIGTERM (preemption): the same
    p = _popen_train(base, work2, "--config.total_steps=400", "--config.log_every=1", "--config.eval_every=0")
    _wait_for_step(p, saved + 2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in out + err and p.returncode == 0, err[-1500:]
    saved2 = int(re.search(r"SIGTERM: saved checkpoint at step (\d+)", out).group(1))
    assert saved2 > saved and max(steps_of(work2)) == saved2
    # 4. kill -9 while checkpoints are written (one every step, asynchronously): the restart resumes from the
    #    newest committed step, which is at least the one committed before the kill.
    p = _popen_train(base, work2, "--config.total_steps=400", "--config.log_every=1", "--config.eval_every=0",
                     "--config.checkpoint_every=1")
    _wait_for_step(p, saved2 + 3)
    committed = max(steps_of(work2))
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    target = max(steps_of(work2)) + 2
    r = run(*train_args(base, work2, f"--config.total_steps={target}", "--config.eval_every=0"),
            env_=env(base["cache"]))
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = int(re.search(r"resumed from step (\d+)", r.stdout).group(1))
    assert resumed >= committed and max(steps_of(work2)) == target
    # 5. a full disk while saving (file size limit): one line, exit 1, the earlier checkpoints intact
    work3 = copy_work(base, tmp_path, "w3")
    before = {k: v for k, v in workdir_sums(work3).items() if k.startswith("checkpoints/")}
    r = subprocess.run(cmd(*train_args(base, work3, "--config.total_steps=6", "--config.eval_every=0")),
                       env=env(base["cache"]), cwd=REPO, capture_output=True, text=True, timeout=240,
                       preexec_fn=_limit_file_size(1 << 20))
    assert_no_traceback(r)
    assert r.returncode == 1 and len(our_lines(r)) == 1, r.stderr[-2000:]
    after = workdir_sums(work3)
    assert all(after.get(k) == v for k, v in before.items())  # steps 2 and 4 untouched
    r = run(*train_args(base, work3, "--config.total_steps=6", "--config.eval_every=0"), env_=env(base["cache"]))
    assert r.returncode == 0 and max(steps_of(work3)) == 6, r.stderr[-2000:]  # and it resumes once there is room


def _wait_for_step(p, step: int, timeout: float = 180) -> None:
    t0 = time.time()
    for line in p.stdout:
        m = re.match(r"step (\d+)/", line)
        if m and int(m.group(1)) >= step:
            return
        if time.time() - t0 > timeout:
            break
    p.kill()
    raise AssertionError(f"training did not reach step {step}: {p.stderr.read()[-2000:]}")


def test_untrained_control_and_small_eval_split(base):
    """The trainer evaluated the 10 held-out photos (fewer than one eval batch of 16: said once) and logged the
    untrained control at step 0 and the margin at the eval step."""
    out = base["train_out"]
    assert out.count("fewer than the eval batch 16; evaluating them in one batch of 10") == 1
    rows = [json.loads(l) for l in (base["work"] / "metrics.jsonl").read_text().splitlines()]
    control = next(r for r in rows if r["step"] == 0)
    final = next(r for r in rows if r["step"] == 4)
    assert {"control_eval_top1", "control_eval_top5", "control_eval_loss"} <= set(control)
    assert final["eval_n"] == 10 and final["eval_top5_chance"] == 0.5
    assert abs(final["eval_top5_margin"] - (final["eval_top5"] - control["control_eval_top5"])) < 1e-9
    assert "vs untrained" in out


# ------------------------------------------------------------------------------------------- data
def test_data_faults(base, tmp_path):
    # a truncated TFRecord shard: training counts and skips what is lost, or stops with one line; never a traceback
    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    shard = sorted(data.glob("train-*.tfrecord"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    r = run("train", "--workdir", tmp_path / "w", f"--config.data.path={data}", *TRAIN,
            "--config.total_steps=2", "--config.eval_every=0", env_=env(base["cache"]))
    assert_no_traceback(r)
    assert r.returncode == 0 or (r.returncode == 1 and len(our_lines(r)) == 1), r.stderr[-2000:]
    # a dataset_info.json that is not JSON: one line naming it
    data2 = tmp_path / "data2"
    shutil.copytree(base["data"], data2)
    (data2 / "dataset_info.json").write_text("{oops")
    r = run("train", "--workdir", tmp_path / "w2", f"--config.data.path={data2}", *TRAIN, "--config.total_steps=2",
            env_=env(base["cache"]))
    assert_no_traceback(r)
    assert r.returncode in (1, 2) and len(our_lines(r)) == 1 and "dataset_info.json" in our_lines(r)[0], r.stderr
    assert (data2 / "dataset_info.json").read_text() == "{oops"
    # a crop larger than every photo: found when the data pipeline starts; one line, and the new workdir the
    # failed run would have left (logs, no checkpoint) is not left behind
    r = run("train", "--workdir", tmp_path / "w3", f"--config.data.path={base['data']}", *TRAIN,
            "--config.data.crop=4096", "--config.model.image_size=4096", env_=env(base["cache"]))
    assert_fault(r, 1, "crop 4096")
    assert not (tmp_path / "w3").exists()


def test_ingest_killed_mid_shard_resumes_to_the_same_records(tmp_path):
    src = REPO.parent / "shared" / "data" / "photos_dev" / "digicam_cc0"
    if not src.is_dir():
        pytest.fail(f"{src} is missing (the shared camera photos)")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    args = ["--images", src, "--shards", "3", "--workers", "0", "--renderer", "clean", "--quiet"]
    r = run("ingest", *args, "--out", clean)
    assert r.returncode == 0, r.stderr
    p = subprocess.Popen(cmd("ingest", *args, "--out", killed), env=env(), cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(random.Random(os.getpid()).uniform(0.8, 1.6))
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    r = run("ingest", *args, "--out", killed)
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr
    shards = lambda d: {k: v for k, v in tree_sums(d).items() if k.endswith(".tfrecord")}  # noqa: E731
    assert shards(killed) == shards(clean) and shards(clean)
    # a record file cut short after the fact: verification names it in one line
    victim = sorted(killed.glob("train-*.tfrecord"))[0]
    victim.write_bytes(victim.read_bytes()[:-7])
    r = subprocess.run([*cmd()[:2], "exif_jax.data.verify", str(killed)], env=env(), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert_no_traceback(r)
    assert r.returncode != 0 and victim.name in (r.stdout + r.stderr)
