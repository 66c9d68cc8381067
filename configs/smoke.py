"""Smoke run: a tiny ViT (or ResNet-50) + tiny DistilBERT trained on a few hundred photos on CPU in minutes.

    exif-jax ingest --images ../shared/data/photos_dev --out /tmp/exif_photos --eval-fraction 0.25 --shards 4
    exif-jax train --config configs/smoke.py --workdir /tmp/smoke --config.data.path=/tmp/exif_photos

Expect (2 shared CPU cores, 154 photos: 118 train / 36 held out, `--config.data.crops_per_image=4`): compile
~1 min, then ~1 step/s at batch 32 (data-bound: full-resolution JPEG decodes), 400 steps in ~7 min. Train loss
3.47 (ln 32) -> ~3.1; image->EXIF top-5 on *training* photos 0.18 (chance 0.05), on held-out photos at chance
(0.09 vs 0.16): a hundred photos teach the pipeline to run, not to generalise across cameras. Metrics print
eval_top5 next to eval_top5_chance. Args: `tower=vit|resnet50`, `steps=N`, `runlocal` (30 steps, tests / a first
try). Rerun the same command to resume from WORKDIR.
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, tower="vit", steps=600, runlocal=False)
    c = common.base_config()
    crop = 64
    model = get_model_config(a.tower, **{"embed_dim": 64, "image_size": crop, "vit.variant": "Ti/16",
                                          "text.variant": "mini", "vit.act": "gelu"})
    common.with_model(c, model)
    c.seed = 0
    c.batch_size = 32
    c.total_steps = a.steps
    c.log_every = 20
    c.eval_every = 200
    c.checkpoint_every = 200
    c.data.crop = crop
    c.data.max_text_len = 128
    c.data.eval_batches = 8
    c.data.eval_batch_size = 16
    c.data.shuffle_window = 64
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 50
    c.optim.schedule = "cosine"
    c.optim.min_lr = 1e-5
    c.optim.clip_norm = 1.0
    c.model.logit_scale.learn = True
    c.model.logit_scale.init = 10.0
    if a.runlocal:
        c.batch_size = 16
        c.total_steps = 30
        c.log_every = 5
        c.eval_every = 30
        c.checkpoint_every = 10
        c.data.eval_batches = 2
        c.data.max_text_len = 64
    return c
