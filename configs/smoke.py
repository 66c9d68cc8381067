"""Smoke run: a narrow ResNet (or a tiny ViT) + tiny DistilBERT trained on ~120 real photos on CPU in minutes.

    exif-jax ingest --images ../shared/data/photos_dev --out /tmp/exif_photos --eval-fraction 0.25 --shards 4 \
        --renderer clean
    exif-jax train --config configs/smoke.py --workdir /tmp/smoke --config.data.path=/tmp/exif_photos

Model: ResNet with torchvision's layout but 16 stem channels and one bottleneck per stage (`resnet.width=16`,
`resnet.stages=(1,1,1,1)`; 0.54 M parameters) on 64 px crops + mini DistilBERT, 64-d joint space, learned logit
scale. The tower sees the high-pass residual of each crop (`filter=highpass`, `model.image_filter`; docs/TRACES.md):
from RGB this small tower learns content and colour in minutes, not camera traces. `filter=none` gives the RGB
tower; the numbers under "Expect" were measured with it. The quickstart (`exif-jax quickstart`) trains this config
on several photos per camera + the simulated zoo; its README section has the residual tower's numbers. Data: 8 random 64 px crops per decoded photo (decode-bound otherwise), each in a different batch; EXIF text
up to 256 tokens (`clean` texts are ~180). Eval: 8 crops of every held-out photo (`eval_batches=-1`,
`eval_crops_per_image=8`), each ranked against the distinct held-out texts (chance = 5 / #photos);
`eval_photo_top5` ranks each photo by the mean of its crops' embeddings.

Expect (2 CPU cores, 154 photos: 118 train / 36 held out, chance top-5 0.139): compile ~10 s, ~3.7 steps/s at
batch 32, 700 steps in ~3.5-4 min. Train loss 3.47 (ln 32) -> ~1.7-2.1. Held-out image->EXIF top-5 at step 700:
0.222 / 0.229 per crop and 0.306 / 0.389 per photo (seeds 0 / 1; 2.2-2.8x chance per photo); eval loss rises
after ~step 150 (118 photos are memorised). The ~1 photo per camera means cross-camera cues (maker, resolution,
JPEG quality) are all there is to learn. `tower=vit` (ViT mu/8, 64 wide, 2 layers) stays at chance (0.11-0.22)
in the same time; `tower=resnet50` (full width) runs at 0.16 steps/s. Args: `tower=resnet|resnet50|vit`,
`steps=N`, `filter=highpass|none`, `runlocal` (30 steps, tests / a first try). Rerun the same command to resume from WORKDIR.
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, tower="resnet", steps=700, filter="highpass", runlocal=False)
    if a.tower not in ("resnet", "resnet50", "vit"):
        raise ValueError(f"config arg tower={a.tower!r}: expected resnet, resnet50 or vit")
    c = common.base_config()
    c.config_name = "smoke"
    crop = 64
    narrow = {"resnet.width": 16, "resnet.stages": (1, 1, 1, 1)} if a.tower == "resnet" else {}
    model = get_model_config("vit" if a.tower == "vit" else "resnet50",
                             **{"embed_dim": 64, "image_size": crop, "vit.variant": "mu/8", "vit.pool": "mean",
                                "text.variant": "mini", "vit.act": "gelu", "image_filter": a.filter, **narrow})
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
    c.data.eval_batches = -1  # the whole held-out split ...
    c.data.eval_crops_per_image = 8  # ... 8 crops of each photo
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
        c.data.eval_crops_per_image = 1
        c.data.eval_batch_size = 16
        c.data.max_text_len = 64
    return c
