"""Figures of `python -m sas_jax.study` (matplotlib, Agg): held-out MLM loss against
training FLOPs, and the downstream score per row. Each function writes one PNG and
returns its path.
"""
from __future__ import annotations

import numpy as np

from sas_jax.analysis.plots import pyplot, save


def mean_curve(curves: list) -> tuple:
    """(x, mean y) over the points every curve has (curves: [(x, y)], matched on x)."""
    common = set.intersection(*(set(np.asarray(x).tolist()) for x, _ in curves)) if curves else set()
    xs = np.array(sorted(common), dtype=float)
    ys = np.array([np.mean([float(np.asarray(y)[np.asarray(x) == v][-1]) for x, y in curves]) for v in xs])
    return xs, ys


def plot_held_out_vs_flops(curves: dict, path: str, *, unigram_entropy: float | None = None,
                           budget: float | None = None, title: str = "",
                           reference_label: str = "unigram entropy") -> str:
    """`curves`: {row: [(train FLOPs, held-out [MASK]ed MLM loss) per seed]}: one line per
    row (the mean over seeds; each seed faint when there are several), the unigram
    entropy (a model that ignores context) as a dashed reference."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (row, seeds) in enumerate(curves.items()):
        seeds = [(np.asarray(x, float), np.asarray(y, float)) for x, y in seeds if len(x)]
        if not seeds:
            continue
        color = f"C{k % 10}"
        if len(seeds) > 1:
            for x, y in seeds:
                ax.plot(x, y, color=color, alpha=0.25, linewidth=1)
        x, y = mean_curve(seeds)
        label = row if len(seeds) == 1 else f"{row} (mean of {len(seeds)} seeds)"
        ax.plot(x, y, color=color, marker="o", markersize=3, linewidth=1.8, label=label)
    if unigram_entropy is not None:
        ax.axhline(unigram_entropy, color="0.4", linestyle="--", linewidth=1,
                   label=f"{reference_label} {unigram_entropy:.2f} nats")
    if budget:
        ax.axvline(budget, color="0.7", linestyle=":", linewidth=1)
    ax.set_xlabel("training FLOPs (paper convention)")
    ax.set_ylabel("held-out [MASK]ed MLM loss (nats)")
    ax.set_title(title or "Held-out MLM loss at equal training FLOPs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def seed_offsets(n: int, width: float = 0.5) -> np.ndarray:
    """x offsets of `n` seed points around a bar's centre, evenly over `width` (0 for one), so
    equal scores of several seeds stay visible side by side."""
    return np.zeros(1) if n <= 1 else np.linspace(-width / 2, width / 2, n)


def plot_downstream(scores: dict, path: str, *, metric: str = "dev accuracy", chance: float | None = None,
                    title: str = "") -> str:
    """`scores`: {row: [score per seed]}: a bar per row at the mean with sample-sd error bars (two or
    more seeds; one seed: no bar of sd, "1 seed" in the label), each seed a point beside the others,
    the row's n under its name and a dashed line at `chance`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(scores) + 2), 4))
    names = list(scores)
    finite = [v for vs in scores.values() for v in vs if v is not None and np.isfinite(v)]
    if finite and min(finite) >= 0.0 and max(finite) <= 1.0:  # accuracies: the whole range
        ax.set_ylim(0.0, 1.12)
    labels = []
    for i, row in enumerate(names):
        vals = np.asarray([v for v in scores[row] if v is not None and np.isfinite(v)], float)
        labels.append(f"{row}\n(n={vals.size})")
        if not vals.size:
            continue
        mean = float(vals.mean())
        sd = float(np.std(vals, ddof=1)) if vals.size > 1 else None
        ax.bar(i, mean, width=0.7, color=f"C{i % 10}", alpha=0.6)
        if sd is not None:
            ax.errorbar(i, mean, yerr=sd, color="k", capsize=6, linewidth=1.2, zorder=4)
        ax.scatter(i + seed_offsets(vals.size), vals, color="k", s=14, zorder=5)
        ax.text(i, mean + (sd or 0.0), f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "\n1 seed: no sd"),
                ha="center", va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=1, label=f"chance {chance:g}")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)), labels)
    ax.set_ylabel(f"{metric} (mean ± sd over seeds; dots: seeds)")
    ax.set_title(title or "Downstream score at equal pre-training FLOPs")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)
