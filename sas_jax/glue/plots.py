"""GLUE figures (matplotlib, Agg backend): GLUE vs pre-training steps and the task
scores of a table. Each function writes one PNG and returns its path; the sweep CLI
and `notebooks/evaluate.ipynb` call these. Pre-training figures: `sas_jax.analysis.plots`.
"""
from __future__ import annotations

import numpy as np

from sas_jax.analysis.plots import pyplot, save
from sas_jax.glue.tasks import SPECS, TASKS


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


def plot_task_scores(rows: list, path: str) -> str:
    """Grouped bars: the eight task scores and GLUE (×100) of each table row, with std bars."""
    plt = pyplot()
    names = [SPECS[t].title for t in TASKS] + ["GLUE"]
    x = np.arange(len(names))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for i, r in enumerate(rows):
        entries = [r["tasks"].get(t) or {} for t in TASKS] + [r["glue"]]
        mean = [np.nan if e.get("mean") is None else 100 * e["mean"] for e in entries]  # no bar if missing
        err = [100 * (e.get("std") or 0.0) for e in entries]
        ax.bar(x + i * width - 0.4 + width / 2, mean, width, yerr=err, label=r["name"], capsize=2)
    ax.set_xticks(x, names)
    ax.set(ylabel="dev score ×100", title="GLUE dev scores")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return save(fig, path)
