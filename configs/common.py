"""Helpers shared by the experiment configs: the `key=value,...` config argument and the common config skeleton.

`exif-jax train --config configs/vit_b16.py:res=128,runlocal` passes the string after `:` to `get_config(arg)`;
`parse_arg` turns it into typed values against declared defaults, so a misspelt switch fails loudly.
"""
from __future__ import annotations

import ml_collections


def _coerce(key: str, text: str, default):
    if isinstance(default, bool):
        low = text.lower()
        if low in ("", "1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config arg {key}={text!r}: expected a boolean (true/false)")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"config arg {key}={text!r}: expected an integer") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config arg {key}={text!r}: expected a number") from None
    return text


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses `"res=128,runlocal,tower=vit"` against `defaults` (which also give each value's type).

    A bare `key` means `key=True`. Unknown keys raise `ValueError` naming the key and the known ones.
    """
    out = dict(defaults)
    for part in (arg or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "(none)"
            raise ValueError(f"unknown config arg {key!r}; this config accepts: {known}")
        if not sep and not isinstance(defaults[key], bool):
            raise ValueError(f"config arg {key!r} needs a value ({key}=...)")
        out[key] = _coerce(key, value.strip(), defaults[key])
    return ml_collections.ConfigDict(out)


def base_config() -> ml_collections.ConfigDict:
    """Every key the trainer reads, with neutral defaults; experiment configs override what they need."""
    c = ml_collections.ConfigDict()
    c.config_name = ""  # which config this is ("smoke"); reports name a trained model by it and its step
    c.seed = 0
    c.batch_size = 64  # global, over all processes and devices
    c.total_steps = 1000
    c.log_every = 10
    c.eval_every = 500
    c.checkpoint_every = 500
    c.keep_checkpoints = 3  # latest K kept by orbax
    c.async_checkpointing = True
    c.accum_steps = 1  # GradCache micro-batches per step (all negatives kept)
    c.view_consistency = 0.0  # weight of the within-photo InfoNCE between views (data.views >= 2; train.views)
    c.nan_guard = True  # stop with a clear message on non-finite loss/grads (last good checkpoint is kept)
    c.eval_control = True  # evaluate the untrained initialisation once too (control_eval_* at step 0)
    c.wandb_project = ""  # empty: no Weights & Biases

    c.data = ml_collections.ConfigDict()
    c.data.path = ""  # `exif-jax ingest` output directory
    c.data.crop = 124  # random crop size (px)
    c.data.max_text_len = 0  # 0: dataset_info.json text_len; >0: fixed pad/truncate length (original: 512)
    c.data.format = "auto"  # tfrecord | array_record | auto
    c.data.num_workers = 0  # grain worker processes for decode/crop (0: in-process)
    c.data.prefetch = 2
    c.data.shuffle_window = 512
    c.data.cycle_length = 16
    c.data.crops_per_image = 1
    c.data.views = 1  # crops of one photo per example, sharing one text-tower pass (exif_jax.train.views)
    c.data.crop_align = 1  # crop offsets on a multiple of this (8: the JPEG block grid; 1: anywhere, as the original)
    c.data.decode_cache_mb = 0  # >0: keep decoded photos in memory (small datasets read for many epochs)
    c.data.eval_split = "eval"
    c.data.eval_batches = 4  # held-out batches per eval (-1: one pass over the whole held-out split)
    c.data.eval_batch_size = 0  # 0: same as batch_size
    c.data.eval_crops_per_image = 1  # crops of every held-out photo (one per ordered pass over the split)
    c.data.steps_per_epoch = 0  # 0: from dataset_info.json (train count // batch_size)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1: all devices left after fsdp
    c.mesh.fsdp = 1  # -1: all devices left after data (FSDP is `--config.mesh.fsdp=-1`)
    # Multi-slice TPU: the `data` axis also spans this many slices over the data-centre network (DCN); data/fsdp
    # above are then per slice (mesh `data` = dcn_data * data). `exif-jax compile --topology 2xv5p-128` sets it.
    c.mesh.dcn_data = 1

    c.sharding = ml_collections.ConfigDict()
    # Ordered (regex over 'a/b/c' parameter path, rule) pairs; first match wins. Rules: 'fsdp' (shard the largest
    # dim divisible by the fsdp axis size, else replicate), 'replicate'. Unmatched leaves are replicated.
    c.sharding.rules = ((".*", "fsdp"),)

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam_l2"  # adam_l2 (coupled L2 as the original) | adamw
    c.optim.lr = 1e-4
    c.optim.b1 = 0.9
    c.optim.b2 = 0.98
    c.optim.eps = 1e-6
    c.optim.weight_decay = 1e-4
    c.optim.warmup_epochs = 0.0
    c.optim.warmup_steps = 0  # used when warmup_epochs == 0
    c.optim.schedule = "cosine"  # cosine (per step) | epoch_cosine (stepped once per epoch, as the original)
    c.optim.min_lr = 1e-7
    c.optim.clip_norm = 0.0  # 0: no clipping
    return c


def with_model(c: ml_collections.ConfigDict, model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Attaches `config.model` (from `exif_jax.models.configs`) plus the trainer's `model.init_from`."""
    c.model = model
    if "init_from" not in c.model:
        c.model.init_from = ""  # original .pth / exported .safetensors / workdir to start from (`exif_jax.load`)
    return c
