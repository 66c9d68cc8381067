"""EXIF items -> the text the text tower reads, and the tag frequency table those texts depend on.

Two renderers, selected by name (`get_renderer(name, tag_table=None, **kw)`), both callables `items -> str | None`
(`None`: the renderer drops the image):

`legacy`  The original EXIF-as-language repository's rules, reproduced exactly (its quirks are the specification;
          `tests/test_yfcc_render_legacy.py` checks every text of the shared golden file):
          - items are keyed by `quote_plus(directory).quote_plus(tag)` as in a YFCC line; a later duplicate key
            overwrites the earlier value in place; an image with <= 10 distinct keys is dropped;
          - the value is URL-decoded a second time (`unquote` then `unquote_plus` of the line's encoding);
          - the text key is the tag name (directory dropped, cut at its first `.`), so e.g. the `Exif Thumbnail`
            X/Y Resolution overwrite the `Exif IFD0` ones in the first one's position;
          - values are refined: `*Resolution` and `Exif SubIFD` `Exposure Bias Value` fractions are floor-divided
            (`"72/1 dots per inch"` -> `"72 dots per inch"`), `Focal Length` gets one decimal, `ISO Speed Ratings`
            keeps its first token, any other value longer than 20 characters becomes `Unknown`, and the rest keep
            only `[a-zA-Z0-9.,/-]` (`"1/15 sec"` -> `"1/15sec"`); a value whose refinement raises becomes `Unknown`
            and is not counted in the tag table;
          - a tag is written if its dataset frequency (`TagTable.legacy_fraction`) is >= 0.49, in file order,
            as `", ".join(f"{tag}: {value}")`.
`clean`   Values as written (control characters -> spaces, whitespace runs collapsed, capped at
          `max_value_chars`), one value per tag name taken from the highest-priority directory
          (`Exif IFD0` > `Exif SubIFD` > `Interoperability` > `GPS` > `Exif Thumbnail`; makernotes only with
          `makernotes=True`), written in a fixed tag order: `tags=[...]` (that order), or every tag whose
          `TagTable.fraction` is >= `threshold` (ordered as `DEFAULT_CLEAN_TAGS`, then by frequency), or
          `DEFAULT_CLEAN_TAGS`. Images with fewer than `min_tags` rendered tags are dropped.

`TagTable` counts tags over a dataset (at ingest time; saved in `dataset_info.json` via `to_json()`); it keeps both
the presence fraction of each tag name over all images (`fraction`, used by `clean`) and the original repository's
count (`legacy_fraction`: successful refinements per kept image, so a tag found in IFD0 and IFD1 counts twice and
fractions can exceed 1).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote_plus, unquote, unquote_plus

Item = tuple[str, str, str]

__all__ = [
    "DEFAULT_CLEAN_TAGS",
    "LEGACY_MIN_ITEMS",
    "LEGACY_THRESHOLD",
    "STANDARD_DIRECTORIES",
    "CleanRenderer",
    "LegacyRenderer",
    "RENDERERS",
    "TagTable",
    "clean_value",
    "get_renderer",
    "legacy_exif",
    "legacy_refine_value",
]

LEGACY_THRESHOLD = 0.49
# The original keeps an image when `len(exif.keys()) > 10`.
LEGACY_MIN_ITEMS = 11

# Directory priority of the `clean` renderer: a tag name found in several directories takes the first one's value.
STANDARD_DIRECTORIES = ("Exif IFD0", "Exif SubIFD", "Interoperability", "GPS", "Exif Thumbnail")

# The `clean` renderer's default tags, in the order they are written: capture-device properties and settings in
# IFD0 / SubIFD order. Dates, GPS, serial numbers, free text, thumbnail layout and near-constant format tags
# (Exif/FlashPix version, components configuration, file source, scene type, interoperability index) are left
# out, so that 95% of texts fit 256 tokens (bench/token_lengths.py).
DEFAULT_CLEAN_TAGS = (
    "Make",
    "Model",
    "Software",
    "Orientation",
    "X Resolution",
    "Y Resolution",
    "Resolution Unit",
    "YCbCr Positioning",
    "Exposure Time",
    "F-Number",
    "Exposure Program",
    "ISO Speed Ratings",
    "Compressed Bits Per Pixel",
    "Shutter Speed Value",
    "Aperture Value",
    "Exposure Bias Value",
    "Max Aperture Value",
    "Metering Mode",
    "White Balance",
    "Flash",
    "Focal Length",
    "Color Space",
    "Exif Image Width",
    "Exif Image Height",
    "Sensing Method",
    "Exposure Mode",
    "White Balance Mode",
    "Digital Zoom Ratio",
    "Focal Length 35",
    "Scene Capture Type",
    "Contrast",
    "Saturation",
    "Sharpness",
    "Lens Model",
)

_LEGACY_KEEP = re.compile(r"[^a-zA-Z0-9.,/-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------------------------
# legacy: the original repository's functions, re-expressed on items


def legacy_refine_value(key: str, value: str) -> str:
    """The original `refine_value(key, value)`; `key` is the URL-encoded `Directory.Tag` (e.g. `Exif+IFD0.Make`).

    Raises (IndexError / ValueError) exactly where the original did; the caller turns that into `Unknown`.
    """
    if key[-10:] == "Resolution" or key == "Exif+SubIFD.Exposure+Bias+Value":
        split_value = value.split()
        digits = split_value[0].split("/")
        try:
            if len(digits) > 1:
                split_value[0] = str(int(digits[0]) // int(digits[1]))
        except Exception:  # the original's bare except: ValueError, ZeroDivisionError
            split_value[0] = digits[0]
        return " ".join(split_value)
    if key == "Exif+SubIFD.Focal+Length":
        split_value = value.split()
        split_value[0] = "{:.1f}".format(float(split_value[0]))
        return " ".join(split_value)
    if key == "Exif+SubIFD.ISO+Speed+Ratings":
        return value.split()[0]
    if len(value) > 20:
        return "Unknown"
    return _LEGACY_KEEP.sub("", value)


def _url_decode_twice(encoded: str) -> str:
    # The original decodes each already-URL-encoded field with `unquote` and then `unquote_plus`.
    return unquote_plus(unquote(encoded))


# (directory, tag) -> (the original's dict key `quote_plus(dir).quote_plus(tag)`, its text key); bounded cache.
_KEY_CACHE: dict[tuple[str, str], tuple[str, str]] = {}


def _legacy_key(directory: str, tag: str) -> tuple[str, str]:
    hit = _KEY_CACHE.get((directory, tag))
    if hit is None:
        key = f"{quote_plus(directory, safe='')}.{quote_plus(tag, safe='')}"
        hit = (key, _url_decode_twice(key.split(".")[1]))  # the original's decode_exif_key
        if len(_KEY_CACHE) >= 200_000:
            _KEY_CACHE.clear()
        _KEY_CACHE[(directory, tag)] = hit
    return hit


def legacy_exif(items: Iterable[Item]) -> tuple[dict[str, str], list[str]] | None:
    """The original's per-image record: `(exif, counted)` or `None` if the image has <= 10 distinct keys.

    `exif` maps tag name -> refined value in the original's dict order; `counted` lists the tag names whose
    refinement succeeded (what the original adds to its frequency table, duplicates included).
    """
    values: dict[tuple[str, str], str] = {}
    for directory, tag, description in items:
        values[_legacy_key(directory, tag)] = description
    if len(values) < LEGACY_MIN_ITEMS:
        return None
    exif: dict[str, str] = {}
    counted: list[str] = []
    for (key, write_key), description in values.items():
        # == unquote_plus(unquote(quote_plus(description))): the original's second decoding of the line's value
        value = unquote_plus(description)
        try:
            exif[write_key] = legacy_refine_value(key, value)
            counted.append(write_key)
        except Exception:
            exif[write_key] = "Unknown"
    return exif, counted


# ---------------------------------------------------------------------------------------------------------------
# tag frequency table


class TagTable:
    """Tag frequencies over a dataset.

    - `fraction(tag)`: share of all images with at least one item named `tag` (any directory); used by `clean`.
    - `legacy_fraction(tag)`: the original repository's number: successful refinements of `tag` per image kept by
      the legacy filter (> 10 items); used by `legacy` with its 0.49 threshold.

    Build with `TagTable.from_item_lists(lists)` or incrementally with `update(items)`; save with `to_json()`
    (a JSON-serialisable dict) and load with `from_json(obj)` (that dict, its JSON text, a path to a JSON file, a
    `dataset_info.json` holding it under `tag_table`, or the original's flat `all_exif_count.json`).
    """

    FORMAT = "exif-jax-tag-table/1"

    def __init__(
        self,
        num_images: int = 0,
        counts: dict[str, int] | None = None,
        legacy_num_images: int = 0,
        legacy_counts: dict[str, int] | None = None,
        legacy_fractions: dict[str, float] | None = None,
    ):
        self.num_images = int(num_images)
        self.counts: dict[str, int] = dict(counts or {})
        self.legacy_num_images = int(legacy_num_images)
        self.legacy_counts: dict[str, int] = dict(legacy_counts or {})
        # Set only when loaded from the original's flat fraction file (no counts available).
        self._fixed_legacy_fractions = dict(legacy_fractions) if legacy_fractions is not None else None

    # -- building
    def update(self, items: Sequence[Item]) -> None:
        """Adds one image's items."""
        items = list(items)
        self.num_images += 1
        for tag in dict.fromkeys(tag for _, tag, _ in items):
            self.counts[tag] = self.counts.get(tag, 0) + 1
        record = legacy_exif(items)
        if record is not None:
            self.legacy_num_images += 1
            for tag in record[1]:
                self.legacy_counts[tag] = self.legacy_counts.get(tag, 0) + 1

    @classmethod
    def from_item_lists(cls, lists: Iterable[Sequence[Item]]) -> "TagTable":
        table = cls()
        for items in lists:
            table.update(items)
        return table

    def merge(self, other: "TagTable") -> "TagTable":
        """Sum of two tables (e.g. built by separate ingest workers)."""
        out = TagTable(self.num_images + other.num_images, dict(self.counts),
                       self.legacy_num_images + other.legacy_num_images, dict(self.legacy_counts))
        for tag, n in other.counts.items():
            out.counts[tag] = out.counts.get(tag, 0) + n
        for tag, n in other.legacy_counts.items():
            out.legacy_counts[tag] = out.legacy_counts.get(tag, 0) + n
        return out

    # -- queries
    def fraction(self, tag: str) -> float:
        if self.num_images == 0 and self._fixed_legacy_fractions is not None:
            return float(self._fixed_legacy_fractions.get(tag, 0.0))
        return self.counts.get(tag, 0) / self.num_images if self.num_images else 0.0

    def legacy_fraction(self, tag: str) -> float:
        return self.legacy_fractions().get(tag, 0.0)

    def legacy_fractions(self) -> dict[str, float]:
        """The original's `all_exif_count.json`: tag -> fraction, ascending (stable in first-seen order)."""
        if self._fixed_legacy_fractions is not None:
            fractions = self._fixed_legacy_fractions
        else:
            n = self.legacy_num_images
            fractions = {tag: count / n for tag, count in self.legacy_counts.items()} if n else {}
        return dict(sorted(fractions.items(), key=lambda kv: kv[1]))

    def tags_at_least(self, threshold: float) -> list[str]:
        """Tag names with `fraction >= threshold`, most frequent first."""
        names = self.counts if self.num_images else (self._fixed_legacy_fractions or {})
        return sorted((t for t in names if self.fraction(t) >= threshold), key=lambda t: (-self.fraction(t), t))

    def legacy_tags(self, threshold: float = LEGACY_THRESHOLD) -> list[str]:
        return [tag for tag, frac in self.legacy_fractions().items() if frac >= threshold]

    # -- (de)serialisation
    def to_json(self) -> dict:
        out = {
            "format": self.FORMAT,
            "num_images": self.num_images,
            "counts": self.counts,
            "legacy_num_images": self.legacy_num_images,
            "legacy_counts": self.legacy_counts,
        }
        if self._fixed_legacy_fractions is not None:
            out["legacy_fractions"] = self._fixed_legacy_fractions
        return out

    @classmethod
    def from_json(cls, obj, source: str | None = None) -> "TagTable":
        """Loads a table from `to_json()` output, its JSON text, a JSON file path, or a dict holding it under
        `tag_table` (a `dataset_info.json`), or the original's flat `{tag: fraction}` file."""
        if isinstance(obj, os.PathLike) or (isinstance(obj, str) and not obj.lstrip().startswith("{")):
            source = source or os.fspath(obj)
            try:
                with open(obj, encoding="utf-8") as f:
                    obj = json.load(f)
            except OSError as e:
                raise ValueError(f"{source}: cannot read tag table: {e.strerror or e}") from None
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}: not valid JSON: {e}") from None
        elif isinstance(obj, (str, bytes)):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as e:
                raise ValueError(f"{source or '<tag table>'}: not valid JSON: {e}") from None
        where = source or "<tag table>"
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: a tag table must be a JSON object, got {type(obj).__name__}")
        if "tag_table" in obj and isinstance(obj["tag_table"], dict):
            return cls.from_json(obj["tag_table"], source=f"{where}[tag_table]")
        if "counts" in obj:
            try:
                return cls(
                    num_images=obj.get("num_images", 0),
                    counts={str(k): int(v) for k, v in obj["counts"].items()},
                    legacy_num_images=obj.get("legacy_num_images", 0),
                    legacy_counts={str(k): int(v) for k, v in obj.get("legacy_counts", {}).items()},
                    legacy_fractions=obj.get("legacy_fractions"),
                )
            except (AttributeError, TypeError, ValueError) as e:
                raise ValueError(f"{where}: malformed tag table ({e})") from None
        if obj and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj.values()):
            return cls(legacy_fractions={str(k): float(v) for k, v in obj.items()})
        raise ValueError(f"{where}: not a tag table (expected 'counts', 'tag_table', or a {{tag: fraction}} map)")

    def __repr__(self) -> str:
        return (f"TagTable(num_images={self.num_images}, tags={len(self.counts)}, "
                f"legacy_num_images={self.legacy_num_images}, legacy_tags={len(self.legacy_counts)})")


# ---------------------------------------------------------------------------------------------------------------
# renderers


class LegacyRenderer:
    """`items -> text | None` with the original repository's rules (see the module docstring)."""

    name = "legacy"

    def __init__(self, tag_table: TagTable | None = None, threshold: float = LEGACY_THRESHOLD):
        if tag_table is None:
            raise ValueError("renderer 'legacy' needs a tag table computed over the dataset "
                             "(TagTable.from_item_lists(...) or a dataset_info.json)")
        self.threshold = float(threshold)
        self.tags = frozenset(tag_table.legacy_tags(self.threshold))

    def __call__(self, items: Sequence[Item]) -> str | None:
        record = legacy_exif(items)
        if record is None:
            return None
        exif = record[0]
        return ", ".join(f"{key}: {value}" for key, value in exif.items() if key in self.tags)

    def spec(self) -> dict:
        return {"name": self.name, "threshold": self.threshold}


def clean_value(value: str, max_chars: int | None = 64) -> str:
    """A description as written: control characters -> spaces, whitespace runs collapsed, ends trimmed, capped."""
    value = " ".join(_CONTROL.sub(" ", value).split())
    if max_chars is not None and len(value) > max_chars:
        value = value[:max_chars].rstrip()
    return value


class CleanRenderer:
    """`items -> text | None`: `Tag: value` pairs, values as written, in a fixed tag order (see the module doc)."""

    name = "clean"

    def __init__(
        self,
        tag_table: TagTable | None = None,
        tags: Sequence[str] | str | None = None,
        threshold: float | None = None,
        makernotes: bool = False,
        min_tags: int = 1,
        max_value_chars: int | None = 64,
    ):
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        if tags is not None and threshold is not None:
            raise ValueError("renderer 'clean': give either tags or threshold, not both")
        if tags is not None:
            if not tags:
                raise ValueError("renderer 'clean': the tag list is empty")
            selected = list(dict.fromkeys(tags))
        elif threshold is not None:
            if tag_table is None:
                raise ValueError("renderer 'clean' with a threshold needs a tag table computed over the dataset")
            order = {t: i for i, t in enumerate(DEFAULT_CLEAN_TAGS)}
            selected = sorted(tag_table.tags_at_least(float(threshold)),
                              key=lambda t: (order.get(t, len(order)), -tag_table.fraction(t), t))
        else:
            selected = list(DEFAULT_CLEAN_TAGS)
        self.tags = tuple(selected)
        self.threshold = None if threshold is None else float(threshold)
        self.makernotes = bool(makernotes)
        self.min_tags = int(min_tags)
        self.max_value_chars = max_value_chars
        self._wanted = frozenset(self.tags)
        self._priority = {d: i for i, d in enumerate(STANDARD_DIRECTORIES)}

    def __call__(self, items: Sequence[Item]) -> str | None:
        best: dict[str, tuple[int, str]] = {}
        other = len(self._priority)
        for directory, tag, description in items:
            if tag not in self._wanted:
                continue
            prio = self._priority.get(directory)
            if prio is None:
                if not self.makernotes:
                    continue
                prio = other
            if tag in best and best[tag][0] <= prio:
                continue
            value = clean_value(description, self.max_value_chars)
            if value:
                best[tag] = (prio, value)
        if len(best) < self.min_tags:
            return None
        return ", ".join(f"{tag}: {best[tag][1]}" for tag in self.tags if tag in best)

    def spec(self) -> dict:
        return {"name": self.name, "tags": list(self.tags), "makernotes": self.makernotes,
                "min_tags": self.min_tags, "max_value_chars": self.max_value_chars}


RENDERERS = {"legacy": LegacyRenderer, "clean": CleanRenderer}


def get_renderer(name: str, tag_table: TagTable | None = None, **kw):
    """Returns the renderer `name` (`legacy` | `clean`) as a callable `items -> str | None`.

    `legacy` needs `tag_table` (optional `threshold`, default 0.49); `clean` takes `tags`, or `threshold` with a
    `tag_table`, plus `makernotes`, `min_tags`, `max_value_chars`. A renderer's `spec()` gives keyword arguments
    that rebuild it: `get_renderer(**spec, tag_table=table)`.
    """
    if name not in RENDERERS:
        raise ValueError(f"unknown renderer {name!r} (choose from {', '.join(RENDERERS)})")
    try:
        return RENDERERS[name](tag_table=tag_table, **kw)
    except TypeError as e:
        raise ValueError(f"renderer {name!r}: {e}") from None
