"""`exif-jax export`: convert weights between exif-jax and PyTorch layouts.

    exif-jax export --weights WORKDIR_OR_FILE --format original --out model.pth
    exif-jax export --weights model.pth --format safetensors --out model.safetensors
    exif-jax export --weights model.safetensors --format hf --out hf_dir/

Initial weights as the original training started (ImageNet ResNet-50 + pretrained DistilBERT, local files only),
to pass to training as `--config.model.init_from=init.safetensors`:

    exif-jax export --init-resnet50 resnet50-0676ba61.pth --init-distilbert distilbert-base-uncased/ \
        --format safetensors --out init.safetensors

`--weights` is a trainer workdir (latest checkpoint), an exported `.safetensors`, an hf export directory or an
original-layout `.pth`. Formats: `original` (the original repository's `{"model": state_dict}`; ResNet-50 models
only), `hf` (DistilBertModel + CLIPVisionModelWithProjection / torchvision directory), `safetensors` (exif-jax).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="exif-jax export", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--weights", help="workdir, .safetensors, hf dir or original .pth")
    parser.add_argument("--init-resnet50", help="without --weights: torchvision ResNet-50 state dict (fc dropped)")
    parser.add_argument("--init-distilbert", help="without --weights: HF DistilBERT dir or weights file")
    parser.add_argument("--format", required=True, choices=("original", "hf", "safetensors"))
    parser.add_argument("--out", required=True, help="output file (original, safetensors) or directory (hf)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = parser.parse_args(argv)
    if bool(args.weights) == bool(args.init_resnet50 or args.init_distilbert):
        parser.error("give either --weights or --init-resnet50/--init-distilbert")

    out = pathlib.Path(args.out)
    if out.exists() and not args.force and (out.is_file() or any(out.iterdir())):
        print(f"exif-jax export: {out} exists; pass --force to overwrite", file=sys.stderr)
        return 1
    from exif_jax.convert import formats
    from exif_jax.convert.mapping import ConversionError
    from exif_jax.inference import load_model

    t0 = time.time()
    try:
        if args.weights:
            cfg, model = load_model(args.weights)
        else:
            cfg, model = _initial_model(args.init_resnet50, args.init_distilbert)
        print(f"loaded {args.weights or 'initial weights'}: image_tower={cfg.image_tower} embed_dim={cfg.embed_dim} "
              f"({time.time() - t0:.1f}s)")
        if args.format == "original":
            formats.export_original(model, cfg, out)
        elif args.format == "hf":
            formats.export_hf(model, cfg, out)
        else:
            formats.save_safetensors(model, cfg, out)
    except (ConversionError, FileNotFoundError) as e:
        print(f"exif-jax export: {e}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    print(f"wrote {args.format} -> {out} ({size / 2**20:.1f} MiB, {time.time() - t0:.1f}s total)")
    return 0


def _initial_model(resnet50, distilbert):
    """Default ResNet-50 model config (text size read from the DistilBERT file), random init, then the files."""
    from flax import nnx

    from exif_jax.convert import formats
    from exif_jax.models import build_model, get_model_config

    cfg = get_model_config("resnet50")
    if distilbert:
        formats._infer_text(cfg, formats._add(formats.read_hf_distilbert(distilbert), formats.TEXT_PREFIX),
                            str(distilbert))
        cfg.text_projection = bool(cfg.text.dim != cfg.embed_dim)
    print("initialising the model (random init, then the given files) ...", flush=True)
    model = build_model(cfg, nnx.Rngs(0))
    for line in formats.init_from_pretrained(model, resnet50=resnet50, distilbert=distilbert):
        print(f"  {line}")
    return cfg, model
