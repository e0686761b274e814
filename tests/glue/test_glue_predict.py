"""`glue predict`: the GLUE server's test files from a sweep's best runs (their kept weights; a run
without them is re-fine-tuned with its seed, to the same model), resuming; and tables/plots that
leave out tasks not run and n = 1 error bars."""
import csv
import json
import os
import re
import shutil
import zipfile

import glue_fixtures as gf
import numpy as np
import pytest

from sas_jax.analysis.plots import pyplot
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import plots, results, sweep
from sas_jax.glue import predict as predict_lib
from sas_jax.glue.tasks import SPECS

SWEPT = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "rte")  # QNLI left out: "not in the sweep"
LABELS = {"CoLA.tsv": {"0", "1"}, "SST-2.tsv": {"0", "1"}, "MRPC.tsv": {"0", "1"}, "QQP.tsv": {"0", "1"},
          "MNLI-m.tsv": set(gf.NLI), "MNLI-mm.tsv": set(gf.NLI), "AX.tsv": set(gf.NLI),
          "RTE.tsv": set(gf.QNLI), "WNLI.tsv": {"0"}}
TEST_FILES = {"CoLA.tsv": "CoLA/test.tsv", "SST-2.tsv": "SST-2/test.tsv", "MRPC.tsv": "MRPC/test.tsv",
              "STS-B.tsv": "STS-B/test.tsv", "QQP.tsv": "QQP/test.tsv", "MNLI-m.tsv": "MNLI/test_matched.tsv",
              "MNLI-mm.tsv": "MNLI/test_mismatched.tsv", "RTE.tsv": "RTE/test.tsv", "WNLI.tsv": "WNLI/test.tsv",
              "AX.tsv": "diagnostic/diagnostic.tsv"}
SERVER_FILES = ["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                "RTE.tsv", "WNLI.tsv", "AX.tsv"]


def quiet(*_):
    pass


def _tsv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def reversed_glue_dir(glue_dir, tmp_path_factory):
    """The fixtures with every test file's rows reversed: the test `index` column runs
    7, 6, ..., 0, so the order of the written files is the test file's, not sorted."""
    root = tmp_path_factory.mktemp("glue_rev") / "glue"
    shutil.copytree(glue_dir, root)
    for rel in TEST_FILES.values():
        rows = _tsv(root / rel)
        with open(root / rel, "w", newline="") as f:
            csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None,
                       lineterminator="\n").writerows([rows[0], *rows[:0:-1]])
    return root


@pytest.fixture(scope="module")
def predicted(prepared_corpus, reversed_glue_dir, tmp_path_factory):
    """A tiny 7-task sweep (random encoder, 1 epoch, 1 seed, kept weights) and its `predict`."""
    pre = gf.random_encoder(prepared_corpus)
    root = tmp_path_factory.mktemp("predict")
    sweep_dir, out = str(root / "sweep"), str(root / "submission")
    sweep.run_sweep({}, sweep_dir, tasks=",".join(SWEPT), glue_dir=str(reversed_glue_dir), config="glue:tiny",
                    overrides=["num_epochs=1", "data.skip_bad_rows=true"],  # QQP's broken row, as the real one
                    pretrained=pre, log=quiet)
    summary = predict_lib.predict(sweep_dir, out, glue_dir=str(reversed_glue_dir), pretrained=pre, log=quiet)
    return {"sweep": sweep_dir, "out": out, "summary": summary, "pre": pre, "glue": reversed_glue_dir}


@pytest.mark.slow  # `predicted`: a 7-task sweep and its prediction, end to end
def test_predict_writes_the_glue_server_files(predicted):
    out, summary, glue = predicted["out"], predicted["summary"], predicted["glue"]
    assert sorted(os.listdir(out)) == sorted(SERVER_FILES + ["submission.zip", "predict.json"])
    assert summary["files"] == SERVER_FILES
    assert "not in the sweep, skipped: QNLI" in summary["notes"]
    for name, rel in TEST_FILES.items():
        rows = _tsv(os.path.join(out, name))
        test = _tsv(glue / rel)
        id_col = test[0].index("id" if name == "QQP.tsv" else "index")
        assert rows[0] == ["index", "prediction"], name
        assert [r[0] for r in rows[1:]] == [t[id_col] for t in test[1:]], name  # same rows, same order
        assert [r[0] for r in rows[1:]] == [str(i) for i in reversed(range(len(test) - 1))], name
        values = [r[1] for r in rows[1:]]
        if name == "STS-B.tsv":
            assert all(re.fullmatch(r"\d\.\d{3}", v) and 0.0 <= float(v) <= 5.0 for v in values), values
        else:
            assert set(values) <= LABELS[name], (name, values)
    assert len(_tsv(os.path.join(out, "AX.tsv"))) == 1 + gf.EXTRA_TEST["AX"][1]
    with zipfile.ZipFile(summary["zip"]) as z:
        assert z.namelist() == SERVER_FILES  # flat, no folder
        assert z.read("RTE.tsv") == open(os.path.join(out, "RTE.tsv"), "rb").read()
    state = json.load(open(os.path.join(out, "predict.json")))
    for t in SWEPT:  # predicted by the weights the sweep kept
        assert state["tasks"][t]["weights"] == "kept" and "note" not in state["tasks"][t], t
    assert state["tasks"]["mnli"]["files"] == ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"]


@pytest.mark.slow  # `predicted`: a 7-task sweep and its prediction, end to end
def test_rerun_skips_finished_tasks(predicted, monkeypatch):
    out = predicted["out"]
    stamps = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in SERVER_FILES if f != "WNLI.tsv"}
    calls = []
    real = finetune_lib.finetune

    def counting(config, **kw):
        calls.append(config.task)
        return real(config, **kw)

    monkeypatch.setattr(finetune_lib, "finetune", counting)
    kw = dict(glue_dir=str(predicted["glue"]), pretrained=predicted["pre"], log=quiet)
    predict_lib.predict(predicted["sweep"], out, **kw)
    assert calls == []
    assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in stamps} == stamps
    rte = open(os.path.join(out, "RTE.tsv")).read()
    os.remove(os.path.join(out, "RTE.tsv"))  # as if killed before RTE was written
    # ... by a sweep that kept no weights of RTE (--keep=none, or an older sweep): fine-tuned again
    sweep_dir = os.path.join(os.path.dirname(out), "sweep_without_rte_weights")
    shutil.copytree(predicted["sweep"], sweep_dir,
                    ignore=lambda d, names: ["rte"] if os.path.basename(d) == "models" else [])
    summary = predict_lib.predict(sweep_dir, out, **kw)
    assert calls == ["rte"] and summary["files"] == SERVER_FILES
    assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in stamps if f != "RTE.tsv"} == \
        {f: t for f, t in stamps.items() if f != "RTE.tsv"}
    entry = json.load(open(os.path.join(out, "predict.json")))["tasks"]["rte"]
    assert entry["weights"] == "refinetuned" and "note" not in entry
    assert entry["refinetuned_score"] == entry["sweep_score"]  # the same seed gives the same model (CPU: bit-exact)
    assert open(os.path.join(out, "RTE.tsv")).read() == rte  # and the kept model's predictions


def test_best_run_is_the_best_seed_of_the_tables_grid_point():
    def run(lr, seed, score):
        return {"task": "rte", "learning_rate": lr, "batch_size": 32, "seed": seed, "score": score,
                "dev": {"accuracy": score}}
    runs = [run(1e-4, 0, 0.9), run(1e-4, 1, 0.5), run(5e-5, 0, 0.7), run(5e-5, 1, 0.72), run(5e-5, 2, 0.72)]
    best = predict_lib.best_run(runs)  # the best dev score (not the table's grid point, 5e-5: mean 0.713 > 0.7)
    assert (best["learning_rate"], best["seed"]) == (1e-4, 0)
    best = predict_lib.best_run(runs[1:])  # a tie → the lowest seed
    assert (best["learning_rate"], best["seed"]) == (5e-5, 1)
    assert predict_lib.best_run([]) is None
    assert predict_lib.format_prediction(SPECS["stsb"], 5.7) == "5.000"
    assert predict_lib.format_prediction(SPECS["stsb"], -0.2) == "0.000"
    assert predict_lib.format_prediction(SPECS["mnli"], 2) == "contradiction"


@pytest.mark.slow  # `predicted`: a 7-task sweep and its prediction, end to end
def test_predict_bad_input_is_one_error_line(predicted, tmp_path, capsys):
    glue = tmp_path / "glue"
    shutil.copytree(predicted["glue"], glue)
    os.remove(glue / "MNLI" / "test_mismatched.tsv")
    nokeep = tmp_path / "nokeep"  # a sweep without kept weights: predict must load its encoder again
    shutil.copytree(predicted["sweep"], nokeep, ignore=shutil.ignore_patterns("models"))
    cases = [
        (["predict", f"--sweep_dir={predicted['sweep']}", f"--glue_dir={glue}", f"--out={tmp_path}/a"],
         r"GLUE test file .*MNLI/test_mismatched.tsv not found: the sweep has MNLI runs"),
        (["predict", f"--sweep_dir={nokeep}", f"--glue_dir={predicted['glue']}", f"--out={tmp_path}/b"],
         r"fine-tuned \{'kind': 'random', 'seed': 0\}, which predict cannot load again"),
        (["predict", f"--sweep_dir={tmp_path}/none", f"--glue_dir={glue}", f"--out={tmp_path}/c"],
         r"none is not a sweep directory"),
        (["predict", f"--sweep_dir={predicted['sweep']}", f"--out={tmp_path}/d"], r"exactly one GLUE source"),
        (["predict", f"--sweep_dir={predicted['sweep']}", f"--glue_dir={glue}", "--tasks=qnli",
          f"--out={tmp_path}/e"], r"has no finished runs of QNLI"),
    ]
    for argv, pattern in cases:
        assert sweep.main(argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert not os.path.exists(f"{tmp_path}/a")  # refused before anything is written


# ----------------------------------------------------------------------------- tables and plots
def _fake_run(out, task, seed, score):
    run = {"status": "done", "task": task, "learning_rate": 1e-4, "batch_size": 32, "seed": seed,
           "score": score, "dev": {"score": score, "accuracy": score, "mcc": score}}
    path = results.run_file(out, task, 1e-4, 32, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump(run, open(path, "w"))


def test_table_and_plot_leave_out_tasks_not_run_and_n1_error_bars(tmp_path, monkeypatch):
    out = str(tmp_path / "sweep")
    for seed, score in enumerate((0.4, 0.5, 0.6)):
        _fake_run(out, "cola", seed, score)
    _fake_run(out, "rte", 0, 0.7)  # one seed: no spread to draw
    row = results.sweep_row("tiny", out)
    paths = results.write_table([row], str(tmp_path / "t"))
    md = open(paths["md"]).read().splitlines()
    assert md[:3] == ["| Model | CoLA | RTE |", "|---|---|---|", "| tiny | 50.0 ± 10.0 | 70.0 |"]
    assert "Not run: SST-2, MRPC, STS-B, QQP, MNLI, QNLI; no GLUE score." in md[-1]
    assert "MRPC F1" not in "\n".join(md)  # no details table of tasks not run
    table = list(csv.DictReader(open(paths["csv"])))
    assert list(table[0]) == ["model", "CoLA", "CoLA_std", "CoLA_n", "RTE", "RTE_std", "RTE_n", "CoLA_mcc",
                              "RTE_accuracy"]
    assert table[0]["RTE_std"] == "" and table[0]["CoLA_std"] == "10.00"
    assert json.load(open(paths["json"]))["columns"] == ["CoLA", "RTE"]

    names, series = plots.task_score_bars([row])
    assert names == ["CoLA", "RTE"]
    assert series == [("tiny", [pytest.approx(50.0), pytest.approx(70.0)], [pytest.approx(10.0), None])]
    figs = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figs.append(fig) or path)
    plots.plot_task_scores([row], str(tmp_path / "t.png"))
    ax = figs[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CoLA", "RTE"]
    bars = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
    assert len(bars) == 1 and [p.get_height() for p in bars[0]] == pytest.approx([50.0, 70.0])
    assert bars[0].errorbar is None
    errorbars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(errorbars) == 1  # CoLA's only: RTE (n = 1) has none, not a ±0 bar
    segments = errorbars[0].lines[2][0].get_segments()
    assert len(segments) == 1 and np.allclose(segments[0], [[segments[0][0][0], 40.0], [segments[0][0][0], 60.0]])
    pyplot().close(figs[0])
