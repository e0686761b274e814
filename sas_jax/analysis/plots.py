"""Figures of a pre-training run (matplotlib, Agg backend): its curves, the RTD heat
map and fill-mask bars. Each function writes one PNG and returns its path; the
notebooks call these. `pyplot()` and `save()` are shared with `sas_jax.glue.plots`.
"""
from __future__ import annotations

import os

import numpy as np

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


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save(fig, path: str) -> str:
    """Writes `fig` to `path` (folders created), closes it, returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def plot_pretraining_curves(runs: dict, path: str, panels=PRETRAINING_PANELS, smooth: int = 1,
                            max_points: int | None = None) -> str:
    """Losses, accuracies, λ and replaced-token rate vs step; `runs`: {label: logs.read_scalars(...)}.

    `smooth` > 1 plots a moving average of that many logged points; `max_points`
    thins each curve to at most that many points (long runs on small machines).
    """
    plt = pyplot()
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
    return save(fig, path)


def plot_rtd_heatmap(pieces: list, probs, replaced, path: str, title: str = "") -> str:
    """P(replaced) per token as a one-row heat map; truly replaced tokens are boxed."""
    plt = pyplot()
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
    return save(fig, path)


def plot_fill_mask(predictions: list, path: str) -> str:
    """Horizontal bars of the top-k pieces at each [MASK] (from `probe.fill_mask`)."""
    plt = pyplot()
    n = max(len(predictions), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.6), squeeze=False)
    for ax, pred in zip(axes.ravel(), predictions):
        pieces = [p for p, _ in pred["top"]][::-1]
        probs = [q for _, q in pred["top"]][::-1]
        ax.barh(np.arange(len(pieces)), probs)
        ax.set_yticks(np.arange(len(pieces)), pieces)
        ax.set(title=f"[MASK] at {pred['position']}", xlabel="probability")
    fig.tight_layout()
    return save(fig, path)
