"""Tasks given by files: a small `task.json` beside train/dev(/test) files in TSV, CSV or JSON lines.

    {"name": "mydata",
     "train": "train.csv", "dev": "dev.csv", "test": "test.csv",
     "text": "sentence",              # or ["question", "answer"]: a text pair
     "label": "label",
     "labels": ["neg", "pos"],        # optional: the classes in id order (default: train's, sorted)
     "regression": false,             # true: the label is a number (one output, MSE loss)
     "metric": "accuracy"}            # accuracy | f1 | mcc, or pearson | spearman for regression

    spec = get_task("data/mydata/task.json")      # or the folder holding task.json
    # → a TaskSpec (registered as "mydata") usable wherever a GLUE task is: glue sweep/curve/table/
    #   predict, study --downstream, configs/glue.py:task=data/mydata/task.json

Optional keys: `title` (column title in tables; default the name), `format` (tsv, csv or jsonl;
default each file's extension: .tsv/.tab, .csv, .jsonl/.json), `num_epochs` (default 3) and
`num_seeds` (default 3) of the sweep. Paths are relative to the task.json's folder.

File layouts: TSV and CSV have a header row naming the columns; TSV is read without quoting
(quotes are text, as in GLUE's files), CSV with the usual double quotes. JSON lines hold one
object per line. Class labels are text (`1` and `"1"` are the same class). The test split's
labels, if any, are ignored (test rows are for prediction).

`metric` picks the best epoch and is the reported score: `f1` is the F1 of the second label
(`labels[1]`, the positive class) with two classes and macro F1 with more; accuracy, F1 and MCC
(or Pearson and Spearman) are all recorded. Every file is read and checked when the task is
loaded (before a sweep writes anything): a missing column, an unknown label, an empty text, a
short row or an empty split is one `UserError` line naming the file, the line and the value.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import sys

import numpy as np

from sas_jax.errors import UserError

csv.field_size_limit(sys.maxsize)

TASK_FILE = "task.json"
FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
CLASS_METRICS = ("accuracy", "f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")
KEYS = ("name", "title", "train", "dev", "test", "text", "label", "labels", "regression", "metric", "format",
        "num_epochs", "num_seeds", "description", "source", "license")
DEFAULT_EPOCHS, DEFAULT_SEEDS = 3, 3
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass
class UserTask:
    """A task read from its task.json: the spec, every split's rows (`glue.data.GlueSplit`), the
    description as written."""

    path: str
    spec: object  # glue.tasks.TaskSpec
    splits: dict
    description: dict


_CACHE: dict = {}  # task.json path → (file stamps, UserTask)


def is_task_path(name: str) -> bool:
    """A .json file name, or a folder that holds task.json (a plain task name is neither)."""
    return name.lower().endswith(".json") or os.path.isfile(os.path.join(name, TASK_FILE))


def task_json_path(path: str) -> str:
    path = os.path.abspath(path)
    return os.path.join(path, TASK_FILE) if os.path.isdir(path) else path


def load(path: str) -> UserTask:
    """Reads and checks the task at `path` (a task.json or its folder), registers its spec by name
    (`glue.tasks.USER_SPECS`; a task read later under the same name replaces it) and returns it;
    re-reads only when a file changed."""
    from sas_jax.glue import tasks  # noqa: PLC0415

    path = task_json_path(path)
    if not os.path.isfile(path):
        raise UserError(f"task file {path} not found; pass a task.json (or its folder) as described in "
                        "docs/tasks.md")
    desc = _read_description(path)
    folder = os.path.dirname(path)
    files = {s: os.path.join(folder, desc[s]) for s in ("train", "dev", "test") if desc.get(s)}
    stamp = tuple(_stamp(p) for p in (path, *files.values()))
    cached = _CACHE.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, _build(path, desc, files))
        _CACHE[path] = cached
    task = cached[1]
    tasks.USER_SPECS[task.spec.name] = task.spec  # the last one read under a name is the one it names
    return task


def load_splits(spec, names) -> dict:
    """{split: GlueSplit} of a task given by files (`glue.data.load_task` for such a task)."""
    task = load(spec.file)
    missing = [s for s in names if s not in task.splits]
    if missing:
        raise UserError(f"{spec.file} names no {missing[0]} file; add \"{missing[0]}\": \"<file>\" to it")
    return {s: task.splits[s] for s in names}


def _stamp(p: str) -> tuple:
    try:
        st = os.stat(p)
        return (p, st.st_mtime_ns, st.st_size)
    except OSError:
        return (p, None, None)


# ----------------------------------------------------------------------------- the description
def _read_description(path: str) -> dict:
    try:
        with open(path, encoding="utf-8-sig") as f:
            desc = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; write the task description as UTF-8 JSON") from None
    if not isinstance(desc, dict):
        raise UserError(f"{path} must hold one JSON object ({{\"name\": ..., \"train\": ..., ...}}), "
                        f"not a {type(desc).__name__}")
    unknown = [k for k in desc if k not in KEYS]
    if unknown:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(unknown[0], KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{path}: unknown key {unknown[0]!r}{hint}; known: {', '.join(KEYS)}")
    for key in ("name", "train", "dev"):
        if not isinstance(desc.get(key), str) or not desc[key].strip():
            raise UserError(f"{path}: \"{key}\" is missing or not a text; it needs \"name\", \"train\", \"dev\", "
                            "\"text\" and \"label\" (docs/tasks.md)")
    return desc


def _text_columns(path: str, desc: dict) -> tuple:
    text = desc.get("text", "sentence")
    cols = [text] if isinstance(text, str) else text
    if not isinstance(cols, list) or not 1 <= len(cols) <= 2 or not all(isinstance(c, str) and c for c in cols):
        raise UserError(f"{path}: \"text\" must be a column name or a list of two (a text pair), not {text!r}")
    return cols[0], (cols[1] if len(cols) == 2 else None)


def _spec_fields(path: str, desc: dict) -> dict:
    from sas_jax.glue import tasks  # noqa: PLC0415

    name = desc["name"].strip()
    taken = set(tasks.SPECS) | set(tasks.EXTRA_SPECS) | set(tasks._ALIASES) | {"all", "wnli"}
    if not _NAME.match(name) or name in taken:
        why = "is a built-in task" if name in taken else "must be lower-case letters, digits and _"
        raise UserError(f"{path}: name {name!r} {why}; pick another (it names the task's results)")
    regression = desc.get("regression", False)
    if not isinstance(regression, bool):
        raise UserError(f"{path}: \"regression\" must be true or false, not {regression!r}")
    allowed = REGRESSION_METRICS if regression else CLASS_METRICS
    metric = desc.get("metric", allowed[0])
    if metric not in allowed:
        kind = "a regression task" if regression else "a classification task"
        raise UserError(f"{path}: metric {metric!r} is not one of {kind}'s: {', '.join(allowed)}")
    labels = desc.get("labels")
    if labels is not None:
        if regression:
            raise UserError(f"{path}: a regression task has no \"labels\"; drop them or set \"regression\": false")
        if (not isinstance(labels, list) or len(labels) < 2
                or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in labels)):
            raise UserError(f"{path}: \"labels\" must list at least two class names, not {labels!r}")
        labels = [str(x) for x in labels]
        if len(set(labels)) != len(labels):
            dup = next(x for x in labels if labels.count(x) > 1)
            raise UserError(f"{path}: \"labels\" lists {dup!r} twice")
    counts = {}
    for key, default in (("num_epochs", DEFAULT_EPOCHS), ("num_seeds", DEFAULT_SEEDS)):
        v = desc.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{path}: \"{key}\" must be a positive integer, not {v!r}")
        counts[key] = v
    title = desc.get("title", name)
    if not isinstance(title, str) or not title.strip():
        raise UserError(f"{path}: \"title\" must be a text")
    fmt = desc.get("format")
    if fmt is not None and fmt not in set(FORMATS.values()):
        raise UserError(f"{path}: format {fmt!r} is not one of tsv, csv, jsonl")
    label = desc.get("label", "label")
    if not isinstance(label, str) or not label:
        raise UserError(f"{path}: \"label\" must be the name of the label column, not {label!r}")
    return {"name": name, "title": title.strip(), "regression": regression, "metric": metric, "labels": labels,
            "format": fmt, "label": label, **counts}


def _build(path: str, desc: dict, files: dict) -> UserTask:
    from sas_jax.glue.data import GlueSplit  # noqa: PLC0415
    from sas_jax.glue.tasks import TaskSpec  # noqa: PLC0415

    f = _spec_fields(path, desc)
    col_a, col_b = _text_columns(path, desc)
    raw = {s: read_split(p, s, col_a, col_b, f["label"] if s != "test" else None, f["format"])
           for s, p in files.items()}
    labels = f["labels"]
    if f["regression"]:
        ids = {s: (_numbers(r, files[s]) if s != "test" else None) for s, r in raw.items()}
    else:
        if labels is None:
            labels = sort_labels({y for _, _, y, _ in raw["train"]})
            if len(labels) < 2:
                raise UserError(f"{files['train']} has one label ({labels[0]!r}); a classifier needs at least "
                                f"two classes (list them in {path} as \"labels\")")
            source = f"train's labels ({files['train']})"
        else:
            source = f"the labels of {path}"
        index = {y: i for i, y in enumerate(labels)}
        ids = {}
        for s, rows in raw.items():
            if s == "test":
                ids[s] = None
                continue
            for line, _, y, _ in rows:
                if y not in index:
                    shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
                    raise UserError(f"{files[s]} line {line}: label {y!r} is not one of {source}: {shown}"
                                    + ("" if f["labels"] else "; list every class as \"labels\" in task.json"))
            ids[s] = [index[y] for _, _, y, _ in rows]
    splits = {}
    for s, rows in raw.items():
        values = ids[s] if ids[s] is not None else [-1] * len(rows)
        dtype = np.float32 if f["regression"] else np.int32
        splits[s] = GlueSplit(f["name"], s, [a for _, a, _, _ in rows],
                              [b for _, _, _, b in rows] if col_b is not None else None,
                              np.asarray(values, dtype), np.arange(len(rows), dtype=np.int64))
    spec = TaskSpec(f["name"], f["title"], "", "", (col_a, col_b), tuple(labels or ()), f["metric"],
                    len(splits["train"]), {"dev": len(splits["dev"])}, f["num_epochs"], f["num_seeds"],
                    tsv_a=col_a, tsv_b=col_b, tsv_label=f["label"], file=path, metric=f["metric"])
    return UserTask(path, spec, splits, desc)


def sort_labels(values) -> list:
    """Class names in id order: numerically when every one is an integer, else alphabetically."""
    values = list(values)
    if values and all(re.fullmatch(r"-?\d+", v) for v in values):
        return sorted(values, key=int)
    return sorted(values)


def _numbers(rows, path) -> list:
    out = []
    for line, _, y, _ in rows:
        try:
            v = float(y)
        except ValueError:
            v = float("nan")
        if not np.isfinite(v):
            raise UserError(f"{path} line {line}: label {y!r} is not a number (the task is a regression)")
        out.append(v)
    return out


# ----------------------------------------------------------------------------- reading files
def file_format(path: str, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UserError(f"{path}: cannot tell its format from {ext or 'no extension'!r}; name it .tsv, .csv or "
                        ".jsonl, or set \"format\" in task.json")
    return FORMATS[ext]


def read_split(path: str, split: str, col_a: str, col_b: str | None, col_label: str | None,
               fmt: str | None = None) -> list:
    """[(line number, text a, label text or None, text b or None)] of one file, every row checked."""
    if not os.path.isfile(path):
        raise UserError(f"{split} file {path} not found (named in the task.json beside it)")
    fmt = file_format(path, fmt)
    wanted = [c for c in (col_a, col_b, col_label) if c is not None]
    out = []
    try:
        for line, row in (json_rows(path) if fmt == "jsonl" else _table_rows(path, fmt, wanted)):
            out.append(_checked(path, line, row, col_a, col_b, col_label))
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    if not out:
        raise UserError(f"{path} has no rows: the {split} split is empty")
    return out


def _table_rows(path: str, fmt: str, wanted: list):
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = (csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(f))
        try:
            header = next(reader)
        except StopIteration:
            raise UserError(f"{path} is empty; it needs a header row naming its columns") from None
        except csv.Error as e:
            raise UserError(f"{path} line 1: not readable as {fmt.upper()} ({e})") from None
        header = [h.strip() for h in header]
        for c in wanted:
            if c not in header:
                raise UserError(f"{path} line 1: no column {c!r} (header: {', '.join(header)}); name the columns "
                                "in task.json (\"text\", \"label\") as in the file's header")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise UserError(f"{path} line {reader.line_num}: not readable as {fmt.upper()} ({e})") from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != len(header):
                hint = " (a tab inside a text?)" if fmt == "tsv" else " (an unquoted comma or quote?)"
                what = "short" if len(row) < len(header) else "long"
                raise UserError(f"{path} line {reader.line_num}: {what} row, {len(row)} fields where the header has "
                                f"{len(header)}{hint}: {_clip(row)}")
            yield reader.line_num, dict(zip(header, row))


def json_rows(path: str):
    """(line number, object) of each non-blank line of a JSON-lines file; one line names a bad one."""
    with open(path, encoding="utf-8-sig") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{path} line {n}: not valid JSON ({e.msg}): {_clip(text.strip())}") from None
            if not isinstance(row, dict):
                raise UserError(f"{path} line {n}: not a JSON object ({{\"column\": value, ...}}): {_clip(text.strip())}")
            yield n, row


def _checked(path: str, line: int, row: dict, col_a: str, col_b: str | None, col_label: str | None) -> tuple:
    vals = []
    for c in (col_a, col_b):
        if c is None:
            vals.append(None)
            continue
        if c not in row:
            raise UserError(f"{path} line {line}: no field {c!r} (it has {', '.join(map(str, row))})")
        v = row[c]
        if not isinstance(v, str) or not v.strip():
            what = "empty text" if isinstance(v, str) or v is None else f"a {type(v).__name__}, not a text"
            raise UserError(f"{path} line {line}: {what} in {c!r}: {_clip(v)}")
        vals.append(v)
    label = None
    if col_label is not None:
        if col_label not in row:
            raise UserError(f"{path} line {line}: no field {col_label!r} (it has {', '.join(map(str, row))})")
        v = row[col_label]
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise UserError(f"{path} line {line}: label {v!r} in {col_label!r} is not a text or a number")
        label = (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)).strip()
        if not label:
            raise UserError(f"{path} line {line}: empty label in {col_label!r}")
    return line, vals[0], label, vals[1]


def _clip(v, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n - 3] + "..."
