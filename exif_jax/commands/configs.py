"""`exif-jax configs`: list the bundled experiment configs (name, file, first line of the docstring).

    exif-jax configs                       # name and what it is
    exif-jax configs smoke                 # the whole docstring of one config (its command and what to expect)
    exif-jax configs smoke:runlocal --print-config     # the resolved config as JSON

Any command taking `--config` accepts these names (`--config smoke:runlocal`) or a path to a config file.
"""
from __future__ import annotations

import ast
import sys

from exif_jax import config_files

PROG = "exif-jax configs"


def main(argv) -> int:
    argv = list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    print_config = "--print-config" in argv
    names = [a for a in argv if a != "--print-config"]
    unknown = [a for a in names if a.startswith("-")]
    if unknown or len(names) > 1:
        print(f"{PROG}: unexpected argument {(unknown or names[1:])[0]!r} (usage: exif-jax configs [NAME] "
              "[--print-config])", file=sys.stderr)
        return 2
    try:
        if not names:
            rows = config_files.list_configs()
            width = max((len(n) for n, _, _ in rows), default=4)
            for name, _, doc in rows:
                print(f"{name:<{width}}  {doc}")
            print(f"\n({config_files.configs_dir()}; `exif-jax configs NAME` shows one, "
                  "`--config NAME[:args]` uses it)")
            return 0
        if print_config:
            sys.stdout.write(config_files.to_text(config_files.load(names[0])))
            return 0
        path = config_files.resolve_path(config_files.split_spec(names[0])[0])
        print(f"{path}\n")
        print(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "(no docstring)")
        return 0
    except config_files.ConfigError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
