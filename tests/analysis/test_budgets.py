"""`sas_jax.analysis.budgets`: rows and gaps of several study folders (one per budget)."""
import json

import numpy as np
import pytest

from sas_jax.analysis import budgets, stats
from sas_jax.errors import UserError

# {budget: {row: {seed: (word order, held-out MLM or None)}}}
RUNS = {
    1e12: {"sas": {0: (0.60, 5.0), 1: (0.58, 5.2), 2: (0.62, 5.1)},
           "electra": {0: (0.55, 5.8), 1: (0.56, 5.7), 2: (0.54, 5.9)},
           "random": {0: (0.50, None), 1: (0.51, None)}},
    2e12: {"sas": {0: (0.64, 4.8), 1: (0.61, 4.9)},
           "electra": {0: (0.57, 5.5), 1: (0.59, 5.6)},
           "random": {0: (0.50, None), 1: (0.51, None)}},
}


def write_study(folder, budget, rows, unfinished=()):
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({"flops": budget, "rows": list(rows)}))
    for row, seeds in rows.items():
        for seed, (score, mlm) in seeds.items():
            d = folder / row / f"seed{seed}"
            d.mkdir(parents=True)
            status = "running" if (row, seed) in unfinished else "done"
            (d / "result.json").write_text(json.dumps({
                "status": status, "row": row, "seed": seed, "mlm_loss": mlm,
                "downstream": {"word_order": {"score": score, "metric": "accuracy"}}}))
    return str(folder)


@pytest.fixture
def folders(tmp_path):
    # an unfinished run is left out, as the study would leave it
    return [write_study(tmp_path / "b1", 1e12, RUNS[1e12]),
            write_study(tmp_path / "b2", 2e12, {**RUNS[2e12], "sas": {**RUNS[2e12]["sas"], 2: (0.99, 1.0)}},
                        unfinished={("sas", 2)})]


def test_rows_changes_and_pooled_gaps(folders):
    s = budgets.summarize([budgets.load_study(f) for f in reversed(folders)], [("sas", "electra")])
    assert s["budgets"] == ["1000000000000.0", "2000000000000.0"]  # sorted by budget, whatever the order given
    assert s["figures"] == ["word_order", budgets.MLM]
    sas = s["rows"]["sas"]["word_order"]
    assert sas["1000000000000.0"]["mean"] == pytest.approx(0.60) and sas["1000000000000.0"]["n"] == 3
    assert sas["2000000000000.0"]["mean"] == pytest.approx(0.625) and sas["2000000000000.0"]["n"] == 2
    assert budgets.MLM not in s["rows"]["random"]  # no pre-training, no held-out loss
    change = s["changes"]["sas"][budgets.MLM]["2000000000000.0"]
    assert change["seeds"] == [0, 1] and change["diff"] == pytest.approx(((4.8 - 5.0) + (4.9 - 5.2)) / 2)
    assert s["changes"]["random"]["word_order"]["2000000000000.0"]["diff"] == pytest.approx(0.0)

    (pair,) = [p for p in s["pairs"] if p["figure"] == "word_order"]
    assert pair["per_budget"]["1000000000000.0"]["diff"] == pytest.approx(np.mean([0.05, 0.02, 0.08]))
    assert pair["per_budget"]["2000000000000.0"]["seeds"] == [0, 1]
    a, b = [0.60, 0.58, 0.62, 0.64, 0.61], [0.55, 0.56, 0.54, 0.57, 0.59]
    want = stats.paired_t_test(a, b)
    assert pair["pooled"]["n"] == 5 and pair["pooled"]["diff"] == pytest.approx(want["mean_diff"])
    assert pair["pooled"]["p"] == pytest.approx(want["p"]) and 0 < pair["pooled"]["p"] < 0.05
    assert pair["pooled"]["low"] < pair["pooled"]["diff"] < pair["pooled"]["high"]


def test_cli_writes_the_table_the_json_and_the_figure(folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert budgets.main([f"--study={folders[0]}", f"--study={folders[1]}", "--pair=sas-electra",
                         f"--out={out}"]) == 0
    text = (out / "budgets.md").read_text()
    assert "| sas | word_order | 0.600 ± 0.020 | 0.625 ± 0.021 |" in text
    assert "| sas − electra | word_order | +0.0500 (n 3" in text
    assert json.loads((out / "budgets.json").read_text())["pairs"][0]["pooled"]["n"] == 5
    assert (out / "budgets.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, wants", [
    (["--pair=sas"], "--pair=sas is not ROW_A-ROW_B"),
    (["--pair=sas-bert"], "no row 'bert' in the studies"),
    (["--same"], "the same budget"),
    (["--missing"], "has no study.json"),
    (["--empty"], "has no finished run"),
])
def test_bad_input_is_one_line_and_writes_nothing(folders, tmp_path, args, wants, capsys):
    studies = [f"--study={f}" for f in folders]
    if args == ["--same"]:
        studies, args = [f"--study={folders[0]}", f"--study={write_study(tmp_path / 'b1b', 1e12, RUNS[1e12])}"], []
    elif args == ["--missing"]:
        studies, args = [f"--study={tmp_path / 'nope'}"], []
    elif args == ["--empty"]:
        studies, args = [f"--study={write_study(tmp_path / 'e', 1e12, {})}"], []
    out = tmp_path / "out"
    assert budgets.main([*studies, *args, f"--out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and wants in err[0], err
    assert not out.exists()


def test_summarize_refuses_direct_calls_with_unknown_rows(folders):
    with pytest.raises(UserError, match="no row 'x'"):
        budgets.summarize([budgets.load_study(folders[0])], [("x", "sas")])
