"""eval.ablate: the photos-per-camera cap on a real prepared split, and the grid's orchestration (same seed, steps
scaled per variant, no zoo, one prepared data folder, resumable, report files) with eval.learning.run stood in for
by a recorder (the real run is the benchmark itself; its parts are tested in test_learning.py)."""
import collections
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from eval import ablate, learning

CAMERAS = ("Nikon__D90", "Sony__FD92", "Epson__PhotoPC_3100Z")  # 7-8 photos each in photos_multi


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("ablate")
    photos = root / "photos"
    photos.mkdir()
    for cam in CAMERAS:
        for p in sorted((shared_data / "photos_multi").glob(f"{cam}__*"))[:6]:
            (photos / p.name).write_bytes(p.read_bytes())
    learning.prepare(root / "prepared", [photos], (), eval_fraction=0.3, seed=0, log=lambda m: None)
    return root, photos


def _cams(records):
    return collections.Counter(learning._camera(r) for r in records)


@pytest.mark.parametrize("k", [1, 2])
def test_cap_keeps_held_out_photos_and_at_most_k_training_photos_per_camera(prepared, tmp_path, k):
    from exif_jax.data.pipeline import list_shards
    from exif_jax.data.tfrecord import read_records

    src = prepared[0] / "prepared" / "data"
    dst = tmp_path / f"cap{k}"
    summary = ablate.cap_training_photos(src, dst, k, seed=0)
    before, after = learning._read_split(src, "train"), learning._read_split(dst, "train")
    n_before, n_after = _cams(before), _cams(after)
    assert set(n_after) == set(n_before) and len(n_before) == len(CAMERAS)
    assert all(n_after[c] == min(k, n_before[c]) for c in n_before), (n_before, n_after)
    assert all(n_before[c] > k for c in n_before)  # the cap really drops photos here
    # kept records are byte-identical copies of original training records
    raw_before = {bytes(r) for s in sorted(src.glob("train-*.tfrecord")) for r in read_records(s)}
    raw_after = [bytes(r) for s in list_shards(dst, "train", "tfrecord") for r in read_records(s)]
    assert len(raw_after) == len(after) and set(raw_after) <= raw_before
    # the held-out set is the same file
    for shard in src.glob("eval-*.tfrecord"):
        assert (dst / shard.name).resolve() == shard.resolve()
    assert [r["photo_id"] for r in learning._read_split(dst, "eval")] == \
        [r["photo_id"] for r in learning._read_split(src, "eval")]
    split = json.loads((dst / "split.json").read_text())
    assert summary["train"] == split["train"] == len(after)
    assert sum(it["split"] == "dropped" for it in split["items"]) == len(before) - len(after)
    info = json.loads((dst / "dataset_info.json").read_text())
    assert info["splits"]["train"]["records"] == len(after) and info["splits"]["eval"] == \
        json.loads((src / "dataset_info.json").read_text())["splits"]["eval"]


def _with_one_camera_relabelled_zoo(prepared, tmp_path):
    """A copy of the prepared data whose first training camera is kind `zoo` in split.json; -> (folder, training
    records, that camera, its photo ids)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(prepared[0] / "prepared" / "data", src)
    split = json.loads((src / "split.json").read_text())
    before = learning._read_split(src, "train")
    zoo_cam = learning._camera(before[0])
    zoo_ids = {r["photo_id"] for r in before if learning._camera(r) == zoo_cam}
    for it in split["items"]:
        if it["photo_id"] in zoo_ids:
            it["kind"] = "zoo"
    (src / "split.json").write_text(json.dumps(split))
    return src, before, zoo_cam, zoo_ids


def test_cap_with_kinds_keeps_the_other_kinds_whole(prepared, tmp_path):
    """`eval.learning --max-train-per-camera` caps only real cameras (`kinds=("camera",)`): the training photos of
    any other kind in split.json (zoo renders, natural photos) are all kept. Here one camera is relabelled `zoo`."""
    src, before, zoo_cam, zoo_ids = _with_one_camera_relabelled_zoo(prepared, tmp_path)
    summary = ablate.cap_training_photos(src, tmp_path / "cap", 1, seed=0, kinds=("camera",))
    n_before, n_after = _cams(before), _cams(learning._read_split(tmp_path / "cap", "train"))
    assert n_after[zoo_cam] == n_before[zoo_cam] > 1
    assert all(n_after[c] == 1 for c in n_before if c != zoo_cam), n_after
    assert summary["max_train_per_camera_kinds"] == ["camera"]
    assert summary["dropped"] == sum(n for c, n in n_before.items() if c != zoo_cam) - (len(n_before) - 1)


def test_cap_choice_depends_on_the_seed_and_rejects_k_below_1(prepared, tmp_path):
    src = prepared[0] / "prepared" / "data"
    picks = set()
    for seed in range(4):
        ablate.cap_training_photos(src, tmp_path / f"s{seed}", 1, seed=seed)
        picks.add(tuple(sorted(r["photo_id"] for r in learning._read_split(tmp_path / f"s{seed}", "train"))))
    assert len(picks) > 1
    with pytest.raises(ablate.AblationError, match="must be >= 1"):
        ablate.cap_training_photos(src, tmp_path / "zero", 0)


def test_repeat_writes_each_chosen_photo_r_times_spread_over_the_epoch_and_the_others_once(prepared, tmp_path):
    """`eval.learning --camera-repeat 2` (eval.training_mix): every real-camera training record twice, byte for byte,
    a zoo record once, the held-out shard the same file; the evaluation counts each photo once."""
    from exif_jax.data.pipeline import list_shards
    from exif_jax.data.tfrecord import read_records
    from eval.training_mix import MixError, training_mix

    src, before, zoo_cam, zoo_ids = _with_one_camera_relabelled_zoo(prepared, tmp_path)
    dst = tmp_path / "rep"
    summary = training_mix(src, dst, repeat=2, kinds=("camera",), seed=0)
    raw_before = collections.Counter(bytes(r) for s in sorted(src.glob("train-*.tfrecord")) for r in read_records(s))
    raw_after = [bytes(r) for s in list_shards(dst, "train", "tfrecord") for r in read_records(s)]
    after = learning._read_split(dst, "train")
    copies = collections.Counter(r["photo_id"] for r in after)
    assert set(raw_after) == set(raw_before) and all(n == 1 for n in raw_before.values())
    assert all(copies[r["photo_id"]] == (1 if r["photo_id"] in zoo_ids else 2) for r in before), copies
    assert len(after) == 2 * len(before) - len(zoo_ids) == summary["train_records"]
    assert summary["train"] == len(before) and summary["repeat"] == 2 and summary["repeat_kinds"] == ["camera"]
    info = json.loads((dst / "dataset_info.json").read_text())
    assert info["counts"]["train"] == info["splits"]["train"]["records"] == len(after)
    # the copies are spread over the epoch, not appended after it: some second copy comes before some first one
    seen, first_at, second_at = set(), [], []
    for i, r in enumerate(after):
        (second_at if r["photo_id"] in seen else first_at).append(i)
        seen.add(r["photo_id"])
    assert min(second_at) < max(first_at), (first_at, second_at)
    for shard in src.glob("eval-*.tfrecord"):
        assert (dst / shard.name).resolve() == shard.resolve()
    ev = learning.Evaluation(tmp_path, dst, crop=64, crops=1, pairs=10, splices=0, transfer=False, log=lambda m: None)
    assert sorted(r["photo_id"] for r in ev.train_recs) == sorted(r["photo_id"] for r in before)
    with pytest.raises(MixError, match="repeat 0: must be >= 1"):
        training_mix(src, tmp_path / "zero", repeat=0)


def _fake_result(vdir: pathlib.Path, steps: int, config_arg: str, rng) -> dict:
    """What eval.learning.run returns, with numbers drawn at random (the table must carry them unchanged)."""
    split = json.loads((vdir / "data" / "split.json").read_text())
    data = {k: v for k, v in split.items() if k != "items"}

    def scores(label):
        return {"label": label, "camera": {"photo_top1": rng.random(), "patch_top1": rng.random(), "photos": 9,
                                           "cameras": 3, "chance_top1": 1 / 3},
                "pair_auc": rng.random(),
                "cross_camera_splices": {"model": {"pmap": rng.random(), "det_auc": rng.random()},
                                         "random_map": {"pmap": rng.random()}}}

    res = {"data": data, "train": {"steps": steps, "config_arg": config_arg, "seconds": 1.0, "first_loss": 3.0,
                                   "last_loss": 2.0},
           "trained": scores(f"real_cameras step {steps}"), "untrained": scores("untrained (seed 0)")}
    (vdir / "learning.json").write_text(json.dumps(res))
    return res


def test_grid_runs_every_variant_alike_but_for_its_factor_and_reports_each_number(prepared, tmp_path, monkeypatch):
    root, photos = prepared
    out = tmp_path / "grid"
    (out / "prepared").mkdir(parents=True)
    (out / "prepared" / "data").symlink_to(root / "prepared" / "data", target_is_directory=True)
    calls, rng = [], np.random.default_rng(0)

    def fake_run(vdir, **kw):
        vdir = pathlib.Path(vdir)
        calls.append(dict(kw, name=vdir.name, train=len(learning._read_split(vdir / "data", "train")),
                          eval=[r["photo_id"] for r in learning._read_split(vdir / "data", "eval")]))
        return _fake_result(vdir, kw["steps"], kw["config_arg"], rng)

    monkeypatch.setattr(learning, "run", fake_run)
    doc = ablate.run_grid(out, steps=40, photos=[photos], natural=(), seed=3, log=lambda m: None)
    by = {c["name"]: c for c in calls}
    assert list(by) == [v.name for v in ablate.VARIANTS]
    assert {c["zoo"] for c in calls} == {0} and {c["seed"] for c in calls} == {3}
    assert {c["transfer"] for c in calls} == {False}
    assert [by[n]["steps"] for n in ("baseline", "photos_2", "photos_1", "crop_96", "width_24", "steps_half",
                                     "steps_double", "seed_1")] == [40, 40, 40, 40, 40, 20, 80, 40]
    rgb = "filter=none,text_len=256,views=1,consist=0"  # the RGB tower at the settings the grid was measured with
    assert by["seed_1"]["config_arg"] == f"{rgb},seed=1"
    assert by["crop_96"]["config_arg"] == f"{rgb},crop=96"
    assert by["width_24"]["config_arg"] == f"{rgb},width=24"
    assert by["baseline"]["config_arg"] == by["steps_half"]["config_arg"] == rgb
    assert by["highpass"]["config_arg"] == "filter=highpass,text_len=256,views=1,consist=0"
    assert by["rgb_highpass_seed_1"]["config_arg"] == "filter=rgb+highpass,text_len=256,views=1,consist=0,seed=1"
    assert len({tuple(c["eval"]) for c in calls}) == 1  # every variant is scored on the same held-out photos
    n_train = len(learning._read_split(root / "prepared" / "data", "train"))
    assert by["photos_2"]["train"] == 2 * len(CAMERAS) < n_train and by["photos_1"]["train"] == len(CAMERAS)
    assert all(c["train"] == n_train for c in calls if not c["name"].startswith("photos_"))
    # every number of every variant reaches json, table and plot unchanged
    md = (out / "ablations.md").read_text()
    for row in doc["variants"]:
        res = json.loads((out / "runs" / row["name"] / "learning.json").read_text())
        t, u = res["trained"], res["untrained"]
        cell = f"**{t['pair_auc']:.3f}** / {u['pair_auc']:.3f} / 0.500"
        assert cell in md, cell
        pm = t["cross_camera_splices"]
        assert f"**{pm['model']['pmap']:.3f}** / {u['cross_camera_splices']['model']['pmap']:.3f} / " \
               f"{pm['random_map']['pmap']:.3f}" in md
        assert row["metrics"]["camera top-1, whole photo"]["untrained"] == u["camera"]["photo_top1"]
    assert (out / "ablations.png").stat().st_size > 10000
    # a rerun reuses finished variants; a changed step count reruns them
    calls.clear()
    ablate.run_grid(out, steps=40, photos=[photos], natural=(), seed=3, log=lambda m: None)
    assert calls == []
    ablate.run_grid(out, steps=40, only=["crop_96"], photos=[photos], natural=(), seed=3, log=lambda m: None)
    assert calls == []
    assert [r["name"] for r in json.loads((out / "ablations.json").read_text())["variants"]] == \
        [v.name for v in ablate.VARIANTS]  # --only adds to the grid's report, never shrinks it
    ablate.run_grid(out, steps=30, only=["steps_half"], photos=[photos], natural=(), seed=3, log=lambda m: None)
    assert [(c["name"], c["steps"]) for c in calls] == [("steps_half", 15)]
    assert [r["name"] for r in json.loads((out / "ablations.json").read_text())["variants"]] == ["steps_half"]


def test_cli_usage_errors_are_one_line_exit_2(tmp_path):
    cwd = str(pathlib.Path(__file__).resolve().parents[1])
    for args, needle in ((["--only", "nope"], "nope: unknown variant"), (["--steps", "0"], "--steps 0")):
        r = subprocess.run([sys.executable, "-m", "eval.ablate", "--out", str(tmp_path / "o"), *args],
                           capture_output=True, text=True, timeout=60, cwd=cwd)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().count("\n") == 0 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_learning_evaluation_without_transfer_builds_no_same_content_splices(tmp_path, shared_data):
    """eval.ablate runs eval.learning with transfer=False: the held-out natural photos are there, but no
    same-content splices are made or scored; the cross-camera splices still are."""
    cams, nat = tmp_path / "cams", tmp_path / "natural"
    cams.mkdir()
    nat.mkdir()
    for cam in CAMERAS[:2]:
        for p in sorted((shared_data / "photos_multi").glob(f"{cam}__*"))[:3]:
            (cams / p.name).write_bytes(p.read_bytes())
    for name in ("FujiFilm DS-7 (1).jpg", "FujiFilm DX-5.jpg", "Sony DigitalMavica.jpg",
                 "FujiFilm FinePix1400Zoom (2).jpg"):  # small natural photos of four cameras
        (nat / name).write_bytes((shared_data / "photos_dev" / "metadata_extractor" / "images" / name).read_bytes())
    out = tmp_path / "run"
    summary = learning.prepare(out, [cams], [nat], eval_fraction=0.5, seed=0, log=lambda m: None)
    assert summary["eval_natural"] >= 1
    ev = learning.Evaluation(out, out / "data", crop=64, crops=2, pairs=20, splices=2, transfer=False,
                             log=lambda m: None)
    assert ev.natural_eval and ev.splice_root is not None
    assert ev.same_content_root is None and ev.same_content_edits_root is None
    assert not any(p.name.startswith("same_content") for p in (out / "splices").iterdir())


def test_variant_config_args_reach_the_real_cameras_config():
    from configs import real_cameras

    base = real_cameras.get_config("filter=none,text_len=256,views=1,consist=0")  # the grid's baseline, as measured

    def knobs(c):
        return {"seed": c.seed, "image_size": c.data.crop, "width": c.model.resnet.width,
                "filter": c.model.image_filter, "text_len": c.data.max_text_len, "views": c.data.views,
                "consist": c.view_consistency}

    rgb = "filter=none,text_len=256,views=1,consist=0"
    expected = {rgb: set(), f"{rgb},crop=96": {"image_size"}, f"{rgb},width=24": {"width"},
                f"{rgb},seed=1": {"seed"}, f"{rgb},crop=96,seed=1": {"image_size", "seed"},
                "filter=highpass,text_len=256,views=1,consist=0": {"filter"},
                "filter=rgb+highpass,text_len=256,views=1,consist=0": {"filter"},
                "filter=rgb+highpass,text_len=256,views=1,consist=0,seed=1": {"filter", "seed"}}
    for v in ablate.VARIANTS:
        c = real_cameras.get_config(v.config_arg or None)
        changed = {k for k, x in knobs(c).items() if x != knobs(base)[k]}
        assert changed == expected[v.config_arg], (v.name, changed)
    # the config's own defaults moved on since the grid (so the pins above are not no-ops)
    assert {k for k, x in knobs(real_cameras.get_config(None)).items() if x != knobs(base)[k]} == \
        {"filter", "text_len", "views", "consist"}
    assert real_cameras.get_config("crop=96").model.image_size == 96


def test_pair_sample_is_the_same_in_every_process():
    """Variants are scored in different processes: their crop pairs must not depend on Python's string hashing."""
    code = ("from eval import learning; cams = [f'Camera {i % 7} / Model {i % 5}' for i in range(40)]; "
            "print(learning.sample_pairs(cams, [4] * 40, 200, 0).tolist())")
    cwd = str(pathlib.Path(__file__).resolve().parents[1])
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd,
                           env={**__import__("os").environ, "PYTHONHASHSEED": str(s)}).stdout for s in (1, 2, 3)}
    assert len(outs) == 1 and len(next(iter(outs))) > 100, outs
