"""torchvision ResNet-50 (v1.5: stride on the 3x3 conv) in Flax NNX, NHWC, PyTorch-exact padding and BatchNorm.

Submodules are named after torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0/1`, `fc`) so the
PyTorch state dict converts by renaming plus layout rules (`exif_jax.convert.mapping`). `fc` maps 2048 -> `out_dim`
and its raw output is the image embedding, as in the original EXIF-as-Language model.

`width` (stem channels, 64) and `stages` (bottlenecks per stage, (3, 4, 6, 3)) default to ResNet-50; smaller values
give a narrower/shallower net with the same module names (e.g. width 16, stages (1, 1, 1, 1) for CPU smoke runs).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from exif_jax.models.layers import BatchNorm, torch_linear_init

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu")
_conv_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")

STAGES_50 = (3, 4, 6, 3)
WIDTH_50 = 64


def resnet_layout(resnet_cfg) -> tuple[int, tuple[int, ...]]:
    """(`width`, `stages`) of a `config.model.resnet` (configs saved before these keys: ResNet-50's)."""
    return int(resnet_cfg.get("width", WIDTH_50)), tuple(int(b) for b in resnet_cfg.get("stages", STAGES_50))


def is_resnet50_layout(resnet_cfg) -> bool:
    return resnet_layout(resnet_cfg) == (WIDTH_50, STAGES_50)


class Conv(nnx.Conv):
    """`nnx.Conv` (same `kernel` parameter, HWIO) whose 1x1 convolutions run as a matmul over the channels.

    Why: XLA:CPU differentiates a 1x1 convolution into a convolution over the whole feature map with transposed
    layouts, 2-3x slower than the GEMM the same gradient is; written as a `dot_general`, the forward and both
    gradients are GEMMs on every backend. A strided 1x1 conv (the v1.5 `downsample`) keeps every `stride`-th
    pixel first, as the convolution does with zero padding.
    """

    def __call__(self, x):
        unpadded = self.padding in ("VALID", 0, ((0, 0), (0, 0)))
        plain = self.feature_group_count == 1 and self.input_dilation in (None, 1, (1, 1))
        if self.kernel_size != (1, 1) or not unpadded or not plain or self.bias is not None or self.mask is not None:
            return super().__call__(x)
        sh, sw = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides or (1, 1))
        if sh > 1 or sw > 1:
            x = x[:, ::sh, ::sw, :]
        x, kernel = self.promote_dtype((x, self.kernel[...][0, 0]), dtype=self.dtype)
        return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=self.precision,
                                   preferred_element_type=self.preferred_element_type)


def _conv(cin, cout, k, stride, pad, dtype, param_dtype, rngs):
    return Conv(cin, cout, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)), use_bias=False,
                kernel_init=_conv_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class Bottleneck(nnx.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, *, bn_kw, dtype, param_dtype, zero_init_residual, rngs):
        width = planes
        self.conv1 = _conv(inplanes, width, 1, 1, 0, dtype, param_dtype, rngs)
        self.bn1 = BatchNorm(width, **bn_kw)
        self.conv2 = _conv(width, width, 3, stride, 1, dtype, param_dtype, rngs)
        self.bn2 = BatchNorm(width, **bn_kw)
        self.conv3 = _conv(width, planes * 4, 1, 1, 0, dtype, param_dtype, rngs)
        self.bn3 = BatchNorm(planes * 4, **{**bn_kw, "scale_init": 0.0 if zero_init_residual else 1.0})
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nnx.List([_conv(inplanes, planes * 4, 1, stride, 0, dtype, param_dtype, rngs),
                                        BatchNorm(planes * 4, **bn_kw)])
        else:
            self.downsample = None

    def __call__(self, x, train: bool = False):
        out = jax.nn.relu(self.bn1(self.conv1(x), train))
        out = jax.nn.relu(self.bn2(self.conv2(out), train))
        out = self.bn3(self.conv3(out), train)
        identity = x if self.downsample is None else self.downsample[1](self.downsample[0](x), train)
        return jax.nn.relu(out + identity)


class ResNet50(nnx.Module):
    """`__call__(x_nhwc, train=False) -> [B, out_dim]`; `features(...)` gives the 2048-d pooled features too."""

    def __init__(self, out_dim: int = 768, *, bn_momentum: float = 0.1, bn_eps: float = 1e-5,
                 zero_init_residual: bool = False, dtype=None, param_dtype=jnp.float32, remat: bool = False,
                 bn_axis_name=None, width: int = WIDTH_50, stages=STAGES_50, rngs: nnx.Rngs):
        stages = tuple(int(b) for b in stages)
        if width < 1 or len(stages) != 4 or min(stages) < 1:
            raise ValueError(f"resnet width={width}, stages={stages}: need width >= 1 and 4 stages of >= 1 blocks")
        self.remat = remat
        self.dtype = dtype
        bn_kw = dict(momentum=bn_momentum, epsilon=bn_eps, dtype=dtype, param_dtype=param_dtype,
                     axis_name=bn_axis_name)
        self.conv1 = _conv(3, width, 7, 2, 3, dtype, param_dtype, rngs)
        self.bn1 = BatchNorm(width, **bn_kw)
        inplanes = width
        for i, (planes, blocks) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), stages)):
            layer = []
            for b in range(blocks):
                stride = 2 if (i > 0 and b == 0) else 1
                layer.append(Bottleneck(inplanes, planes, stride, bn_kw=bn_kw, dtype=dtype, param_dtype=param_dtype,
                                        zero_init_residual=zero_init_residual, rngs=rngs))
                inplanes = planes * 4
            setattr(self, f"layer{i + 1}", nnx.List(layer))
        feat = inplanes  # 2048 for ResNet-50
        self.fc = nnx.Linear(feat, out_dim, kernel_init=torch_linear_init(feat), bias_init=torch_linear_init(feat),
                             dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def features(self, x, train: bool = False):
        if self.dtype is not None:
            x = x.astype(self.dtype)
        x = jax.nn.relu(self.bn1(self.conv1(x), train))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        call = (lambda blk, h: blk(h, train))
        if self.remat:
            call = nnx.remat(call)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = call(block, x)
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(x.dtype)

    def __call__(self, x, train: bool = False):
        return self.fc(self.features(x, train))
