"""Smoke run: a tiny ViT (or ResNet-50) + tiny DistilBERT trained on a few hundred photos on CPU in minutes.

    exif-jax ingest --images ../shared/data/photos_dev --out /tmp/exif_photos --eval-fraction 0.25 --shards 4 \
        --renderer clean
    exif-jax train --config configs/smoke.py --workdir /tmp/smoke --config.data.path=/tmp/exif_photos

Model: ViT mu/8 (64 wide, 2 layers, 8 px patches, mean-pooled: 64 tokens at 64 px) + mini DistilBERT, 64-d joint
space, learned logit scale. Data: 8 random 64 px crops per decoded photo (decode-bound otherwise); EXIF text up to
256 tokens (the `clean` texts are ~185 tokens: 128 cut off image size, flash, focal length). Held-out retrieval
uses ONE batch of 32 distinct held-out photos (`eval_batches=1`): with several crops of a photo in the eval set,
its identical texts fill an image's top 5 and `eval_top5` falls far below `eval_top5_chance` even for a model
that ranks better than random (a random model scores 0.045 top-5 vs a printed chance of 0.21 with 8 crops x 22
photos), so keep 1 eval batch when `crops_per_image > 1`.

Expect (2 shared CPU cores, 154 photos: 118 train / 36 held out): compile ~10 s, then 2.4-3.4 steps/s at
batch 32, 700 steps in ~4-5 min. Train loss 3.47 (ln 32) -> ~2.55, in-batch accuracy ~0.3. Held-out image->EXIF
top-5 over 32 held-out photos (chance 0.156) at step 700: 0.22 (seed 0), 0.19 (seed 1); it swings 0.12-0.34
between evals (one photo = 0.03). That is at chance within noise: ~120 photos teach the pipeline to run, not to
generalise across cameras. Tried and no better: ResNet-50 at 64 px (0.16 steps/s: too slow), ViT Ti/16, 96 px
crops (0.22 at step 700), lr 3e-4 + weight decay 0.1 (0.28 seed 0, 0.06 seed 1). Metrics print eval_top5
next to eval_top5_chance. Args: `tower=vit|resnet50`, `steps=N`, `runlocal` (30 steps, tests / a first try).
Rerun the same command to resume from WORKDIR.
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, tower="vit", steps=700, runlocal=False)
    c = common.base_config()
    crop = 64
    model = get_model_config(a.tower, **{"embed_dim": 64, "image_size": crop, "vit.variant": "mu/8",
                                          "vit.pool": "mean", "text.variant": "mini", "vit.act": "gelu"})
    common.with_model(c, model)
    c.seed = 0
    c.batch_size = 32
    c.total_steps = a.steps
    c.log_every = 20
    c.eval_every = 140
    c.checkpoint_every = 140
    c.data.crop = crop
    c.data.crops_per_image = 8
    c.data.max_text_len = 256
    c.data.eval_batches = 1  # one batch of distinct held-out photos (see the docstring)
    c.data.eval_batch_size = 32
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
        c.data.crops_per_image = 1
        c.data.eval_batches = 2
        c.data.eval_batch_size = 16
        c.data.max_text_len = 64
    return c
