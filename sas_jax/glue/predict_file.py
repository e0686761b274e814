"""Labels a file of new texts with a kept fine-tuned model (`glue predict_file`).

    python -m sas_jax.glue predict_file --model=runs/x/glue/models/sst2/best \
        --input=new.txt --output=preds.tsv
    python -m sas_jax.glue predict_file --model=runs/x/glue/models/mrpc/best \
        --input=pairs.csv --text_column=question --text_b_column=answer --output=preds.csv

Input (`--format`, default by the file's extension): `text`, one text per line (blank
lines are skipped), or a table — `tsv` (header row, read without quoting, as GLUE's
files), `csv` (header row, double quotes), `jsonl` (one object per line) — whose
`--text_column` (and, for a model of text pairs, `--text_b_column`) hold the texts.
Without them the columns are the task's own (a task file's text columns), else the
first of `text`, `sentence`, `sentence1`, `question`, `question1`, `premise` (and
`text_b`, `sentence2`, `question2`, `hypothesis`, `answer`) that the file has.

Output (`.tsv`, `.csv` or `.jsonl` by `--output`'s extension; written whole), one row
per input row in input order: `row` (0-based), `prediction` (the class name, or the
score for regression) and, for classes, `p_<class>` (its probability, softmax of the
logits), per class in id order. Inputs are encoded as the model was trained:
`[CLS] a [SEP] (b [SEP])`, cut to the run's max_seq_length.
"""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from sas_jax import files
from sas_jax.errors import UserError
from sas_jax.glue import kept_model, user_task

csv.field_size_limit(sys.maxsize)

FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
TEXT_A = ("text", "sentence", "sentence1", "question", "question1", "premise")
TEXT_B = ("text_b", "sentence2", "question2", "hypothesis", "answer")


# ----------------------------------------------------------------------------- reading
def file_format(path: str, given: str = "auto") -> str:
    if given and given != "auto":
        return given
    return FORMATS.get(os.path.splitext(path)[1].lower(), "text")


def read_records(path: str, fmt: str) -> tuple:
    """(column names or None for text, records): records are lists (text: [line]) or dicts (jsonl)."""
    if not os.path.isfile(path):
        raise UserError(f"input file {path} not found")
    with open(path, encoding="utf-8-sig", newline="") as f:
        if fmt == "text":
            return None, [[line] for line in f.read().splitlines() if line.strip()]
        if fmt == "jsonl":
            records = [obj for _, obj in user_task.json_rows(path)]  # the task files' reader
            return sorted({k for r in records for k in r}), records
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(f)
        rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _pick(columns, given: str, candidates, what: str, flag: str, path: str) -> str:
    if given:
        if given not in columns:
            raise UserError(f"{path} has no column {given!r} ({what}); its columns: {', '.join(map(str, columns))}")
        return given
    for name in candidates:
        if name and name in columns:
            return name
    raise UserError(f"{path}: pass {flag}=<column> ({what}); its columns: {', '.join(map(str, columns))}")


def texts(path: str, kept, *, fmt: str = "auto", text_column: str = "", text_b_column: str = "") -> tuple:
    """(text_a, text_b or None) of every row of `path`, for `kept`'s task."""
    fmt = file_format(path, fmt)
    if fmt not in ("text", *FORMATS.values()):
        raise UserError(f"--format={fmt}; use text, tsv, csv or jsonl")
    pair = bool(kept.task.get("pair"))
    columns, records = read_records(path, fmt)
    if not records:
        raise UserError(f"{path} has no {'lines' if fmt == 'text' else 'rows'} to predict"
                        + ("" if fmt in ("text", "jsonl") else " (a header row, then one row per input)"))
    if fmt == "text":
        if pair:
            raise UserError(f"the model ({kept.task['title']}) reads pairs of texts; give a TSV, CSV or JSONL "
                            "file with --text_column and --text_b_column instead of a text file")
        if text_column or text_b_column:
            raise UserError(f"{path} is read as plain text (one text per line), which has no columns; "
                            "give a .tsv, .csv or .jsonl file (or --format) to choose columns")
        return [r[0] for r in records], None
    own = [c for c in kept.task.get("columns", []) if isinstance(c, str)]
    col_a = _pick(columns, text_column, own[:1] + list(TEXT_A), "the text", "--text_column", path)
    col_b = None
    if pair:
        col_b = _pick(columns, text_b_column, own[1:2] + [c for c in TEXT_B if c != col_a],
                      f"the second text of each pair, which the {kept.task['title']} model reads",
                      "--text_b_column", path)
    elif text_b_column:
        raise UserError(f"the model ({kept.task['title']}) reads one text per row; drop --text_b_column")
    out = []
    for col in (col_a, col_b):
        if col is None:
            out.append(None)
            continue
        values = []
        for n, r in enumerate(records):
            if isinstance(r, dict):
                v = r.get(col)
            else:
                i = columns.index(col)
                v = r[i] if i < len(r) else None
            if v is None:
                raise UserError(f"{path} row {n + 1} has no {col!r} value; every row needs the text column(s)")
            values.append(str(v))
        out.append(values)
    return out[0], out[1]


# ----------------------------------------------------------------------------- writing
def rows_out(kept, logits: np.ndarray) -> tuple:
    """(header, rows) of the output."""
    if kept.is_regression:
        return ["row", "prediction"], [[i, f"{float(x[0]):.9g}"] for i, x in enumerate(logits)]  # float32, exact
    probs = kept_model.softmax(logits.astype(np.float64))
    labels = kept.labels
    pred = np.argmax(logits, -1)
    header = ["row", "prediction", *(f"p_{name}" for name in labels)]
    return header, [[i, labels[int(k)], *(f"{float(p):.6f}" for p in ps)] for i, (k, ps) in enumerate(zip(pred, probs))]


def write(path: str, header: list, rows: list) -> None:
    fmt = FORMATS.get(os.path.splitext(path)[1].lower(), "tsv")
    with files.atomic_open(path, "w", newline="", encoding="utf-8") as f:
        if fmt == "jsonl":
            for r in rows:
                obj = dict(zip(header, r))
                obj = {k: (float(v) if k.startswith("p_") or (k == "prediction" and len(header) == 2) else v)
                       for k, v in obj.items()}
                f.write(json.dumps(obj) + "\n")
            return
        w = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n",
                       **({"quoting": csv.QUOTE_NONE, "escapechar": "\\"} if fmt == "tsv" else {}))
        w.writerow(header)
        w.writerows(rows)


# ----------------------------------------------------------------------------- predict
def predict_file(model_dir: str, input_path: str, output_path: str, *, fmt: str = "auto", text_column: str = "",
                 text_b_column: str = "", batch_size: int | None = None, log=print) -> dict:
    """Predicts every row of `input_path` with the kept model in `model_dir`; writes
    `output_path`; returns {"rows", "output", "logits", "predictions"}."""
    if not output_path:
        raise UserError("pass --output=<file> (.tsv, .csv or .jsonl)")
    kept = kept_model.load(model_dir)
    text_a, text_b = texts(input_path, kept, fmt=fmt, text_column=text_column, text_b_column=text_b_column)
    data = kept.encode(text_a, text_b)
    logits = kept_model.Predictor(kept, batch_size).logits(data)
    header, rows = rows_out(kept, logits)
    write(output_path, header, rows)
    what = "scores" if kept.is_regression else "labels"
    log(f"{kept.task['title']}: {what} of {len(rows)} rows of {input_path} → {output_path}"
        + (f" ({data.truncated} rows cut to {kept.max_seq_length} tokens)" if data.truncated else ""))
    return {"rows": len(rows), "output": output_path, "logits": logits, "predictions": [r[1] for r in rows]}
