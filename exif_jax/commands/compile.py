"""`exif-jax compile`: compile a config's sharded train step for a TPU/GPU topology without the hardware.

    exif-jax compile --config configs/paper_rn50.py --topology v5p-128
    exif-jax compile --config configs/vit_b16.py --topology v6e-16 --config.batch_size=2048 --json
    exif-jax compile --config configs/vit_b16.py --topology h100x16 --config.mesh.fsdp=-1
    exif-jax compile --config configs/vit_b16.py --topology 2xv5p-128   # multi-slice: 2 v5p-128 slices over DCN

Prints per-device memory (arguments, temporaries, peak vs HBM), FLOPs per step, ideal step time and the
collectives of the optimized HLO. Multi-slice TPU: prefix the slice name with the number of slices (`2xv5p-128`,
`4xv5e-16`); the mesh's `data` axis then spans the slices (`mesh.dcn_data` is set to N unless given, and
`mesh.data`/`mesh.fsdp` are per slice), and the report also lists the collectives that cross slices (DCN).
Exit status: 0 fits, 1 does not fit or cannot compile (one line on stderr), 2 usage error (including an
unknown topology or config key). `--json` prints the report (or `{"error": ..., "fits": false}`) as one JSON object on stdout.
Needs `libtpu` for TPU targets (`pip install 'exif-jax[tpu]'`) and `jax-cuda12-plugin` for GPU targets
(`pip install 'exif-jax[cuda-aot]'`); no accelerator is used.
"""
from __future__ import annotations

import json
import sys

from exif_jax import aot

USAGE = ("usage: exif-jax compile --config NAME|FILE[:key=value,...] --topology NAME "
         "[--config.KEY=VALUE ...] [--json] [--hlo_out FILE] [--compiler_option KEY=VALUE ...]")


def _flags():
    from absl import flags

    fv = flags.FlagValues()
    flags.DEFINE_string("topology", None, "target, e.g. v5p-128, v4-32, v5e-16, v6e-16, v5p:4x4x8, h100x16; "
                        "2xv5p-128: two slices (multi-slice over DCN)", flag_values=fv)
    flags.DEFINE_bool("json", False, "print the report as one JSON object", flag_values=fv)
    flags.DEFINE_string("hlo_out", "", "also write the optimized HLO text to this file", flag_values=fv)
    flags.DEFINE_multi_string("compiler_option", [], "XLA option KEY=VALUE (repeatable), e.g. "
                              "xla_gpu_enable_triton_gemm=true", flag_values=fv)
    return fv


def _innermost(e: BaseException) -> str:
    """The most specific message of an exception chain (config_flags wraps the config file's own error)."""
    msgs = []
    while e is not None and len(msgs) < 8:
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        text = " ".join(str(text).split()).strip("'\" ")
        if text:
            msgs.append(text.rstrip(":"))
        e = e.__cause__ or e.__context__
    return msgs[-1] if msgs else "invalid arguments"


def _fail(msg: str, as_json: bool, code: int = 1) -> int:
    print(f"exif-jax compile: {msg}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": msg, "fits": False}))
    return code


def main(argv) -> int:
    aot.prepare_env()
    argv = list(argv)
    as_json = "--json" in argv
    if not argv or any(a in ("-h", "--help", "-help", "--helpfull") for a in argv):
        print(USAGE + "\n\n" + (__doc__ or "").strip() + "\n\ntopologies: " + aot.known_topologies())
        return 0 if argv else 2
    from absl import flags

    from exif_jax import config_files

    fv = _flags()
    try:
        spec, overrides, rest = config_files.extract_config_args(argv)
        fv(["exif-jax compile"] + rest)
    except config_files.ConfigError as e:
        return _fail(str(e), as_json, 2)
    except flags.Error as e:
        return _fail(_innermost(e) + " (see `exif-jax compile --help`)", as_json, 2)
    if spec is None or not fv.topology:
        return _fail("--config and --topology are required (see `exif-jax compile --help`)", as_json, 2)
    try:  # a misspelt topology is a usage error, found before the config is built
        aot.parse_topology(fv.topology)
    except aot.CompileError as e:
        return _fail(f"{e} (see `exif-jax compile --help` for the names)", as_json, 2)
    try:
        config = config_files.load(spec, overrides)
    except config_files.ConfigError as e:
        return _fail(str(e), as_json, 2)
    config_name = spec
    try:
        target = aot.parse_topology(fv.topology)
        print(f"[compile] {config_name} for {target.describe()}", file=sys.stderr, flush=True)
        options = aot.parse_compiler_options(fv.compiler_option)
        report = aot.compile_for_target(config, target, config_name=config_name, hlo_out=fv.hlo_out,
                                        compiler_options=options,
                                        log=lambda m: print(f"[compile] {m}", file=sys.stderr, flush=True))
    except aot.CompileError as e:
        return _fail(str(e), fv.json)
    print(json.dumps(report, indent=None if fv.json else 2) if fv.json else aot.format_report(report))
    return 0
