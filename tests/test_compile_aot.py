"""`exif-jax compile` / `exif_jax.aot`: ahead-of-time compilation for TPU and GPU topologies without hardware.

Needs `libtpu` (exif-jax[tpu]) and `jax-cuda12-plugin` (exif-jax[cuda-aot]); a missing package fails these tests.
References: published slice/host sizes of Cloud TPU and DGX machines, XLA's own TPU cost analysis, PyTorch's
FlopCounterMode on torchvision ResNet-50 + transformers DistilBERT, and shape arithmetic of the train state.
"""
from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from exif_jax import aot
from exif_jax.commands import compile as compile_cmd


def _quiet(s: str) -> list[str]:
    """stderr lines of ours (libtpu/CUDA stubs log to stderr from C++ at load time)."""
    return [ln for ln in s.splitlines() if ln.startswith("exif-jax compile:")]


# --------------------------------------------------------------------------------------------- topologies

# name -> (chips, hosts, device_kind): Cloud TPU docs (v4/v5p count TensorCores, 2 per chip, 4 chips per host;
# v5e/v6e count chips, 4 per host in multi-host slices, up to 8 on one host), DGX/HGX: 8 GPUs per host.
KNOWN = {
    "v5p-128": (64, 16, "TPU v5"),
    "v4-32": (16, 4, "TPU v4"),
    "v5e-16": (16, 4, "TPU v5 lite"),
    "v5litepod-4": (4, 1, "TPU v5 lite"),
    "v6e-16": (16, 4, "TPU v6"),
    "v5p:4x4x8": (128, 32, "TPU v5"),
    "h100x16": (16, 2, "NVIDIA H100 80GB HBM3"),
    "a100x8": (8, 1, "NVIDIA A100-SXM4-80GB"),
    "2xv5e-4": (8, 2, "TPU v5 lite"),  # multi-slice: 2 slices of one host each
    "2xv5p-128": (128, 32, "TPU v5"),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_topologies_have_the_published_sizes(name):
    chips, hosts, kind = KNOWN[name]
    target = aot.parse_topology(name)
    assert (target.num_devices, target.num_hosts) == (chips, hosts)
    devices = aot.topology_devices(target)  # built by libtpu / the CUDA plugin, not by us
    assert len(devices) == chips
    assert len({d.process_index for d in devices}) == hosts
    assert {d.device_kind for d in devices} == {kind} or kind.startswith("TPU v6")
    assert target.chip.hbm_bytes > 10 * aot.GiB


def test_v5p_128_matches_the_documented_topology_call():
    t = aot.parse_topology("v5p-128")
    assert t.topology_name == "v5:4x4x4"
    assert dict(t.kwargs) == dict(chip_config_name="megacore", chips_per_host_bounds=(2, 2, 1), num_slices=1,
                                  wrap=(True, True, True))


def test_multi_slice_topology_names():
    t = aot.parse_topology("2xv5p-128")
    assert (t.name, t.num_slices, t.num_devices, t.num_hosts, t.topology_name) == ("2xv5p-128", 2, 128, 32, "v5:4x4x4")
    assert dict(t.kwargs) == {**dict(aot.parse_topology("v5p-128").kwargs), "num_slices": 2}
    assert "in 2 slices" in t.describe()
    assert aot.parse_topology("4xv5litepod-16").name == "4xv5e-16"
    assert aot.parse_topology("1xv5e-4") == aot.parse_topology("v5e-4")
    assert aot.parse_topology("v5e-4").num_slices == 1
    devices = aot.topology_devices(aot.parse_topology("2xv5e-4"))
    assert sorted(d.slice_index for d in devices) == [0] * 4 + [1] * 4


@pytest.mark.parametrize("name, needle", [
    ("0xv5e-4", "need at least one slice"),
    ("2xh100x8", "unknown topology"),
    ("2xv5p-100", "no v5p slice of that size"),
    ("v5p-100", "no v5p slice of that size"),
    ("v4-7", "no v4 slice of that size"),
    ("tpu-big", "unknown topology"),
    ("h100x12", "do not fill hosts of 8"),
    ("v6e:4x4x4", "v6e shapes are AxB"),
])
def test_bad_topology_names(name, needle):
    with pytest.raises(aot.CompileError) as e:
        aot.parse_topology(name)
    assert needle in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------- multi-slice meshes

@pytest.mark.parametrize("data, fsdp, dcn, n, ici", [
    (-1, 1, 2, 8, (4, 1)),  # data parallel: 4 per slice x 2 slices
    (1, -1, 2, 8, (1, 4)),  # FSDP inside each slice, data parallel across slices
    (-1, 2, 2, 16, (4, 2)),
    (2, -1, 4, 64, (2, 8)),
    (-1, 1, 1, 8, (8, 1)),  # one slice: what mesh_shape gives
])
def test_hybrid_mesh_shape_resolves_per_slice(data, fsdp, dcn, n, ici):
    from exif_jax.train.mesh import hybrid_mesh_shape, mesh_shape

    assert hybrid_mesh_shape(data, fsdp, dcn, n) == (ici, (dcn, 1))
    assert mesh_shape(data, fsdp, n // dcn) == ici


@pytest.mark.parametrize("data, fsdp, dcn, n, needle", [
    (-1, 1, 3, 8, "mesh.dcn_data=3 does not divide the 8 devices"),
    (-1, 1, 0, 8, "mesh.dcn_data=0: use a positive number of slices"),
    (3, 1, 2, 8, "mesh data=3 x fsdp=1 = 3 but there are 4 devices"),  # 4 devices per slice
])
def test_hybrid_mesh_shape_errors(data, fsdp, dcn, n, needle):
    from exif_jax.train.mesh import hybrid_mesh_shape

    with pytest.raises(ValueError, match=needle):
        hybrid_mesh_shape(data, fsdp, dcn, n)


def _mesh_cfg(data=-1, fsdp=1, dcn_data=1):
    import ml_collections

    return ml_collections.ConfigDict({"data": data, "fsdp": fsdp, "dcn_data": dcn_data})


def test_make_mesh_single_slice_is_unchanged_and_dcn_errors_are_one_line():
    from types import SimpleNamespace

    from exif_jax.train.mesh import make_mesh

    cpu = jax.devices()
    for data, fsdp, shape in ((-1, 1, (8, 1)), (2, -1, (2, 4))):
        ref = jax.make_mesh(shape, ("data", "fsdp"), axis_types=(jax.sharding.AxisType.Auto,) * 2, devices=cpu)
        assert make_mesh(_mesh_cfg(data, fsdp), cpu) == ref
    cases = [
        (cpu, 2, "mesh.dcn_data=2 needs devices with slice_index (multi-slice TPU); these are cpu devices"),
        ([SimpleNamespace(slice_index=0, platform="tpu")] * 8, 2, "mesh.dcn_data=2 but the 8 devices form 1 slice;"),
        ([SimpleNamespace(slice_index=i // 4, platform="tpu") for i in range(8)], 1,
         "the 8 devices span 2 slices (multi-slice TPU): set mesh.dcn_data=2"),
    ]
    for devices, dcn, needle in cases:
        with pytest.raises(ValueError) as e:
            make_mesh(_mesh_cfg(dcn_data=dcn), devices)
        assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fsdp, shape", [(1, (8, 1)), (-1, (2, 4))])
def test_multi_slice_mesh_puts_slices_along_data(fsdp, shape):
    from exif_jax.train.mesh import make_mesh

    mesh = make_mesh(_mesh_cfg(fsdp=fsdp, dcn_data=2), aot.topology_devices(aot.parse_topology("2xv5e-4")))
    assert tuple(mesh.shape.values()) == shape and mesh.axis_names == ("data", "fsdp")
    slices = np.vectorize(lambda d: d.slice_index)(mesh.devices)
    half = shape[0] // 2
    # The outer half of `data` is slice 0, the other slice 1: fsdp (and in-slice data) groups never cross DCN.
    assert (slices[:half] == 0).all() and (slices[half:] == 1).all()


def test_vit_b16_on_two_slices_report():
    """One real multi-slice compile (~10 s): ViT runlocal over 2 x v5e-4 with `mesh.dcn_data` set from the name."""
    from configs import vit_b16

    config = vit_b16.get_config("runlocal")
    meshes = []

    def make_mesh(mesh_cfg, devices):
        from exif_jax.train.mesh import make_mesh as trainer_make_mesh

        meshes.append(trainer_make_mesh(mesh_cfg, devices))
        return meshes[-1]

    r = aot.compile_for_target(config, aot.parse_topology("2xv5e-4"), config_name="vit_b16:runlocal",
                               make_mesh=make_mesh)
    assert config.mesh.dcn_data == 1  # the caller's config is left alone
    (mesh,) = meshes
    assert [d.slice_index for d in mesh.devices[:, 0]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert r["fits"] and r["num_slices"] == r["dcn_data"] == 2 and r["num_hosts"] == 2
    assert r["mesh"] == {"data": 8, "fsdp": 1} and r["batch_per_device"] == 2
    assert 0 < r["memory_per_device"]["peak"] < r["memory_per_device"]["hbm"] and r["xla_flops_per_device"] > 0
    # Gradients are summed inside each slice over ICI and across the two slices over DCN.
    assert r["collectives"]["all-reduce"]["count"] + r["collectives"]["reduce-scatter"]["count"] >= 1
    assert r["dcn_collectives"]["all-reduce"]["count"] >= 1 and r["dcn_collectives"]["all-reduce"]["bytes"] > 0
    text = aot.format_report(r)
    assert "2 hosts in 2 slices, mesh data=8 fsdp=1 (data = 2 slices over DCN x 4 per slice)" in text
    assert "(inside each slice)" in text and "  across slices  " in text and "over DCN" in text


def test_count_dcn_collectives_parses_megascale_sends():
    hlo = "\n".join([
        '  %send = (f32[1,2,64]{2,1,0:T(2,128)}, u32[], token[]) send(%f, %a), channel_id=6, is_host_transfer=true, '
        'frontend_attributes={_xla_host_transfer_rendezvous="all-reduce.9_0",_xla_megascale_transfer_type="ALL_REDUCE"}',
        '  %recv = (f32[2,2,64]{2,1,0}, u32[], token[]) recv(%a), channel_id=5, is_host_transfer=true, '
        'frontend_attributes={_xla_megascale_transfer_type="ALL_REDUCE"}',
        '  %send.1 = (bf16[8]{0}, u32[], token[]) send(%g, %a), frontend_attributes={_xla_megascale_transfer_type="ALL_GATHER"}',
        "  %all-reduce.1 = f32[1024]{0} all-reduce(%p), channel_id=1, replica_groups={{0,1,2,3}}, to_apply=%add",
    ])
    assert aot.count_dcn_collectives(hlo) == {"all-reduce": {"count": 1, "bytes": 512}, "all-gather": {"count": 1, "bytes": 16}}
    assert aot.count_dcn_collectives(hlo.splitlines()[-1]) == {}


# --------------------------------------------------------------------------------------- FLOPs, collectives

def _toy_params():
    k = jax.random.split(jax.random.key(0), 4)
    return {"conv": jax.random.normal(k[0], (3, 3, 64, 128)) * 0.05,
            "dense": jax.random.normal(k[1], (128, 1024)) * 0.05,
            "stack": jax.random.normal(k[2], (3, 1024, 1024)) * 0.02}


def _toy_loss(p, x):
    y = jax.lax.conv_general_dilated(x, p["conv"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jnp.mean(y, axis=(1, 2)) @ p["dense"]

    def body(h, w):
        return h @ w, None

    y, _ = jax.lax.scan(body, y, p["stack"])
    return jnp.mean(y ** 2)


def _toy_step(p, x):
    loss, g = jax.value_and_grad(_toy_loss)(p, x)
    return loss, jax.tree.map(lambda a, b: a - 1e-3 * b, p, g)


def test_jaxpr_flops_match_the_formula_and_xla_tpu_cost_analysis():
    B = 32
    x = jax.ShapeDtypeStruct((B, 32, 32, 64), jnp.float32)
    params = jax.eval_shape(_toy_params)
    fwd = 2 * B * 16 * 16 * 128 * 9 * 64 + 2 * B * 128 * 1024 + 3 * 2 * B * 1024 * 1024
    assert aot.jaxpr_flops(jax.make_jaxpr(_toy_loss)(params, x)) == pytest.approx(fwd, rel=1e-12)
    # Training: backward = grads of activations (except the input's) and of weights.
    bwd = (2 * B * 16 * 16 * 128 * 9 * 64  # conv weight grad (input grad not needed)
           + 2 * (2 * B * 128 * 1024) + 2 * (3 * 2 * B * 1024 * 1024))
    assert aot.jaxpr_flops(jax.make_jaxpr(_toy_step)(params, x)) == pytest.approx(fwd + bwd, rel=1e-12)

    # XLA's TPU cost analysis as a second reference. It skips taps that fall into padding and counts a while
    # loop's body once, so compare on a step without either: VALID convolution, no scan.
    def loss(p, x):
        y = jax.lax.conv_general_dilated(x, p["conv"], (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.mean((jnp.mean(y, axis=(1, 2)) @ p["dense"] @ p["stack"][0]) ** 2)

    def step(p, x):
        return jax.tree.map(lambda a, g: a - 1e-3 * g, p, jax.grad(loss)(p, x))

    devices = aot.topology_devices(aot.parse_topology("v5e-4"))
    mesh = jax.sharding.Mesh(np.array(devices), ("d",))
    xs = jax.ShapeDtypeStruct((B, 33, 33, 64), jnp.float32, sharding=NamedSharding(mesh, P("d")))
    ps = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, P())), params)
    ours = aot.jaxpr_flops(jax.make_jaxpr(step)(ps, xs))
    assert ours == pytest.approx(2 * (2 * B * 16 * 16 * 128 * 9 * 64) + 3 * (2 * B * 128 * 1024 + 2 * B * 1024 * 1024),
                                 rel=1e-12)
    compiled = jax.jit(step).lower(ps, xs).compile()
    xla_global = compiled.cost_analysis()["flops"] * len(devices)  # per device, elementwise included
    assert xla_global == pytest.approx(ours, rel=0.03)


def test_collectives_of_data_parallel_and_fsdp_programs():
    devices = aot.topology_devices(aot.parse_topology("v5e-4"))
    mesh = jax.sharding.Mesh(np.array(devices), ("d",))
    x = jax.ShapeDtypeStruct((64, 512), jnp.float32, sharding=NamedSharding(mesh, P("d")))

    def step(w, x):
        g = jax.grad(lambda w: jnp.mean((x @ w) ** 2))(w)
        return w - 0.1 * g

    w_rep = jax.ShapeDtypeStruct((512, 1024), jnp.float32, sharding=NamedSharding(mesh, P()))
    hlo = jax.jit(step, out_shardings=w_rep.sharding).lower(w_rep, x).compile().as_text()
    c = aot.count_collectives(hlo)
    assert c["all-reduce"]["count"] >= 1 and c["all-gather"]["count"] == 0
    assert c["all-reduce"]["bytes"] >= 512 * 1024 * 4  # the whole f32 gradient is summed over the 4 replicas

    w_fsdp = jax.ShapeDtypeStruct((512, 1024), jnp.float32, sharding=NamedSharding(mesh, P("d")))
    hlo = jax.jit(step, out_shardings=w_fsdp.sharding).lower(w_fsdp, x).compile().as_text()
    c = aot.count_collectives(hlo)
    assert c["all-gather"]["count"] >= 1  # sharded weights are gathered for the matmul
    assert c["reduce-scatter"]["count"] + c["all-reduce"]["count"] >= 1


def test_count_collectives_parses_sync_and_async_forms():
    hlo = "\n".join([
        "  %all-reduce.1 = f32[1024,256]{1,0} all-reduce(%p), channel_id=1, to_apply=%add",
        "  %ag-start = (bf16[8,128]{1,0}, bf16[64,128]{1,0}) all-gather-start(%q), dimensions={0}",
        "  %ag-done = bf16[64,128]{1,0} all-gather-done(%ag-start)",
        "  %rs = f32[16]{0} reduce-scatter(%r), dimensions={0}, to_apply=%add",
        "  %fusion = f32[16]{0} fusion(%rs), kind=kLoop, calls=%fused",
    ])
    c = aot.count_collectives(hlo)
    assert c["all-reduce"] == {"count": 1, "bytes": 1024 * 256 * 4}
    assert c["all-gather"] == {"count": 1, "bytes": 64 * 128 * 2}
    assert c["reduce-scatter"] == {"count": 1, "bytes": 64}
    assert c["all-to-all"]["count"] == c["collective-permute"]["count"] == 0


# --------------------------------------------------------------------------------------- the real configs

def _state_bytes_per_device(config, target):
    """Bytes of one device's shards of the train state and batch, from shapes (no XLA)."""
    from exif_jax.train.mesh import make_mesh
    from exif_jax.train.step import build_train_step

    mesh = make_mesh(config.mesh, aot.topology_devices(target))
    _, state, batch = build_train_step(config, mesh)

    def nbytes(leaf):
        shard = leaf.sharding.shard_shape(leaf.shape)
        return math.prod(shard) * jnp.dtype(leaf.dtype).itemsize

    return sum(nbytes(a) for a in jax.tree.leaves(state)), sum(nbytes(a) for a in jax.tree.leaves(batch))


def _torch_reference_rn50(batch: int, crop: int, text_len: int):
    """Parameters and FLOPs of one training step of the original model in PyTorch (FlopCounterMode)."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    image = torchvision.models.resnet50(num_classes=768)
    text = DistilBertModel(DistilBertConfig(attn_implementation="eager"))
    x = torch.randn(batch, 3, crop, crop)
    ids = torch.randint(0, 30522, (batch, text_len))
    mask = torch.ones(batch, text_len, dtype=torch.long)
    with FlopCounterMode(display=False) as fc:
        img = image(x)
        hidden = text(input_ids=ids, attention_mask=mask).last_hidden_state
        txt = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        img = torch.nn.functional.normalize(img, dim=-1)
        txt = torch.nn.functional.normalize(txt, dim=-1)
        logits = 100.0 * img @ txt.T
        labels = torch.arange(batch)
        loss = (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
        loss.backward()
    n_params = sum(p.numel() for p in image.parameters()) + sum(p.numel() for p in text.parameters())
    n_bn_stats = sum(b.numel() for name, b in image.named_buffers() if "running" in name)
    return n_params, n_bn_stats, fc.get_total_flops()


@pytest.fixture(scope="module")
def rn50_h100():
    from configs import paper_rn50

    config = paper_rn50.get_config("runlocal")
    target = aot.parse_topology("h100x8")
    report = aot.compile_for_target(config, target, config_name="configs/paper_rn50.py:runlocal")
    return config, target, report


def test_paper_rn50_on_h100x8(rn50_h100):
    config, target, r = rn50_h100
    assert r["fits"] and r["platform"] == "cuda" and r["num_devices"] == 8 and r["num_hosts"] == 1
    assert r["mesh"] == {"data": 8, "fsdp": 1} and r["batch_per_device"] == 1
    n_params, n_bn, torch_flops = _torch_reference_rn50(r["batch_size"], r["image_size"], r["text_len"])
    # Model FLOPs of the traced step equal PyTorch's count of the same step (ResNet-50 + DistilBERT-base).
    assert r["flops_per_step"] == pytest.approx(torch_flops, rel=0.02)
    # Replicated data parallel: every device holds parameters + 2 Adam moments (f32) + BN statistics + its rows.
    state_bytes, batch_bytes = _state_bytes_per_device(config, target)
    m = r["memory_per_device"]
    assert m["arguments"] == state_bytes + batch_bytes
    assert state_bytes == pytest.approx(4 * (3 * n_params + n_bn), rel=0.001)
    assert m["aliased"] >= 0.99 * state_bytes  # the state is donated
    assert m["arguments"] < m["peak"] < m["hbm"]
    # The whole gradient crosses the all-reduce once per step.
    assert r["collectives"]["all-reduce"]["bytes"] >= 0.99 * 4 * n_params
    assert r["ideal_step_seconds"] == pytest.approx(r["flops_per_step"] / (8 * 989e12))


def test_vit_b16_on_a_tpu_slice_json(capsys):
    rc = compile_cmd.main(["--config", "configs/vit_b16.py:runlocal", "--topology", "v5e-4", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    r = json.loads(out)
    assert r["fits"] and r["platform"] == "tpu" and r["device_kind"] == "TPU v5e"
    assert r["mesh"] == {"data": 4, "fsdp": 1} and r["num_devices"] == 4
    from configs import vit_b16

    state_bytes, batch_bytes = _state_bytes_per_device(vit_b16.get_config("runlocal"), aot.parse_topology("v5e-4"))
    m = r["memory_per_device"]
    assert state_bytes + batch_bytes <= m["arguments"] <= 1.5 * (state_bytes + batch_bytes)  # TPU tiles pad
    assert 0 < m["peak"] < m["hbm"] == 16 * aot.GiB
    # XLA's per-device count includes elementwise work (LayerNorm, GELU, Adam): at least the matmul FLOPs.
    assert r["flops_per_device"] <= r["xla_flops_per_device"] <= 4 * r["flops_per_device"]
    assert r["collectives"]["all-reduce"]["count"] >= 1


def test_paper_rn50_resnet_on_a_tpu_slice_json(capsys):
    """The ResNet-50 + BatchNorm train step compiled by the TPU compiler (the GPU test above covers the whole model).

    Reduced so that CI stays around a minute on 2 CPU cores: runlocal (batch 8, 64 tokens) and the mini text tower.
    Measured here (busy 2-core box, v5e-4): full runlocal 99 s of XLA compile (generated code 83 MB per device),
    with the mini text tower 62 s (48 MB): the 53 convolutions of ResNet-50 (each its own kernel forward and
    backward) take most of the TPU compile time, DistilBERT-base about a third; batch 1024 takes minutes more.
    """
    rc = compile_cmd.main(["--config", "configs/paper_rn50.py:runlocal", "--topology", "v5e-4", "--json",
                           "--config.model.text.variant=mini", "--config.model.text_projection=True"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    r = json.loads(out)
    assert r["fits"] and r["platform"] == "tpu" and r["mesh"] == {"data": 4, "fsdp": 1} and r["batch_per_device"] == 2
    from configs import paper_rn50

    config = paper_rn50.get_config("runlocal")
    config.model.text.variant, config.model.text_projection = "mini", True
    state_bytes, batch_bytes = _state_bytes_per_device(config, aot.parse_topology("v5e-4"))
    m = r["memory_per_device"]
    assert state_bytes + batch_bytes <= m["arguments"] <= 1.5 * (state_bytes + batch_bytes)  # TPU tiles pad
    assert m["arguments"] < m["peak"] < m["hbm"] == 16 * aot.GiB
    assert 0 < r["flops_per_device"] <= r["xla_flops_per_device"] <= 2 * r["flops_per_device"]
    # Replicated data parallel: the f32 gradient (a third of the parameters + two Adam moments) is all-reduced.
    assert r["collectives"]["all-reduce"]["bytes"] == pytest.approx(state_bytes / 3, rel=0.01)


def test_vit_b16_fsdp_on_gpu_text_report(capsys):
    rc = compile_cmd.main(["--config", "configs/vit_b16.py:runlocal", "--topology", "h100x4",
                           "--config.mesh.fsdp=-1", "--config.batch_size=8"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "mesh data=1 fsdp=4" in out and "8 global, 2 per device" in out
    for label in ("memory/device", "peak/device", "flops/step", "ideal step", "collectives"):
        assert f"  {label}" in out
    assert "of 79.11 GiB HBM" in out and ": fits" in out and "all-gather" in out


@pytest.mark.parametrize("topology", ["v5e-1", "h100x1"])
def test_does_not_fit_fails_in_one_line(capsys, topology):
    rc = compile_cmd.main(["--config", "configs/vit_b16.py:runlocal", "--topology", topology,
                           "--config.batch_size=1048576", "--json"])
    out, err = capsys.readouterr()
    assert rc == 1
    lines = _quiet(err)
    assert len(lines) == 1 and f"batch_size=1048576 does not fit {topology}" in lines[0]
    assert "try --config.batch_size=524288" in lines[0] and "mesh.fsdp" not in lines[0]  # one device: no FSDP hint
    assert json.loads(out) == {"error": lines[0].removeprefix("exif-jax compile: "), "fits": False}


@pytest.mark.parametrize("argv, code, needle", [
    (["--config", "configs/vit_b16.py:runlocal"], 2, "--config and --topology are required"),
    (["--config", "configs/vit_b16.py:runlocal", "--topology", "v9-8"], 2, "unknown topology 'v9-8'"),
    (["--config", "configs/vit_b16.py:nope=1", "--topology", "v5e-4"], 2, "unknown config arg 'nope'"),
    (["--config", "configs/vit_b16.py:runlocal", "--topology", "v5e-4", "--config.batch_size=6"], 1,
     "batch_size=6 is not divisible by the 4 devices of v5e-4"),
    (["--config", "configs/vit_b16.py:runlocal", "--topology", "v5e-4", "--compiler_option", "oops"], 1,
     "expected KEY=VALUE"),
    (["--config", "configs/vit_b16.py:runlocal", "--topology", "4xv5e-4", "--config.mesh.dcn_data=2"], 1,
     "mesh data=-1 fsdp=1 dcn_data=2 on 4xv5e-4: mesh.dcn_data=2 but the 16 devices form 4 slices; set mesh.dcn_data=4"),
    (["--config", "configs/vit_b16.py:runlocal", "--topology", "v5e-4", "--config.mesh.dcn_data=2"], 1,
     "mesh.dcn_data=2 needs devices with slice_index (multi-slice TPU); these are tpu devices of a single slice"),
])
def test_cli_errors_are_one_line(capsys, argv, code, needle):
    rc = compile_cmd.main(argv)
    _, err = capsys.readouterr()
    lines = _quiet(err)
    assert rc == code and lines and needle in lines[0], err
