"""Experiment configs by name or path, from any directory: `--config smoke`, `--config smoke:runlocal`,
`--config configs/smoke.py:runlocal` or `--config /abs/my_config.py`, plus `--config.KEY=VALUE` overrides.

Names are looked up in the installed `configs` package (the repository's `configs/`), so `exif-jax train --config
smoke` works from anywhere. A config file is Python with `get_config(arg=None) -> ConfigDict` (see
`configs/common.py`). Every problem raises `ConfigError` (a `ValueError`) with one line naming the file or key:
an unknown name lists the known ones, an unknown key says which key and suggests the nearest, a value that does
not parse names the key and the expected type.

This module imports no JAX; loading a config imports what the config file imports (ml_collections, and the model
config defaults).
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import pathlib
import sys
from typing import Any

CONFIG_FLAG = "--config"


class ConfigError(ValueError):
    """A config that cannot be resolved, loaded or overridden; the message is one line naming the file or key."""


def configs_dir() -> pathlib.Path:
    """Folder of the bundled configs (the `configs` package, installed beside `exif_jax`)."""
    spec = importlib.util.find_spec("configs")
    if spec is not None and spec.submodule_search_locations:
        return pathlib.Path(list(spec.submodule_search_locations)[0])
    return pathlib.Path(__file__).resolve().parents[1] / "configs"


def _first_doc_line(path: pathlib.Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, ValueError):
        return ""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    return para.split(". ")[0].rstrip(".") + "." if para else ""


def list_configs() -> list[tuple[str, pathlib.Path, str]]:
    """`(name, path, first paragraph of the docstring)` of every bundled config (files with `get_config`)."""
    out = []
    for p in sorted(configs_dir().glob("*.py")):
        if p.name.startswith("_") or p.stem == "common":
            continue
        try:
            if "def get_config" not in p.read_text(encoding="utf-8"):
                continue
        except OSError:
            continue
        out.append((p.stem, p, _first_doc_line(p)))
    return out


def split_spec(spec: str) -> tuple[str, str | None]:
    """`"configs/smoke.py:runlocal,steps=5"` -> (`"configs/smoke.py"`, `"runlocal,steps=5"`)."""
    name, sep, arg = str(spec).partition(":")
    return name, (arg if sep else None)


def resolve_path(name: str) -> pathlib.Path:
    """A config name (`smoke`) or file path (`configs/smoke.py`, `/x/my.py`) -> an existing file."""
    if not name:
        raise ConfigError("--config is empty; give a config name (see `exif-jax configs`) or a file")
    p = pathlib.Path(name).expanduser()
    if p.is_file():
        return p.resolve()
    if p.is_dir():
        raise ConfigError(f"--config {name}: is a directory, not a config file")
    # A bare name or a repository-relative path run from elsewhere (`configs/smoke.py`): the bundled config.
    bundled = configs_dir() / (p.name if p.suffix == ".py" else p.name + ".py")
    if (p.suffix in ("", ".py")) and len(p.parts) <= 2 and (len(p.parts) == 1 or p.parts[0] == "configs") \
            and bundled.is_file():
        return bundled
    known = [n for n, _, _ in list_configs()]
    hint = difflib.get_close_matches(p.stem, known, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"--config {name}: no such config file or bundled config{suggestion} (bundled: "
                      f"{', '.join(known)}; `exif-jax configs` lists them)")


def _import_config_module(path: pathlib.Path):
    # Bundled configs do `from configs import common`: make the package importable when it is not installed.
    root = str(configs_dir().parent)
    if importlib.util.find_spec("configs") is None and root not in sys.path:
        sys.path.append(root)
    mod_name = f"_exif_jax_config_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - any error raised by a user's config file, named in one line
        raise ConfigError(f"{path}: cannot import ({type(e).__name__}: {_one_line(e)})") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: no get_config(arg) function; is this a config file?")
    return module


def _one_line(e: BaseException | str) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(text).split()).strip("'\" ")


def load(spec: str, overrides: list[tuple[str, str]] = (), lock: bool = True):
    """The `ConfigDict` of `spec` (`name[:arg]` or `path[:arg]`) with `overrides` (`("optim.lr", "3e-4")`) applied."""
    name, arg = split_spec(spec)
    path = resolve_path(name)
    module = _import_config_module(path)
    try:
        config = module.get_config(arg) if arg is not None else module.get_config()
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConfigError(f"{path.name}{':' + arg if arg else ''}: {_one_line(e)}") from None
    if config is None or not hasattr(config, "to_dict"):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not a ConfigDict")
    for key, value in overrides:
        set_key(config, key, value)
    if lock and hasattr(config, "lock"):
        config.lock()
    return config


def flat_keys(config, prefix: str = "") -> list[str]:
    out = []
    for k, v in config.items():
        full = f"{prefix}{k}"
        out.append(full)
        if hasattr(v, "items") and hasattr(v, "to_dict"):
            out += flat_keys(v, full + ".")
    return out


def _unknown_key(config, key: str) -> ConfigError:
    hint = difflib.get_close_matches(key, flat_keys(config), n=1, cutoff=0.6)
    return ConfigError(f"unknown config key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))


def _parse_value(key: str, text: str, current: Any):
    def bad(kind):
        return ConfigError(f"--config.{key}={text!r}: expected {kind} (currently {current!r})")

    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise bad("a boolean (true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                raise bad("an integer") from None
            if f.is_integer():
                return int(f)
            raise bad("an integer") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise bad("a tuple, e.g. (1,2)") from None
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    if current is None:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    raise ConfigError(f"--config.{key}: a {type(current).__name__} cannot be set from the command line")


def set_key(config, key: str, text: str) -> None:
    """Sets dotted `key` of `config` from the command-line string `text`, typed by the current value."""
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        if not hasattr(node, "keys") or part not in node or not hasattr(node[part], "keys"):
            raise _unknown_key(config, key)
        node = node[part]
    if not leaf or leaf not in node:
        raise _unknown_key(config, key)
    current = node[leaf]
    if hasattr(current, "to_dict"):
        raise ConfigError(f"--config.{key} is a group of keys; set one of them, e.g. --config.{key}."
                          f"{next(iter(current.keys()), 'KEY')}=...")
    value = _parse_value(key, text, current)
    locked = getattr(config, "is_locked", False)
    try:
        if locked:
            config.unlock()
        node[leaf] = value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--config.{key}={text!r}: {_one_line(e)}") from None
    finally:
        if locked:
            config.lock()


def extract_config_args(argv: list[str]) -> tuple[str | None, list[tuple[str, str]], list[str]]:
    """Splits `--config SPEC`, `--config=SPEC`, `--config.KEY=VALUE` and `--config.KEY VALUE` out of `argv`.

    Returns `(spec or None, [(key, value), ...], the other arguments)`.
    """
    spec, overrides, rest = None, [], []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a == CONFIG_FLAG or a.startswith(CONFIG_FLAG + "="):
            if a == CONFIG_FLAG:
                if i + 1 >= len(argv):
                    raise ConfigError("--config needs a value: a config name (see `exif-jax configs`) or a file")
                spec, i = argv[i + 1], i + 2
            else:
                spec, i = a.split("=", 1)[1], i + 1
            continue
        if a.startswith(CONFIG_FLAG + "."):
            body = a[len(CONFIG_FLAG) + 1:]
            if "=" in body:
                key, value = body.split("=", 1)
                i += 1
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                key, value, i = body, argv[i + 1], i + 2
            else:
                raise ConfigError(f"--config.{body} needs a value (--config.{body}=VALUE)")
            overrides.append((key, value))
            continue
        rest.append(a)
        i += 1
    return spec, overrides, rest


def describe(spec: str) -> str:
    """`smoke:runlocal` as users wrote it, with the file it resolved to (for logs)."""
    name, arg = split_spec(spec)
    return f"{resolve_path(name)}{':' + arg if arg else ''}"


def to_text(config) -> str:
    """The resolved config as JSON (what `--print-config` prints and the trainer saves as config.json)."""
    return config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
