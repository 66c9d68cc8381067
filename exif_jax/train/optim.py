"""Optimizers and learning-rate schedules.

`adam_l2` is the original's `torch.optim.Adam(weight_decay=1e-4)`: coupled L2, i.e. `wd * param` is added to the
gradient BEFORE Adam's moment estimates (`add_decayed_weights` -> `scale_by_adam`), unlike AdamW. `adamw` decays
weights decoupled from the moments and skips vectors (biases, norms, logit scale). Gradient clipping by global norm
comes first, as `torch.nn.utils.clip_grad_norm_` would before `optimizer.step()`.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def make_schedule(optim_cfg, total_steps: int, steps_per_epoch: int):
    """Linear warmup, then cosine from `lr` to `min_lr`.

    `schedule='epoch_cosine'` holds the rate constant within an epoch and steps the cosine once per epoch (the
    original's `CosineAnnealingLR` stepped per epoch); `'cosine'` decays every step. Warmup length is
    `warmup_epochs * steps_per_epoch` when `warmup_epochs > 0`, else `warmup_steps`.
    """
    lr, min_lr = float(optim_cfg.lr), float(optim_cfg.min_lr)
    spe = max(int(steps_per_epoch), 1)
    warm = int(round(float(optim_cfg.warmup_epochs) * spe)) if float(optim_cfg.warmup_epochs) > 0 else int(
        optim_cfg.warmup_steps)
    kind = str(optim_cfg.schedule)
    if kind not in ("cosine", "epoch_cosine", "constant"):
        raise ValueError(f"optim.schedule={kind!r}: use 'cosine', 'epoch_cosine' or 'constant'")
    total_epochs = max(math.ceil(total_steps / spe), 1)
    warm_epochs = warm / spe

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm_lr = lr * (step + 1.0) / max(warm, 1)
        if kind == "constant":
            after = jnp.asarray(lr, jnp.float32)
        elif kind == "cosine":
            frac = jnp.clip((step - warm) / max(total_steps - warm, 1), 0.0, 1.0)
            after = min_lr + 0.5 * (lr - min_lr) * (1.0 + jnp.cos(jnp.pi * frac))
        else:
            epoch = jnp.floor(step / spe)
            frac = jnp.clip((epoch - jnp.ceil(warm_epochs)) / max(total_epochs - math.ceil(warm_epochs), 1), 0.0, 1.0)
            after = min_lr + 0.5 * (lr - min_lr) * (1.0 + jnp.cos(jnp.pi * frac))
        return jnp.where(step < warm, warm_lr, after)

    return schedule


def _decay_mask(params):
    return jax.tree.map(lambda p: getattr(p, "ndim", 0) >= 2, params)


def make_optimizer(optim_cfg, total_steps: int, steps_per_epoch: int):
    """Returns (optax transformation, schedule fn)."""
    schedule = make_schedule(optim_cfg, total_steps, steps_per_epoch)
    parts = []
    if float(optim_cfg.clip_norm) > 0:
        parts.append(optax.clip_by_global_norm(float(optim_cfg.clip_norm)))
    name = str(optim_cfg.name)
    b1, b2, eps, wd = float(optim_cfg.b1), float(optim_cfg.b2), float(optim_cfg.eps), float(optim_cfg.weight_decay)
    if name == "adam_l2":
        if wd > 0:
            parts.append(optax.add_decayed_weights(wd))
        parts += [optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale_by_learning_rate(schedule)]
    elif name == "adamw":
        parts += [optax.scale_by_adam(b1=b1, b2=b2, eps=eps)]
        if wd > 0:
            parts.append(optax.add_decayed_weights(wd, mask=_decay_mask))
        parts.append(optax.scale_by_learning_rate(schedule))
    elif name == "sgd":
        parts += [optax.trace(decay=b1), optax.scale_by_learning_rate(schedule)]
    else:
        raise ValueError(f"optim.name={name!r}: use 'adam_l2', 'adamw' or 'sgd'")
    return optax.chain(*parts), schedule
