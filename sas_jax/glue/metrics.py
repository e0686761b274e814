"""GLUE metrics in plain numpy (checked against scipy / scikit-learn in the tests).

Reported per task (paper §6): CoLA Matthews correlation; STS-B mean of Pearson and
Spearman (both also reported); MRPC and QQP accuracy (F1 also reported); MNLI mean
of matched and mismatched accuracy; SST-2, QNLI, RTE accuracy. The best epoch is
chosen by `selection`: MCC for CoLA, Pearson for STS-B, accuracy otherwise (MNLI:
matched). GLUE score = mean of the eight reported scores.

A task given by files (`user_task`) records accuracy, F1 (of class 1 with two classes, else
macro) and MCC, or Pearson and Spearman; its task.json's `metric` is both the score and the
selection.

Degenerate inputs (a constant prediction) give a correlation of 0 rather than NaN,
so an early epoch that predicts one value never wins, and never breaks, selection.
"""
from __future__ import annotations

import numpy as np

from sas_jax.glue.tasks import TASKS, get_task


def accuracy(preds, labels) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float(np.mean(preds == labels)) if labels.size else 0.0


def f1_binary(preds, labels, positive: int = 1) -> float:
    """F1 of the positive class (scikit-learn's `f1_score` default); 0 when undefined."""
    p, y = np.asarray(preds) == positive, np.asarray(labels) == positive
    tp = float(np.sum(p & y))
    denom = float(np.sum(p) + np.sum(y))
    return 2.0 * tp / denom if denom else 0.0


def f1_macro(preds, labels) -> float:
    """Mean F1 over the classes in `labels` or `preds` (scikit-learn's average="macro")."""
    preds, labels = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    classes = np.unique(np.concatenate([labels, preds]))
    return float(np.mean([f1_binary(preds, labels, positive=c) for c in classes])) if classes.size else 0.0


def matthews_corrcoef(preds, labels) -> float:
    """Multi-class MCC (Gorodkin's R_K, as scikit-learn); 0 when undefined."""
    preds, labels = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    classes, inv = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    k, n = len(classes), labels.size
    y, p = inv[:n], inv[n:]
    conf = np.zeros((k, k), np.float64)
    np.add.at(conf, (y, p), 1.0)
    t, q = conf.sum(1), conf.sum(0)  # true and predicted counts per class
    c, s = np.trace(conf), float(n)
    cov_yp = c * s - t @ q
    cov_pp = s * s - q @ q
    cov_yy = s * s - t @ t
    denom = np.sqrt(cov_pp * cov_yy)
    return float(cov_yp / denom) if denom > 0 else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc @ xc) * (yc @ yc))
    return float(np.clip((xc @ yc) / denom, -1.0, 1.0)) if denom > 0 else 0.0


def rankdata(x) -> np.ndarray:
    """1-based ranks, ties get their average rank (scipy's `rankdata` default)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    ends = np.r_[first[1:], len(xs)]
    avg = (first + ends + 1) / 2.0  # mean of ranks first+1 .. end
    ranks = np.empty(len(x), np.float64)
    ranks[order] = avg[group]
    return ranks


def spearman(x, y) -> float:
    return pearson(rankdata(x), rankdata(y))


def task_metrics(task: str, preds, labels) -> dict:
    """Every metric of one split of `task`, plus `score` (reported) and `selection`.

    For MNLI this is one dev split; `combine_mnli` makes the reported score.
    """
    spec = get_task(task)
    if spec.metric:  # a task given by files: every metric of its kind; its own one is the score
        if spec.is_regression:
            out = {"pearson": pearson(preds, labels), "spearman": spearman(preds, labels)}
        else:
            f1 = f1_binary(preds, labels) if spec.num_labels == 2 else f1_macro(preds, labels)
            out = {"accuracy": accuracy(preds, labels), "f1": f1, "mcc": matthews_corrcoef(preds, labels)}
        out["score"] = out["selection"] = out[spec.metric]
        return out
    if spec.is_regression:
        pr, sp = pearson(preds, labels), spearman(preds, labels)
        out = {"pearson": pr, "spearman": sp, "corr": (pr + sp) / 2}
        out["score"] = out["corr"]
    elif spec.name == "cola":
        out = {"mcc": matthews_corrcoef(preds, labels), "accuracy": accuracy(preds, labels)}
        out["score"] = out["mcc"]
    else:
        out = {"accuracy": accuracy(preds, labels)}
        if spec.name in ("mrpc", "qqp"):
            out["f1"] = f1_binary(preds, labels)
        out["score"] = out["accuracy"]
    out["selection"] = out[spec.selection]
    return out


def combine_mnli(matched: dict, mismatched: dict) -> dict:
    """MNLI's reported metrics: matched / mismatched accuracy and their mean (`score`)."""
    m, mm = matched["accuracy"], mismatched["accuracy"]
    return {"accuracy_matched": m, "accuracy_mismatched": mm, "score": (m + mm) / 2,
            "selection": m}


def glue_score(scores: dict) -> float | None:
    """Mean of the eight reported task scores; None unless all eight are present."""
    if any(scores.get(t) is None for t in TASKS):
        return None
    return float(np.mean([scores[t] for t in TASKS]))


def mean_std(values) -> tuple:
    """(mean, sample std with ddof=1 (0 for one value), n) of `values`."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not v.size:
        return None, None, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)
