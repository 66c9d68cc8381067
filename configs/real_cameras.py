"""Real camera traces on a 2-core CPU: several photos per camera, crops at native resolution, split by photo.

    python -m eval.learning --real --out /tmp/learn_real            # ingest + split + train 30 min + report
    python -m eval.learning --real --out /tmp/learn_real --minutes 12
    python -m eval.learning --real --out /tmp/learn_real_nozoo --zoo 0  # without the simulated zoo

`eval.learning --real` ingests `../shared/data/photos_multi` + `photos_dev/digicam_cc0` (colour charts: content
alike, processing differs) + `photos_dev/metadata_extractor` (natural photos) with the `clean` renderer (its
default tags start with Make and Model and keep what differs between cameras: sizes, software, exposure, white
balance, sharpness, ...), splits them by photo so that every camera with >= 2 photos has photos on both sides
(`eval.learning.split_by_camera`), then trains this config for about `--minutes` minutes (the step count is fixed
from steps timed after a warm start). By hand, after `eval.learning --real --prepare-only --out DIR`:

    exif-jax train --config configs/real_cameras.py:steps=4000 --workdir DIR/train --config.data.path=DIR/data_repeat2

(`DIR/data_repeat2`: the split with each real-camera training photo written twice, which `--prepare-only` writes
with the zoo on; `DIR/data` holds each photo once.)

Model: the smoke tower (torchvision ResNet layout, 16 stem channels, one bottleneck per stage, 0.54 M parameters)
+ mini DistilBERT, 64-d joint space, learned logit scale. The tower sees RGB plus the amplified high-pass residual
of each crop (`filter=rgb+highpass`, `model.image_filter`, docs/TRACES.md: the residual carries the noise and
sharpening traces, RGB the colour rendering that tells real cameras apart too). Crops: 64 px at native resolution
(the pipeline never resizes), 16 crops per decoded photo (decoding the 24 MP natural photos dominates otherwise),
each in a different batch. Each example holds two crops of one photo (`views=2`) that share one pass of the text
tower over a 64-token text (`text_len=64`: Make, Model, Software and the resolution tags); a within-photo InfoNCE
between the two crops (`consist=1`, `exif_jax.train.views`) asks for what splice localization uses: the patches of
one photo embed alike whatever they show. Held-out eval: 8 crops of every held-out photo.

Expect (`eval.learning --real`: 1 zoo render per natural photo, each real-camera training photo written twice,
`--camera-repeat 2`; at most 30 min on 2 CPU cores, nothing else running; measured with `--steps 12000`, 21.7 min),
on 76 held-out photos of the 41 cameras with photos on both sides, trained / untrained control / chance: camera
top-1 0.737 / 0.026 / 0.024 (whole photo), 0.569 / 0.027 / 0.024 (one patch); patch-pair same-camera AUC 0.925 /
0.543; cross-camera splices p-mAP 0.853 / 0.327 (random map 0.179), detection AUC 0.949 / 0.646; same-content zoo
splices of held-out natural photos p-mAP 0.454 / 0.258 (+0.195), detection AUC 0.832 / 0.379. Seed 1
(`--config-arg seed=1`, 25.2 min): 0.737, 0.564, 0.926, 0.859, 0.932, 0.518 (+0.260), same control.
With 1 zoo render and no repeat (same steps): top-1 0.645, pair AUC 0.901, p-mAP 0.797; the zoo's renders take the
real cameras' share of the crops (docs/LEARNING.md, "The zoo's share of the crops").

Without the zoo (`--zoo 0`; 13,920 / 12,497 steps in 29.4 / 29.3 min at seeds 0 / 1), trained / untrained control:
camera top-1 0.763; 0.711 / 0.026 (whole photo), 0.613; 0.603 / 0.027 (one patch); pair AUC 0.940; 0.930 / 0.543;
cross-camera p-mAP 0.856; 0.855 / 0.327; detection AUC 0.935; 0.964 / 0.646; same-content p-mAP 0.357; 0.413 /
0.258. The same two crops without the term (`consist=0`) give p-mAP 0.779 and pair AUC 0.909.

Earlier defaults (docs/LEARNING.md has every run; each is reproduced by pinning its args):
- `filter=highpass,text_len=256,views=1,consist=0` with 2 zoo renders per natural photo (7,133 steps): top-1
  0.355 / 0.013, one patch 0.264 / 0.011, pair AUC 0.873 / 0.613, cross-camera p-mAP 0.778 / 0.408, detection AUC
  0.964 / 0.747, same-content p-mAP 0.682 / 0.311: the residual alone transfers best and names cameras worst.
- `filter=none,text_len=256,views=1,consist=0` and `--zoo 0` (RGB, 7,039 steps): top-1 0.724 / 0.013, pair AUC
  0.861 / 0.551, p-mAP 0.730 / 0.369, same-content p-mAP 0.280 / 0.236.
- `eval.ablate` pins `text_len=256,views=1,consist=0` for its grid (500 steps per variant).

Args: `steps=N`, `crop=N`, `width=N` (ResNet stem channels), `crops=N` (crops per decoded photo), `batch=N`,
`filter=highpass|rgb+highpass|none` (default `rgb+highpass`), `seed=N` (init and data order), `text_len=N` (tokens
per EXIF text, default 64; longer texts are cut), `views=N` (crops of one photo per example, sharing one text-tower
pass; default 2), `consist=X` (weight of the within-photo loss between those views, default 1; 0 with `views=1`),
`lr=X` (peak learning rate, default 1e-3), `cache_mb=N` (MiB of decoded photos kept in memory, default 2048; 0:
decode every time), `runlocal` (30 steps, tests).
"""
from configs import common


def get_config(arg=None):
    from exif_jax.models.configs import get_model_config

    a = common.parse_arg(arg, steps=4000, crop=64, width=16, crops=16, batch=32, filter="rgb+highpass", seed=0,
                         text_len=64, views=2, consist=1.0, lr=1e-3, cache_mb=2048,
                         runlocal=False)
    c = common.base_config()
    c.config_name = "real_cameras"
    model = get_model_config("resnet50", **{"embed_dim": 64, "image_size": a.crop, "text.variant": "mini",
                                            "resnet.width": a.width, "resnet.stages": (1, 1, 1, 1),
                                            "image_filter": a.filter})
    common.with_model(c, model)
    c.seed = a.seed  # initialisation and data order (eval.ablate's run-to-run yardstick: seed=1)
    c.batch_size = a.batch
    c.total_steps = a.steps
    c.log_every = 50
    c.eval_every = max(a.steps // 4, 50)
    c.checkpoint_every = max(a.steps // 8, 50)
    c.data.crop = a.crop  # native resolution: random crops of the decoded photo, never resized
    c.data.crops_per_image = a.crops
    # each photo is decoded ~90 times in 30 minutes: keep the decoded photos (~1.1 GB for eval.learning --real's
    # 221 training photos); the batches are the same bits with or without it
    c.data.decode_cache_mb = a.cache_mb
    c.data.views = a.views  # crops of one photo per example: one text-tower pass for `views` image crops
    c.view_consistency = a.consist  # within-photo InfoNCE between those views (exif_jax.train.views)
    # clean texts of these cameras: median 164 tokens, max 272. The text tower's attention costs L^2 (~3/4 of a step
    # at 256 tokens); 64 tokens keep Make, Model, Software and the sizes, and leave the time to the image crops.
    c.data.max_text_len = a.text_len
    c.data.eval_batches = -1
    c.data.eval_crops_per_image = 8
    c.data.eval_batch_size = a.batch
    c.data.shuffle_window = 128
    c.optim.name = "adamw"
    c.optim.lr = a.lr  # peak, after the warmup; cosine to min_lr
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 50  # does not depend on the run length (eval.learning times its steps in a throwaway
    c.optim.schedule = "cosine"  # run, exif_jax.train.budget; the quickstart's timed steps lie inside its warmup)
    c.optim.min_lr = 1e-5
    c.optim.clip_norm = 1.0
    c.model.logit_scale.learn = True
    c.model.logit_scale.init = 10.0
    if a.runlocal:
        c.total_steps = 30
        c.log_every = 5
        c.eval_every = 30
        c.checkpoint_every = 10
        c.data.crops_per_image = 2
        c.data.eval_batches = 2
        c.data.eval_crops_per_image = 1
        c.data.max_text_len = 64
    return c
