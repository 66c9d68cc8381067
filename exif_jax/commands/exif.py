"""`exif-jax exif`: print the EXIF items of JPEGs (or YFCC100M EXIF lines) and the text the model reads.

Examples:
  exif-jax exif photo.jpg other.jpg            # items as metadata-extractor names them + `clean` text
  exif-jax exif photos/ --json                 # every JPEG under photos/, one JSON object per image
  exif-jax exif photos/ --renderer legacy      # legacy text, tag frequencies computed over the given images
  exif-jax exif photo.jpg --tag-table DATA/dataset_info.json --renderer legacy
  exif-jax exif --yfcc yfcc100m_exif.tsv.bz2 --json        # legacy text, frequencies over the given lines
  exif-jax exif --yfcc lines.tsv --renderer clean --tags "Make,Model,F-Number"

JSON objects: `{"file": ..., "items": [[directory, tag, description], ...], "text": ...}` (`photo_id` in place of
`file` for YFCC lines; `"text": null` when the renderer drops the image). A file that cannot be read gives a
one-line error on stderr naming it; the others are still printed and the exit code is 1. A damaged file whose
items before the damage were read gets a one-line warning naming it (exit code 0 if nothing failed). Nothing to
process (an empty folder, no JPEG found) exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from exif_jax.exif.render import TagTable, get_renderer

PROG = "exif-jax exif"
JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Print EXIF items (metadata-extractor names/descriptions, as in YFCC100M) and rendered text.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="JPEG files, or folders searched for *.jpg/*.jpeg")
    p.add_argument("--yfcc", metavar="LINES", help="a YFCC100M-style EXIF file (photo_id<TAB>items; .gz/.bz2/.xz ok)")
    p.add_argument("--json", action="store_true", help="one JSON object per image/line")
    p.add_argument("--renderer", choices=("legacy", "clean"),
                   help="text renderer (default: legacy for --yfcc, clean for images)")
    p.add_argument("--tag-table", metavar="JSON",
                   help="tag frequencies: a dataset_info.json, a saved TagTable, or the original all_exif_count.json "
                        "(default for legacy / --threshold: computed over the given inputs)")
    p.add_argument("--tags", help="clean: comma-separated tag names, in output order (default: built-in list)")
    p.add_argument("--threshold", type=float,
                   help="legacy: frequency threshold (default 0.49); clean: keep tags with fraction >= this")
    p.add_argument("--makernotes", action="store_true", help="clean: also take tags from makernote directories")
    p.add_argument("--text-only", action="store_true", help="text mode: print only the rendered text")
    return p


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _printable(s: str) -> str:
    """Control characters escaped so one item stays on one line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s).replace("\n", "\\n")


def _expand_images(paths: Iterable[str]) -> Iterator[str]:
    paths = list(paths)
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*") if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
            if not found and len(paths) > 1:  # with one folder the final error says it
                print(f"{PROG}: warning: {path}: no JPEG files found", file=sys.stderr)
            yield from found
        else:
            yield path


def _renderer_kwargs(args, name: str) -> dict:
    kw = {}
    if name == "legacy":
        if args.tags or args.makernotes:
            raise ValueError("--tags/--makernotes apply to the clean renderer only")
        if args.threshold is not None:
            kw["threshold"] = args.threshold
    else:
        if args.tags:
            kw["tags"] = args.tags
        if args.threshold is not None:
            kw["threshold"] = args.threshold
        kw["makernotes"] = args.makernotes
    return kw


def _needs_table(name: str, kw: dict) -> bool:
    return name == "legacy" or kw.get("threshold") is not None


def _emit(out, args, key: str, ident: str, items, text) -> None:
    if args.json:
        out.write(json.dumps({key: ident, "items": [list(it) for it in items], "text": text}) + "\n")
        return
    if args.text_only:
        out.write(f"{ident}\t{'' if text is None else text}\n")
        return
    out.write(f"{ident}: {len(items)} items\n")
    for directory, tag, description in items:
        out.write(f"  [{directory}] {tag} = {_printable(description)}\n")
    out.write(f"  text: {text}\n" if text is not None else "  text: (dropped by the renderer)\n")


def _run_images(args, out, name: str, kw: dict, table: TagTable | None) -> int:
    from exif_jax.exif.reader import read_exif_file

    failed = 0
    damaged = 0

    def read_all() -> Iterator[tuple[str, list]]:
        nonlocal failed, damaged
        for path in _expand_images(args.images):
            problems: list = []
            try:
                items = read_exif_file(path, problems=problems)
            except (ValueError, OSError) as e:
                failed += 1
                msg = _one_line(e.strerror if isinstance(e, OSError) and e.strerror else e)
                print(f"{PROG}: error: {msg if path in msg else f'{path}: {msg}'}", file=sys.stderr)
                continue
            if problems:
                damaged += 1
                print(f"{PROG}: warning: {path}: {'; '.join(dict.fromkeys(problems))}; {len(items)} items read "
                      "before the damage", file=sys.stderr)
            yield path, [tuple(it) for it in items]

    if table is None and _needs_table(name, kw):
        records = list(read_all())
        table = TagTable.from_item_lists(items for _, items in records)
        source: Iterable = records
    else:
        source = read_all()
    renderer = get_renderer(name, tag_table=table, **kw)
    n = 0
    for path, items in source:
        _emit(out, args, "file", path, items, renderer(items))
        n += 1
    if failed:
        print(f"{PROG}: {failed} of {n + failed} files failed", file=sys.stderr)
    if n + failed == 0:
        print(f"{PROG}: error: no JPEG files in {', '.join(args.images)}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _run_yfcc(args, out, name: str, kw: dict, table: TagTable | None) -> int:
    from exif_jax.exif.yfcc import iter_yfcc_file

    path = args.yfcc
    if table is None and _needs_table(name, kw):
        table = TagTable.from_item_lists(items for _, items in iter_yfcc_file(path, progress_every=1_000_000))
    renderer = get_renderer(name, tag_table=table, **kw)
    stats: dict = {}
    n = 0
    for photo_id, items in iter_yfcc_file(path, stats=stats):
        _emit(out, args, "photo_id", photo_id, items, renderer(items))
        n += 1
    if stats.get("skipped"):
        print(f"{PROG}: {path}: skipped {stats['skipped']} of {stats['lines']} lines without a valid "
              f"'Directory.Tag:value' item", file=sys.stderr)
    if n == 0 and stats.get("skipped"):
        print(f"{PROG}: error: {path}: no YFCC EXIF line in the file (expected photo_id<TAB>Dir.Tag:value,...)",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, usage errors
        return int(e.code or 0)
    if bool(args.images) == bool(args.yfcc):
        print(f"{PROG}: error: give either IMAGE... or --yfcc LINES (see --help)", file=sys.stderr)
        return 2
    name = args.renderer or ("legacy" if args.yfcc else "clean")
    out = sys.stdout
    try:
        kw = _renderer_kwargs(args, name)
        table = TagTable.from_json(args.tag_table) if args.tag_table else None
        if args.yfcc:
            return _run_yfcc(args, out, name, kw, table)
        return _run_images(args, out, name, kw, table)
    except BrokenPipeError:  # e.g. `exif-jax exif ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as e:
        print(f"{PROG}: error: {e.filename or args.yfcc}: {e.strerror or e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    finally:
        try:
            out.flush()
        except (BrokenPipeError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
