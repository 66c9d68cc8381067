"""grain pipeline: crops vs an independent full Pillow decode, tokens vs ExifTokenizer, crop spreading, process
slicing, corrupt shards, exact resume through orbax, and the one-line errors."""
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from exif_jax.data import records, tfrecord
from exif_jax.data.pipeline import DataError, make_dataset, pipeline_counters

N_PHOTOS = 24
CROP = 32


def _write_dataset(root, n=N_PHOTOS, shards=3, split="train", fmt="tfrecord", seed=0):
    """Synthetic photos (noise JPEGs of varied sizes, unique text per photo) written straight through the record
    schema; returns {photo_id: (jpeg bytes, text)}."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos, recs = {}, [[] for _ in range(shards)]
    for k in range(n):
        w, h = int(rng.integers(CROP, 90)), int(rng.integers(CROP, 90))
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=85)
        pid, text = f"photo{k:03d}", f"make: cam{k} model: m{k}" + " iso: 100" * (k % 4)
        photos[pid] = (buf.getvalue(), text)
        recs[k % shards].append(records.make_record(image=buf.getvalue(), photo_id=pid, items=[], text=text, width=w,
                                                    height=h, make="cam", model=str(k), source=pid))
    for i, rs in enumerate(recs):
        name = root / f"{split}-{i:05d}-of-{shards:05d}.{fmt}"
        if fmt == "tfrecord":
            with tfrecord.TFRecordWriter(name) as wr:
                for r in rs:
                    wr.write(r)
        else:
            from array_record.python.array_record_module import ArrayRecordWriter

            wr = ArrayRecordWriter(str(name), "group_size:1")
            for r in rs:
                wr.write(r)
            wr.close()
    return photos


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    photos = _write_dataset(root / "tf")
    _write_dataset(root / "ar", fmt="array_record")
    return root, photos


@pytest.fixture(scope="module")
def tokenizer():
    from exif_jax.text.tokenizer import ExifTokenizer

    return ExifTokenizer()


def _take(ds, n):
    it = iter(ds)
    try:
        return [next(it) for _ in range(n)]
    finally:
        it.close()


def _identify(batch, photos, tokenizer, L):
    """photo id of every row, found through its token ids (texts are unique per photo)."""
    by_ids = {tuple(tokenizer.encode([t], max_len=L)["input_ids"][0]): pid for pid, (_, t) in photos.items()}
    return [by_ids[tuple(row)] for row in batch["input_ids"]]


def _cfg(path, **kw):
    return {"path": str(path), "shuffle_window": 8, "text_len": 16, **kw}


def test_batches_are_native_resolution_crops_and_tokenized_text(dataset, tokenizer):
    root, photos = dataset
    ds = make_dataset(_cfg(root / "tf"), global_batch_size=8, process_index=0, process_count=1, seed=3,
                      split="train", crop_size=CROP)
    batches = _take(ds, 6)
    decoded = {pid: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for pid, (b, _) in photos.items()}
    offsets_seen = set()
    for b in batches:
        assert b["image"].dtype == np.uint8 and b["image"].shape == (8, CROP, CROP, 3)
        assert b["input_ids"].dtype == np.int32 and b["input_ids"].shape == (8, 16)
        assert b["attention_mask"].dtype == np.int32 and b["attention_mask"].shape == (8, 16)
        for row, pid in enumerate(_identify(b, photos, tokenizer, 16)):
            ref = tokenizer.encode([photos[pid][1]], max_len=16)
            np.testing.assert_array_equal(b["attention_mask"][row], ref["attention_mask"][0])
            full = decoded[pid]
            # the crop must be a window of the full-resolution decode (no resize): find where
            hits = [(y, x) for y in range(full.shape[0] - CROP + 1) for x in range(full.shape[1] - CROP + 1)
                    if np.array_equal(full[y:y + CROP, x:x + CROP], b["image"][row])]
            assert hits, f"{pid}: crop is not a native-resolution window of the image"
            offsets_seen.add(hits[0])
    assert len(offsets_seen) > 20  # random offsets, not a fixed (center) crop


def test_same_seed_same_batches_other_seed_differs(dataset):
    root, _ = dataset
    kw = dict(global_batch_size=8, process_index=0, process_count=1, split="train", crop_size=CROP)
    a = _take(make_dataset(_cfg(root / "tf"), seed=1, **kw), 3)
    b = _take(make_dataset(_cfg(root / "tf"), seed=1, **kw), 3)
    c = _take(make_dataset(_cfg(root / "tf"), seed=2, **kw), 3)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


@pytest.mark.parametrize("fmt", ["tf", "ar"])
def test_crops_of_one_photo_never_share_a_batch(dataset, tokenizer, fmt):
    root, photos = dataset
    K, B = 3, 8
    ds = make_dataset(_cfg(root / fmt), global_batch_size=B, process_index=0, process_count=1, seed=0,
                      split="train", crop_size=CROP, crops_per_image=K, num_epochs=1)
    it = iter(ds)
    batches = list(it)
    it.close()
    counts = {}
    for b in batches:
        ids = _identify(b, photos, tokenizer, 16)
        assert len(set(ids)) == B, f"a batch holds two crops of one photo: {sorted(ids)}"
        for pid in ids:
            counts[pid] = counts.get(pid, 0) + 1
    # one epoch of 24 photos x 3 crops: every photo is used, each at most K times; only the first groups (crops
    # that would land before batch 0) and the last ones (crops for batches the finite epoch never fills) give fewer
    assert set(counts) == set(photos)
    assert max(counts.values()) == K and sum(v < K for v in counts.values()) <= 2 * B
    assert len(batches) == sum(counts.values()) // B


def test_views_are_crops_of_the_examples_own_photo(dataset, tokenizer):
    """data.views=V: every example holds V native-resolution windows of the photo its text belongs to, at
    independent offsets; examples of a batch still come from distinct photos."""
    root, photos = dataset
    V, K, B = 3, 2, 8
    ds = make_dataset(_cfg(root / "tf", views=V), global_batch_size=B, process_index=0, process_count=1, seed=4,
                      split="train", crop_size=CROP, crops_per_image=K)
    batches = _take(ds, 4)
    decoded = {pid: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for pid, (b, _) in photos.items()}
    distinct_views = 0
    for b in batches:
        assert b["image"].shape == (B, V, CROP, CROP, 3) and b["input_ids"].shape == (B, 16)
        ids = _identify(b, photos, tokenizer, 16)
        assert len(set(ids)) == B
        for row, pid in enumerate(ids):
            full = decoded[pid]
            for v in range(V):
                crop = b["image"][row, v]
                assert any(np.array_equal(full[y:y + CROP, x:x + CROP], crop)
                           for y in range(full.shape[0] - CROP + 1) for x in range(full.shape[1] - CROP + 1)), \
                    f"{pid}: view {v} is not a window of the example's own photo"
            distinct_views += len({b["image"][row, v].tobytes() for v in range(V)}) == V
    assert distinct_views >= 0.8 * 4 * B  # independent offsets (equal only when a photo barely exceeds the crop)


def test_views_change_the_crops_not_which_photos_a_batch_holds(dataset):
    root, _ = dataset
    kw = dict(global_batch_size=8, process_index=0, process_count=1, seed=3, split="train", crop_size=CROP,
              crops_per_image=2)
    one = _take(make_dataset(_cfg(root / "tf"), **kw), 3)
    two = _take(make_dataset(_cfg(root / "tf", views=2), **kw), 3)
    for x, z in zip(one, two):
        assert x["image"].shape == (8, CROP, CROP, 3) and z["image"].shape == (8, 2, CROP, CROP, 3)
        np.testing.assert_array_equal(x["input_ids"], z["input_ids"])
        np.testing.assert_array_equal(x["attention_mask"], z["attention_mask"])


@pytest.mark.parametrize("fmt", ["tf", "ar"])
def test_processes_read_disjoint_slices(dataset, tokenizer, fmt):
    root, photos = dataset
    seen = []
    for p in range(2):
        ds = make_dataset(_cfg(root / fmt), global_batch_size=4, process_index=p, process_count=2, seed=0,
                          split="train", crop_size=CROP, num_epochs=1)
        it = iter(ds)
        ids = [pid for b in it for pid in _identify(b, photos, tokenizer, 16)]
        it.close()
        seen.append(set(ids))
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) >= N_PHOTOS - 2 * 2  # minus at most one partial (dropped) batch per process


@pytest.mark.parametrize("fmt,crops,views", [("tf", 1, 1), ("tf", 3, 1), ("ar", 2, 1), ("tf", 3, 2)])
def test_restored_iterator_state_gives_identical_batches(dataset, tmp_path, fmt, crops, views):
    import orbax.checkpoint as ocp

    from exif_jax.data.pipeline import checkpoint_args, restore_args

    root, _ = dataset
    kw = dict(global_batch_size=6, process_index=0, process_count=1, seed=5, split="train", crop_size=CROP,
              crops_per_image=crops, views=views)
    ds = make_dataset(_cfg(root / fmt), **kw)
    it = iter(ds)
    for _ in range(5):  # crosses an epoch boundary (24 photos, 6 per batch) with crops=1
        next(it)
    mngr = ocp.CheckpointManager(tmp_path / "ckpt")
    mngr.save(5, args=ocp.args.Composite(data=checkpoint_args(it)))
    mngr.wait_until_finished()
    expected = [next(it) for _ in range(7)]
    it.close()

    fresh = iter(make_dataset(_cfg(root / fmt), **kw))
    ocp.CheckpointManager(tmp_path / "ckpt").restore(5, args=ocp.args.Composite(data=restore_args(fresh)))
    got = [next(fresh) for _ in range(7)]
    fresh.close()
    for e, g in zip(expected, got):
        for k in e:
            np.testing.assert_array_equal(e[k], g[k])


def test_corrupt_records_counted_skipped_and_input_continues(tmp_path, tokenizer):
    photos = _write_dataset(tmp_path / "d", shards=3)
    files = sorted((tmp_path / "d").glob("train-*.tfrecord"))
    # shard 0: flip one byte inside the 2nd record's JPEG data (its CRC now fails; the rest of the file is fine)
    raw = bytearray(files[0].read_bytes())
    recs = list(tfrecord.read_records(files[0]))
    off = 16 + len(recs[0]) + 12 + len(recs[1]) // 2
    raw[off] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    lost_pid = records.parse_record(recs[1])["photo_id"]
    # shard 1: cut the tail in the middle of its last record
    files[1].write_bytes(files[1].read_bytes()[:-20])
    tail_pid = records.parse_record(list(tfrecord.read_records(files[2]))[0])["photo_id"]  # (shard 2 untouched)
    ds = make_dataset(_cfg(tmp_path / "d"), global_batch_size=4, process_index=0, process_count=1, seed=0,
                      split="train", crop_size=CROP, num_epochs=1)
    it = iter(ds)
    ids = [pid for b in it for pid in _identify(b, photos, tokenizer, 16)]
    counters = pipeline_counters(it.get_state())
    it.close()
    assert counters["corrupt_records"] == 1 and counters["lost_file_tails"] == 1
    assert lost_pid not in ids and tail_pid in ids
    # 22 good photos: 5 full batches of 4 (drop_remainder), all of them distinct photos
    assert len(ids) == len(set(ids)) == counters["images"] == (N_PHOTOS - 2) // 4 * 4


def test_corrupt_array_record_counted_and_skipped(tmp_path, tokenizer):
    photos = _write_dataset(tmp_path / "d", shards=2, fmt="array_record")
    f0, f1 = sorted((tmp_path / "d").glob("*.array_record"))
    in_f1 = {records.parse_record(r)["photo_id"] for r in
             grain_source(f1)}
    for f, at in ((f0, 0.1), (f1, 0.5)):  # f0: inside a record's chunk; f1: the block header at 64 KiB
        raw = bytearray(f.read_bytes())
        raw[int(len(raw) * at)] ^= 0xFF
        f.write_bytes(bytes(raw))
    ds = make_dataset(_cfg(tmp_path / "d"), global_batch_size=4, process_index=0, process_count=1, seed=0,
                      split="train", crop_size=CROP, num_epochs=1)
    it = iter(ds)
    ids = [pid for b in it for pid in _identify(b, photos, tokenizer, 16)]
    counters = pipeline_counters(it.get_state())
    it.close()
    assert counters["corrupt_records"] == 1 and counters["lost_file_tails"] == 1
    assert not in_f1 & set(ids)  # nothing of the unreadable file was fed
    assert len(ids) == len(set(ids)) == counters["images"] == (N_PHOTOS // 2 - 1) // 4 * 4


def grain_source(path):
    import grain

    src = grain.sources.ArrayRecordDataSource([str(path)])
    return [src[i] for i in range(len(src))]


def test_normalize_matches_model_preprocess(dataset):
    from exif_jax.models.preprocess import normalize_images_np

    root, _ = dataset
    kw = dict(global_batch_size=4, process_index=0, process_count=1, seed=0, split="train", crop_size=CROP)
    raw = _take(make_dataset(_cfg(root / "tf"), **kw), 2)
    norm = _take(make_dataset(_cfg(root / "tf"), normalize=True, **kw), 2)
    for r, n in zip(raw, norm):
        assert n["image"].dtype == np.float32
        np.testing.assert_allclose(n["image"], normalize_images_np(r["image"]), rtol=1e-6, atol=1e-6)


def test_text_len_from_dataset_info(dataset, tmp_path):
    root, _ = dataset
    d = tmp_path / "d"
    _write_dataset(d, n=8, shards=1)
    (d / "dataset_info.json").write_text(json.dumps({"format": "tfrecord", "text_len": 32,
                                                     "splits": {"train": {"max_short_side": 40}}}))
    b = _take(make_dataset({"path": str(d)}, global_batch_size=4, process_index=0, process_count=1, seed=0,
                           split="train", crop_size=CROP), 1)[0]
    assert b["input_ids"].shape == (4, 32)
    with pytest.raises(DataError, match=r"crop 64 px is larger than every image of split 'train' \(largest short "
                                        r"side 40 px\)"):
        make_dataset({"path": str(d)}, global_batch_size=4, process_index=0, process_count=1, seed=0,
                     split="train", crop_size=64)


def test_clear_errors(tmp_path, dataset):
    kw = dict(global_batch_size=4, process_index=0, process_count=1, seed=0, split="train", crop_size=CROP)
    with pytest.raises(DataError, match=r"no files match .*train-\*-of-\*\.tfrecord"):
        make_dataset({"path": str(tmp_path), "format": "tfrecord"}, **kw)
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(DataError, match=r"train-00000-of-00001\.tfrecord: empty shard"):
        make_dataset({"path": str(tmp_path)}, **kw)
    with tfrecord.TFRecordWriter(tmp_path / "train-00000-of-00001.tfrecord") as w:
        w.write(tfrecord.encode_example({"image/encoded": b"\xff\xd8", "label": 1}))
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.tfrecord: wrong feature schema: missing"):
        make_dataset({"path": str(tmp_path)}, **kw)
    root, _ = dataset
    with pytest.raises(DataError, match="3 train shards cannot feed 4 processes"):
        make_dataset(_cfg(root / "tf"), **{**kw, "process_count": 4, "global_batch_size": 8})
    with pytest.raises(DataError, match="data.path is not set"):
        make_dataset({"path": ""}, **kw)
    with pytest.raises(DataError, match=r"data.views=0: must be >= 1"):
        make_dataset(_cfg(root / "tf", views=0), **kw)


def test_worker_processes_resume_exactly(dataset, tokenizer):
    """mp_prefetch (2 worker processes): restoring the saved state replays the same batches; crops still come in
    full-resolution windows with the right text (each worker decodes its own slice of the files)."""
    root, photos = dataset
    kw = dict(global_batch_size=4, process_index=0, process_count=1, seed=0, split="train", crop_size=CROP,
              crops_per_image=2)
    ds = make_dataset(_cfg(root / "tf", num_workers=2), **kw)
    it = iter(ds)
    first = [next(it) for _ in range(3)]
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    it.close()
    fresh = iter(make_dataset(_cfg(root / "tf", num_workers=2), **kw))
    fresh.set_state(state)
    got = [next(fresh) for _ in range(4)]
    fresh.close()
    for e, g in zip(expected, got):
        for k in e:
            np.testing.assert_array_equal(e[k], g[k])
    ids = [pid for b in first + expected for pid in _identify(b, photos, tokenizer, 16)]
    assert len(set(ids)) > 8


def _full_rgb(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_partial_row_decode_equals_full_decode_on_camera_photos(shared_data, monkeypatch):
    """The pipeline stops JPEG decoding after the last row its crops need; those rows must equal a full Pillow
    decode exactly (real camera files, several sizes and subsampling schemes)."""
    from exif_jax.data.pipeline import decode_crops

    files = sorted((shared_data / "photos_dev/digicam_cc0").glob("*.JPG"))[::6] + sorted(
        (shared_data / "photos_dev/metadata_extractor/images").glob("*.jpg"))[::15]
    rng = np.random.default_rng(0)
    for f in files:
        data = f.read_bytes()
        full = _full_rgb(data)
        H, W = full.shape[:2]
        offs = [(int(rng.integers(0, H - CROP + 1)), int(rng.integers(0, W - CROP + 1))) for _ in range(3)]
        for (t, l), got in zip(offs, decode_crops(data, offs, CROP)):
            np.testing.assert_array_equal(got, full[t:t + CROP, l:l + CROP], err_msg=f.name)
    assert len(files) >= 10
    # and the early stop really is what ran: no crop above went through Pillow's full `load()` decode
    from PIL import ImageFile

    full_loads, real_load = [], ImageFile.ImageFile.load

    def counting_load(self):
        if self.tile:
            full_loads.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    for f in files:
        decode_crops(f.read_bytes(), [(0, 0)], CROP)
    assert full_loads == []
    decode_crops(files[0].read_bytes(), [(0, 0)], CROP, partial=False)
    assert len(full_loads) == 1


@pytest.mark.parametrize("mode,kw", [("RGB", {"progressive": True}), ("L", {}), ("CMYK", {}),
                                     ("RGB", {"subsampling": 0}), ("RGB", {"subsampling": 2})])
def test_partial_decode_other_jpeg_kinds(mode, kw):
    from exif_jax.data.pipeline import decode_crops

    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (150, 90, len(mode)), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(buf, "JPEG", quality=90, **kw)
    data = buf.getvalue()
    full = _full_rgb(data)
    offs = [(0, 0), (40, 17), (150 - CROP, 90 - CROP)]
    for (t, l), got in zip(offs, decode_crops(data, offs, CROP)):
        np.testing.assert_array_equal(got, full[t:t + CROP, l:l + CROP])


def test_decoded_photo_cache_changes_no_batch_and_resumes_exactly(dataset):
    """`data.decode_cache_mb`: over four epochs (every photo decoded again and again) the cached pipeline gives the
    uncached pipeline's batches bit for bit, and a cached iterator restored mid-stream continues them exactly."""
    root, _ = dataset
    kw = dict(global_batch_size=8, process_index=0, process_count=1, seed=5, split="train", crop_size=CROP,
              crops_per_image=2)
    plain = _take(make_dataset(_cfg(root / "tf"), **kw), 24)  # 24 photos x 2 crops / 8 = 6 batches an epoch
    it = iter(make_dataset(_cfg(root / "tf", decode_cache_mb=64), **kw))
    cached = [next(it) for _ in range(24)]
    cache = it._cache
    it.close()
    assert cache.misses == N_PHOTOS and cache.hits > 2 * N_PHOTOS  # each photo decoded once, then served
    for a, b in zip(plain, cached):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    it = iter(make_dataset(_cfg(root / "tf", decode_cache_mb=64), **kw))
    for _ in range(9):
        next(it)
    state = it.get_state()
    it.close()
    fresh = iter(make_dataset(_cfg(root / "tf", decode_cache_mb=64), **kw))
    fresh.set_state(state)
    got = [next(fresh) for _ in range(15)]
    fresh.close()
    for a, b in zip(plain[9:], got):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(DataError, match=r"data.decode_cache_mb=-1: must be >= 0"):
        make_dataset(_cfg(root / "tf", decode_cache_mb=-1), **kw)


@pytest.mark.parametrize("mode,kw", [("RGB", {"progressive": True}), ("L", {}), ("CMYK", {}),
                                     ("RGB", {"subsampling": 2})])
def test_decoded_photo_cache_crops_equal_a_full_decode_and_keep_to_the_budget(mode, kw):
    from exif_jax.data.pipeline import DecodedPhotoCache

    rng = np.random.default_rng(2)
    photos = []
    for _ in range(3):
        arr = rng.integers(0, 256, (150, 90, len(mode)), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(buf, "JPEG", quality=90, **kw)
        photos.append(buf.getvalue())
    one = 150 * 90 * 3  # bytes of one decoded RGB photo
    cache = DecodedPhotoCache(2 * one)  # room for two of the three
    offs = [(0, 0), (40, 17), (150 - CROP, 90 - CROP)]
    for data in photos + photos[::-1]:  # 0 1 2 | 2 1 0: 2 and 1 are still kept, 0 was pushed out by 2
        full = _full_rgb(data)
        for (t, l), got in zip(offs, cache.crops(data, offs, CROP)):
            np.testing.assert_array_equal(got, full[t:t + CROP, l:l + CROP])
        assert cache.bytes <= 2 * one
    assert (cache.misses, cache.hits) == (4, 2)
    big = DecodedPhotoCache(one - 1)  # a photo larger than the whole budget is decoded and not kept
    big.crops(photos[0], offs, CROP)
    big.crops(photos[0], offs, CROP)
    assert (big.misses, big.hits, big.bytes) == (2, 0, 0)


def test_crop_align_puts_crops_on_the_jpeg_grid(dataset, tokenizer):
    root, photos = dataset
    ds = make_dataset(_cfg(root / "tf", crop_align=8), global_batch_size=8, process_index=0, process_count=1,
                      seed=3, split="train", crop_size=CROP)
    decoded = {pid: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for pid, (b, _) in photos.items()}
    offsets = set()
    for b in _take(ds, 4):
        for row, pid in enumerate(_identify(b, photos, tokenizer, 16)):
            full = decoded[pid]
            hits = [(y, x) for y in range(full.shape[0] - CROP + 1) for x in range(full.shape[1] - CROP + 1)
                    if np.array_equal(full[y:y + CROP, x:x + CROP], b["image"][row])]
            assert any(y % 8 == 0 and x % 8 == 0 for y, x in hits), f"{pid}: crop not on the 8 px grid: {hits}"
            offsets.add(hits[0])
    assert len({o for o in offsets if o != (0, 0)}) > 5  # still random positions, only on the grid
    with pytest.raises(DataError, match="crop_align"):
        make_dataset(_cfg(root / "tf", crop_align=0), global_batch_size=8, process_index=0, process_count=1, seed=3,
                     split="train", crop_size=CROP)


def test_trainer_eval_gives_every_held_out_photo_k_distinct_crops(dataset, tokenizer):
    import collections

    from configs import common
    from exif_jax.train.trainer import PipelineData

    root, photos = dataset
    c = common.base_config()
    c.data.path, c.data.shuffle_window, c.data.text_len, c.data.crop = str(root / "tf"), 8, 16, CROP
    c.data.eval_split, c.data.eval_batches, c.data.eval_batch_size = "train", -1, 8
    c.data.crops_per_image, c.data.eval_crops_per_image = 4, 3  # train-time spreading must not shape the eval
    batches = list(PipelineData(c).eval_batches())
    assert len(batches) == N_PHOTOS * 3 // 8
    crops = collections.defaultdict(set)
    for b in batches:
        pids = _identify(b, photos, tokenizer, 16)
        assert len(set(pids)) == len(pids)  # a batch never holds two crops of one photo
        for row, pid in enumerate(pids):
            crops[pid].add(b["image"][row].tobytes())
    assert sorted(crops) == sorted(photos) and all(len(v) == 3 for v in crops.values())
