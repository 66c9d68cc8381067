"""The ingest output as a TFDS dataset: `OUT/tfds/` holds TFDS's `dataset_info.json` + `features.json`, whose split
file template points at the shards one folder up, so nothing is copied:

    builder = tfds.builder_from_directory("OUT/tfds")
    source = builder.as_data_source("train")   # ArrayRecord output: random access for grain, no TensorFlow
    source[0]["image"]                         # the original JPEG bytes

Why a sub-folder: TFDS parses its `dataset_info.json` with `json_format.Parse` (no unknown fields allowed), and
`OUT/dataset_info.json` is exif-jax's own (counts, tag table, text_len), which the pipeline and trainer read.
Features are raw: `image` and the text fields are bytes (tf.string), `width`/`height` int64, so records decode to
exactly what ingest stored. `as_data_source` needs `--format array_record`; TFRecord output opens with the builder
but reading it (`as_dataset`) needs TensorFlow, which exif-jax does not install.
"""
from __future__ import annotations

import os
import pathlib

TFDS_DIR = "tfds"
TEMPLATE = "../{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
DATASET_NAME = "exif_photos"


def features(info: dict):
    import numpy as np
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict({
        name: tfds.features.Tensor(shape=(), dtype=np.object_) if kind == "bytes"
        else tfds.features.Scalar(dtype=np.int64)
        for name, kind in info["features"].items()})


def write(out: str | os.PathLike, info: dict) -> pathlib.Path:
    """Writes OUT/tfds/{dataset_info.json, features.json} describing the shards listed in `info` (ingest's)."""
    from etils import epath
    from tensorflow_datasets.core import dataset_info, file_adapters, naming, splits, utils

    out = pathlib.Path(out)
    target = out / TFDS_DIR
    target.mkdir(exist_ok=True)
    split_infos = []
    for split, s in info["splits"].items():
        if not s["shards"]:
            continue
        template = naming.ShardedFileTemplate(data_dir=epath.Path(target), template=TEMPLATE,
                                              dataset_name=DATASET_NAME, split=split,
                                              filetype_suffix=info["format"])
        split_infos.append(splits.SplitInfo(name=split, shard_lengths=list(s["records_per_shard"]),
                                            num_bytes=int(s["bytes"]), filename_template=template))
    identity = dataset_info.DatasetIdentity(name=DATASET_NAME, version=utils.Version("1.0.0"),
                                            data_dir=os.fspath(target), module_name="")
    ds_info = dataset_info.DatasetInfo(
        builder=identity, features=features(info),
        description="Photos with their EXIF, written by `exif-jax ingest` (original JPEG bytes, EXIF items as "
                    "JSON, the rendered EXIF text). exif-jax's own metadata: ../dataset_info.json.")
    ds_info.set_file_format(file_adapters.file_format_from_suffix(info["format"]))
    ds_info.set_splits(splits.SplitDict(split_infos))
    ds_info.write_to_directory(target)
    return target
