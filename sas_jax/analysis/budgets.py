"""How a study's rows and their gaps move with the training budget: several `sas_jax.study`
folders (one per budget), one table and one figure.

    python -m sas_jax.analysis.budgets --study=runs/fair/b1 --study=runs/fair/b2 --out=runs/fair/budgets \
        --pair=sas_demo-electra_da_small --pair=sas_demo-deberta_small

Each study folder holds `study.json` (its `flops`) and `<row>/seed<k>/result.json` per finished run
(the folder `--out` of the study, or a copy of its small files). For every row, budget and figure
(each downstream task's dev score, the held-out `[MASK]`ed MLM loss) it writes the mean ± sd over
seeds; for each row, the change from the smallest budget to each larger one on the seeds both
have; and for each `--pair` A-B, the paired difference at each budget and pooled over the budgets
(one pair per budget and seed: a pooled test assumes the gap does not depend on the budget, which
the per-budget rows show). Paired tests as the study's own (`analysis.stats`: two-sided t-test,
bootstrap of the mean difference). Writes `budgets.md`, `budgets.json` and `budgets.png` in --out.
"""
from __future__ import annotations

import glob
import json
import os
import sys

from sas_jax import cli, files, study
from sas_jax.analysis import stats
from sas_jax.analysis.plots import pyplot, save
from sas_jax.errors import UserError

MLM = "held-out MLM loss"


def load_study(folder: str) -> tuple:
    """(budget FLOPs, {row: {seed: {figure: value}}}) of one study folder; figures are each
    downstream task's score and `MLM` (absent for a row that did not pre-train)."""
    meta_path = os.path.join(folder, "study.json")
    if not os.path.isfile(meta_path):
        raise UserError(f"--study={folder} has no study.json; give the --out folder of a sas_jax.study run")
    with open(meta_path) as f:
        budget = float(json.load(f)["flops"])
    runs: dict = {}
    for path in sorted(glob.glob(os.path.join(folder, "*", "seed*", "result.json"))):
        with open(path) as f:
            r = json.load(f)
        if r.get("status") != "done":
            continue
        figures = {task: float(d["score"]) for task, d in study.downstream_scores(r).items() if task is not None}
        if r.get("mlm_loss") is not None:
            figures[MLM] = float(r["mlm_loss"])
        runs.setdefault(r["row"], {})[int(r["seed"])] = figures
    if not runs:
        raise UserError(f"--study={folder} has no finished run (<row>/seed<k>/result.json); "
                        "wait for the study or give another folder")
    return budget, runs


def _values(runs: dict, row: str, figure: str, seeds) -> list:
    return [runs[row][s][figure] for s in seeds]


def _seeds(runs: dict, row: str, figure: str) -> list:
    return sorted(s for s, figs in runs.get(row, {}).items() if figure in figs)


def _paired(a: list, b: list) -> dict:
    t, boot = stats.paired_t_test(a, b), stats.paired_bootstrap(a, b)
    return {"n": t["n"], "diff": t["mean_diff"], "t": t["t"], "df": t["df"], "p": t["p"],
            "low": boot["low"], "high": boot["high"], "note": t["note"] or boot["note"]}


def summarize(studies: list, pairs: list) -> dict:
    """`studies`: [(budget, runs)] as `load_study` returns them; `pairs`: [(row A, row B)].
    {budgets, figures, rows: {row: {figure: {budget: mean_sd}}}, changes: {row: {figure: {budget:
    paired test against the smallest budget}}}, pairs: [{a, b, figure, per_budget: {budget: test},
    pooled: test}]} (budgets as their repr, so the dict is JSON)."""
    studies = sorted(studies, key=lambda s: s[0])
    budgets = [b for b, _ in studies]
    if len(set(budgets)) != len(budgets):
        raise UserError(f"two --study folders have the same budget ({budgets}); give one folder per budget")
    rows = list(dict.fromkeys(r for _, runs in studies for r in runs))
    for a, b in pairs:
        for r in (a, b):
            if r not in rows:
                raise UserError(f"--pair={a}-{b}: no row {r!r} in the studies (rows: {', '.join(rows)})")
    figures = list(dict.fromkeys(f for _, runs in studies for seeds in runs.values() for figs in seeds.values()
                                 for f in figs))
    out = {"budgets": [repr(b) for b in budgets], "figures": figures, "rows": {}, "changes": {}, "pairs": []}
    for row in rows:
        for fig in figures:
            per = {repr(b): stats.mean_sd(_values(runs, row, fig, _seeds(runs, row, fig)))
                   for b, runs in studies if _seeds(runs, row, fig)}
            if per:
                out["rows"].setdefault(row, {})[fig] = per
            base_budget, base = studies[0]
            for b, runs in studies[1:]:
                common = sorted(set(_seeds(base, row, fig)) & set(_seeds(runs, row, fig)))
                if common:
                    out["changes"].setdefault(row, {}).setdefault(fig, {})[repr(b)] = {
                        "from": repr(base_budget), "seeds": common,
                        **_paired(_values(runs, row, fig, common), _values(base, row, fig, common))}
    for a, b in pairs:
        for fig in figures:
            per_budget, pooled_a, pooled_b = {}, [], []
            for budget, runs in studies:
                common = sorted(set(_seeds(runs, a, fig)) & set(_seeds(runs, b, fig)))
                if not common:
                    continue
                va, vb = _values(runs, a, fig, common), _values(runs, b, fig, common)
                per_budget[repr(budget)] = {"seeds": common, **_paired(va, vb)}
                pooled_a += va
                pooled_b += vb
            if per_budget:
                out["pairs"].append({"a": a, "b": b, "figure": fig, "per_budget": per_budget,
                                     "pooled": _paired(pooled_a, pooled_b)})
    return out


def _ms(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    return f"{d['mean']:.3f}" + (f" ± {d['sd']:.3f}" if d.get("sd") is not None else " (1 seed)")


def _test(d: dict) -> str:
    if d.get("diff") is None:
        return "–"
    p = f"p {d['p']:.3g}" if d.get("p") is not None else (d.get("note") or "no test")
    ci = f", [{d['low']:+.4f}, {d['high']:+.4f}]" if d.get("low") is not None else ""
    return f"{d['diff']:+.4f} (n {d['n']}, {p}{ci})"


def format_markdown(s: dict) -> str:
    budgets = s["budgets"]
    head = "| row | figure | " + " | ".join(f"{float(b):.3g} FLOPs" for b in budgets) + " |"
    lines = ["Per row and budget, mean ± sd over seeds (sample sd):", "", head,
             "|" + "---|" * (2 + len(budgets))]
    for row, figs in s["rows"].items():
        for fig, per in figs.items():
            lines.append(f"| {row} | {fig} | " + " | ".join(_ms(per.get(b)) for b in budgets) + " |")
    lines += ["", ("Change with the budget, per row (larger − smallest budget on the seeds both have; "
                   "paired t-test and 95% bootstrap interval):"), "",
              "| row | figure | budget | change |", "|---|---|---|---|"]
    for row, figs in s["changes"].items():
        for fig, per in figs.items():
            for b, d in per.items():
                lines.append(f"| {row} | {fig} | {float(d['from']):.3g} → {float(b):.3g} | {_test(d)} |")
    lines += ["", "Gaps A − B per budget and pooled over the budgets (one pair per budget and seed):", "",
              "| A − B | figure | " + " | ".join(f"{float(b):.3g}" for b in budgets) + " | pooled |",
              "|" + "---|" * (3 + len(budgets))]
    for p in s["pairs"]:
        cells = [_test(p["per_budget"][b]) if b in p["per_budget"] else "–" for b in budgets]
        lines.append(f"| {p['a']} − {p['b']} | {p['figure']} | " + " | ".join(cells) + f" | {_test(p['pooled'])} |")
    return "\n".join(lines) + "\n"


def plot(s: dict, path: str) -> str:
    """One panel per figure: each row's mean ± sd (error bars) at each budget, the budgets evenly
    spaced and labelled, the rows side by side around each."""
    plt = pyplot()
    figs, budgets = s["figures"], s["budgets"]
    rows = list(s["rows"])
    fig, axes = plt.subplots(1, len(figs), figsize=(4.2 * len(figs), 4), squeeze=False)
    for ax, name in zip(axes[0], figs):
        for k, row in enumerate(rows):
            per = s["rows"][row].get(name, {})
            idx = [i for i, b in enumerate(budgets) if b in per]
            if not idx:
                continue
            xs = [i + 0.06 * (k - (len(rows) - 1) / 2) for i in idx]
            ys = [per[budgets[i]]["mean"] for i in idx]
            err = [per[budgets[i]]["sd"] or 0.0 for i in idx]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color=f"C{k % 10}", label=row)
        ax.set_xticks(range(len(budgets)), [f"{float(b):.3g}" for b in budgets])
        ax.set_xlim(-0.5, len(budgets) - 0.5)
        ax.set_xlabel("training FLOPs (paper convention)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def _pair(text: str) -> tuple:
    a, sep, b = text.partition("-")
    if not sep or not a or not b:
        raise UserError(f"--pair={text} is not ROW_A-ROW_B (e.g. --pair=sas_demo-electra_da_small)")
    return a, b


@cli.entry_point  # bad folders or pairs: one line `error: ...`, exit 2
def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m sas_jax.analysis.budgets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", action="append", required=True, help="a sas_jax.study --out folder (repeat per budget)")
    ap.add_argument("--pair", action="append", default=[], help="ROW_A-ROW_B: a gap to test per budget and pooled")
    ap.add_argument("--out", required=True, help="folder for budgets.md, budgets.json and budgets.png")
    a = ap.parse_args(argv)
    pairs = [_pair(p) for p in a.pair]
    files.check_dir(a.out, "--out")
    summary = summarize([load_study(folder) for folder in a.study], pairs)
    os.makedirs(a.out, exist_ok=True)
    text = format_markdown(summary)
    files.write_text(os.path.join(a.out, "budgets.md"), text)
    files.write_json(os.path.join(a.out, "budgets.json"), summary)
    plot(summary, os.path.join(a.out, "budgets.png"))
    print(text, end="")
    print(f"wrote {a.out}/budgets.md, budgets.json, budgets.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
