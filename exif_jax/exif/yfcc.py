"""YFCC100M EXIF lines -> `(directory, tag, description)` items.

A YFCC100M EXIF line is `<photo_id>\\t<item>,<item>,...` where each item is
`quote_plus(directory) + "." + quote_plus(tag) + ":" + quote_plus(description)`, e.g.
`Exif+SubIFD.Exposure+Time:1%2F15+sec`. Flickr produced the names and descriptions with metadata-extractor, so the
decoded items have the same shape as `exif_jax.exif.reader.read_exif` output.

Parsing rules (the inverse of that construction):
- trailing CR/LF are dropped; a blank line gives `(None, [])`;
- if it contains a tab, the text before the first tab is the photo id and the next tab field holds the items
  (YFCC's own files have exactly two fields); without a tab the whole line is the item list and the id is `None`;
- items are split at `,`; an item is split at its first `:`, its key at the first `.`; each part is
  `urllib.parse.unquote_plus`-decoded;
- garbage items (empty, no `:`, or no `.` in the key) are skipped, never fatal.
"""
from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import sys
import time
from collections.abc import Iterator
from urllib.parse import unquote_plus

Item = tuple[str, str, str]

__all__ = ["Item", "parse_yfcc_line", "parse_yfcc_items", "iter_yfcc_file", "encode_yfcc_item", "format_yfcc_line"]


# Encoded `Directory.Tag` keys repeat across lines: decode each once (bounded cache).
_KEY_CACHE: dict[str, tuple[str, str] | None] = {}
_KEY_CACHE_MAX = 200_000
_SEP = "\uffff"


def _decode_key(key: str) -> tuple[str, str] | None:
    hit = _KEY_CACHE.get(key, False)
    if hit is not False:
        return hit
    directory, dot, tag = key.partition(".")
    decoded = (unquote_plus(directory), unquote_plus(tag)) if dot and directory and tag else None
    if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
        _KEY_CACHE.clear()
    _KEY_CACHE[key] = decoded
    return decoded


def parse_yfcc_items(text: str) -> list[Item]:
    """Decodes the comma-separated, URL-encoded item list of one YFCC EXIF field (no photo id)."""
    keys: list[tuple[str, str]] = []
    values: list[str] = []
    for raw in text.split(","):
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        decoded = _decode_key(key)
        if decoded is None:
            continue
        keys.append(decoded)
        values.append(value)
    # One unquote_plus over all values joined by a non-ASCII separator decodes each value exactly as a separate call
    # would (unquote works on maximal ASCII runs, which the separator ends), at a fraction of the cost; if a value
    # decodes to the separator itself, fall back to one call per value.
    decoded_values = _unquote_plus_fast(_SEP.join(values)).split(_SEP)
    if len(decoded_values) != len(values):
        decoded_values = [unquote_plus(v) for v in values]
    return [(d, t, v) for (d, t), v in zip(keys, decoded_values)]


def _unquote_plus_fast(s: str) -> str:
    """`urllib.parse.unquote_plus(s)`, decoded in C for well-formed input: `%XX` -> `\\xXX` + `codecs.escape_decode`.

    Falls back to `unquote_plus` whenever the shortcut could differ: a backslash in the input (never produced by
    `quote_plus`), or a malformed `%` escape (escape_decode raises). Non-ASCII separators are kept as UTF-8 bytes.
    """
    if "%" not in s:
        return s.replace("+", " ")
    if "\\" in s:
        return unquote_plus(s)
    try:
        raw = codecs.escape_decode(s.replace("+", " ").replace("%", "\\x").encode("utf-8"))[0]
    except ValueError:
        return unquote_plus(s)
    return raw.decode("utf-8", errors="replace")


def parse_yfcc_line(line: str | bytes) -> tuple[str | None, list[Item]]:
    """Parses one YFCC EXIF line into `(photo_id or None, items)`; see the module docstring for the rules."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.rstrip("\r\n")
    if not line.strip():
        return None, []
    photo_id: str | None = None
    if "\t" in line:
        fields = line.split("\t")
        photo_id = fields[0].strip() or None
        text = fields[1]
    else:
        text = line
    return photo_id, parse_yfcc_items(text.strip())


def encode_yfcc_item(item: Item) -> str:
    """The inverse of the item decoding: `quote_plus(dir).quote_plus(tag):quote_plus(desc)` (safe='')."""
    from urllib.parse import quote_plus

    directory, tag, description = item
    return f"{quote_plus(directory, safe='')}.{quote_plus(tag, safe='')}:{quote_plus(description, safe='')}"


def format_yfcc_line(photo_id: str, items: list[Item]) -> str:
    """Formats items as a YFCC EXIF line (without the newline); `parse_yfcc_line` reads it back exactly."""
    return f"{photo_id}\t" + ",".join(encode_yfcc_item(item) for item in items)


def _open_text(path: str | os.PathLike):
    path = os.fspath(path)
    opener = open
    if path.endswith(".bz2"):
        opener = bz2.open
    elif path.endswith(".gz"):
        opener = gzip.open
    elif path.endswith(".xz"):
        opener = lzma.open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="\n")


def iter_yfcc_file(
    path: str | os.PathLike, stats: dict | None = None, progress_every: int = 0
) -> Iterator[tuple[str, list[Item]]]:
    """Yields `(photo_id, items)` for each line of a YFCC EXIF file (plain, .gz, .bz2 or .xz).

    Empty lines and lines without a single valid item are skipped; when a dict is passed as `stats`,
    `stats["lines"]` counts all lines and `stats["skipped"]` the non-blank lines skipped as garbage.
    A line without a photo id gets `"line:<N>"` (1-based) as its id.
    `progress_every=N` prints `lines, rate` to stderr every N lines.

    Raises `OSError` (with the file name) if the file cannot be opened.
    """
    if stats is not None:
        stats.setdefault("lines", 0)
        stats.setdefault("skipped", 0)
    start = time.perf_counter()
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if stats is not None:
                stats["lines"] += 1
            if progress_every and lineno % progress_every == 0:
                rate = lineno / max(time.perf_counter() - start, 1e-9)
                print(f"{os.fspath(path)}: {lineno:,} lines, {rate:,.0f} lines/s", file=sys.stderr, flush=True)
            photo_id, items = parse_yfcc_line(line)
            if not items:
                if stats is not None and line.strip():
                    stats["skipped"] += 1
                continue
            yield (photo_id if photo_id is not None else f"line:{lineno}"), items
