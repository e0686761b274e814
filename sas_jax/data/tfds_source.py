"""tensorflow-datasets, read without TensorFlow: the one home of the project's tfds access.

Both users go through `open_split`: the corpus preparation (`prepare --tfds=<name>
--data_dir=...`, `sas_jax.data.prepare`) and GLUE (`--tfds_data_dir`,
`sas_jax.glue.data`). A dataset is read through tfds' data sources (ArrayRecord random
access, `tfds.core.ReadOnlyBuilder.as_data_source`), which need `tensorflow-datasets`
and `array_record` but not TensorFlow (`pip install 'sas_jax[tfds]'`). Nothing is ever
downloaded: the dataset must already be prepared in `data_dir` as ArrayRecord,

    tfds build <name> --data_dir=<data_dir> --file_format=array_record

(on a machine with internet; that step may need TensorFlow, reading it does not). The
dataset is found by its folder, `<data_dir>/<name>[/<config>]/<version>` (the newest
version unless `<name>:<version>` names one), and read with the `dataset_info.json`
and `features.json` stored there, so the builder's own code (and its dependencies)
is never imported.

Errors are one-line `UserError`s that say which of these is wrong: the packages are
not installed; the dataset (or its version, config or split) is not in `data_dir`;
it is there but as TFRecord, which only TensorFlow reads.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

from sas_jax.errors import UserError

INSTALL_HINT = "pip install 'sas_jax[tfds]'"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_BATCH = 512  # examples decoded per read


def import_tfds():
    """The `tensorflow_datasets` module, or a UserError naming the extra to install."""
    missing = []
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (optional, heavy)
    except ImportError:
        tfds = None
        missing.append("tensorflow-datasets")
    try:
        import array_record.python.array_record_module  # noqa: F401, PLC0415
    except ImportError:
        missing.append("array_record")
    if missing:
        raise UserError(f"reading tfds datasets needs {' and '.join(missing)}, which "
                        f"{'is' if len(missing) == 1 else 'are'} not installed; {INSTALL_HINT} "
                        "(TensorFlow is not needed)")
    return tfds


def default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _build_hint(name: str, data_dir: str) -> str:
    return (f"prepare it with `tfds build {name} --data_dir={data_dir} --file_format=array_record` "
            "on a machine with internet")


def dataset_dir(name: str, data_dir: str | None) -> str:
    """`<data_dir>/<name>[/<config>]/<version>` of a prepared dataset (UserError if none)."""
    data_dir = os.fspath(data_dir) if data_dir else default_data_dir()
    base, _, version = name.partition(":")
    base = base.strip("/")
    if not base:
        raise UserError(f"tfds dataset name {name!r} is empty; pass --tfds=<name>[/<config>][:<version>]")
    root = os.path.join(data_dir, *base.split("/"))
    not_prepared = f"tfds dataset {name} is not prepared in {data_dir}; {_build_hint(base, data_dir)}"
    if not os.path.isdir(root):
        raise UserError(not_prepared)
    if version:
        path = os.path.join(root, version)
        if not os.path.isfile(os.path.join(path, "dataset_info.json")):
            have = _versions(root)
            raise UserError(f"tfds dataset {base} has no version {version} in {data_dir} (there: "
                            f"{', '.join(have) or 'none'}); {_build_hint(name, data_dir)}")
        return path
    versions = _versions(root)
    if versions:
        return os.path.join(root, versions[-1])
    configs = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and _versions(os.path.join(root, d)))
    if configs:
        raise UserError(f"tfds dataset {base} in {data_dir} has configs ({', '.join(configs)}); "
                        f"name one: --tfds={base}/{configs[0]}")
    raise UserError(not_prepared)


def _versions(folder: str) -> list[str]:
    """Prepared versions (folders holding dataset_info.json), oldest first."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = [n for n in names if _VERSION.match(n) and os.path.isfile(os.path.join(folder, n, "dataset_info.json"))]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def open_split(name: str, data_dir: str | None, split: str) -> Sequence[dict]:
    """A random-access source of the decoded examples (dicts of numpy values and bytes)
    of `split` of the tfds dataset `name` prepared as ArrayRecord in `data_dir`."""
    tfds = import_tfds()
    path = dataset_dir(name, data_dir)
    where = data_dir or default_data_dir()
    try:
        builder = tfds.builder_from_directory(path)
    except Exception as e:  # noqa: BLE001 (a damaged dataset_info.json/features.json; tfds raises many types)
        msg = " ".join(str(e).split())[:160]
        raise UserError(f"tfds dataset {name} in {path} cannot be opened ({type(e).__name__}: {msg}); "
                        f"{_build_hint(name.partition(':')[0], where)} again") from None
    fmt = getattr(builder.info.file_format, "value", builder.info.file_format)
    if str(fmt) != "array_record":
        raise UserError(f"tfds dataset {name} in {path} is stored as {fmt}, which only TensorFlow reads; "
                        f"{_build_hint(name.partition(':')[0], where)} (ArrayRecord)")
    splits = sorted(builder.info.splits.keys())
    if split.split("[")[0] not in splits:
        raise UserError(f"tfds dataset {name} in {path} has no split {split!r} (splits: "
                        f"{', '.join(splits)}); pass one of those")
    try:
        return builder.as_data_source(split=split)
    except Exception as e:  # noqa: BLE001 (missing shards, a bad slice)
        msg = " ".join(str(e).split())[:160]
        raise UserError(f"tfds dataset {name} split {split} in {path} cannot be read "
                        f"({type(e).__name__}: {msg}); {_build_hint(name.partition(':')[0], where)} "
                        "again") from None


def iter_examples(source: Sequence[dict], batch: int = _BATCH) -> Iterator[dict]:
    """The examples of `source` in order, decoded `batch` at a time."""
    n = len(source)
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, n, batch):
        keys = list(range(start, min(start + batch, n)))
        yield from (getitems(keys) if getitems else (source[k] for k in keys))


def feature_names(source) -> list[str]:
    """Top-level feature names of a data source (for error messages)."""
    features = getattr(getattr(source, "dataset_info", None), "features", None)
    try:
        return sorted(features.keys())
    except AttributeError:
        return []
