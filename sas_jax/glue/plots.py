"""Figures (matplotlib, Agg backend): GLUE vs pre-training steps, task scores,
pre-training curves and the RTD heat map. Each function writes one PNG and returns
its path; the notebooks and the sweep CLI call these, nothing else draws.
"""
from __future__ import annotations

import os

import numpy as np

from sas_jax.glue.tasks import SPECS, TASKS

# Pre-training panels: (title, tags tried in order).
PRETRAINING_PANELS = (
    ("MLM loss", ("train/mlm_loss",)),
    ("RTD loss", ("train/rtd_loss",)),
    ("MLM accuracy", ("train/mlm_accuracy",)),
    ("RTD accuracy", ("train/rtd_accuracy",)),
    ("RTD weight λ", ("sas/rtd_lambda",)),
    ("replaced-token rate", ("sas/replaced_rate",)),
    ("sample hit rate", ("sas/hit_rate",)),
    ("learning rate", ("opt/learning_rate",)),
)


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_glue_vs_steps(curves: dict, path: str) -> str:
    """GLUE score and MNLI-m accuracy (dev, ×100) vs pre-training steps, one line per
    model (the paper's Figures 3 and 4). `curves`: {label: [point, ...]} with points
    from `sweep.run_curve` ({"step", "glue", "mean_score", "mnli_m"})."""
    plt = _pyplot()
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
    return _save(fig, path)


def plot_task_scores(rows: list, path: str) -> str:
    """Grouped bars: the eight task scores and GLUE (×100) of each table row, with std bars."""
    plt = _pyplot()
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
    return _save(fig, path)


def plot_pretraining_curves(runs: dict, path: str, panels=PRETRAINING_PANELS, smooth: int = 1,
                            max_points: int | None = None) -> str:
    """Losses, accuracies, λ and replaced-token rate vs step; `runs`: {label: read_scalars(...)}.

    `smooth` > 1 plots a moving average of that many logged points; `max_points`
    thins each curve to at most that many points (long runs on small machines).
    """
    plt = _pyplot()
    shown = [(title, tags) for title, tags in panels if any(t in s for s in runs.values() for t in tags)]
    cols = 2
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.8 * rows), squeeze=False)
    for ax, (title, tags) in zip(axes.ravel(), shown):
        for label, scalars in runs.items():
            tag = next((t for t in tags if t in scalars), None)
            if tag is None:
                continue
            steps, values = scalars[tag]
            if smooth > 1 and len(values) >= smooth:
                values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
                steps = steps[smooth - 1:]
            if max_points and len(values) > max_points:
                keep = np.linspace(0, len(values) - 1, max_points).round().astype(int)
                steps, values = steps[keep], values[keep]
            ax.plot(steps, values, label=label)
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_rtd_heatmap(pieces: list, probs, replaced, path: str, title: str = "") -> str:
    """P(replaced) per token as a one-row heat map; truly replaced tokens are boxed."""
    plt = _pyplot()
    probs = np.asarray(probs, np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(pieces)), 1.9))
    im = ax.imshow(probs[None, :], cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(np.arange(len(pieces)), pieces, rotation=60, ha="right", fontsize=9)
    ax.set_yticks([])
    for i, (p, r) in enumerate(zip(probs, replaced)):
        ax.text(i, 0, f"{p:.2f}", ha="center", va="center", fontsize=7,
                color="white" if p > 0.6 else "black")
        if r:
            ax.add_patch(plt.Rectangle((i - 0.5, -0.5), 1, 1, fill=False, edgecolor="blue", linewidth=2))
    ax.set_title(title or "RTD head: P(replaced) (blue boxes: replaced tokens)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    return _save(fig, path)


def plot_fill_mask(predictions: list, path: str) -> str:
    """Horizontal bars of the top-k pieces at each [MASK] (from `probe.fill_mask`)."""
    plt = _pyplot()
    n = max(len(predictions), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.6), squeeze=False)
    for ax, pred in zip(axes.ravel(), predictions):
        pieces = [p for p, _ in pred["top"]][::-1]
        probs = [q for _, q in pred["top"]][::-1]
        ax.barh(np.arange(len(pieces)), probs)
        ax.set_yticks(np.arange(len(pieces)), pieces)
        ax.set(title=f"[MASK] at {pred['position']}", xlabel="probability")
    fig.tight_layout()
    return _save(fig, path)
