"""`exif-jax export`: convert weights between exif-jax and PyTorch layouts.

    exif-jax export --weights WORKDIR_OR_FILE --format original --out model.pth
    exif-jax export --weights WORKDIR --step 280 --format safetensors --out model.safetensors
    exif-jax export --weights model.safetensors --format hf --out hf_dir/

Initial weights as the original training started (ImageNet ResNet-50 + pretrained DistilBERT, local files only),
to pass to training as `--config.model.init_from=init.safetensors`:

    exif-jax export --init-resnet50 resnet50-0676ba61.pth --init-distilbert distilbert-base-uncased/ \\
        --format safetensors --out init.safetensors

`--weights` is a trainer workdir (latest good checkpoint, or `--step N`), an exported `.safetensors`, an hf export
directory or an original-layout `.pth`. Formats: `original` (the original repository's `{"model": state_dict}`;
ResNet-50 models only), `hf` (DistilBertModel + CLIPVisionModelWithProjection / torchvision directory),
`safetensors` (exif-jax). `.pth` files (reading or writing) and `--format hf|original` need PyTorch:
`pip install 'exif-jax[torch]'`. Written files are world-readable (0644 under the usual umask); on failure
nothing is left behind.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import shutil
import sys
import time

PROG = "exif-jax export"
TORCH_EXTRA = "pip install 'exif-jax[torch]'"


def _fail(msg: str, code: int = 1) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return code


def _needs_torch(args) -> str | None:
    """What in this request needs PyTorch (None: nothing)."""
    if args.format in ("original", "hf"):
        return f"--format {args.format}"
    for flag, value in (("--weights", args.weights), ("--init-resnet50", args.init_resnet50),
                        ("--init-distilbert", args.init_distilbert)):
        if value and pathlib.Path(value).suffix in (".pth", ".pt", ".bin", ".ckpt"):
            return f"{flag} {value}"
    if args.init_distilbert and pathlib.Path(args.init_distilbert).is_dir() \
            and not (pathlib.Path(args.init_distilbert) / "model.safetensors").is_file():
        return f"--init-distilbert {args.init_distilbert} (pytorch_model.bin)"
    return None


def _made_dirs(path: pathlib.Path) -> list[pathlib.Path]:
    """The folders `path`'s creation would make (to remove them again on failure)."""
    out, p = [], path
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def _chmod_readable(out: pathlib.Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for f in ([out] if out.is_file() else [p for p in out.rglob("*")]):
        os.chmod(f, (0o755 if f.is_dir() else 0o644) & ~umask)


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--weights", help="workdir, .safetensors, hf dir or original .pth")
    parser.add_argument("--step", type=int, default=None, help="with a trainer workdir: this checkpoint step "
                        "(default: the newest good one)")
    parser.add_argument("--init-resnet50", help="without --weights: torchvision ResNet-50 state dict (fc dropped)")
    parser.add_argument("--init-distilbert", help="without --weights: HF DistilBERT dir or weights file")
    parser.add_argument("--format", required=True, choices=("original", "hf", "safetensors"))
    parser.add_argument("--out", required=True, help="output file (original, safetensors) or directory (hf)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = parser.parse_args(argv)
    if bool(args.weights) == bool(args.init_resnet50 or args.init_distilbert):
        parser.error("give either --weights or --init-resnet50/--init-distilbert")
    if args.step is not None and (not args.weights or args.step < 0):
        parser.error("--step N (N >= 0) goes with --weights WORKDIR")

    from exif_jax.train.workdir import WorkdirError, check_output_dir, check_output_file

    out = pathlib.Path(args.out)
    try:
        if args.format == "hf":
            check_output_dir(out, "--out")
        else:
            if out.is_dir():
                return _fail(f"--out {out}: is a directory; --format {args.format} writes one file", 2)
            check_output_file(out, "--out")
    except WorkdirError as e:
        return _fail(str(e), 2)
    for flag, value in (("--weights", args.weights), ("--init-resnet50", args.init_resnet50),
                        ("--init-distilbert", args.init_distilbert)):
        if value and not pathlib.Path(value).exists():
            return _fail(f"{flag} {value}: no such file or directory", 2)
    if out.exists() and not args.force and (out.is_file() or any(out.iterdir())):
        return _fail(f"{out} exists; pass --force to overwrite")
    needs = _needs_torch(args)
    if needs and importlib.util.find_spec("torch") is None:
        return _fail(f"{needs} needs PyTorch, which is not installed: {TORCH_EXTRA}")

    made = _made_dirs(out if args.format == "hf" else out.parent)
    # Written beside --out under a temporary name and renamed when complete: a failure (or a kill) never leaves
    # half a file, and an existing --out given with --force is replaced only by a finished export.
    partial = out.with_name(f".{out.name}.partial")
    t0 = time.time()
    try:
        rc = _export(args, partial, out, t0)
        if rc == 0:
            if out.is_dir():
                shutil.rmtree(out)
            os.replace(partial, out)
    finally:
        _remove(partial)
        for d in made:  # no empty folders left behind
            try:
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            except OSError:
                pass
    if rc == 0:
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
        print(f"wrote {args.format} -> {out} ({size / 2**20:.1f} MiB, {time.time() - t0:.1f}s total)")
    return rc


def _remove(path: pathlib.Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    except OSError:
        pass


def _export(args, out: pathlib.Path, final: pathlib.Path, t0: float) -> int:
    from exif_jax.convert import formats
    from exif_jax.convert.mapping import ConversionError
    from exif_jax.inference import describe_architecture, load_model
    from exif_jax.train.checkpointing import CheckpointError

    try:
        if args.weights:
            info: dict = {}
            cfg, model = load_model(args.weights, step=args.step, info=info)
            src = args.weights + (f" (step {info['step']})" if info.get("step") is not None else "")
        else:
            cfg, model = _initial_model(args.init_resnet50, args.init_distilbert)
            src = "initial weights"
        print(f"loaded {src}: {describe_architecture(cfg)}, embed_dim={cfg.embed_dim} ({time.time() - t0:.1f}s)")
        if args.format == "original":
            formats.export_original(model, cfg, out)
        elif args.format == "hf":
            formats.export_hf(model, cfg, out)
        else:
            formats.save_safetensors(model, cfg, out)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "torchvision", "transformers"):
            return _fail(f"--format {args.format} with {args.weights or 'initial weights'} needs {e.name}, which "
                         f"is not installed: {TORCH_EXTRA}")
        raise
    except (ConversionError, CheckpointError, FileNotFoundError, ValueError) as e:
        return _fail(" ".join(str(e).split()))
    except OSError as e:
        where = final if not e.filename or str(out) in str(e.filename) else e.filename
        return _fail(f"{where}: {e.strerror or e}")
    except Exception as e:  # noqa: BLE001 - writers' own errors (e.g. SafetensorError on a full disk)
        if out.exists() or "serializ" in str(e).lower() or "I/O" in str(e):
            return _fail(f"{final}: writing failed ({' '.join(str(e).split())[:200]}); nothing was written")
        raise
    _chmod_readable(out)
    return 0


def _initial_model(resnet50, distilbert):
    """Default ResNet-50 model config (text size read from the DistilBERT file), random init, then the files."""
    from flax import nnx

    from exif_jax.convert import formats
    from exif_jax.models import build_model, get_model_config

    cfg = get_model_config("resnet50")
    if distilbert:
        formats.text_config_from_distilbert(cfg, distilbert)
    print("initialising the model (random init, then the given files) ...", flush=True)
    model = build_model(cfg, nnx.Rngs(0))
    for line in formats.init_from_pretrained(model, resnet50=resnet50, distilbert=distilbert):
        print(f"  {line}")
    return cfg, model
