"""grain input pipeline: ingest shards -> per-process batches of random crops and tokenized EXIF text.

    ds = make_dataset(config.data, global_batch_size=1024, process_index=jax.process_index(),
                      process_count=jax.process_count(), seed=config.seed, split="train", crop_size=124)
    it = iter(ds)
    batch = next(it)   # {"image": uint8[B, C, C, 3], "input_ids": int32[B, L], "attention_mask": int32[B, L]}

with `B = global_batch_size // process_count` and a fixed `L` per dataset (static shapes). With `data.views = V > 1`
every example holds `V` crops of its photo: `image` is uint8[B, V, C, C, 3] (one text, V crops; see below).

Stages (TFRecord): this process's shard files (`files[process_index::process_count]`, re-permuted every epoch)
-> `InterleaveIterDataset` (reads `cycle_length` files at once) -> CRC-verifying TFRecord reader per file
(a corrupt record is logged and counted, never fed; a corrupt length loses the rest of that file) ->
`WindowShuffleIterDataset` -> crop batcher (parse record, full-resolution Pillow decode, `crops_per_image` seeded
random crops at native resolution, tokenize + pad, batch with drop_remainder) -> optional `mp_prefetch`.
ArrayRecord: `MapDataset` over all records with an exact global shuffle (reshuffled each epoch), sliced per
process, then the same batcher.

Several crops per decoded image: image `n` of group `g` gives its crop `j` to batch `g + j` (groups are sized so
every batch gets exactly `B` crops), so the `crops_per_image` crops of one decoded photo always land in
`crops_per_image` different batches, and two examples of a batch never come from the same decoded photo.

Views (`data.views = V`): each of those crops is `V` crops of the photo at independent random offsets, kept together
in one example, so the train step encodes the photo's text once for `V` image crops (`exif_jax.train.views`). The
text tower costs most of a step (DistilBERT at 256 tokens: ~9x the multiply-adds of ResNet-50 at 124 px; the mini
text tower: ~3/4 of a `real_cameras` step on a CPU), so views buy image crops per second. `V = 1` is the original's one
crop per text and gives exactly the batches of before.

Determinism and resume: crop offsets come from `(seed, process, worker, image counter)`, the shuffles from
`(seed, process, epoch/window)`. The iterator state (`it.get_state()`, a small JSON-able dict) restores exactly:
batches after `set_state` equal the uninterrupted run's bit for bit. The trainer saves it with orbax next to the
model (see `checkpoint_args`/`restore_args`): `grain.checkpoint.CheckpointSave(it)` / `CheckpointRestore(it)`.

Data config keys (`config.data`):
  path            ingest output directory (required)
  format          "tfrecord" | "array_record" | "auto" (default: from dataset_info.json / files present)
  shuffle_window  window shuffle size in records for TFRecord (default 512; 0/1 = off). Memory ~ window x JPEG size
  num_workers     grain worker processes for decode/crop (`mp_prefetch`; default 0 = in-process)
  text_len        fixed token length L (default: `max_text_len` if set, else dataset_info.json `text_len`)
  crops_per_image crops per decoded image (default 1; a `crops_per_image` argument wins)
  views           crops per example, all of one photo and sharing its text (default 1; a `views` argument wins)
  decode_cache_mb keep whole decoded photos in memory, up to this many MiB per iterator (per worker process), least
                  recently used out first (default 0 = off: every group decodes its photos again). For small datasets
                  read for many epochs (`configs/real_cameras.py`: each photo ~90 times in 30 min); batches are the
                  same bits either way, and the cache is not part of the iterator state
  crop_align      crop offsets are multiples of this (default 1, as the original; 8 keeps crops on the JPEG block
                  grid, so a patch-8 ViT's patches are exactly JPEG blocks and quantization traces line up)
  eval_split      name of the held-out split (default "eval")
  cycle_length    files read concurrently by the interleave (default 16)
  prefetch        batches buffered per worker process (default 2)
"""
from __future__ import annotations

import collections
import copy
import gc
import glob
import hashlib
import io
import json
import logging
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from exif_jax.data import records, tfrecord

log = logging.getLogger(__name__)

# OpenAI CLIP statistics on a 0..1 scale (same values as exif_jax.models.preprocess, kept here so worker
# processes need not import JAX).
CLIP_MEAN = np.asarray((0.48145466, 0.4578275, 0.40821073), np.float32)
CLIP_STD = np.asarray((0.26862954, 0.26130258, 0.27577711), np.float32)

FORMAT_EXT = {"tfrecord": "tfrecord", "array_record": "array_record"}
COUNTER_KEYS = ("images", "batches", "corrupt_records", "lost_file_tails", "too_small", "decode_errors")
_EPOCH_CAP = 1 << 40  # "repeat forever" = this many passes over the files


class DataError(ValueError):
    """The dataset on disk cannot feed this pipeline (missing/empty/malformed files, impossible crop)."""


def _cfg_get(cfg, key: str, default=None):
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        v = cfg.get(key, default)
    else:
        try:
            v = cfg.get(key, default)
        except AttributeError:
            v = getattr(cfg, key, default)
    return default if v is None else v


def _derive_seed(*parts: int) -> int:
    h = hashlib.sha256(b"/".join(str(int(p)).encode() for p in parts)).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def load_dataset_info(path: str | os.PathLike) -> dict | None:
    p = pathlib.Path(path) / "dataset_info.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from None


def list_shards(path: str | os.PathLike, split: str, fmt: str) -> list[str]:
    pattern = os.path.join(os.fspath(path), f"{split}-*-of-*.{FORMAT_EXT[fmt]}")
    files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"no files match {pattern} (write them with `exif-jax ingest --out {path}`)")
    for f in files:
        if os.path.getsize(f) == 0:
            raise DataError(f"{f}: empty shard (0 bytes); re-run `exif-jax ingest` into {path}")
    return files


def resolve_format(path: str | os.PathLike, fmt: str, split: str, info: dict | None) -> str:
    if fmt != "auto":
        if fmt not in FORMAT_EXT:
            raise DataError(f"data.format {fmt!r}: expected tfrecord, array_record or auto")
        return fmt
    if info and info.get("format") in FORMAT_EXT:
        return info["format"]
    for f in ("array_record", "tfrecord"):
        if glob.glob(os.path.join(os.fspath(path), f"{split}-*-of-*.{FORMAT_EXT[f]}")):
            return f
    raise DataError(f"no files match {os.path.join(os.fspath(path), split + '-*-of-*.{tfrecord,array_record}')}")


def resolve_text_len(data_cfg, info: dict | None, tokenizer_max_len: int | None) -> int:
    for v in (tokenizer_max_len, _cfg_get(data_cfg, "text_len", 0), _cfg_get(data_cfg, "max_text_len", 0)):
        if v and int(v) > 0:
            return int(v)
    if info and info.get("text_len"):
        return int(info["text_len"])
    return 64


# --------------------------------------------------------------------------------------- TFRecord file source


class _TFRecordFileIterator(grain.DatasetIterator):
    """CRC-checking reader of one file; state = byte offset (-1 once the rest of the file is lost)."""

    def __init__(self, path: str):
        super().__init__()
        self._reader = tfrecord.TFRecordFileReader(path)

    def __next__(self):
        return next(self._reader)

    def get_state(self):
        return {"offset": self._reader.tell()}

    def set_state(self, state):
        self._reader.seek(int(state["offset"]))

    def close(self):
        self._reader.close()


class _TFRecordFile(grain.IterDataset):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def __iter__(self):
        return _TFRecordFileIterator(self.path)

    def __str__(self):
        return f"TFRecordFile({os.path.basename(self.path)})"


class _EpochFiles:
    """Index i -> dataset of file `perm_epoch[i % n]`, epoch = i // n (files re-permuted every epoch)."""

    def __init__(self, files: Sequence[str], seed: int, shuffle: bool):
        self.files, self.seed, self.shuffle = list(files), seed, shuffle

    def __call__(self, i: int) -> grain.IterDataset:
        n = len(self.files)
        epoch, k = divmod(int(i), n)
        if self.shuffle:
            k = int(np.random.default_rng([self.seed, epoch]).permutation(n)[k])
        return _TFRecordFile(self.files[k])


class _CheckedArrayRecordSource:
    """ArrayRecord random access that never raises on corruption: a record failing riegeli's chunk hash comes back
    as a `CorruptRecord` (counted and skipped downstream); a file that cannot be opened at all stands in as one
    `CorruptRecord` with `rest_of_file_lost` (counted once per epoch) instead of stopping training."""

    def __init__(self, files: Sequence[str]):
        self._files, self._lengths, self._bad = [], [], []
        for f in files:
            try:
                n = len(grain.sources.ArrayRecordDataSource([f]))
            except RuntimeError as e:
                log.error("%s: unreadable ArrayRecord file, skipped: %s", f, str(e).splitlines()[0][:200])
                self._bad.append((f, str(e).splitlines()[0][:160]))
                continue
            self._files.append(f)
            self._lengths.append(n)
        self._src = grain.sources.ArrayRecordDataSource(self._files) if self._files else None
        self._good = sum(self._lengths)

    def __len__(self) -> int:
        return self._good + len(self._bad)

    def __getitem__(self, index: int):
        index = int(index)
        if index >= self._good:
            f, reason = self._bad[index - self._good]
            return tfrecord.CorruptRecord(f, 0, reason, rest_of_file_lost=True)
        try:
            return self._src[index]
        except RuntimeError as e:  # riegeli: "Corrupted Riegeli/records file: chunk data hash mismatch ..."
            i = index
            for f, n in zip(self._files, self._lengths):
                if i < n:
                    break
                i -= n
            return tfrecord.CorruptRecord(f, i, f"record {i}: {str(e).splitlines()[0][:160]}", False)

    def __repr__(self) -> str:
        return f"CheckedArrayRecordSource({len(self._files)} files, {len(self._bad)} unreadable)"


# ----------------------------------------------------------------------------------------------- crop batcher


def _decode_rows(image: bytes, bottom: int):
    """Pillow image of a JPEG with (at least) rows [0, bottom) decoded at full resolution.

    A baseline JPEG is entropy-coded top to bottom, so decoding can stop after the MCU row holding `bottom - 1`:
    a random crop needs on average half the rows, which halves decode time for one crop per image. The rows that
    are decoded are exactly those of a full decode (same libjpeg-turbo decoder, stopped early). Anything else
    (progressive JPEG, several tiles, other formats, any error) takes Pillow's full `load()`.
    """
    from PIL import Image

    im = Image.open(io.BytesIO(image))
    try:
        tile = im.tile[0] if len(im.tile) == 1 else None
        if (tile is not None and tile[0] == "jpeg" and im.format in ("JPEG", "MPO") and 0 < bottom < im.height
                and not im.info.get("progressive") and not im.info.get("progression")):
            im.load_prepare()
            decoder = Image._getdecoder(im.mode, tile[0], tile[3], im.decoderconfig)
            decoder.setimage(im.im, (0, 0, im.width, bottom))
            try:
                decoder.decode(image[tile[2]:])  # stops (with a "broken stream" code) once `bottom` rows are out
            finally:
                decoder.cleanup()
            im.tile = []
            return im
    except Exception:  # noqa: BLE001 - any surprise: fall back to the plain full decode below
        im = Image.open(io.BytesIO(image))
    im.load()
    return im


def decode_crops(image: bytes, offsets: Sequence[tuple[int, int]], crop: int,
                 partial: bool = True) -> list[np.ndarray]:
    """`crop`-px RGB crops at the given (top, left) offsets of the image at native resolution (no draft, no
    resize, EXIF orientation ignored) -> list of uint8 [crop, crop, 3]. `partial`: decode only the rows needed."""
    from PIL import Image

    if partial:
        im = _decode_rows(image, max(t for t, _ in offsets) + crop)
    else:
        im = Image.open(io.BytesIO(image))
        im.load()
    with im:
        out = []
        for top, left in offsets:
            region = im.crop((left, top, left + crop, top + crop))
            if region.mode != "RGB":
                region = region.convert("RGB")
            out.append(np.asarray(region, dtype=np.uint8))
        return out


def crop_offsets(seed: int, image_index: int, width: int, height: int, crop: int, n: int,
                 align: int = 1) -> list[tuple[int, int]]:
    """`n` uniformly random (top, left) crop offsets for image `image_index` of a seeded stream, multiples of
    `align` (8: on the JPEG block grid, 16: on the 4:2:0 MCU grid; 1: anywhere, the original's crops)."""
    rng = np.random.default_rng([seed, image_index])
    tops = rng.integers(0, (height - crop) // align + 1, size=n) * align
    lefts = rng.integers(0, (width - crop) // align + 1, size=n) * align
    return [(int(t), int(l)) for t, l in zip(tops, lefts)]


class DecodedPhotoCache:
    """Whole decoded photos (uint8 RGB arrays) keyed by a digest of their JPEG bytes, at most `max_bytes` in all,
    least recently used out first. A photo larger than the whole budget is decoded as usual and not kept.

    `crops` returns exactly what `decode_crops` returns (same decoder; the rows a partial decode stops after are
    those of the full decode, and the RGB conversion is per pixel), so switching the cache on changes no batch.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = self.misses = 0
        self._photos: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()

    def crops(self, image: bytes, offsets: Sequence[tuple[int, int]], crop: int) -> list[np.ndarray]:
        key = hashlib.blake2b(image, digest_size=16).digest()
        full = self._photos.get(key)
        if full is not None:
            self.hits += 1
            self._photos.move_to_end(key)
        else:
            self.misses += 1
            from PIL import Image

            with Image.open(io.BytesIO(image)) as im:
                im.load()
                full = np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
            if full.nbytes <= self.max_bytes:
                while self._photos and self.bytes + full.nbytes > self.max_bytes:
                    self.bytes -= self._photos.popitem(last=False)[1].nbytes
                self._photos[key] = full
                self.bytes += full.nbytes
        out = [full[t:t + crop, l:l + crop].copy() for t, l in offsets]
        if any(c.shape[:2] != (crop, crop) for c in out):  # the record's size disagrees with the JPEG's
            raise ValueError(f"decoded photo is {full.shape[1]}x{full.shape[0]}, too small for its crops")
        return out


class _CropBatchIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, ds: "_ExifBatchDataset", seed: int):
        super().__init__()
        self._src = parent
        self._ds = ds
        self._seed = seed
        self._B, self._K, self._C = ds.batch_size, ds.crops_per_image, ds.crop_size
        self._V = ds.views
        self._cache = DecodedPhotoCache(ds.decode_cache_mb << 20) if ds.decode_cache_mb > 0 else None
        self._tok = None
        self._counters = dict.fromkeys(COUNTER_KEYS, 0)
        self._pending: dict[int, list] = collections.defaultdict(list)
        self._next_batch = 0
        self._next_group = -(self._K - 1)
        self._image_index = 0
        # (group index, parent state before it, image index before it) for groups not yet fully emitted
        self._group_starts: collections.deque = collections.deque()
        self._replaying = False

    # -- groups
    def _group_size(self, g: int) -> int:
        return self._B // self._K + (1 if g % self._K < self._B % self._K else 0)

    def _count(self, key: str, n: int = 1) -> None:
        if not self._replaying:
            self._counters[key] += n

    def _next_image(self):
        """Next usable record (parsed), counting/skipping corrupt and unusable ones. Raises StopIteration."""
        while True:
            rec = next(self._src)
            if isinstance(rec, tfrecord.CorruptRecord):
                if not self._replaying:
                    log.warning("%s", rec)
                self._count("lost_file_tails" if rec.rest_of_file_lost else "corrupt_records")
                continue
            r = records.parse_record(rec, where=self._ds.path)
            if min(r["width"], r["height"]) < self._C:
                self._count("too_small")
                continue
            return r

    def _read_group(self, g: int, min_batch: int) -> None:
        self._group_starts.append((g, self._src.get_state(), self._image_index))
        recs = [self._next_image() for _ in range(self._group_size(g))]  # StopIteration ends the stream
        if self._tok is None:
            from exif_jax.text.tokenizer import ExifTokenizer

            self._tok = ExifTokenizer()
        enc = self._tok.encode([r["exif_text"] for r in recs], max_len=self._ds.text_len)
        for n, r in enumerate(recs):
            idx = self._image_index
            self._image_index += 1
            targets = [(j, g + j) for j in range(self._K) if g + j >= min_batch]
            V = self._V
            # crop j of this photo is offsets[j*V:(j+1)*V]; with V = 1 the offsets (and batches) of before
            offsets = crop_offsets(self._seed, idx, r["width"], r["height"], self._C, self._K * V, self._ds.crop_align)
            wanted = [offsets[j * V + v] for j, _ in targets for v in range(V)]
            try:
                if not targets:
                    crops = []
                elif self._cache is not None:
                    crops = self._cache.crops(r["image"], wanted, self._C)
                else:
                    crops = decode_crops(r["image"], wanted, self._C)
            except (OSError, ValueError, SyntaxError) as e:  # validated at ingest, so rare: count, never fatal
                if not self._replaying:
                    log.warning("%s: photo %s: JPEG decode failed: %s", self._ds.path, r["photo_id"], e)
                self._count("decode_errors")
                crops = [np.zeros((self._C, self._C, 3), np.uint8) for _ in wanted]
            for i, (j, t) in enumerate(targets):
                c = crops[i] if V == 1 else np.stack(crops[i * V:(i + 1) * V])
                self._pending[t].append((c, enc["input_ids"][n], enc["attention_mask"][n]))
        self._count("images", len(recs))
        self._next_group = g + 1

    def __next__(self):
        if self._src is None:
            raise ValueError("this data iterator was closed")
        t = self._next_batch
        while self._next_group <= t:
            self._read_group(self._next_group, t)
        # drop bookkeeping for groups whose crops have all been emitted (group g feeds batches g .. g+K-1)
        while self._group_starts and self._group_starts[0][0] + self._K - 1 < t + 1:
            self._group_starts.popleft()
        items = self._pending.pop(t)
        if len(items) != self._B:
            raise AssertionError(f"batch {t} has {len(items)} crops, expected {self._B}")
        order = np.random.default_rng([self._seed, 1 << 31, t]).permutation(self._B)
        image = np.stack([items[i][0] for i in order])
        if self._ds.normalize:
            image = (image.astype(np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD
        batch = {
            "image": image,
            "input_ids": np.stack([items[i][1] for i in order]).astype(np.int32),
            "attention_mask": np.stack([items[i][2] for i in order]).astype(np.int32),
        }
        self._next_batch = t + 1
        self._counters["batches"] += 1
        return batch

    # -- checkpointing: re-read the groups that still owe crops to future batches
    def get_state(self):
        t = self._next_batch
        # _group_starts holds exactly the groups read so far that still feed a batch >= t (see __next__)
        if self._group_starts:
            g0, src_state, img0 = self._group_starts[0]
        else:  # nothing read beyond what is emitted
            g0, src_state, img0 = self._next_group, self._src.get_state(), self._image_index
        return {"next_batch": t, "group": g0, "image_index": img0, "source": copy.deepcopy(src_state),
                "exif_counters": dict(self._counters)}

    def set_state(self, state):
        self._src.set_state(copy.deepcopy(state["source"]))
        self._pending.clear()
        self._group_starts.clear()
        self._counters = {k: int(state["exif_counters"].get(k, 0)) for k in COUNTER_KEYS}
        self._next_batch = int(state["next_batch"])
        self._next_group = int(state["group"])
        self._image_index = int(state["image_index"])
        self._replaying = True
        try:
            while self._next_group < self._next_batch:
                self._read_group(self._next_group, self._next_batch)
        except StopIteration:
            pass
        finally:
            self._replaying = False

    def close(self):
        # Close the chain now and drop it, so its objects are collected while the interpreter is still whole
        # (grain's prefetch iterators would otherwise re-run close() from __del__ during interpreter shutdown).
        src, self._src = self._src, None
        if src is not None:
            src.close()
            del src
            gc.collect()


class _ExifBatchDataset(grain.IterDataset):
    """Source-to-batch pipeline as one grain node (sliceable by `mp_prefetch`: each worker reads a disjoint slice of
    the epoch-ordered file list, or of the shuffled record indices for ArrayRecord)."""

    def __init__(self, *, path: str, fmt: str, files: Sequence[str], batch_size: int, crop_size: int, text_len: int,
                 crops_per_image: int, normalize: bool, seed: int, shuffle_window: int, cycle_length: int,
                 num_epochs: int | None, shuffle: bool, views: int = 1):
        super().__init__()
        self.path, self.fmt, self.files = path, fmt, list(files)
        self.batch_size, self.crop_size, self.text_len = batch_size, crop_size, text_len
        self.crops_per_image, self.normalize, self.seed = crops_per_image, normalize, seed
        self.views = int(views)
        self.shuffle_window, self.cycle_length = shuffle_window, cycle_length
        self.num_epochs, self.shuffle = num_epochs, shuffle
        self.crop_align = 1
        self.decode_cache_mb = 0
        self.shuffle_seed = seed  # ArrayRecord: the global permutation (same on every process)
        self.process_slice = slice(None)  # ArrayRecord: this process's share of the global permutation
        self._worker_slice = slice(None)
        self._worker = 0

    def set_slice(self, sl: slice, sequential_slice: bool = False) -> None:
        """Called by `mp_prefetch` on each worker's copy: that worker reads `sl` of this node's input."""
        del sequential_slice
        self._worker_slice = sl
        self._worker = 1 + int(sl.start or 0)

    def _source(self) -> grain.IterDataset:
        if self.fmt == "array_record":
            ds = grain.MapDataset.source(_CheckedArrayRecordSource(self.files))
            if self.shuffle:
                ds = ds.shuffle(seed=self.shuffle_seed)
            ds = ds.repeat(self.num_epochs)  # None: forever; reshuffled every epoch
            return ds[self.process_slice][self._worker_slice].to_iter_dataset()
        n = len(self.files)
        epochs = self.num_epochs if self.num_epochs is not None else min(_EPOCH_CAP, (1 << 62) // n)
        files = grain.MapDataset.range(0, n * epochs).map(_EpochFiles(self.files, self.seed, self.shuffle))
        files = files[self._worker_slice]
        ds = grain.experimental.InterleaveIterDataset(files, cycle_length=max(1, min(self.cycle_length, n)))
        if self.shuffle and self.shuffle_window > 1:
            ds = grain.experimental.WindowShuffleIterDataset(ds, window_size=self.shuffle_window,
                                                             seed=_derive_seed(self.seed, 7, self._worker))
        return ds

    def __iter__(self):
        return _CropBatchIterator(self._source().__iter__(), self, _derive_seed(self.seed, 11, self._worker))

    def __str__(self):
        return (f"ExifBatchDataset({self.fmt}, {len(self.files)} files, B={self.batch_size}, C={self.crop_size}, "
                f"L={self.text_len}, crops_per_image={self.crops_per_image}, views={self.views})")


# --------------------------------------------------------------------------------------------------- entry point


def _check_first_record(files: Sequence[str], fmt: str) -> None:
    f = files[0]
    if fmt == "array_record":
        src = grain.sources.ArrayRecordDataSource([f])
        if len(src) == 0:
            raise DataError(f"{f}: empty shard (no records)")
        records.parse_record(src[0], where=f)
        return
    for rec in tfrecord.read_records(f):
        if not isinstance(rec, tfrecord.CorruptRecord):
            records.parse_record(rec, where=f)  # raises SchemaError (a DataError-like ValueError) naming f
            return
    raise DataError(f"{f}: empty shard (no readable records)")


def make_dataset(data_cfg, *, global_batch_size: int, process_index: int, process_count: int, seed: int, split: str,
                 crop_size: int, tokenizer_max_len: int | None = None, crops_per_image: int | None = None,
                 normalize: bool = False, num_epochs: int | None = None, shuffle: bool = True,
                 views: int | None = None) -> grain.IterDataset:
    """grain `IterDataset` of this process's batches (see module docstring for stages and config keys).

    `num_epochs=None` repeats forever (training); `num_epochs=1, shuffle=False` gives one ordered pass (eval).
    Raises `DataError` (one line naming the file/directory) when the data cannot feed the request.
    """
    path = os.fspath(_cfg_get(data_cfg, "path", "") or "")
    if not path:
        raise DataError("data.path is not set (an `exif-jax ingest` output directory)")
    if not os.path.isdir(path):
        raise DataError(f"data.path {path}: not a directory")
    if global_batch_size % process_count:
        raise DataError(f"global batch size {global_batch_size} is not divisible by {process_count} processes")
    if not 0 <= process_index < process_count:
        raise DataError(f"process_index {process_index} out of range for {process_count} processes")
    batch = global_batch_size // process_count
    if crops_per_image is None:
        crops_per_image = int(_cfg_get(data_cfg, "crops_per_image", 1))
    if crops_per_image < 1 or crops_per_image > batch:
        raise DataError(f"crops_per_image {crops_per_image} must be in [1, per-process batch {batch}]")
    if views is None:
        views = int(_cfg_get(data_cfg, "views", 1))
    if views < 1:
        raise DataError(f"data.views={views}: must be >= 1 (crops of one photo per example)")
    info = load_dataset_info(path)
    fmt = resolve_format(path, str(_cfg_get(data_cfg, "format", "auto")), split, info)
    files = list_shards(path, split, fmt)
    if info is not None:
        max_short = (info.get("splits", {}).get(split) or {}).get("max_short_side")
        if max_short is not None and crop_size > max_short:
            raise DataError(f"{path}: crop {crop_size} px is larger than every image of split {split!r} "
                            f"(largest short side {max_short} px)")
    _check_first_record(files, fmt)
    if fmt == "tfrecord":
        if len(files) < process_count:
            raise DataError(f"{path}: {len(files)} {split} shards cannot feed {process_count} processes; "
                            f"re-ingest with --shards >= {process_count}")
        my_files = files[process_index::process_count]
    else:
        my_files = files
    pseed = _derive_seed(seed, process_index, process_count)
    ds = _ExifBatchDataset(
        path=path, fmt=fmt, files=my_files, batch_size=batch, crop_size=int(crop_size),
        text_len=resolve_text_len(data_cfg, info, tokenizer_max_len), crops_per_image=crops_per_image,
        normalize=normalize, seed=pseed, shuffle_window=int(_cfg_get(data_cfg, "shuffle_window", 512)),
        cycle_length=int(_cfg_get(data_cfg, "cycle_length", 16)), num_epochs=num_epochs, shuffle=shuffle,
        views=views)
    align = int(_cfg_get(data_cfg, "crop_align", 1))
    if align < 1:
        raise DataError(f"data.crop_align={align}: must be >= 1")
    ds.crop_align = align
    cache_mb = int(_cfg_get(data_cfg, "decode_cache_mb", 0))
    if cache_mb < 0:
        raise DataError(f"data.decode_cache_mb={cache_mb}: must be >= 0 (0: no cache)")
    ds.decode_cache_mb = cache_mb
    if fmt == "array_record":
        # every process sees the same global permutation and takes its own slice of it
        ds.shuffle_seed = _derive_seed(seed, 0, 0)
        ds.process_slice = slice(process_index, None, process_count)
    workers = int(_cfg_get(data_cfg, "num_workers", 0))
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain reads its absl flags in the parent; outside absl.app, use defaults
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=workers, per_worker_buffer_size=int(_cfg_get(data_cfg, "prefetch", 2))))
    return ds


# ------------------------------------------------------------------------------------------ state / checkpoints


def pipeline_counters(state: Any) -> dict[str, int]:
    """Sums the pipeline's counters (images, batches, corrupt_records, ...) found anywhere in an iterator state
    (works for in-process and `mp_prefetch` iterators)."""
    totals = dict.fromkeys(COUNTER_KEYS, 0)

    def walk(x):
        if isinstance(x, Mapping):
            for k, v in x.items():
                if k == "exif_counters" and isinstance(v, Mapping):
                    for c in COUNTER_KEYS:
                        totals[c] += int(v.get(c, 0))
                else:
                    walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, (bytes, str)) and isinstance(x, str) and x.startswith("{"):
            try:
                walk(json.loads(x))
            except json.JSONDecodeError:
                pass

    walk(state)
    return totals


def checkpoint_args(iterator):
    """orbax save argument for the data iterator: `ocp.args.Composite(model=..., data=checkpoint_args(it))`."""
    return grain.checkpoint.CheckpointSave(iterator)


def restore_args(iterator):
    """orbax restore argument that sets `iterator`'s state in place."""
    return grain.checkpoint.CheckpointRestore(iterator)
