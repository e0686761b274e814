"""GLUE figures (matplotlib, Agg backend): GLUE vs pre-training steps and the task
scores of a table. Each function writes one PNG and returns its path; the sweep CLI
and `notebooks/evaluate.ipynb` call these. Pre-training figures: `sas_jax.analysis.plots`.
"""
from __future__ import annotations

import numpy as np

from sas_jax.analysis.plots import pyplot, save
from sas_jax.glue import results
from sas_jax.glue.tasks import SPECS


def plot_glue_vs_steps(curves: dict, path: str) -> str:
    """GLUE score and MNLI-m accuracy (dev, ×100) vs pre-training steps, one line per
    model (the paper's Figures 3 and 4). `curves`: {label: [point, ...]} with points
    from `sweep.run_curve` ({"step", "glue", "mean_score", "mnli_m"})."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, points in curves.items():
        pts = sorted(points, key=lambda p: p["step"])
        steps = [p["step"] for p in pts]
        complete = all(p.get("glue") is not None for p in pts)
        y = [100 * (p["glue"] if complete else p["mean_score"]) for p in pts]
        n_tasks = min(len(p.get("tasks", {})) for p in pts) if pts else 0
        axes[0].plot(steps, y, marker="o", label=label if complete else f"{label} (mean of {n_tasks} tasks)")
        m = [(p["step"], 100 * p["mnli_m"]) for p in pts if p.get("mnli_m") is not None]
        if m:
            axes[1].plot(*zip(*m), marker="o", label=label)
    axes[0].set(title="GLUE score (dev)", xlabel="pre-training steps", ylabel="score")
    axes[1].set(title="MNLI-m accuracy (dev)", xlabel="pre-training steps", ylabel="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    return save(fig, path)


def task_score_bars(rows: list) -> tuple:
    """(column titles, [(row name, means ×100, std ×100 or None)]) of `plot_task_scores`:
    only the tasks some row has (and GLUE if some row has all 8), no NaN gaps for tasks
    not run; a std only where n > 1 (None draws no error bar: one seed has no spread)."""
    tasks, glue = results.tasks_run(rows), results.has_glue(rows)
    names = [results.task_title(t, rows) for t in tasks] + (["GLUE"] if glue else [])
    series = []
    for r in rows:
        entries = [r["tasks"].get(t) or {} for t in tasks] + ([r["glue"]] if glue else [])
        mean = [np.nan if e.get("mean") is None else 100 * e["mean"] for e in entries]
        err = [100 * e["std"] if e.get("std") is not None and e.get("n", 0) > 1 else None for e in entries]
        series.append((r["name"], mean, err))
    return names, series


def plot_task_scores(rows: list, path: str) -> str:
    """Grouped bars: the task scores and GLUE (×100) of each table row, with std bars where
    n > 1; tasks no row has are left out (`task_score_bars`)."""
    plt = pyplot()
    names, series = task_score_bars(rows)
    x = np.arange(len(names))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 1), 3.8))
    for i, (name, mean, err) in enumerate(series):
        pos = x + i * width - 0.4 + width / 2
        ax.bar(pos, mean, width, label=name)
        with_err = [j for j, e in enumerate(err) if e is not None]
        if with_err:
            ax.errorbar(pos[with_err], [mean[j] for j in with_err], yerr=[err[j] for j in with_err],
                        fmt="none", ecolor="black", capsize=2, elinewidth=1)
    ax.set_xticks(x, names)
    glue_only = all(t in SPECS for t in results.tasks_run(rows))
    ax.set(ylabel="dev score ×100", title="GLUE dev scores" if glue_only else "dev scores")
    ax.grid(axis="y", alpha=0.3)
    if series:
        ax.legend()
    return save(fig, path)
