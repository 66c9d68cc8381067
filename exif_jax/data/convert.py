"""Convert an ingest output directory from TFRecord to ArrayRecord (random access -> exact global shuffle).

    python -m exif_jax.data.convert IN_DIR OUT_DIR

Every TFRecord record is CRC-checked; corrupt records are counted, reported and not copied. Shard names, counts and
`dataset_info.json` carry over (with `format: array_record` and the records actually written).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import sys

from exif_jax.data import records, tfrecord
from exif_jax.data.progress import Progress


def convert(src: str | os.PathLike, dst: str | os.PathLike, progress: bool = True) -> dict:
    from array_record.python.array_record_module import ArrayRecordWriter

    src, dst = pathlib.Path(src), pathlib.Path(dst)
    files = sorted(glob.glob(str(src / "*-*-of-*.tfrecord")))
    if not files:
        raise FileNotFoundError(f"no files match {src / '*-*-of-*.tfrecord'}")
    dst.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    corrupt = []
    prog = Progress(len(files), "convert", "shards", enabled=progress)
    for f in files:
        name = os.path.basename(f)[: -len(".tfrecord")] + ".array_record"
        tmp = dst / (name + f".tmp-{os.getpid()}")
        writer = ArrayRecordWriter(str(tmp), "group_size:1")
        n = 0
        for rec in tfrecord.read_records(f):
            if isinstance(rec, tfrecord.CorruptRecord):
                corrupt.append(str(rec))
                print(f"convert: {rec}", file=sys.stderr)
                continue
            if n == 0:
                records.parse_record(rec, where=f)  # schema check once per shard
            writer.write(rec)
            n += 1
        writer.close()
        os.replace(tmp, dst / name)
        written[name] = n
        prog.update()
    info_path = src / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info["format"] = "array_record"
    for split, s in info.get("splits", {}).items():
        s["shards"] = [n for n in sorted(written) if n.startswith(f"{split}-")]
        s["records_per_shard"] = [written[n] for n in s["shards"]]
        s["records"] = sum(s["records_per_shard"])
    info["converted_from"] = str(src)
    info["corrupt_records_skipped"] = len(corrupt)
    (dst / "dataset_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    if (src / "rejects.tsv").exists():
        (dst / "rejects.tsv").write_bytes((src / "rejects.tsv").read_bytes())
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m exif_jax.data.convert", description=__doc__.split("\n")[0])
    p.add_argument("src", help="ingest output directory with *.tfrecord shards")
    p.add_argument("dst", help="output directory for *.array_record shards")
    args = p.parse_args(argv)
    try:
        info = convert(args.src, args.dst)
    except (OSError, ValueError) as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.dst}: " + ", ".join(f"{k} {v['records']}" for k, v in info.get("splits", {}).items())
          + f" records; {info['corrupt_records_skipped']} corrupt skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
