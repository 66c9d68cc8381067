"""`exif-jax ingest --runner beam`: the ingest as an Apache Beam pipeline (local FnApiRunner, Dataflow, Flink,
Spark).

The per-photo work is the local runner's own functions: `ingest._scan_one` (read, hash, full decode, EXIF) and
`ingest._write_shard` (re-read, render, write, fsync, rename). Around them Beam does what the driver does locally:

    Create(roots / byte ranges) -> Reshuffle -> FlatMap(list) [-> CoGroupByKey(photo id) with YFCC lines]
      -> Reshuffle -> scan
      -> GroupByKey(sha256): the first input in listing order wins, the others are `duplicate` rejects
      -> filter (too_few_tags, too_small)                    -> tag table: CombineGlobally(TagTableCombineFn)
      -> render with the table as a side input (renderer_dropped rejects; token length per photo)
      -> split by sha1(photo id); shard = sha1(photo id) mod shards_of_split (counts as a side input)
      -> GroupByKey(split, shard) -> write each shard (records sorted by sha1(photo id))
      -> rejects, per-shard results and histograms written as JSON lines under OUT/.ingest/beam/

The driver then names the shards `split-XXXXX-of-YYYYY` and writes `dataset_info.json` and `rejects.tsv` with the
local runner's code, so both runners give the same records (as a set), rejects, counts and tag table. Shard
assignment is deterministic (a hash, not arrival order); which photo lands in which shard differs from the local
runner, which deals photos round-robin in hash order.

The inputs are listed inside the pipeline (`ingest_inputs`: folder levels, one tar's headers, one byte range of
the YFCC / --photo-ids files per element), so the launching machine never holds the per-photo list; it only writes
rejects.tsv and the small per-shard results at the end. Workers must see `--images` and `--out` at the same paths
(a shared filesystem such as a GCS FUSE mount or NFS on Dataflow/Flink/Spark). Without `--beam-options` the
pipeline runs on the local FnApiRunner with `--workers` processes.
"""
from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import pathlib
import shlex
import shutil
import sys

from exif_jax.data import ingest, ingest_inputs

_HIST_FIELDS = ("tokens", "width", "height", "short_side")


def _import_beam():
    try:
        import apache_beam as beam
    except ImportError:
        raise ingest.IngestError("--runner beam needs Apache Beam: pip install 'exif-jax[beam]' "
                                 "(see README, Prepare data)") from None
    return beam


def pipeline_options(cfg: ingest.IngestConfig):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = shlex.split(cfg.beam_options or "")
    if not any(a.startswith("--runner") for a in args):
        # The DirectRunner's local engine, named directly: Beam 2.77's "DirectRunner" first tries the Prism runner,
        # which downloads a binary from GitHub (no network at run time; ~0.6 s lost before it falls back to this).
        args = ["--runner=FnApiRunner", f"--direct_num_workers={max(cfg.workers, 1)}",
                "--direct_running_mode=" + ("multi_processing" if cfg.workers > 1 else "in_memory"), *args]
    return PipelineOptions(args)


def _photo_of(r: dict) -> ingest._Photo:
    p = ingest._Photo(r["path"], r["source"], r["photo_id"], r["line_offset"], member_offset=r["member_offset"],
                      member_size=r["member_size"])
    ingest._apply(p, r)
    return p


def _scan(task_and_photo):
    """The local runner's per-photo function, plus the photo's identity (and its items, for the tag table)."""
    task, photo = task_and_photo
    r = ingest._scan_one(task)
    if r.get("reason") is None and r.get("items") is None:  # YFCC: items come from the line
        r["items"] = ingest._read_line_items(task[3], task[4])
    return {**photo, **r}


def _dedup(kv):
    _, group = kv
    group = sorted(group, key=lambda r: r["order"])
    first = group[0]
    yield first
    for r in group[1:]:
        yield {**r, "reason": f"duplicate: same bytes as {first['source']}"}


def _combine_fn(beam):
    from exif_jax.exif.render import TagTable

    class _TagTableCombine(beam.CombineFn):
        """The tag frequency table over every accepted photo (TagTable.merge is a sum, so any grouping works)."""

        def create_accumulator(self):
            return TagTable()

        def add_input(self, table, items):
            table.update([tuple(it) for it in items])
            return table

        def merge_accumulators(self, tables):
            out = TagTable()
            for t in tables:
                out = out.merge(t)
            return out

        def extract_output(self, table):
            return ingest.canonical_tag_table(table).to_json()

    return _TagTableCombine()


def _render_fn(beam, cfg: ingest.IngestConfig):
    class _Render(beam.DoFn):
        """Renders each text with the dataset's tag table; drops become rejects; counts tokens."""

        def setup(self):
            from exif_jax.text.tokenizer import ExifTokenizer

            self.tokenizer = ExifTokenizer()
            self.render, self.table = None, None

        def process(self, r, tag_json):
            from exif_jax.exif.render import TagTable, get_renderer

            if self.table is not tag_json:
                self.render, self.table = get_renderer(cfg.renderer, TagTable.from_json(tag_json)), tag_json
            text = self.render([tuple(it) for it in r["items"]])
            if text is None:
                yield beam.pvalue.TaggedOutput("rejects", (r["source"], f"renderer_dropped: the {cfg.renderer} "
                                                                          f"renderer drops it ({r['n_items']} items)"))
                return
            r = {k: v for k, v in r.items() if k != "items"}
            r["tokens"] = int(self.tokenizer.token_lengths([text])[0])
            r["split"] = ingest.split_of(r["photo_id"], cfg.eval_fraction)
            yield r

    return _Render()


def _bucket(photo_id: str, n: int) -> int:
    return int(hashlib.sha1(photo_id.encode("utf-8")).hexdigest(), 16) % n


def _write_fn(beam, cfg: ingest.IngestConfig, tmp_dir: str, spec: dict, yfcc: str | None):
    class _Write(beam.DoFn):
        """Writes one shard with the local runner's `_write_shard` (temporary name, fsync, rename)."""

        def process(self, kv, tag_json):
            (split, bucket), rs = kv
            ingest._init_writer({"renderer_spec": spec, "tag_table": tag_json, "yfcc": yfcc})
            photos = [_photo_of(r) for r in sorted(rs, key=lambda r: hashlib.sha1(r["photo_id"].encode()).hexdigest())]
            ext = ingest.FORMAT_EXT[cfg.format]
            res = ingest._write_shard((os.path.join(tmp_dir, f"{split}-b{bucket:05d}.{ext}"), cfg.format, photos))
            yield {"split": split, "bucket": bucket, **res}

    return _Write()


def _hists(r):
    """Per-photo histogram contributions, keyed ("all" | split, field)."""
    vals = {"tokens": r["tokens"], "width": r["width"], "height": r["height"],
            "short_side": min(r["width"], r["height"])}
    for scope in ("all", r["split"]):
        for f, v in vals.items():
            yield (scope, f, v), 1
    yield ("bytes", r["split"], 0), r["member_size"] if r["member_offset"] >= 0 else os.path.getsize(r["path"])


_LISTING_TAGS = ("photo", "reject", "dir", "id", "matched", "error")


def _route(beam, items):
    """("photo" | "reject" | "dir" | "id" | "matched" | "error", value) items from `ingest_inputs` -> tagged outputs."""
    listed = beam.metrics.Metrics.counter("exif_jax.ingest", "inputs_listed")
    for tag, value in items:
        if tag == "photo":
            listed.inc()
        yield beam.pvalue.TaggedOutput(tag, value)


def list_inputs(beam, pl, plan: ingest_inputs.Plan):
    """The inputs, listed on the workers: (photo rows, listing rejects, ("listed" | "matched", 1) stats, errors).

    The launcher only creates the roots and byte ranges of `plan`; every directory, tar and line range becomes
    one element expanded by a FlatMap after a Reshuffle, so the listing spreads over the workers."""
    images, out = plan.images, plan.out

    def expand(pcoll, name, fn):
        return pcoll | name >> beam.FlatMap(lambda x: _route(beam, fn(x))).with_outputs(*_LISTING_TAGS)

    photos, rejects, stats, errors = [], [], [], []
    if plan.webdataset:
        root = pl | "input root" >> beam.Create([images])
        tars = expand(root | "find tars" >> beam.FlatMap(ingest_inputs.find_tars) | "spread tars" >> beam.Reshuffle(),
                      "list tar", lambda rel: ingest_inputs.list_tar(images, rel))
        photos.append(tars.photo)
        rejects += [tars.reject, root | "find parquets" >> beam.FlatMap(ingest_inputs.find_parquets)
                    | "spread parquets" >> beam.Reshuffle()
                    | "failed downloads" >> beam.FlatMap(lambda rel: ingest_inputs.failed_downloads(images, rel))]
    elif plan.yfcc_path is None:
        level = expand(pl | "input root" >> beam.Create([""]), "list folder 0",
                       lambda rel: ingest_inputs.expand_dir(images, out, rel))
        photos.append(level.photo)
        rejects.append(level.reject)
        for i in range(1, ingest_inputs.EXPAND_LEVELS):
            level = expand(level.dir | f"spread folders {i}" >> beam.Reshuffle(), f"list folder {i}",
                           lambda rel: ingest_inputs.expand_dir(images, out, rel))
            photos.append(level.photo)
            rejects.append(level.reject)
        walked = expand(level.dir | "spread subtrees" >> beam.Reshuffle(), "walk subtree",
                        lambda rel: ingest_inputs.walk_dir(images, out, rel))
        photos.append(walked.photo)
        rejects.append(walked.reject)
    if plan.yfcc_path is not None:
        lines = (pl | "YFCC ranges" >> beam.Create(plan.yfcc_ranges) | "spread YFCC" >> beam.Reshuffle()
                 | "YFCC ids" >> beam.FlatMap(lambda r: ingest_inputs.yfcc_ids(plan.yfcc_path, *r)))
        if plan.webdataset:
            by_id = {"line": lines, "photo": photos.pop() | "by photo id" >> beam.Map(lambda r: (r["photo_id"], r))}
        else:
            ids = expand(pl | "photo-ids ranges" >> beam.Create(plan.photo_id_ranges)
                         | "spread photo-ids" >> beam.Reshuffle(), "photo-ids lines",
                         lambda r: ingest_inputs.photo_id_lines(plan.photo_ids, *r))
            errors.append(ids.error)
            by_id = {"line": lines, "name": ids.id}
        joined = expand(by_id | "join by photo id" >> beam.CoGroupByKey(), "pair with YFCC line",
                        lambda kv: ingest_inputs.join_yfcc(images, plan.webdataset, kv))
        photos.append(joined.photo)
        rejects.append(joined.reject)
        stats.append(joined.matched | "matched" >> beam.Map(lambda _: ("matched", 1)))
    photos = photos[0] if len(photos) == 1 else tuple(photos) | "all inputs" >> beam.Flatten()
    rejects = tuple(rejects) | "listing rejects" >> beam.Flatten()
    stats += [photos | "listed" >> beam.Map(lambda _: ("listed", 1)),
              rejects | "rejected at listing" >> beam.Map(lambda _: ("listing_rejects", 1))]
    stats = tuple(stats) | "all stats" >> beam.Flatten() | "sum stats" >> beam.CombinePerKey(sum)
    errors = (tuple(errors) | "all errors" >> beam.Flatten()) if errors else pl | "no errors" >> beam.Create([])
    return photos, rejects, stats, errors


def _scan_row(row, yfcc):
    p = ingest._Photo(row["path"], row["source"], row["photo_id"], row["line_offset"],
                      member_offset=row["member_offset"], member_size=row["member_size"])
    return _scan((ingest.scan_task(0, p, yfcc), row))


def run(cfg: ingest.IngestConfig) -> dict:
    beam = _import_beam()
    from exif_jax.exif.render import TagTable, get_renderer

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if cfg.progress else (lambda *a: None)
    out = pathlib.Path(cfg.out)
    state = out / ingest.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    plan = ingest_inputs.plan(cfg, state, log)
    changes = ingest.options_changes(state, cfg)
    work = state / "beam"
    shutil.rmtree(work, ignore_errors=True)  # a Beam run recomputes everything (no partial resume)
    (work / "shards").mkdir(parents=True)
    yfcc = plan.yfcc_path
    fixed_table = ingest.load_tag_table(cfg.tag_table).to_json() if cfg.tag_table else None
    spec_probe = get_renderer(cfg.renderer, TagTable())
    log(f"[ingest] {plan.source} input {plan.images}: listed and ingested by Beam "
        f"({cfg.beam_options or f'local FnApiRunner, {max(cfg.workers, 1)} workers'})")

    def tagged(pcoll, kind):
        return pcoll | f"tag {kind}" >> beam.Map(lambda x: [kind, x])

    with beam.Pipeline(options=pipeline_options(cfg)) as pl:
        listed, listing_rejects, stats, errors = list_inputs(beam, pl, plan)
        scanned = (listed | "spread" >> beam.Reshuffle() | "scan" >> beam.Map(_scan_row, yfcc))
        bad = scanned | "scan rejects" >> beam.Filter(lambda r: r.get("reason") is not None)
        unique = (scanned | "scanned ok" >> beam.Filter(lambda r: r.get("reason") is None)
                  | "by hash" >> beam.Map(lambda r: (r["sha256"], r)) | "group hash" >> beam.GroupByKey()
                  | "dedup" >> beam.FlatMap(_dedup))
        checked = unique | "filter" >> beam.Map(
            lambda r: r if r.get("reason") else {**r, "reason": ingest.filter_reason(_photo_of(r), cfg.min_tags,
                                                                                     cfg.crop)})
        accepted = checked | "accepted" >> beam.Filter(lambda r: r["reason"] is None)
        rejected = ((bad, checked | "filtered out" >> beam.Filter(lambda r: r["reason"] is not None))
                    | "all scan rejects" >> beam.Flatten() | "reject rows" >> beam.Map(lambda r: (r["source"], r["reason"])))
        if fixed_table is None:
            table = (accepted | "items" >> beam.Map(lambda r: r["items"])
                     | "tag table" >> beam.CombineGlobally(_combine_fn(beam)))
        else:
            table = pl | "given tag table" >> beam.Create([fixed_table])
        table_side = beam.pvalue.AsSingleton(table)
        rendered = accepted | "render" >> beam.ParDo(_render_fn(beam, cfg), table_side).with_outputs(
            "rejects", main="kept")
        kept = rendered.kept
        split_counts = (kept | "split of" >> beam.Map(lambda r: r["split"]) | "count splits" >> beam.combiners.Count.PerElement()
                        | "counts dict" >> beam.combiners.ToDict())

        def assign(r, counts):
            n = ingest.shard_counts(counts.get("train", 0), counts.get("eval", 0), cfg)[r["split"]]
            return (r["split"], _bucket(r["photo_id"], n)), r

        shards = (kept | "assign shard" >> beam.Map(assign, beam.pvalue.AsSingleton(split_counts))
                  | "group shard" >> beam.GroupByKey()
                  | "write shard" >> beam.ParDo(_write_fn(beam, cfg, str(work / "shards"), spec_probe.spec()
                                                          if hasattr(spec_probe, "spec") else {"name": cfg.renderer},
                                                          yfcc), table_side))
        hists = kept | "hist" >> beam.FlatMap(_hists) | "sum hists" >> beam.CombinePerKey(sum)
        # one file sink for every small result (each WriteToText adds stages and a finalize step to the job)
        all_rejects = (listing_rejects, rejected, rendered.rejects) | "rejects" >> beam.Flatten()
        results = (tagged(all_rejects, "rejects"), tagged(stats, "stats"), tagged(errors, "errors"),
                   tagged(shards, "shards"), tagged(hists, "hists"), tagged(table, "tag_table"))
        (results | "results" >> beam.Flatten() | "json" >> beam.Map(lambda x: json.dumps(x, ensure_ascii=False))
         | "write results" >> beam.io.WriteToText(str(work / "results"), file_name_suffix=".jsonl"))
    return _finish(cfg, plan, state, changes, work, log)


def _read_results(work: pathlib.Path) -> dict[str, list]:
    """The pipeline's [kind, value] result lines, by kind."""
    rows = collections.defaultdict(list)
    for f in sorted(glob.glob(str(work / "results*.jsonl"))):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    kind, value = json.loads(line)
                    rows[kind].append(value)
    return rows


def _finish(cfg, plan: ingest_inputs.Plan, state: pathlib.Path, changes, work: pathlib.Path, log) -> dict:
    """Driver side: name the shards, write rejects.tsv and dataset_info.json with the local runner's code."""
    from exif_jax.exif.render import TagTable, get_renderer

    out = pathlib.Path(cfg.out)
    found = _read_results(work)
    errors = sorted(found["errors"])
    if errors:
        raise ingest.IngestError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    stats = dict(tuple(kv) for kv in found["stats"])
    listed, matched = stats.get("listed", 0), stats.get("matched", 0)
    log(f"[ingest] the pipeline listed {listed} inputs on its workers")
    if plan.yfcc_path is not None and not matched:
        raise ingest.IngestError(f"--yfcc-exif {cfg.yfcc_exif}: no line matches a photo id of "
                                 f"{'the webdataset samples' if plan.webdataset else cfg.photo_ids}")
    if not listed:
        raise ingest.IngestError(f"--images {cfg.images}: no JPEG files ({', '.join(ingest.JPEG_EXTENSIONS)}) found"
                                 + (" in its tar shards" if plan.webdataset else "")
                                 + (" matching the photo ids" if plan.yfcc_path else ""))
    rejects = [tuple(r) for r in found["rejects"]]
    ingest._write_rejects(out / "rejects.tsv", rejects)
    results = found["shards"]
    if not results:
        raise ingest.IngestError(f"no usable photos among {listed + stats.get('listing_rejects', 0)} inputs; "
                                 f"see {out / 'rejects.tsv'}")
    tables = found["tag_table"]
    tag_json = tables[0]
    (state / "shards.json").unlink(missing_ok=True)  # the local runner's journal no longer describes the shards
    for p in out.iterdir():  # any earlier output's shards (the Beam run replaces them all)
        if p.is_file() and p.name.startswith(tuple(f"{s}-" for s in ingest.SPLITS)) and (
                p.name.endswith(tuple(ingest.FORMAT_EXT.values())) or ".tmp-" in p.name):
            p.unlink()
    shards: dict[str, list[tuple[str, int]]] = {}
    for split in ingest.SPLITS:
        mine = sorted((r for r in results if r["split"] == split), key=lambda r: r["bucket"])
        for i, r in enumerate(mine):
            name = ingest.shard_name(split, i, len(mine), cfg.format)
            os.replace(r["path"], out / name)
            shards.setdefault(split, []).append((name, r["records"]))
    hists = {k: {f: collections.Counter() for f in _HIST_FIELDS} for k in ("all", *ingest.SPLITS)}
    image_bytes, max_short = collections.Counter(), {}
    for (scope, field, value), n in found["hists"]:
        if scope == "bytes":
            image_bytes[field] += n
        else:
            hists[scope][field][value] += n
            if field == "short_side" and scope != "all":
                max_short[scope] = max(max_short.get(scope, 0), value)
    counts = {s: sum(n for _, n in shards.get(s, [])) for s in ingest.SPLITS}
    counts["accepted"] = counts["train"] + counts["eval"]
    render = get_renderer(cfg.renderer, TagTable.from_json(tag_json))
    spec = render.spec() if hasattr(render, "spec") else {"name": cfg.renderer}
    if changes:
        log(f"[ingest] options changed since the last run into {out} ({'; '.join(changes)}): the Beam run "
            "rebuilt every shard")
    warning = ingest.eval_warning(counts["eval"], counts["accepted"], cfg)
    if warning:
        print(f"[ingest] {warning}", file=sys.stderr, flush=True)
    info = ingest.build_info(cfg, plan.source, spec, tag_json, counts, rejects, shards, hists, image_bytes,
                             max_short, out)
    ingest.finish(cfg, info, out, log)
    shutil.rmtree(work, ignore_errors=True)
    return info
