"""GLUE data: the eight tasks from the GLUE TSV folders or tensorflow-datasets, tokenised.

    splits = load_task("mrpc", glue_dir="/data/glue")          # {"train": GlueSplit, "dev": ...}
    splits = load_task("mnli", tfds_data_dir="/data/tfds")     # dev_matched, dev_mismatched
    enc = encode_split(splits["train"], tokenizer, max_seq_length=128)

Split names are ours for both sources: train, dev (MNLI: dev_matched, dev_mismatched)
and test (MNLI: test_matched, test_mismatched). Test splits have no labels (−1) and
are for prediction only. Inputs are `[CLS] a [SEP] (b [SEP])` with token types 0/1,
padded to `max_seq_length` with an attention mask; pairs are truncated one token at
a time from the longer segment (BERT's `_truncate_seq_pair`).
"""
from __future__ import annotations

import csv
import dataclasses
import os
import sys

import numpy as np

from sas_jax.errors import UserError
from sas_jax.glue.tasks import TaskSpec, get_task

csv.field_size_limit(sys.maxsize)  # a few GLUE rows are longer than csv's default 128 KB


@dataclasses.dataclass
class GlueSplit:
    """Raw rows of one split: texts, labels (int class ids, float for STS-B, −1 if none)."""

    task: str
    split: str
    text_a: list
    text_b: list | None
    labels: np.ndarray
    idx: np.ndarray
    skipped: int = 0  # malformed rows left out (wrong column count, unknown label)

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool(np.all(self.labels >= 0))


@dataclasses.dataclass
class EncodedSplit:
    """Model inputs of one split: int32 [N, L] arrays and the labels [N]."""

    task: str
    split: str
    input_ids: np.ndarray
    input_mask: np.ndarray
    token_type_ids: np.ndarray
    labels: np.ndarray
    idx: np.ndarray
    truncated: int = 0  # rows whose text did not fit

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def _split_names(spec: TaskSpec, splits) -> tuple:
    known = ("train",) + spec.dev_splits + spec.test_splits
    if splits is None:
        return ("train",) + spec.dev_splits
    out = tuple(splits)
    bad = [s for s in out if s not in known]
    if bad:
        raise UserError(f"{spec.title} has no split {bad[0]!r}; use {', '.join(known)}")
    return out


def load_task(task: str, *, glue_dir: str | None = None, tfds_data_dir: str | None = None,
              splits=None, skip_bad_rows: bool = False, log=print) -> dict:
    """{split: GlueSplit} of `task` from exactly one source (TSV folder or tfds data_dir); a task
    given by files (a task.json) is read from its own files and needs neither.

    Default splits: train and the dev split(s); pass `splits=("test",)` for test. A bad row of a
    labelled TSV split (too few columns, a label outside the task's labels, an empty text) is a
    UserError naming the file, the line and the value, or with `skip_bad_rows` (config
    `data.skip_bad_rows`, `--skip_bad_rows`) is left out, `log` printing the count and the first.
    """
    spec = get_task(task)
    names = _split_names(spec, splits)
    if spec.file:  # a task given by files (sas_jax.glue.user_task): read from its task.json's folder
        from sas_jax.glue import user_task  # noqa: PLC0415

        return user_task.load_splits(spec, names)
    if bool(glue_dir) == bool(tfds_data_dir):
        raise UserError("give exactly one GLUE source: --glue_dir=<folder with CoLA/, SST-2/, ...> "
                        "or --tfds_data_dir=<tensorflow-datasets data_dir holding glue/*>")
    if glue_dir:
        return {s: read_tsv_split(spec, glue_dir, s, skip_bad_rows=skip_bad_rows, log=log) for s in names}
    return {s: read_tfds_split(spec, tfds_data_dir, s) for s in names}


# ----------------------------------------------------------------------------- TSV
def tsv_path(spec: TaskSpec, glue_dir: str, split: str) -> str:
    return os.path.join(glue_dir, spec.folder, f"{split}.tsv")


def _column(ref, header, path):
    if ref is None or isinstance(ref, int):
        return ref
    if header is None or ref not in header:
        raise UserError(f"{path} has no column {ref!r} (header: {header}); is it the GLUE "
                        "file of this task?")
    return header.index(ref)


def _label_id(spec: TaskSpec, value: str):
    if spec.is_regression:
        try:
            return float(value)
        except ValueError:
            return None
    value = value.strip()
    if value in spec.labels:
        return spec.labels.index(value)
    return None


def _clip(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n - 3] + "...")


def _bad_row(spec: TaskSpec, row: list, need: int, columns: tuple, cl) -> str | None:
    """What is wrong with one labelled row (user_task's wording), or None."""
    if len(row) < need:
        return f"short row, {len(row)} fields where {need} are needed: {_clip(chr(9).join(row))}"
    if cl is not None and _label_id(spec, row[cl]) is None:
        if spec.is_regression:
            return f"label {row[cl]!r} is not a number (the task is a regression)"
        return f"label {row[cl]!r} is not one of {spec.title}'s labels: {', '.join(spec.labels)}"
    for name, c in columns:
        if c is not None and not row[c].strip():
            return f"empty {name} (column {c + 1})"
    return None


def read_tsv_split(spec: TaskSpec, glue_dir: str, split: str, *, skip_bad_rows: bool = False,
                   log=print) -> GlueSplit:
    """One split from `<glue_dir>/<TASK>/<split>.tsv` in the standard GLUE layouts. A bad row of
    a labelled split is refused (one line: file, line, value) or, with `skip_bad_rows`, left out
    with a note; the test splits keep their rows (the GLUE server wants every one)."""
    path = tsv_path(spec, glue_dir, split)
    if not os.path.isfile(path):
        raise UserError(f"GLUE file {path} not found; pass --glue_dir=<folder with {spec.folder}/"
                        f"{split}.tsv> (the standard GLUE download layout) or use --tfds_data_dir")
    is_test = split.startswith("test")
    with open(path, encoding="utf-8-sig", newline="") as f:  # MRPC starts with a BOM
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows.pop(0) if (rows and (spec.tsv_header or is_test)) else None
    a_ref = spec.tsv_test_a if (is_test and spec.tsv_test_a is not None) else spec.tsv_a
    b_ref = spec.tsv_test_b if (is_test and spec.tsv_test_b is not None) else spec.tsv_b
    ca, cb = _column(a_ref, header, path), _column(b_ref, header, path)
    cl = None if is_test else _column(spec.tsv_label, header, path)
    # The row id the GLUE server matches predictions on: `index` (QQP's test file calls it `id`).
    id_col = "index" if header and "index" in header else ("id" if is_test and header and "id" in header else None)
    ci = header.index(id_col) if id_col else None
    need = max(c for c in (ca, cb, cl, ci) if c is not None) + 1
    text_a, text_b, labels, idx, skipped = [], [], [], [], 0
    first_line = 2 if header is not None else 1  # the file's line number of rows[0]
    first_bad = None
    for n, row in enumerate(rows):
        if not is_test:
            bad = _bad_row(spec, row, need, (("text", ca), ("second text", cb)), cl)
            if bad is not None:
                where = f"{path} line {n + first_line}: {bad}"
                if not skip_bad_rows:
                    raise UserError(f"{where}; fix the file, or pass --skip_bad_rows (config "
                                    "data.skip_bad_rows=true) to leave such rows out with a count")
                skipped += 1
                first_bad = first_bad or f"line {n + first_line}: {bad}"
                continue
        elif len(row) < need:
            skipped += 1
            continue
        label = -1 if cl is None else _label_id(spec, row[cl])
        text_a.append(row[ca])
        if cb is not None:
            text_b.append(row[cb])
        labels.append(label)
        idx.append(int(row[ci]) if ci is not None and row[ci].isdigit() else n)
    if not text_a:
        raise UserError(f"{path} has no usable rows ({skipped} malformed); re-download the GLUE data")
    if first_bad is not None:
        log(f"note: skipped {skipped} bad row(s) of {path} (skip_bad_rows); the first: {first_bad}")
    return GlueSplit(spec.name, split, text_a, text_b if cb is not None else None,
                     _labels_array(spec, labels), np.asarray(idx, np.int64), skipped)


def _labels_array(spec: TaskSpec, labels) -> np.ndarray:
    return np.asarray(labels, np.float32 if spec.is_regression else np.int32)


# ----------------------------------------------------------------------------- tfds
def _tfds_split(split: str) -> str:
    return split.replace("dev", "validation")


def read_tfds_split(spec: TaskSpec, data_dir: str, split: str) -> GlueSplit:
    """One split of `glue/<task>` from a local tfds `data_dir`, prepared as ArrayRecord;
    read without TensorFlow and never downloaded (`sas_jax.data.tfds_source`)."""
    from sas_jax.data import tfds_source  # noqa: PLC0415

    source = tfds_source.open_split(spec.tfds_name, data_dir, _tfds_split(split))
    examples = list(tfds_source.iter_examples(source))
    if examples and all("idx" in ex for ex in examples):  # tfds stores examples shuffled
        examples.sort(key=lambda ex: int(ex["idx"]))  # → the GLUE files' row order
    ka, kb = spec.tfds_keys
    text_a = [_text(ex[ka]) for ex in examples]
    text_b = [_text(ex[kb]) for ex in examples] if kb else None
    labels = _labels_array(spec, [ex["label"] for ex in examples])
    idx = np.asarray([int(ex.get("idx", i)) for i, ex in enumerate(examples)], np.int64)
    if not text_a:
        raise UserError(f"{spec.tfds_name} split {_tfds_split(split)} in {data_dir} is empty")
    return GlueSplit(spec.name, split, text_a, text_b, labels, idx)


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


# ----------------------------------------------------------------------------- encoding
def truncate_pair(a: list, b: list | None, max_tokens: int) -> bool:
    """In place, as BERT: drop the last token of the longer list (b on ties); True if cut."""
    if b is None:
        cut = len(a) > max_tokens
        del a[max_tokens:]
        return cut
    cut = False
    while len(a) + len(b) > max_tokens:
        cut = True
        (a if len(a) > len(b) else b).pop()
    return cut


def encode_split(split: GlueSplit, tokenizer, max_seq_length: int = 128) -> EncodedSplit:
    """Tokenises to `[CLS] a [SEP] (b [SEP])`, padded to `max_seq_length`."""
    n, length = len(split), int(max_seq_length)
    pair = split.text_b is not None
    if length < (5 if pair else 3):
        raise UserError(f"max_seq_length={length} is too short for [CLS]/[SEP] and text")
    ids_a = tokenizer.encode_batch(split.text_a)
    ids_b = tokenizer.encode_batch(split.text_b) if pair else [None] * n
    input_ids = np.full((n, length), tokenizer.pad_id, np.int32)
    token_types = np.zeros((n, length), np.int32)
    mask = np.zeros((n, length), np.int32)
    truncated = 0
    for i, (a, b) in enumerate(zip(ids_a, ids_b)):
        a = list(a)
        b = list(b) if b is not None else None
        truncated += truncate_pair(a, b, length - (3 if pair else 2))
        row = [tokenizer.cls_id, *a, tokenizer.sep_id]
        types = [0] * len(row)
        if b is not None:
            row += [*b, tokenizer.sep_id]
            types += [1] * (len(b) + 1)
        input_ids[i, :len(row)] = row
        token_types[i, :len(row)] = types
        mask[i, :len(row)] = 1
    return EncodedSplit(split.task, split.split, input_ids, mask, token_types, split.labels,
                        split.idx, truncated)


def batches(data: EncodedSplit, batch_size: int, *, order=None):
    """Yields dicts of [batch_size, ...] numpy arrays; the last one is padded with
    weight-0 copies of row 0 so every batch has one shape (one jit signature)."""
    n = len(data)
    order = np.arange(n) if order is None else np.asarray(order)
    for start in range(0, n, batch_size):
        take = order[start:start + batch_size]
        real = len(take)
        if real < batch_size:
            take = np.concatenate([take, np.full(batch_size - real, take[0] if real else 0)])
        weight = np.zeros(batch_size, np.float32)
        weight[:real] = 1.0
        yield {
            "input_ids": data.input_ids[take],
            "input_mask": data.input_mask[take],
            "token_type_ids": data.token_type_ids[take],
            "labels": np.maximum(data.labels[take], 0) if data.labels.dtype.kind == "i" else data.labels[take],
            "weights": weight,
        }, real
