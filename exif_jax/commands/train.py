"""`exif-jax train`: contrastive training from a config, resumable from its workdir.

    exif-jax train --config smoke --workdir /tmp/smoke --config.data.path=/tmp/exif_photos
    exif-jax train --config configs/vit_b16.py:res=128,fsdp --workdir gs://b/run --config.optim.lr=3e-4
    exif-jax train --config paper_rn50:runlocal --workdir /tmp/rn50 --config.data.path=/tmp/exif_photos
    exif-jax train --config smoke:runlocal --print-config          # the resolved config, then exit

`--config` takes a bundled config's name (`exif-jax configs` lists them) or a config file, with `:args`.
Rerunning the same command resumes from the workdir's latest good checkpoint; a workdir whose checkpoints hold
another model is refused (naming the changed keys). SIGTERM and Ctrl-C save a checkpoint first (Ctrl-C twice
stops at once). Inputs are checked before anything is written.

Multi-process: pass --coordinator_address/--num_processes/--process_id (or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID); SLURM and TPU pods are detected automatically. Every process runs the same
command with the same --workdir.
"""
from __future__ import annotations

import argparse
import os
import sys

PROG = "exif-jax train"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage block too)
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, add_help=False)
    p.add_argument("--workdir")
    p.add_argument("--coordinator_address", "--coordinator-address", default="")
    p.add_argument("--num_processes", "--num-processes", type=int, default=0)
    p.add_argument("--process_id", "--process-id", type=int, default=-1)
    p.add_argument("--print-config", "--print_config", action="store_true")
    return p


def _fail(msg: str, code: int) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return code


def main(argv) -> int:
    argv = list(argv)
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__.strip())
        print("\nflags:\n  --config NAME|FILE[:args]   --workdir DIR   --config.KEY=VALUE ...   --print-config\n"
              "  --coordinator_address HOST:PORT --num_processes N --process_id I")
        return 0
    from exif_jax import config_files
    from exif_jax.train import workdir as wd

    try:
        spec, overrides, rest = config_files.extract_config_args(argv)
        args = _parser().parse_args(rest)
    except (config_files.ConfigError, _UsageError) as e:
        return _fail(f"{e} (see `exif-jax train --help`)", 2)
    if spec is None or (not args.workdir and not args.print_config):
        return _fail("--config and --workdir are required (see `exif-jax train --help`)", 2)
    try:
        if args.workdir:
            wd.check_output_dir(args.workdir, "--workdir")
        config = config_files.load(spec, overrides)
    except (config_files.ConfigError, wd.WorkdirError) as e:
        return _fail(str(e), 2)
    if args.print_config:
        sys.stdout.write(config_files.to_text(config))
        return 0
    from exif_jax.train.step import n_views, view_consistency

    try:  # a bad value is a usage error: refused here, before any output is written
        n_views(config)
        view_consistency(config)
    except ValueError as e:
        return _fail(str(e), 2)
    try:
        wd.check_data_path(config)
        notes = wd.check_resume(args.workdir, config)
    except wd.WorkdirError as e:
        return _fail(str(e), 2)
    if notes:
        print(f"[train] resuming with changed settings: {', '.join(notes[:8])}"
              + (f" (+{len(notes) - 8} more)" if len(notes) > 8 else ""), flush=True)

    from exif_jax.train import mesh as mesh_lib

    mesh_lib.maybe_initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    from exif_jax.data.pipeline import DataError
    from exif_jax.train.checkpointing import CheckpointError
    from exif_jax.train.trainer import NonFiniteError, Interrupted, train

    fresh = not wd.is_remote(args.workdir) and not os.path.exists(args.workdir)
    rc = 1
    try:
        train(config, args.workdir)
        rc = 0
    except Interrupted as e:
        rc = _fail(str(e), 130)
    except (DataError, NonFiniteError, CheckpointError, wd.WorkdirError) as e:
        rc = _fail(" ".join(str(e).split()), 1)
    except OSError as e:
        rc = _fail(f"{e.filename or args.workdir}: {e.strerror or e}", 1)
    except ValueError as e:
        rc = _fail(str(e).splitlines()[0], 1)
    finally:
        if rc != 0 and fresh:
            _remove_if_nothing_saved(args.workdir)
    return rc


def _remove_if_nothing_saved(workdir: str) -> None:
    """A run that failed before its first checkpoint leaves no workdir behind (only one this run created)."""
    import shutil

    from exif_jax.train import workdir as wd

    if os.path.isdir(workdir) and not wd.checkpoint_steps(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
