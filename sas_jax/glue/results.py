"""Score tables: one sweep → one row; several pre-training runs → mean ± std (paper Table 1).

A sweep directory holds `runs/<task>/lr<lr>_bs<bs>_seed<seed>.json` (one per
fine-tuning run). For each task the learning rate / batch size with the best mean
dev score over seeds is kept, and the row reports that mean ± std over the seeds.
Across pre-training runs (`aggregate_rows`) each run contributes its own per-task
score (its best grid point, mean over seeds); the table shows mean ± std over the
runs, for every task and for the GLUE score (the mean of the eight tasks). Stds
are sample stds (ddof = 1), shown only for n > 1. Scores are dev scores, shown ×100
as in the paper. Tables and plots leave out tasks no row has (and GLUE unless a row
has all eight): no empty columns. Tasks given by files (`user_task`) follow the GLUE
columns, titled and scored as their runs say (`title`, `selection_metric`), never part
of the GLUE score.
"""
from __future__ import annotations

import csv
import glob
import json
import os

import numpy as np

from sas_jax.errors import UserError
from sas_jax.glue.metrics import glue_score, mean_std
from sas_jax.glue.tasks import SPECS, TASKS

# Secondary metrics shown in the details table (key in a run's "dev" → column title).
DETAILS = {
    "cola": {"mcc": "MCC"},
    "sst2": {"accuracy": "acc"},
    "mrpc": {"accuracy": "acc", "f1": "F1"},
    "stsb": {"pearson": "Pearson", "spearman": "Spearman"},
    "qqp": {"accuracy": "acc", "f1": "F1"},
    "mnli": {"accuracy_matched": "m", "accuracy_mismatched": "mm"},
    "qnli": {"accuracy": "acc"},
    "rte": {"accuracy": "acc"},
}


# The details of a task given by files: every metric its runs recorded, in this order.
USER_DETAILS = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "pearson": "Pearson", "spearman": "Spearman"}


def details_of(task: str, dev: dict) -> dict:
    """{dev key: column title} of the details table: GLUE's set, or a task file's recorded metrics."""
    if task in DETAILS:
        return DETAILS[task]
    return {k: t for k, t in USER_DETAILS.items() if k in dev}


def task_order(names) -> tuple:
    """GLUE's column order first, then the other tasks in the order given."""
    names = list(dict.fromkeys(names))
    return tuple(t for t in TASKS if t in names) + tuple(t for t in names if t not in TASKS)


def task_title(task: str, rows: list | None = None) -> str:
    """A task's column title: GLUE's, else the title its runs recorded (else its name)."""
    if task in SPECS:
        return SPECS[task].title
    for r in rows or ():
        title = r["tasks"].get(task, {}).get("title")
        if title:
            return title
    return task


def run_file(sweep_dir: str, task: str, lr: float, batch_size: int, seed: int) -> str:
    return os.path.join(sweep_dir, "runs", task, f"lr{lr:g}_bs{int(batch_size)}_seed{int(seed)}.json")


def load_runs(sweep_dir: str) -> list:
    """Every finished run of a sweep (unfinished or damaged files are skipped)."""
    out = []
    for path in sorted(glob.glob(os.path.join(sweep_dir, "runs", "*", "*.json"))):
        try:
            with open(path) as f:
                run = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        if run.get("status") == "done":
            out.append(run)
    return out


def summarize_task(runs: list) -> dict | None:
    """Best grid point of one task's runs: mean ± std over its seeds, and details."""
    if not runs:
        return None
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["learning_rate"], r["batch_size"]), []).append(r)
    (lr, bs), best = max(groups.items(), key=lambda kv: (np.mean([r["score"] for r in kv[1]]), -kv[0][0]))
    mean, std, n = mean_std([r["score"] for r in best])
    task = best[0]["task"]
    details = {k: float(np.mean([r["dev"][k] for r in best])) for k in details_of(task, best[0]["dev"])
               if k in best[0]["dev"]}
    grid = {f"lr={k[0]:g},bs={k[1]}": float(np.mean([r["score"] for r in v])) for k, v in sorted(groups.items())}
    out = {"mean": mean, "std": std, "n": n, "learning_rate": lr, "batch_size": bs,
           "details": details, "grid": grid, "seeds": sorted(r["seed"] for r in best)}
    if task not in SPECS:  # a task given by files: how to show it
        out.update(title=best[0].get("title", task), metric=best[0].get("selection_metric"))
    return out


def sweep_row(name: str, sweep_dir: str) -> dict:
    """The table row of one sweep directory (tasks without finished runs are absent)."""
    runs = load_runs(sweep_dir)
    order = task_order([*TASKS, *(r["task"] for r in runs)])
    by_task = {t: [r for r in runs if r["task"] == t] for t in order}
    tasks = {t: s for t in order if (s := summarize_task(by_task[t])) is not None}
    glue = glue_score({t: s["mean"] for t, s in tasks.items()})
    return {"name": name, "sources": [os.path.abspath(sweep_dir)], "tasks": tasks,
            "glue": {"mean": glue, "std": None, "n": 1 if glue is not None else 0}}


def aggregate_rows(name: str, rows: list) -> dict:
    """mean ± std over pre-training runs (one row each), per task and for GLUE."""
    tasks = {}
    for t in task_order([*TASKS, *(t for r in rows for t in r["tasks"])]):
        present = [r["tasks"][t] for r in rows if t in r["tasks"]]
        if not present:
            continue
        mean, std, n = mean_std([p["mean"] for p in present])
        keys = set.intersection(*(set(p["details"]) for p in present))
        tasks[t] = {"mean": mean, "std": std, "n": n,
                    "details": {k: float(np.mean([p["details"][k] for p in present])) for k in sorted(keys)},
                    "learning_rate": [p.get("learning_rate") for p in present]}
        tasks[t].update({k: present[0][k] for k in ("title", "metric") if k in present[0]})
    glue_values = [r["glue"]["mean"] for r in rows if r["glue"]["mean"] is not None]
    mean, std, n = mean_std(glue_values)
    return {"name": name, "sources": [s for r in rows for s in r["sources"]], "tasks": tasks,
            "glue": {"mean": mean, "std": std if n > 1 else None, "n": n}}


# ----------------------------------------------------------------------------- writing
def _cell(entry: dict | None) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    s = f"{100 * entry['mean']:.1f}"
    if entry.get("std") is not None and entry.get("n", 0) > 1:
        s += f" ± {100 * entry['std']:.1f}"
    return s


def tasks_run(rows: list) -> tuple:
    """The tasks (paper order, then tasks given by files) with a score in at least one row: the only
    ones tables and plots show."""
    return task_order(t for r in rows for t in r["tasks"])


def has_glue(rows: list) -> bool:
    """Whether some row has a GLUE score (all 8 tasks run); otherwise the GLUE column is left out."""
    return any(r["glue"].get("mean") is not None for r in rows)


def columns(rows: list | None = None) -> list:
    """Column titles: every task and GLUE, or (with `rows`) only the tasks run and GLUE if any row has it."""
    if rows is None:
        return [SPECS[t].title for t in TASKS] + ["GLUE"]
    return [task_title(t, rows) for t in tasks_run(rows)] + (["GLUE"] if has_glue(rows) else [])


def markdown(rows: list) -> str:
    """The paper's Table 1 layout, then a details table (F1, Pearson/Spearman, MNLI m/mm).

    Tasks no row has are left out (no empty columns); so is GLUE unless a row has all 8."""
    tasks, glue = tasks_run(rows), has_glue(rows)
    head = ["Model", *columns(rows)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_cell(r["tasks"].get(t)) for t in tasks] + ([_cell(r["glue"])] if glue else [])
        lines.append("| " + " | ".join([r["name"], *cells]) + " |")
    det = {t: details_of(t, next((r["tasks"][t]["details"] for r in rows if t in r["tasks"]), {})) for t in tasks}
    det_tasks = [t for t in tasks if len(det[t]) > 1]
    if det_tasks:
        det_head = ["Model"] + [f"{task_title(t, rows)} {title}" for t in det_tasks for title in det[t].values()]
        lines += ["", "| " + " | ".join(det_head) + " |", "|" + "---|" * len(det_head)]
        for r in rows:
            cells = []
            for t in det_tasks:
                d = r["tasks"].get(t, {}).get("details", {})
                cells += [f"{100 * d[k]:.1f}" if k in d else "–" for k in det[t]]
            lines.append("| " + " | ".join([r["name"], *cells]) + " |")
    n = {t: max((r["tasks"][t]["n"] for r in rows if t in r["tasks"]), default=0) for t in tasks}
    glue_run = any(t in SPECS for t in tasks)  # a table of tasks given by files only says nothing of GLUE
    not_run = [SPECS[t].title for t in TASKS if t not in tasks] if glue_run else []
    users = [t for t in tasks if t not in SPECS]
    scored = "; ".join(f"{task_title(t, rows)} {_metric_of(t, rows)}" for t in users)
    lines += ["", ("Dev scores ×100: CoLA MCC, STS-B mean of Pearson and Spearman, MNLI mean of matched and "
                   "mismatched accuracy, others accuracy; GLUE = mean of the 8" if glue_run else "Dev scores ×100")
              + (f"; {scored} (task files, not in GLUE)" if users else "") + ". mean ± sample std over "
              f"{'pre-training runs' if any(len(r['sources']) > 1 for r in rows) else 'fine-tuning seeds'}, "
              "no ± for n = 1 "
              f"(n per task: {', '.join(f'{task_title(t, rows)} {n[t]}' for t in tasks) or 'none'})."
              + (f" Not run: {', '.join(not_run)}" + ("; no GLUE score." if not glue else ".") if not_run else "")]
    return "\n".join(lines) + "\n"


def _metric_of(task: str, rows: list) -> str:
    return next((r["tasks"][task].get("metric") for r in rows if r["tasks"].get(task, {}).get("metric")), "score")


def write_table(rows: list, out_prefix: str) -> dict:
    """Writes `<out_prefix>.md`, `.json` and `.csv`; returns their paths."""
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)) or ".", exist_ok=True)
    paths = {ext: f"{out_prefix}.{ext}" for ext in ("md", "json", "csv")}
    with open(paths["md"], "w") as f:
        f.write(markdown(rows))
    with open(paths["json"], "w") as f:
        json.dump({"columns": columns(rows), "rows": rows}, f, indent=2)
    tasks = tasks_run(rows)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        det = [(t, k) for t in tasks
               for k in details_of(t, next((r["tasks"][t]["details"] for r in rows if t in r["tasks"]), {}))]
        w.writerow(["model"] + [f"{c}{s}" for c in columns(rows) for s in ("", "_std", "_n")]
                   + [f"{task_title(t, rows)}_{k}" for t, k in det])
        for r in rows:
            entries = [r["tasks"].get(t) or {} for t in tasks] + ([r["glue"]] if has_glue(rows) else [])
            vals = []
            for e in entries:  # no std for n = 1 (one seed / one run)
                std = e.get("std") if e.get("n", 0) > 1 else None
                vals += [_num(e.get("mean")), _num(std), e.get("n", 0)]
            vals += [_num(r["tasks"].get(t, {}).get("details", {}).get(k)) for t, k in det]
            w.writerow([r["name"], *vals])
    return paths


def _num(x):
    return "" if x is None else f"{100 * x:.2f}"


def load_table(path: str) -> list:
    """Rows of a table JSON written by `write_table` (or of a sweep dir's `glue_table.json`)."""
    if os.path.isdir(path):
        path = os.path.join(path, "glue_table.json")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; run `python -m sas_jax.glue sweep` (or `table`) first")
    with open(path) as f:
        return json.load(f)["rows"]
