"""`exif-jax` console entry point: dispatches `exif-jax NAME ...` to `exif_jax.commands.NAME.main(argv)`.

Subcommands are imported lazily so `exif-jax exif` does not pay for importing JAX models or torch.
"""
import importlib
import logging
import os
import sys

from exif_jax import host_malloc

COMMANDS = {
    "exif": "print camera metadata (EXIF) of JPEGs or YFCC lines as items and rendered text",
    "ingest": "write image+EXIF pairs as sharded TFRecord / ArrayRecord with dataset_info.json",
    "train": "contrastive training from a config (absl/ml_collections flags)",
    "export": "export weights to the original .pth layout or a Hugging Face directory",
    "splice": "zero-shot splice localization/detection heatmaps for images",
    "compile": "ahead-of-time compile a config's train step for a TPU/GPU topology",
    "query": "ask photos about their camera: rank candidate EXIF values (whole photo or per region), zero-shot",
    "quickstart": "ingest bundled photos, train the smoke config, evaluate, localize a synthetic splice",
    "simulate": "render photos through a zoo of simulated cameras (JPEGs with EXIF describing each chain)",
    "yfcc-subset": "sample YFCC100M photos with rich EXIF: a URL list for img2dataset + EXIF lines for ingest",
    "configs": "list the bundled experiment configs (`--config NAME` takes these names)",
}

# Commands that run models: started from the shell they restart once with glibc malloc tuned for large buffers
# (`exif_jax.host_malloc`); called in-process (`main([...])`) they run as they are.
HEAVY = ("train", "splice", "quickstart", "compile", "query")


def _usage() -> str:
    lines = ["usage: exif-jax COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<11} {doc}" for name, doc in COMMANDS.items()]
    lines += ["", "Run `exif-jax COMMAND --help` for the options of one command."]
    return "\n".join(lines)


class _NoCudaPluginTraceback(logging.Filter):
    """The `cuda-aot` extra installs jax-cuda12-plugin (to compile for GPU topologies without a GPU); on a machine
    without an NVIDIA driver JAX logs its failed start as a 20-line traceback. Keep one line of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg.startswith("Jax plugin configuration error") and "cuda" in msg:
            print("exif-jax: jax-cuda12-plugin is installed but this machine has no NVIDIA driver; using the other "
                  "JAX backends", file=sys.stderr)
            return False
        return True


def quiet_missing_cuda_plugin() -> None:
    if not os.path.exists("/proc/driver/nvidia/version"):
        logging.getLogger("jax._src.xla_bridge").addFilter(_NoCudaPluginTraceback())


def _unknown_command(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f"; did you mean `exif-jax {close[0]}`?" if close else ""
    return f"exif-jax: unknown command {name!r}{hint} (`exif-jax --help` lists the commands)"


def main(argv=None) -> int:
    argv_from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V", "version"):
        from exif_jax import __version__

        print(f"exif-jax {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(_unknown_command(name), file=sys.stderr)
        return 2
    if name in HEAVY and argv_from_sys:
        host_malloc.reexec_with_tuning(["-m", "exif_jax.cli", *argv])
    quiet_missing_cuda_plugin()
    try:
        module = importlib.import_module(f"exif_jax.commands.{name.replace('-', '_')}")
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling (the trainer saves a checkpoint first)
        print(f"exif-jax {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug or an unforeseen fault: one line, the traceback on request
        if not argv_from_sys or os.environ.get("EXIF_JAX_TRACEBACK", "0") not in ("", "0"):
            raise
        text = " ".join(str(e).split())[:300]
        print(f"exif-jax {name}: internal error: {type(e).__name__}: {text} (please report it; "
              "EXIF_JAX_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
