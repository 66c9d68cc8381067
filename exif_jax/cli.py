"""`exif-jax` console entry point: dispatches `exif-jax NAME ...` to `exif_jax.commands.NAME.main(argv)`.

Subcommands are imported lazily so `exif-jax exif` does not pay for importing JAX models or torch.
"""
import importlib
import sys

COMMANDS = {
    "exif": "print camera metadata (EXIF) of JPEGs or YFCC lines as items and rendered text",
    "ingest": "write image+EXIF pairs as sharded TFRecord / ArrayRecord with dataset_info.json",
    "train": "contrastive training from a config (absl/ml_collections flags)",
    "export": "export weights to the original .pth layout or a Hugging Face directory",
    "splice": "zero-shot splice localization/detection heatmaps for images",
    "compile": "ahead-of-time compile a config's train step for a TPU/GPU topology",
    "quickstart": "ingest bundled photos, train the smoke config, evaluate, localize a synthetic splice",
}


def _usage() -> str:
    lines = ["usage: exif-jax COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<11} {doc}" for name, doc in COMMANDS.items()]
    lines += ["", "Run `exif-jax COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"exif-jax: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"exif_jax.commands.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
