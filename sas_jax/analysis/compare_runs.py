"""Held-out [MASK]ed MLM loss against training FLOPs for finished pre-training runs, one figure.

    python -m sas_jax.analysis.compare_runs --out=curves.png \
        --run="SAS-DA, mlm cold start=runs/a" --run="BERT-DA=runs/b/seed0+runs/b/seed1"

Each label names one workdir or several joined by `+` (seeds: drawn faint, their mean bold).
The FLOPs of a step are the paper convention (`sas_jax.flops.train_flops` of the run's own
`config.json`), so rows with different step costs line up by compute, not by step.
"""
from __future__ import annotations

import json
import os
import sys

import ml_collections

from sas_jax import cli, flops, metrics_log
from sas_jax.analysis import study_plots
from sas_jax.errors import UserError


def flops_per_step(workdir: str) -> float:
    if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise UserError(f"{workdir} has no config.json; give the workdir of a pre-training run")
    with open(os.path.join(workdir, "config.json")) as f:
        raw = json.load(f)
    vocab = raw.pop("resolved", {}).get("vocab_size")
    config = ml_collections.ConfigDict(raw)
    config.num_train_steps = 1
    return float(flops.train_flops(config, vocab_size=vocab))


def held_out_curve(workdir: str) -> tuple:
    """([train FLOPs], [eval/mlm_loss], last eval/unigram_ce) from the run's metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise UserError(f"{workdir} has no metrics.jsonl; give the workdir of a finished pre-training run")
    per_step = flops_per_step(workdir)
    points, unigram_ce = {}, None
    for d in metrics_log.read_records(path):
        if "eval/mlm_loss" in d:
            points[d["step"]] = d["eval/mlm_loss"]
            unigram_ce = d.get("eval/unigram_ce", unigram_ce)
    steps = sorted(points)
    return [s * per_step for s in steps], [points[s] for s in steps], unigram_ce


def plot(curves: dict, path: str, *, unigram_ce: float | None, title: str = "") -> str:
    """One line per label (seeds faint, their mean bold); the unigram cross-entropy of the
    held-out positions (a model that ignores context) as the dashed bar."""
    return study_plots.plot_held_out_vs_flops(
        curves, path, unigram_entropy=unigram_ce, title=title or "Held-out MLM loss against training FLOPs",
        reference_label="unigram cross-entropy at these positions")


@cli.entry_point  # bad arguments or workdirs: one line `error: ...`, exit 2
def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m sas_jax.analysis.compare_runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="label=workdir[+workdir...] (repeat per line)")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    curves, reference = {}, None
    for item in args.run:
        label, sep, dirs = item.rpartition("=")
        if not sep or not dirs or not label:
            raise UserError(f"--run {item!r} is not label=workdir[+workdir...]")
        curves[label.strip()] = []
        for d in dirs.split("+"):
            x, y, ce = held_out_curve(d.strip())
            curves[label.strip()].append((x, y))
            reference = ce if ce is not None else reference
    plot(curves, args.out, unigram_ce=reference, title=args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
