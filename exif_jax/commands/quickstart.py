"""`exif-jax quickstart`: ingest the bundled photos, train the smoke config, evaluate retrieval, localize synthetic
splices, and write WORKDIR/REPORT.md. No network; about 8.5 minutes on 2 quiet CPU cores with the defaults (7 of them training).

    exif-jax quickstart --workdir /tmp/exif_quickstart
    exif-jax quickstart --workdir /tmp/qs --minutes 2          # shorter training
    exif-jax quickstart --workdir /tmp/qs --steps 40           # fixed number of training steps

Rerunning with the same --workdir reuses the ingested data and resumes the training run (with the same
--minutes/--steps; other values are refused); a changed --splices regenerates the splice sets.
"""
from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    intro, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(prog="exif-jax quickstart", description=" ".join(intro.split()),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=rest)
    p.add_argument("--workdir", required=True, help="output folder (data/, train/, splices/, REPORT.md)")
    p.add_argument("--minutes", type=float, default=7.0,
                   help="training time budget in minutes (default 7; the whole quickstart takes about 2 more)")
    p.add_argument("--steps", type=int, default=None, help="train exactly this many steps (overrides --minutes)")
    p.add_argument("--splices", type=int, default=24,
                   help="images per splice set (cross-camera, same-content, edits) to localize (default 24)")
    p.add_argument("--no-control", action="store_true",
                   help="skip the untrained control (same config, random weights) that every number stands beside")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.minutes <= 0:
        print("exif-jax quickstart: --minutes must be positive", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print("exif-jax quickstart: --steps must be at least 1", file=sys.stderr)
        return 2
    if args.splices < 1:
        print("exif-jax quickstart: --splices must be at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the quickstart is a CPU run; never wait for accelerators
    from exif_jax.commands import quickstart_run as quickstart

    try:
        quickstart.run(args.workdir, minutes=args.minutes, steps=args.steps, num_splices=args.splices,
                       control=not args.no_control)
    except quickstart.QuickstartUsageError as e:
        print(f"exif-jax quickstart: {e}", file=sys.stderr)
        return 2
    except quickstart.QuickstartError as e:
        print(f"exif-jax quickstart: {e}", file=sys.stderr)
        return 1
    return 0
