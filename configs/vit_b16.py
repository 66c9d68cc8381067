"""TPU-scale: ViT-B/16 on 128 px crops + DistilBERT-base, bf16 compute, large global batch, AdamW with warmup +
cosine, learned logit scale clamped at 100, gradient clipping.

    exif-jax train --config configs/vit_b16.py --workdir gs://bucket/vitb16 --config.data.path=gs://bucket/yfcc
    exif-jax train --config configs/vit_b16.py:fsdp --workdir ...          # parameters sharded over all chips
    exif-jax compile --config configs/vit_b16.py --topology v5p-128        # check memory before reserving a pod

Expect: ~0.9 TFLOP per sample step at L=64 tokens; on a v5p-128 at batch 16384 about 1 step/s (bf16). Loss
starts at ln(B) and the learned scale climbs from 14.3 toward its clamp. Args: `res=128`, `batch=N`, `steps=N`,
`fsdp` (mesh.fsdp=-1), `runlocal` (a tiny ViT on CPU for a minute).
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, res=128, batch=16384, steps=100_000, fsdp=False, runlocal=False)
    c = common.base_config()
    c.config_name = "vit_b16"
    model = get_model_config("vit", **{"vit.variant": "B/16", "image_size": a.res, "embed_dim": 768,
                                       "dtype": "bfloat16", "vit.act": "gelu"})
    common.with_model(c, model)
    c.model.logit_scale.learn = True
    c.model.logit_scale.init = 1 / 0.07
    c.model.logit_scale.max = 100.0
    c.seed = 0
    c.batch_size = a.batch
    c.total_steps = a.steps
    c.log_every = 100
    c.eval_every = 5000
    c.checkpoint_every = 2000
    c.data.crop = a.res
    c.data.max_text_len = 64
    c.data.num_workers = 8
    if a.fsdp:
        c.mesh.data, c.mesh.fsdp = 1, -1
    c.optim.name = "adamw"
    c.optim.lr = 5e-4
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.98, 1e-6
    c.optim.weight_decay = 0.2
    c.optim.warmup_steps = 10_000
    c.optim.schedule = "cosine"
    c.optim.min_lr = 0.0
    c.optim.clip_norm = 1.0
    if a.runlocal:
        c.model.vit.variant = "mu/8"
        c.model.image_size = 32
        c.data.crop = 32
        c.model.text.variant = "mini"
        c.model.embed_dim = 64
        c.model.dtype = "float32"
        c.batch_size = 16
        c.total_steps = 20
        c.log_every = 5
        c.eval_every = 20
        c.checkpoint_every = 10
        c.optim.warmup_steps = 5
        c.data.num_workers = 0
        c.data.eval_batches = 1
    return c
