"""The original EXIF-as-Language recipe: ResNet-50 + DistilBERT-base, 124 px crops, batch 1024, CLIP loss with
the logit scale fixed at 100, Adam with coupled L2 1e-4 (lr 1e-4, betas 0.9/0.98, eps 1e-6), linear warmup for 5
epochs then cosine stepped once per epoch down to 1e-7, text tower without dropout, BatchNorm in train mode
(statistics over the global batch).

    exif-jax train --config configs/paper_rn50.py --workdir gs://bucket/rn50 --config.data.path=/data/yfcc_exif

Expect: ~1.5 TFLOP per sample step (forward+backward); on 8 A100/H100-class chips, ~2-3k samples/s in fp32. The
original trained ~50 epochs over ~1.5M YFCC photos; loss starts at ln(1024) = 6.93. Args: `epochs=N` (total
steps = N epochs of the ingested train split), `bf16`, `runlocal` (batch 8, 6 steps: a CPU check of the real
architecture, ~1 min after compile).
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, epochs=50, steps_per_epoch=1500, bf16=False, runlocal=False)
    c = common.base_config()
    c.config_name = "paper_rn50"
    common.with_model(c, get_model_config("resnet50"))  # embed 768, text base, fixed scale 100, clip loss
    c.model.text.dropout = 0.0
    c.model.text.attention_dropout = 0.0
    if a.bf16:
        c.model.dtype = "bfloat16"
    c.seed = 0
    c.batch_size = 1024
    c.data.steps_per_epoch = a.steps_per_epoch  # ~1.5M photos / 1024; set to your split's size
    c.total_steps = a.epochs * a.steps_per_epoch
    c.log_every = 50
    c.eval_every = 2000
    c.checkpoint_every = 2000
    c.data.crop = 124
    c.data.max_text_len = 0  # dataset_info.json text_len (bucketed); the original padded to 512
    c.optim.name = "adam_l2"
    c.optim.lr = 1e-4
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.98, 1e-6
    c.optim.weight_decay = 1e-4
    c.optim.warmup_epochs = 5.0
    c.optim.schedule = "epoch_cosine"
    c.optim.min_lr = 1e-7
    c.optim.clip_norm = 0.0
    if a.runlocal:
        c.batch_size = 8
        c.total_steps = 6
        c.data.steps_per_epoch = 2
        c.log_every = 1
        c.eval_every = 6
        c.checkpoint_every = 3
        c.data.eval_batches = 1
        c.data.max_text_len = 64
    return c
