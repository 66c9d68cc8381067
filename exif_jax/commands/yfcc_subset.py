"""`exif-jax yfcc-subset`: a random subset of YFCC100M photos with rich EXIF, ready for img2dataset and ingest.

    exif-jax yfcc-subset --dataset yfcc100m_dataset.bz2 --exif yfcc100m_exif.bz2 --n 1500000 --seed 0 \\
        --out subset.parquet
    img2dataset --url_list subset.parquet --input_format parquet --url_col url \\
        --save_additional_columns '["photo_id"]' --output_format webdataset --output_folder shards \\
        --resize_mode no --skip_reencode True --extract_exif True --processes_count 16
    exif-jax ingest --images shards --yfcc-exif subset_exif.tsv --out data/yfcc --shards 1024

Keeps photos (marker 0, not videos) with a download URL whose EXIF line has more than `--min-items` (10) items,
and samples `--n` of them: the photos with the smallest sha1(seed, photo id), so the sample is uniform, fixed by
the seed, and found in one streaming pass per file with memory bounded by the sample size (files plain or
.gz/.bz2/.xz, never decompressed to disk). Writes `--out` (parquet: url, photo_id) and the sampled photos' EXIF
lines (`--exif-out`, default `<out>_exif.tsv`), which ingest pairs with the downloads by photo id.

YFCC100M `yfcc100m_dataset` lines are tab-separated: 25 fields (line number, photo id, hash, ..., download URL at
field 17, ..., marker 0 photo / 1 video last) or, in the 2014 release, 23 (no line number and hash). The EXIF file
is `photo_id<TAB>items` (see exif_jax/exif/yfcc.py).
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import os
import pathlib
import sys

from exif_jax.data.progress import Progress

LAYOUTS = {25: (1, 16, 24), 23: (0, 14, 22)}  # fields per line -> (photo id, download URL, marker)


class SubsetError(RuntimeError):
    pass


def _open(path: str):
    import bz2
    import gzip
    import lzma

    opener = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}.get(pathlib.Path(path).suffix, open)
    try:
        return opener(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    except OSError as e:
        raise SubsetError(f"{path}: {e.strerror or e}") from None


def _rank(seed: int, photo_id: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{photo_id}".encode()).digest()[:8], "big")


def _count_items(text: str) -> int:
    """EXIF items in a YFCC field without decoding them (an item is `dir.tag:value`, comma separated)."""
    return sum(1 for raw in text.split(",") if ":" in raw and "." in raw.split(":", 1)[0])


def subset(dataset: str, exif: str, n: int, seed: int, out: str, exif_out: str | None = None, min_items: int = 10,
           oversample: float = 1.25, progress: bool = True) -> dict:
    """Streams the two files (EXIF first: it decides eligibility) and writes the sample; returns counts."""
    if n < 1:
        raise SubsetError(f"--n {n}: must be positive")
    exif_out = exif_out or str(pathlib.Path(out).with_suffix("")) + "_exif.tsv"
    keep = max(n, int(n * oversample) + 16)  # a margin for EXIF lines whose photo is a video or has no URL
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    # pass 1: EXIF lines with enough items -> the `keep` smallest ranks (a bounded max-heap of (-rank, id))
    heap: list[tuple[int, str]] = []
    stats = {"exif_lines": 0, "exif_eligible": 0, "dataset_lines": 0, "photos": 0, "videos": 0, "bad_lines": 0}
    prog = Progress(None, "yfcc-subset exif", "lines", interval=10, enabled=progress)
    with _open(exif) as f:
        for line in f:
            stats["exif_lines"] += 1
            prog.update()
            pid, tab, text = line.rstrip("\r\n").partition("\t")
            if not tab or not pid.strip():
                stats["bad_lines"] += 1
                continue
            if _count_items(text) <= min_items:
                continue
            stats["exif_eligible"] += 1
            item = (-_rank(seed, pid.strip()), pid.strip())
            if len(heap) < keep:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    candidates = {pid: -neg for neg, pid in heap}
    del heap
    # pass 2: which candidates are photos with a URL
    urls: dict[str, str] = {}
    prog = Progress(None, "yfcc-subset dataset", "lines", interval=10, enabled=progress)
    with _open(dataset) as f:
        for line in f:
            stats["dataset_lines"] += 1
            prog.update()
            fields = line.rstrip("\r\n").split("\t")
            layout = LAYOUTS.get(len(fields))
            if layout is None:
                stats["bad_lines"] += 1
                continue
            i_id, i_url, i_marker = layout
            is_video = fields[i_marker].strip() == "1"
            stats["videos" if is_video else "photos"] += 1
            pid = fields[i_id].strip()
            if not is_video and pid in candidates and fields[i_url].strip():
                urls[pid] = fields[i_url].strip()
    chosen = sorted(urls, key=lambda pid: candidates[pid])[:n]
    if len(chosen) < n:
        short = (f"only {len(chosen)} photos qualify (of {stats['exif_eligible']} EXIF lines with more than "
                 f"{min_items} items)")
        if stats["exif_eligible"] > len(candidates):
            short += f"; rerun with --oversample {oversample * 2:g}"
        log(f"[yfcc-subset] warning: {short}")
    chosen_set = set(chosen)
    # pass 3: the chosen photos' EXIF lines, streamed to the output in file order (never held in memory)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = f"{exif_out}.tmp-{os.getpid()}"
    written = set()
    with _open(exif) as f, open(tmp, "w", encoding="utf-8") as dst:
        for line in f:
            pid = line.split("\t", 1)[0].strip()
            if pid in chosen_set and pid not in written:
                written.add(pid)
                dst.write(line.rstrip("\r\n") + "\n")
    os.replace(tmp, exif_out)
    tmp = f"{out}.tmp-{os.getpid()}"
    pq.write_table(pa.table({"url": [urls[p] for p in chosen], "photo_id": chosen}), tmp)
    os.replace(tmp, out)
    return {**stats, "sampled": len(chosen), "out": out, "exif_out": exif_out}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exif-jax yfcc-subset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="yfcc100m_dataset (plain, .gz, .bz2 or .xz)")
    p.add_argument("--exif", required=True, help="yfcc100m_exif: photo_id<TAB>items (plain, .gz, .bz2 or .xz)")
    p.add_argument("--n", type=int, required=True, help="photos to sample (the paper: 1500000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="parquet URL list for img2dataset (columns url, photo_id)")
    p.add_argument("--exif-out", help="EXIF lines of the sample (default: <out>_exif.tsv)")
    p.add_argument("--min-items", type=int, default=10, help="keep photos with more than this many EXIF items")
    p.add_argument("--oversample", type=float, default=1.25,
                   help="EXIF candidates kept per wanted photo before the video/URL check (memory ~ n x this)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for flag, path in (("--dataset", args.dataset), ("--exif", args.exif)):
        if not os.path.isfile(path):
            print(f"exif-jax yfcc-subset: error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    if args.n < 1 or args.oversample < 1:
        print("exif-jax yfcc-subset: error: --n must be positive and --oversample at least 1", file=sys.stderr)
        return 2
    try:
        r = subset(args.dataset, args.exif, args.n, args.seed, args.out, args.exif_out, args.min_items,
                   args.oversample, progress=not args.quiet)
    except (SubsetError, OSError) as e:
        print(f"exif-jax yfcc-subset: error: {e}", file=sys.stderr)
        return 1
    print(f"{r['out']}: {r['sampled']} photos sampled (seed {args.seed}) from {r['exif_eligible']} with more than "
          f"{args.min_items} EXIF items among {r['exif_lines']} EXIF lines and {r['photos']} photos / "
          f"{r['videos']} videos; their EXIF lines are in {r['exif_out']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
