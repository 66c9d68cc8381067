"""Check an ingest output directory: CRC of every TFRecord record (or riegeli hashes of ArrayRecord), the schema
of each record, and the counts against dataset_info.json. Use after copying a dataset to a cluster or bucket.

    python -m exif_jax.data.verify DIR

Prints one line per problem and a summary; exit code 0 when everything matches, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from exif_jax.data import records, tfrecord
from exif_jax.data.progress import Progress


def verify(path: str | os.PathLike, progress: bool = True) -> tuple[dict, list[str]]:
    """({split: records read}, problems)."""
    path = pathlib.Path(path)
    problems: list[str] = []
    info_path = path / "dataset_info.json"
    if not info_path.is_file():
        return {}, [f"{info_path}: missing"]
    info = json.loads(info_path.read_text(encoding="utf-8"))
    fmt = info.get("format", "tfrecord")
    counts: dict[str, int] = {}
    shards = [(split, name, n) for split, s in info.get("splits", {}).items()
              for name, n in zip(s.get("shards", []), s.get("records_per_shard", []))]
    prog = Progress(len(shards), "verify", "shards", enabled=progress)
    for split, name, expected in shards:
        f = path / name
        if not f.is_file():
            problems.append(f"{f}: missing shard")
            prog.update()
            continue
        good = 0
        if fmt == "array_record":
            import grain

            try:
                src = grain.sources.ArrayRecordDataSource([str(f)])
                recs = []
                for i in range(len(src)):
                    try:
                        recs.append(src[i])
                    except RuntimeError as e:
                        problems.append(f"{f}: record {i}: {str(e).splitlines()[0][:160]}")
            except RuntimeError as e:
                problems.append(f"{f}: unreadable: {str(e).splitlines()[0][:160]}")
                recs = []
        else:
            recs = []
            for rec in tfrecord.read_records(f):
                if isinstance(rec, tfrecord.CorruptRecord):
                    problems.append(str(rec))
                else:
                    recs.append(rec)
        for i, rec in enumerate(recs):
            try:
                records.parse_record(rec, where=f"{f} record {i}")
                good += 1
            except records.SchemaError as e:
                problems.append(str(e))
        if good != expected:
            problems.append(f"{f}: {good} good records, dataset_info.json says {expected}")
        counts[split] = counts.get(split, 0) + good
        prog.update()
    prog.close()
    return counts, problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m exif_jax.data.verify", description=__doc__.split("\n")[0])
    p.add_argument("path", help="ingest output directory")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    counts, problems = verify(args.path, progress=not args.quiet)
    for line in problems:
        print(line)
    print(f"{args.path}: " + ", ".join(f"{k} {v} records" for k, v in counts.items())
          + (f"; {len(problems)} problem(s)" if problems else "; all records verified"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
