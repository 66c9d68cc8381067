"""Ahead-of-time compilation of the real sharded train step for a TPU or GPU topology, without the hardware.

Used to choose batch size and sharding before reserving a pod:

    exif-jax compile --config configs/paper_rn50.py --topology v5p-128
    exif-jax compile --config configs/vit_b16.py --topology h100x16 --config.batch_size=4096 --json

The topology's devices come from `jax.experimental.topologies.get_topology_desc` (compile-only devices: TPU
through the `libtpu` package, NVIDIA GPUs through `jax-cuda12-plugin` with a target description of the card),
the mesh from the trainer's own `exif_jax.train.mesh.make_mesh(config.mesh, devices)`, and the step from
`exif_jax.train.step.build_train_step(config, mesh)`: the program compiled here is the one the trainer runs.

Reported per device: argument, output, donated (aliased) and temporary bytes, the peak against the chip's HBM;
per step: model FLOPs (matmuls and convolutions of the traced step, global batch), XLA's own FLOP count where the
backend gives one (TPU), the ideal step time at the chip's peak bf16 rate, and the collectives of the optimized
HLO. A TPU compile that overflows HBM fails in XLA; a GPU compile is checked against the card's memory here.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Any, Callable

GiB = 1 << 30


def prepare_env() -> None:
    """Environment for compile-only targets; call before JAX is imported (no-op for keys already set)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the host only traces; devices come from the topology
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")  # no CUDA driver/toolkit needed to cross-compile
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")  # libtpu: do not ask a GCE metadata server for the TPU type
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # compile-only: no chip to guard, allow parallel runs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class CompileError(Exception):
    """A one-line, user-facing failure (unknown topology, missing package, bad mesh, ...)."""


class DoesNotFit(CompileError):
    """The step does not fit the device memory of the target."""


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str  # human name, as in the report
    hbm_bytes: int  # memory per JAX device
    peak_bf16_flops: float  # dense bf16 FLOP/s per JAX device (vendor datasheet)
    platform: str  # "tpu" | "cuda"


# One JAX device per chip (v4/v5p run megacore: both TensorCores of a chip are one device).
CHIPS = {
    "v4": Chip("TPU v4", 32 * GiB, 275e12, "tpu"),
    "v5p": Chip("TPU v5p", 95 * GiB, 459e12, "tpu"),
    "v5e": Chip("TPU v5e", 16 * GiB, 197e12, "tpu"),
    "v6e": Chip("TPU v6e", 32 * GiB, 918e12, "tpu"),
    "a100": Chip("NVIDIA A100-SXM4-80GB", 80 * GiB, 312e12, "cuda"),
    "h100": Chip("NVIDIA H100 80GB HBM3", 84942979072, 989e12, "cuda"),
    "h200": Chip("NVIDIA H200", 150754820096, 989e12, "cuda"),
}

# GpuTargetConfigProto fields of each card (what the CUDA compiler needs in place of an attached GPU).
_GPU_SPECS = {
    "a100": dict(cc=8, cores=108, fpus=64, clock=1.41, bw=2039e9, l2=40 * 2**20, smem_core=167936,
                 smem_optin=166912),
    "h100": dict(cc=9, cores=132, fpus=128, clock=1.98, bw=3352.32e9, l2=50 * 2**20, smem_core=233472,
                 smem_optin=232448),
    "h200": dict(cc=9, cores=132, fpus=128, clock=1.98, bw=4800e9, l2=50 * 2**20, smem_core=233472,
                 smem_optin=232448),
}

GPUS_PER_HOST = 8

# TPU slice shapes by chip count. v4/v5p: 3D torus (name counts TensorCores = 2 x chips); v5e/v6e: 2D (name counts
# chips). Hosts hold 2x2x1 chips in multi-host slices; single-host v5e/v6e slices hold up to 2x4.
_SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4), 128: (4, 4, 8),
              256: (4, 8, 8), 512: (8, 8, 8), 1024: (8, 8, 16), 2048: (8, 16, 16), 4096: (16, 16, 16)}
_SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)}
_TPU_TOPOLOGY_PREFIX = {"v4": "v4", "v5p": "v5", "v5e": "v5e", "v6e": "v6e"}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str  # canonical, e.g. "v5p-128", "h100x16"
    chip: Chip
    platform: str  # "tpu" | "cuda"
    topology_name: str  # passed to get_topology_desc
    kwargs: tuple  # further get_topology_desc keyword arguments, as sorted (key, value) pairs
    num_devices: int  # all slices together
    num_hosts: int  # all slices together
    num_slices: int = 1  # TPU slices joined over the data-centre network (multi-slice: `2xv5p-128`)

    def describe(self) -> str:
        slices = f" in {self.num_slices} slices" if self.num_slices > 1 else ""
        return (f"{self.name}: {self.num_devices} x {self.chip.name}, {self.num_hosts} host"
                f"{'s' if self.num_hosts != 1 else ''}{slices} ({self.platform} topology {self.topology_name})")


def known_topologies() -> str:
    tpu = ", ".join(f"v4-{2 * n}" for n in _SHAPES_3D) + "; v5p-N likewise; " + \
        ", ".join(f"v5e-{n}" for n in _SHAPES_2D) + "; v6e-N likewise"
    gpu = ", ".join(f"{g}xN" for g in ("a100", "h100", "h200"))
    return (f"TPU: {tpu}; or an explicit shape like v5p:4x4x8 / v6e:8x8; multi-slice: Nx before a TPU name, e.g. "
            f"2xv5p-128 (2 slices over DCN). GPU: {gpu} (N GPUs, {GPUS_PER_HOST} per host)")


def parse_topology(name: str) -> Target:
    """`v5p-128`, `v4-32`, `v5e-16`, `v6e-16`, `v5litepod-16`, `v5p:4x4x8`, `h100x16`, `a100x8`, ... -> Target.

    `NxTPU` (`2xv5p-128`, `4xv5e-16`, `2xv5p:4x4x8`): N identical TPU slices joined over the data-centre network
    (multi-slice); the compile then needs `mesh.dcn_data=N`, which `compile_for_target` sets when left at 1.
    """
    raw = name
    name = name.strip().lower().replace("v5litepod", "v5e")
    m = re.fullmatch(r"(\d+)x(v\S+)", name)
    if m:
        n_slices = int(m.group(1))
        if n_slices < 1:
            raise CompileError(f"topology {raw!r}: need at least one slice")
        one = parse_topology(m.group(2))
        if n_slices == 1:
            return one
        kw = dict(one.kwargs)
        kw["num_slices"] = n_slices
        return dataclasses.replace(one, name=f"{n_slices}x{one.name}", kwargs=tuple(sorted(kw.items())),
                                   num_devices=n_slices * one.num_devices, num_hosts=n_slices * one.num_hosts,
                                   num_slices=n_slices)
    m = re.fullmatch(r"(a100|h100|h200)x(\d+)", name)
    if m:
        gpu, n = m.group(1), int(m.group(2))
        if n < 1:
            raise CompileError(f"topology {raw!r}: need at least one GPU")
        per_host = min(n, GPUS_PER_HOST)
        if n % per_host:
            raise CompileError(f"topology {raw!r}: {n} GPUs do not fill hosts of {GPUS_PER_HOST}; use a multiple")
        hosts = n // per_host
        kw = (("target_config", gpu_target_config(gpu)),)
        return Target(f"{gpu}x{n}", CHIPS[gpu], "cuda", f"1x{hosts}x{per_host}", kw, n, hosts)
    m = re.fullmatch(r"(v4|v5p|v5e|v6e)(?:-(\d+)|:(\d+(?:x\d+)+))", name)
    if not m:
        raise CompileError(f"unknown topology {raw!r}; known: {known_topologies()}")
    gen, count, shape_s = m.group(1), m.group(2), m.group(3)
    three_d = gen in ("v4", "v5p")
    if count is not None:
        n = int(count)
        chips = n // 2 if three_d else n
        table = _SHAPES_3D if three_d else _SHAPES_2D
        if (three_d and n % 2) or chips not in table:
            sizes = ", ".join(f"{gen}-{2 * c if three_d else c}" for c in table)
            raise CompileError(f"topology {raw!r}: no {gen} slice of that size; known sizes: {sizes}")
        shape = table[chips]
    else:
        shape = tuple(int(s) for s in shape_s.split("x"))
        if len(shape) != (3 if three_d else 2) or min(shape) < 1:
            raise CompileError(f"topology {raw!r}: {gen} shapes are {'AxBxC' if three_d else 'AxB'}")
        chips = math.prod(shape)
    if three_d:
        bounds = (2, 2, 1) if chips >= 4 else tuple(shape)
        wrap = tuple(all(d % 4 == 0 for d in shape) for _ in shape)
        kw = dict(chip_config_name="megacore", chips_per_host_bounds=bounds, num_slices=1, wrap=wrap)
        canonical = f"{gen}-{2 * chips}"
    else:
        bounds = (shape[0], shape[1], 1) if chips <= 8 else (2, 2, 1)
        kw = dict(chip_config_name="default", chips_per_host_bounds=bounds, num_slices=1, wrap=(False, False, False))
        canonical = f"{gen}-{chips}"
    hosts = chips // math.prod(bounds)
    topo = f"{_TPU_TOPOLOGY_PREFIX[gen]}:{'x'.join(map(str, shape))}"
    return Target(canonical, CHIPS[gen], "tpu", topo, tuple(sorted(kw.items())), chips, max(hosts, 1))


def gpu_target_config(gpu: str) -> str:
    """Text GpuTargetConfigProto describing one card, for `get_topology_desc(platform="cuda", target_config=...)`."""
    s, chip = _GPU_SPECS[gpu], CHIPS[gpu]
    return f"""gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: {s['smem_core']}
  threads_per_core_limit: 2048
  core_count: {s['cores']}
  fpus_per_core: {s['fpus']}
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {int(s['bw'])}
  l2_cache_size: {s['l2']}
  clock_rate_ghz: {s['clock']}
  device_memory_size: {chip.hbm_bytes}
  shared_memory_per_block_optin: {s['smem_optin']}
  cuda_compute_capability {{ major: {s['cc']} minor: 0 }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 8 patch: 0 }}
device_description_str: "{chip.name}"
"""


def topology_devices(target: Target) -> list:
    """Compile-only devices of `target` (needs `libtpu` for TPU, `jax-cuda12-plugin` for GPU)."""
    prepare_env()
    import jax  # noqa: F401  (after prepare_env)
    from jax.experimental import topologies

    kwargs = dict(target.kwargs)
    try:
        if target.platform == "tpu":
            topo = topologies.get_topology_desc(platform="tpu", topology_name=target.topology_name, **kwargs)
        else:
            topo = topologies.get_topology_desc(platform="cuda", topology=target.topology_name, **kwargs)
    except (RuntimeError, NotImplementedError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ("pip install 'libtpu==0.0.42.*' (the exif-jax[tpu] extra)" if target.platform == "tpu" else
                "pip install jax-cuda12-plugin==0.10.2 jax-cuda12-pjrt==0.10.2 (the exif-jax[cuda-aot] extra)")
        raise CompileError(f"cannot describe {target.name} ({first[:200]}); {hint}") from None
    devices = list(topo.devices)
    if len(devices) != target.num_devices:
        raise CompileError(f"{target.name}: the topology has {len(devices)} devices, expected {target.num_devices}")
    from exif_jax.train.mesh import num_slices

    if target.num_slices > 1 and num_slices(devices) != target.num_slices:
        raise CompileError(f"{target.name}: libtpu did not make {target.num_slices} slices of the topology")
    return devices


# --------------------------------------------------------------------------------------------- FLOPs of a jaxpr


def jaxpr_flops(jaxpr) -> float:
    """FLOPs of the matmuls and convolutions of a (closed) jaxpr, global shapes, 2 per multiply-add.

    Recurses into nested jaxprs (jit, custom_vjp, remat); `scan` bodies count `length` times; `shard_map` bodies
    (per-shard shapes) count once per shard; `cond` counts its most expensive branch; `while` bodies count once.
    """
    from jax.extend import core as jcore

    inner = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in inner.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lc)
            continue
        if name == "conv_general_dilated":
            dn = eqn.params["dimension_numbers"]
            rhs = eqn.invars[1].aval.shape
            rhs_spec = dn.rhs_spec  # (out feature, in feature, spatial...)
            taps = math.prod(rhs[d] for d in rhs_spec[2:]) * rhs[rhs_spec[1]]
            taps /= math.prod(eqn.params.get("lhs_dilation") or (1,))  # transposed strided conv: zeros skipped
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * taps
            continue
        mult = 1.0
        if name == "scan":
            mult = float(eqn.params["length"])
        elif name == "shard_map":
            mesh = eqn.params["mesh"]
            axes = eqn.params.get("manual_axes") or tuple(mesh.axis_names)
            mult = float(math.prod(mesh.shape[a] for a in axes))
        subs = []
        for value in eqn.params.values():
            for v in (value if isinstance(value, (tuple, list)) else (value,)):
                if isinstance(v, (jcore.Jaxpr, jcore.ClosedJaxpr)):
                    subs.append(v)
        if name == "cond":
            total += max((jaxpr_flops(b) for b in subs), default=0.0)
        else:
            total += mult * sum(jaxpr_flops(s) for s in subs)
    return total


# ----------------------------------------------------------------------------------------- HLO collectives

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_COLLECTIVE_RE = re.compile(
    r"=\s*(?P<shape>.*?)\s+(?P<op>all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)"
    r"(?P<start>-start)?\(")
_ARRAY_RE = re.compile(r"\b(pred|[suf]\d+|bf16|f8e\w+|c64|c128)\[([\d,]*)\]")
_DTYPE_BYTES = {"pred": 1, "bf16": 2, "c64": 8, "c128": 16}


def _array_bytes(dtype: str, dims: str) -> int:
    n = math.prod(int(d) for d in dims.split(",") if d) if dims else 1
    if dtype in _DTYPE_BYTES:
        return n * _DTYPE_BYTES[dtype]
    if dtype.startswith("f8"):
        return n
    return n * max(int(re.sub(r"\D", "", dtype)) // 8, 1)


def count_collectives(hlo_text: str) -> dict:
    """`{op: {"count": n, "bytes": result bytes}}` over the optimized HLO text (static count: an op inside a loop
    body counts once). Async pairs count at their `-start`; a `-start`'s result bytes are its last array (the
    gathered/reduced buffer)."""
    out = {op: {"count": 0, "bytes": 0} for op in COLLECTIVES}
    for line in hlo_text.splitlines():
        m = _COLLECTIVE_RE.search(line)
        if not m:
            continue
        arrays = _ARRAY_RE.findall(m.group("shape"))
        if m.group("start") and m.group("op") != "all-reduce" and arrays:
            arrays = arrays[-1:]
        out[m.group("op")]["count"] += 1
        out[m.group("op")]["bytes"] += sum(_array_bytes(d, s) for d, s in arrays)
    return out


_DCN_SEND_RE = re.compile(r"=\s*\((?P<shape>.*?)\)\s+send\(.*_xla_megascale_transfer_type=\"(?P<kind>[A-Z_]+)\"")


def count_dcn_collectives(hlo_text: str) -> dict:
    """Collectives that cross TPU slices, `{op: {"count": n, "bytes": bytes one device sends}}`.

    In a multi-slice TPU program the compiler splits each collective over the mesh into its part inside a slice
    (ordinary `all-reduce` etc. over the slice's devices) and its part across slices, which becomes a host-transfer
    `send`/`recv` pair over the data-centre network tagged `_xla_megascale_transfer_type="ALL_REDUCE"` (or
    `ALL_GATHER`, `REDUCE_SCATTER`, ...). Counted here once per `send`; empty for a single slice.
    """
    out: dict = {}
    for line in hlo_text.splitlines():
        if " send(" not in line or "_xla_megascale_transfer_type" not in line:
            continue
        m = _DCN_SEND_RE.search(line)
        if not m:
            continue
        op = m.group("kind").lower().replace("_", "-")
        arrays = _ARRAY_RE.findall(m.group("shape"))
        entry = out.setdefault(op, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += _array_bytes(*arrays[0]) if arrays else 0
    return out


# ---------------------------------------------------------------------------------------------- compile + report


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _fmt_seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{1e3 * t:.2f} ms"
    return f"{1e6 * t:.1f} us"


def _fmt_flops(n: float) -> str:
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} FLOP"


def _fit_hint(config, target: Target) -> str:
    b = int(config.batch_size)
    hints = [f"--config.batch_size={max(b // 2, 1)}"]
    if int(config.mesh.fsdp) != -1 and target.num_devices > 1:
        hints.append("--config.mesh.fsdp=-1")
    hints.append(f"--config.accum_steps={2 * max(int(config.get('accum_steps', 1)), 1)}")
    if not bool(config.model.get("remat", False)):
        hints.append("--config.model.remat=True")
    return "try " + " or ".join(hints)


# Compiler options applied per platform unless overridden. GPU: without an attached GPU the Triton GEMM tile search
# fails on small matrices ("Couldn't find output tile sizes"); cuBLAS GEMMs compile everywhere and leave memory and
# collectives as they are.
DEFAULT_COMPILER_OPTIONS = {"tpu": {}, "cuda": {"xla_gpu_enable_triton_gemm": False}}


def parse_compiler_options(pairs) -> dict:
    """`["key=value", ...]` -> dict with bool/int/float values where they parse."""
    out = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise CompileError(f"--compiler_option {pair!r}: expected KEY=VALUE, e.g. xla_gpu_enable_triton_gemm=true")
        v: Any = value.strip()
        if v.lower() in ("true", "false"):
            v = v.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    v = cast(v)
                    break
                except ValueError:
                    pass
        out[key.strip()] = v
    return out


def compile_for_target(config, target: Target, *, config_name: str = "", build_train_step: Callable | None = None,
                       make_mesh: Callable | None = None, hlo_out: str = "", compiler_options: dict | None = None,
                       log: Callable[[str], None] | None = None) -> dict:
    """Lowers and compiles the train step of `config` for `target`; returns the report dict.

    Raises `CompileError` (bad mesh/topology/missing package) or `DoesNotFit` (device memory) with a one-line
    message. `build_train_step`/`make_mesh` default to the trainer's (`exif_jax.train.step` / `.mesh`).
    `compiler_options` (XLA debug options) are added to `DEFAULT_COMPILER_OPTIONS` of the platform.
    `log`: called with progress lines (lowering / compiling, with timings).
    """
    log = log or (lambda msg: None)
    options = {**DEFAULT_COMPILER_OPTIONS.get(target.platform, {}), **(compiler_options or {})}
    prepare_env()
    import jax

    if build_train_step is None:
        from exif_jax.train.step import build_train_step
    if make_mesh is None:
        from exif_jax.train.mesh import make_mesh

    devices = topology_devices(target)
    dcn_data = int(config.mesh.get("dcn_data", 1))
    if target.num_slices > 1 and dcn_data == 1:  # multi-slice target: `data` spans the slices (left at 1: not chosen)
        config = config.copy_and_resolve_references()  # the caller's config stays as it was
        with config.unlocked():
            config.mesh.dcn_data = dcn_data = target.num_slices
        log(f"mesh.dcn_data={dcn_data}: the data axis spans the {dcn_data} slices")
    try:
        mesh = make_mesh(config.mesh, devices)
    except (ValueError, AssertionError, NotImplementedError) as e:
        dcn = f" dcn_data={dcn_data}" if dcn_data != 1 else ""
        raise CompileError(f"mesh data={config.mesh.data} fsdp={config.mesh.fsdp}{dcn} on {target.name}: "
                           f"{_first_line(e)[:300]}") from None
    mesh_shape = {str(k): int(v) for k, v in mesh.shape.items()}
    batch = int(config.batch_size)
    n_batch_dev = math.prod(mesh_shape.values())
    if batch % n_batch_dev:
        raise CompileError(f"batch_size={batch} is not divisible by the {n_batch_dev} devices of {target.name}; "
                           f"use a multiple of {n_batch_dev}")
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):
        try:
            step, abstract_state, abstract_batch = build_train_step(config, mesh)
            traced = step.trace(abstract_state, abstract_batch)
            lowered = traced.lower()
        except ValueError as e:
            raise CompileError(f"building the step for {target.name}: {_first_line(e)[:300]}") from None
        t_lower = time.perf_counter() - t0
        log(f"traced and lowered in {t_lower:.1f} s; compiling for {target.num_devices} x {target.chip.name} "
            f"(minutes for ResNet-50 on TPU)")
        t1 = time.perf_counter()
        try:
            compiled = lowered.compile(compiler_options=options or None)
        except Exception as e:  # XlaRuntimeError (RESOURCE_EXHAUSTED etc.)
            msg = _first_line(e)
            if "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower() or "hbm" in str(e).lower():
                raise DoesNotFit(f"{config_name or 'config'} batch_size={batch} does not fit {target.name} "
                                 f"({_fmt_bytes(target.chip.hbm_bytes)} per {target.chip.name}): {msg[:240]}; "
                                 f"{_fit_hint(config, target)}") from None
            raise CompileError(f"XLA failed to compile for {target.name}: {msg[:300]}") from None
        t_compile = time.perf_counter() - t1
        log(f"compiled in {t_compile:.1f} s")

    flops_model = jaxpr_flops(traced.jaxpr)
    cost = None
    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends do not implement it for compile-only executables
        cost = None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    xla_flops = float(cost["flops"]) if cost and "flops" in cost else None

    mem = compiled.memory_analysis()
    arg, out, alias = int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes), int(mem.alias_size_in_bytes)
    temp, code = int(mem.temp_size_in_bytes), int(mem.generated_code_size_in_bytes)
    peak_xla = int(getattr(mem, "peak_memory_in_bytes", 0) or 0)
    peak = max(peak_xla, arg + out - alias + temp + code)
    hbm = target.chip.hbm_bytes

    hlo = compiled.as_text() or ""
    if hlo_out:
        with open(hlo_out, "w", encoding="utf-8") as f:
            f.write(hlo)
    collectives = count_collectives(hlo)  # on a multi-slice target: the parts inside each slice (ICI)
    dcn_collectives = count_dcn_collectives(hlo)  # the parts across slices (DCN)

    n = target.num_devices
    peak_rate = target.chip.peak_bf16_flops * n
    report = {
        "config": config_name,
        "topology": target.name,
        "platform": target.platform,
        "device_kind": target.chip.name,
        "num_devices": n,
        "num_hosts": target.num_hosts,
        "num_slices": target.num_slices,
        "topology_name": target.topology_name,
        "mesh": mesh_shape,
        "dcn_data": dcn_data,
        "batch_size": batch,
        "batch_per_device": batch // n_batch_dev,
        "image_size": int(config.data.crop),
        "text_len": int(abstract_batch["input_ids"].shape[1]),
        "dtype": str(config.model.get("dtype", "float32")),
        "compiler_options": options,
        "lower_seconds": round(t_lower, 2),
        "compile_seconds": round(t_compile, 2),
        "memory_per_device": {
            "arguments": arg, "outputs": out, "aliased": alias, "temporaries": temp, "generated_code": code,
            "peak": peak, "hbm": hbm, "peak_fraction": peak / hbm,
        },
        "fits": peak <= hbm,
        "flops_per_step": flops_model,
        "flops_per_device": flops_model / n,
        "xla_flops_per_device": xla_flops,
        "peak_bf16_flops_per_device": target.chip.peak_bf16_flops,
        "ideal_step_seconds": flops_model / peak_rate,
        "collectives": collectives,
        "dcn_collectives": dcn_collectives,
    }
    if not report["fits"]:
        raise DoesNotFit(f"{config_name or 'config'} batch_size={batch} does not fit {target.name}: peak "
                         f"{_fmt_bytes(peak)} per device > {_fmt_bytes(hbm)} {target.chip.name}; {_fit_hint(config, target)}")
    return report


def format_report(r: dict) -> str:
    """Human-readable report (what `exif-jax compile` prints without `--json`)."""
    m = r["memory_per_device"]
    mesh = " ".join(f"{k}={v}" for k, v in r["mesh"].items())
    coll = ", ".join(f"{op} {c['count']} ({_fmt_bytes(c['bytes'])})" for op, c in r["collectives"].items()
                     if c["count"]) or "none"
    xla = (f"; XLA counts {_fmt_flops(r['xla_flops_per_device'])}/device"
           if r.get("xla_flops_per_device") is not None else "; XLA gives no FLOP count on this backend")
    slices = r.get("num_slices", 1)
    if slices > 1:
        mesh += f" (data = {r.get('dcn_data', slices)} slices over DCN x {r['mesh']['data'] // r.get('dcn_data', slices)} per slice)"
    return "\n".join([
        f"{r['config'] or 'config'} on {r['topology']}: {r['num_devices']} x {r['device_kind']}, "
        f"{r['num_hosts']} host{'s' if r['num_hosts'] != 1 else ''}"
        f"{f' in {slices} slices' if slices > 1 else ''}, mesh {mesh}",
        f"  batch          {r['batch_size']} global, {r['batch_per_device']} per device, "
        f"{r['image_size']} px crops, {r['text_len']} tokens, {r['dtype']}",
        f"  compile        lower {r['lower_seconds']:.1f} s, compile {r['compile_seconds']:.1f} s",
        f"  memory/device  arguments {_fmt_bytes(m['arguments'])}, outputs {_fmt_bytes(m['outputs'])} "
        f"(donated {_fmt_bytes(m['aliased'])}), temporaries {_fmt_bytes(m['temporaries'])}, "
        f"code {_fmt_bytes(m['generated_code'])}",
        f"  peak/device    {_fmt_bytes(m['peak'])} of {_fmt_bytes(m['hbm'])} HBM ({100 * m['peak_fraction']:.1f}%): "
        f"{'fits' if r['fits'] else 'DOES NOT FIT'}",
        f"  flops/step     {_fmt_flops(r['flops_per_step'])} (model: matmuls+convs), "
        f"{_fmt_flops(r['flops_per_device'])}/device{xla}",
        f"  ideal step     {_fmt_seconds(r['ideal_step_seconds'])} at {r['peak_bf16_flops_per_device'] / 1e12:.0f} "
        f"TFLOP/s bf16 per device (100% MFU)",
        f"  collectives    {coll}" + (" (inside each slice)" if slices > 1 else ""),
    ] + (["  across slices  " + (", ".join(f"{op} {c['count']} ({_fmt_bytes(c['bytes'])} sent/device)"
                                            for op, c in r.get("dcn_collectives", {}).items()) or "none")
          + " over DCN"] if slices > 1 else []))


def compile_config(config_spec: Any, topology: str, **kw) -> dict:
    """Convenience for Python callers: `config_spec` is a ConfigDict; `topology` a name such as `v5e-16`."""
    return compile_for_target(config_spec, parse_topology(topology), **kw)
