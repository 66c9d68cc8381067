"""Token length distribution of rendered EXIF texts, and what bucketed padding saves.

  python bench/token_lengths.py [--data ../shared/data] [--batch 64] [--out bench/results/token_lengths.json]

Sources: the shared camera JPEGs (read with `exif_jax.exif.reader.read_exif_file`) and the YFCC-style EXIF lines.
For each source and renderer (`legacy` with the tag table computed over that source, `clean` with its default tags)
it reports, over the texts the renderer keeps: token lengths with [CLS]/[SEP] (min / median / p95 / max / mean),
the histogram of the shortest bucket each text fits, how many texts each bucket length would truncate, and the
padded tokens of batches of `--batch` texts padded to their bucket versus padded to 512 (baseline ratio).
It also times `ExifTokenizer.encode` against the pure-Python reference WordPiece tokenizer of transformers on the
same texts, and `parse_yfcc_line` against a plain per-part `unquote_plus` parser (baselines measured in the same run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exif_jax.exif.render import TagTable, get_renderer  # noqa: E402
from exif_jax.exif.yfcc import iter_yfcc_file  # noqa: E402
from exif_jax.text.tokenizer import DEFAULT_BUCKETS, DEFAULT_VOCAB, ExifTokenizer, bucket_for  # noqa: E402

PHOTO_DIRS = ("photos_dev/metadata_extractor/images", "photos_dev/digicam_cc0", "photos_dev/exif_samples_small/images")


def _photo_items(data: Path) -> tuple[list[list], list[str]]:
    from exif_jax.exif.reader import read_exif_file

    lists, errors = [], []
    for sub in PHOTO_DIRS:
        folder = data / sub
        if not folder.is_dir():
            print(f"warning: {folder} missing, skipped", file=sys.stderr)
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")):
            try:
                lists.append(read_exif_file(path))
            except (ValueError, OSError) as e:
                errors.append(f"{path.name}: {e}")
    return lists, errors


def _stats(tok: ExifTokenizer, texts: list[str], batch: int) -> dict:
    lengths = tok.token_lengths(texts)
    buckets = tok.buckets
    hist = {str(b): 0 for b in buckets}
    for n in lengths:
        hist[str(bucket_for(int(n), buckets))] += 1
    bucketed = baseline = truncated_batches = 0
    for start in range(0, len(texts), batch):
        chunk = lengths[start:start + batch]
        bucketed += bucket_for(int(chunk.max()), buckets) * len(chunk)
        baseline += buckets[-1] * len(chunk)
    return {
        "num_texts": len(texts),
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
        "mean": round(float(lengths.mean()), 2),
        "bucket_histogram": hist,
        "truncated_at_bucket": {str(b): int((lengths > b).sum()) for b in buckets},
        "padded_tokens_bucketed": int(bucketed),
        "padded_tokens_pad_to_512": int(baseline),
        "pad_to_512_over_bucketed": round(baseline / bucketed, 2),
        "real_token_fraction_bucketed": round(float(lengths.clip(max=buckets[-1]).sum()) / bucketed, 3),
    }


def _throughput(tok: ExifTokenizer, texts: list[str], batch: int, repeats: int = 3) -> dict:
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    ref = BertTokenizerLegacy(vocab_file=str(DEFAULT_VOCAB), do_lower_case=True)

    def run_ours():
        for s in range(0, len(texts), batch):
            tok.encode(texts[s:s + batch])

    def run_ref():
        for s in range(0, len(texts), batch):
            chunk = texts[s:s + batch]
            longest = max(len(ref(t)["input_ids"]) for t in chunk)  # the same bucket rule, on the reference
            ref(chunk, padding="max_length", truncation=True, max_length=bucket_for(longest), return_tensors="np")

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    ours, base = best(run_ours), best(run_ref)
    return {"texts": len(texts), "exif_tokenizer_texts_per_s": round(len(texts) / ours, 1),
            "reference_python_wordpiece_texts_per_s": round(len(texts) / base, 1),
            "speedup_over_reference": round(base / ours, 1)}


def _parse_throughput(path: Path, repeats: int = 3) -> dict:
    """parse_yfcc_line vs a plain per-part `unquote_plus` parser (the baseline), on the same lines."""
    from urllib.parse import unquote_plus

    from exif_jax.exif.yfcc import parse_yfcc_line

    lines = path.read_text(encoding="utf-8").splitlines() * 10

    def baseline(line):
        pid, _, text = line.partition("\t")
        out = []
        for raw in text.split(","):
            key, sep, value = raw.partition(":")
            d, dot, t = key.partition(".")
            if sep and dot:
                out.append((unquote_plus(d), unquote_plus(t), unquote_plus(value)))
        return pid, out

    assert all(baseline(x) == parse_yfcc_line(x) for x in lines[:200])

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for x in lines:
                fn(x)
            times.append(time.perf_counter() - t)
        return min(times)

    ours, base = best(parse_yfcc_line), best(baseline)
    return {"lines": len(lines), "parse_yfcc_line_lines_per_s": round(len(lines) / ours),
            "baseline_unquote_plus_lines_per_s": round(len(lines) / base), "speedup_over_baseline": round(base / ours, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    p.add_argument("--batch", type=int, default=64, help="batch size for the padding comparison")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "token_lengths.json"))
    args = p.parse_args(argv)
    data = Path(args.data)
    tok = ExifTokenizer()

    sources = {}
    t = time.perf_counter()
    photo_lists, photo_errors = _photo_items(data)
    sources["shared_photos"] = photo_lists
    print(f"read {len(photo_lists)} photos ({len(photo_errors)} errors) in {time.perf_counter() - t:.1f}s")
    sources["yfcc_style_lines"] = [items for _, items in iter_yfcc_file(data / "yfcc_style" / "exif_lines_dev.tsv")]

    result = {"buckets": list(DEFAULT_BUCKETS), "batch": args.batch, "host": platform.node(),
              "python": platform.python_version(), "photo_read_errors": photo_errors, "sources": {}}
    all_texts = []
    header = f"{'source':<18} {'renderer':<8} {'n':>4} {'min':>4} {'med':>6} {'p95':>6} {'max':>4}  trunc@32/64/128  512/bucketed"
    print(header)
    for source, lists in sources.items():
        table = TagTable.from_item_lists(lists)
        result["sources"][source] = {"num_item_lists": len(lists)}
        for name in ("legacy", "clean"):
            render = get_renderer(name, tag_table=table)
            texts = [x for x in (render(items) for items in lists) if x]
            st = _stats(tok, texts, args.batch)
            st["dropped_by_renderer"] = len(lists) - len(texts)
            result["sources"][source][name] = st
            all_texts += texts
            tr = st["truncated_at_bucket"]
            print(f"{source:<18} {name:<8} {st['num_texts']:>4} {st['min']:>4} {st['median']:>6.1f} {st['p95']:>6.1f} "
                  f"{st['max']:>4}  {tr['32']:>3}/{tr['64']:>3}/{tr['128']:>3}      {st['pad_to_512_over_bucketed']:>5.2f}x")
    result["throughput"] = _throughput(tok, all_texts, args.batch)
    th = result["throughput"]
    print(f"tokenize {th['texts']} texts: ExifTokenizer {th['exif_tokenizer_texts_per_s']:.0f}/s, reference "
          f"{th['reference_python_wordpiece_texts_per_s']:.0f}/s ({th['speedup_over_reference']}x)")
    result["yfcc_parse"] = pp = _parse_throughput(data / "yfcc_style" / "exif_lines_dev.tsv")
    print(f"parse {pp['lines']} YFCC lines: {pp['parse_yfcc_line_lines_per_s']}/s, per-part unquote_plus baseline "
          f"{pp['baseline_unquote_plus_lines_per_s']}/s ({pp['speedup_over_baseline']}x)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
