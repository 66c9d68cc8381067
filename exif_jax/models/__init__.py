"""Flax NNX models: `build_model(model_cfg, rngs) -> ExifClip` (see docs/ARCHITECTURE.md)."""
from __future__ import annotations

from flax import nnx

from exif_jax.models.clip import ExifClip
from exif_jax.models.configs import get_model_config, test_model_config, tiny_model_config

__all__ = ["ExifClip", "build_model", "get_model_config", "test_model_config", "tiny_model_config"]


def build_model(model_cfg, rngs: nnx.Rngs, bn_axis_name=None) -> ExifClip:
    """Build the joint model from `config.model` (`exif_jax.models.configs.get_model_config` documents the keys).

    `bn_axis_name`: mesh axis name(s) BatchNorm `pmean`s its batch statistics over when run inside `shard_map`
    (under plain `jax.jit` with a sharded batch the statistics are global without it).
    """
    return ExifClip(model_cfg, rngs=rngs, bn_axis_name=bn_axis_name)
