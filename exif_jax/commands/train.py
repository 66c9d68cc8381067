"""`exif-jax train`: contrastive training from a config file, resumable from its workdir.

    exif-jax train --config configs/smoke.py --workdir /tmp/smoke --config.data.path=/tmp/exif_photos
    exif-jax train --config configs/vit_b16.py:res=128,fsdp --workdir gs://b/run --config.optim.lr=3e-4
    exif-jax train --config configs/paper_rn50.py:runlocal --workdir /tmp/rn50 --config.data.path=/tmp/exif_photos

Multi-process: pass --coordinator_address/--num_processes/--process_id (or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID); SLURM and TPU pods are detected automatically. Every process runs the same
command with the same --workdir.
"""
from __future__ import annotations

import sys

from absl import flags


def _define(fv):
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "config file, e.g. configs/smoke.py[:key=value,...]",
                                    flag_values=fv, lock_config=True)
    flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics.jsonl, config.json)", flag_values=fv)
    flags.DEFINE_string("coordinator_address", "", "host:port of process 0 for multi-process runs", flag_values=fv)
    flags.DEFINE_integer("num_processes", 0, "number of processes (multi-process runs)", flag_values=fv)
    flags.DEFINE_integer("process_id", -1, "this process's index (multi-process runs)", flag_values=fv)


def _one_line(e: BaseException) -> str:
    """The most specific readable message in an exception chain (config_flags wraps the real error)."""
    msgs = []
    while e is not None and len(msgs) < 8:
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        text = " ".join(str(text).replace("\\n", " ").split()).strip("'\" ")
        if isinstance(e, KeyError) and "Did you mean" in text:
            text = "unknown config key " + text.replace("\\", "").replace("'", "")
        if text and "Traceback" not in text:
            msgs.append(text)
        e = e.__cause__ or e.__context__
    good = [m for m in msgs if len(m) > 20] or msgs
    return good[-1] if good else "invalid arguments"


def main(argv) -> int:
    fv = flags.FlagValues()
    _define(fv)
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__.strip())
        print("\nflags:\n  --config FILE[:args]   --workdir DIR   --config.KEY=VALUE ...\n"
              "  --coordinator_address HOST:PORT --num_processes N --process_id I")
        return 0
    try:
        fv(["exif-jax train"] + list(argv))
        config = fv.config
    except (flags.Error, KeyError, AttributeError, ValueError, TypeError, FileNotFoundError, OSError) as e:
        print(f"exif-jax train: {_one_line(e)}", file=sys.stderr)
        return 2
    if config is None or not fv.workdir:
        print("exif-jax train: --config and --workdir are required (see `exif-jax train --help`)", file=sys.stderr)
        return 2

    from exif_jax.train import mesh as mesh_lib

    mesh_lib.maybe_initialize_distributed(fv.coordinator_address, fv.num_processes, fv.process_id)
    from exif_jax.data.pipeline import DataError
    from exif_jax.train.trainer import NonFiniteError, train

    try:
        train(config, fv.workdir)
    except (DataError, NonFiniteError) as e:
        print(f"exif-jax train: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"exif-jax train: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0
