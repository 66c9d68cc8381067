"""`exif-jax ingest`: photos (+ optional YFCC EXIF lines) -> sharded TFRecord / ArrayRecord for training.

Examples:
  exif-jax ingest --images ~/photos --out data/photos --shards 64 --workers 8
  exif-jax ingest --images yfcc/images --yfcc-exif yfcc/exif.tsv --photo-ids yfcc/photo_ids.tsv --out data/yfcc
  exif-jax ingest --images ~/photos --out data/photos_ar --format array_record
  exif-jax ingest --images shards/ --yfcc-exif subset_exif.tsv --out data/yfcc   # img2dataset webdataset tars
  exif-jax ingest --images ~/photos --out data/photos --runner beam --beam-options "--runner=DataflowRunner ..."

Defaults are the paper's recipe for large sets (legacy texts, 5% held out). For a small folder (a few hundred
photos) use `--renderer clean --eval-fraction 0.25` as the smoke config does: legacy keeps only tags present in
at least 49% of photos, and 5% of a small folder is too few held-out photos (ingest warns below 32).
Rerunning the same command is a no-op; with other options it says what changed and rebuilds what they affect.
"""
from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exif-jax ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder of JPEGs (walked recursively)")
    p.add_argument("--yfcc-exif", help="YFCC100M-style EXIF lines (photo_id<TAB>items); EXIF comes from here")
    p.add_argument("--photo-ids", help="photo_id<TAB>file_name map (file names relative to --images)")
    p.add_argument("--out", required=True, help="output folder (rerunning into it resumes / is a no-op)")
    p.add_argument("--shards", type=int, default=16, help="train shards (default 16; >= training processes)")
    p.add_argument("--eval-shards", type=int, default=None, help="eval shards (default: proportional, >= 1)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes for reading/validating/writing (default: all cores; 0 = in-process)")
    p.add_argument("--eval-fraction", type=float, default=0.05, help="held-out fraction, by hash of photo id")
    p.add_argument("--renderer", choices=("legacy", "clean"), default="legacy", help="EXIF text renderer")
    p.add_argument("--crop", type=int, default=124, help="reject images whose short side is below this (px)")
    p.add_argument("--min-tags", type=int, default=10, help="reject images with fewer EXIF items")
    p.add_argument("--format", choices=("tfrecord", "array_record"), default="tfrecord")
    p.add_argument("--tag-table", help="render with this tag table (a dataset_info.json or tag table JSON) "
                   "instead of computing it over the accepted photos")
    p.add_argument("--runner", choices=("local", "beam"), default="local",
                   help="local: a process pool on this machine (default); beam: Apache Beam (extra [beam])")
    p.add_argument("--beam-options", default="", help="Beam pipeline options, e.g. \"--runner=DataflowRunner "
                   "--project=P --region=R --temp_location=gs://B/tmp\" (default: Beam's local FnApiRunner, "
                   "--workers processes)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from exif_jax.data.ingest import IngestConfig, IngestError, run, summary_sentence

    cfg = IngestConfig(images=args.images, out=args.out, yfcc_exif=args.yfcc_exif, photo_ids=args.photo_ids,
                       shards=args.shards, eval_shards=args.eval_shards, workers=args.workers,
                       eval_fraction=args.eval_fraction, renderer=args.renderer, crop=args.crop,
                       min_tags=args.min_tags, format=args.format, progress=not args.quiet,
                       tag_table=args.tag_table, runner=args.runner, beam_options=args.beam_options)
    try:
        info = run(cfg)
    except (IngestError, OSError, ValueError) as e:
        print(f"exif-jax ingest: error: {e}", file=sys.stderr)
        return 1
    print(summary_sentence(info, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
