"""Sweeps: resume after a kill, refusing mixed checkpoints, the tables, the curve, the CLI."""
import csv
import json
import os
import re

import glue_fixtures as gf
import numpy as np
import pytest

from sas_jax.errors import UserError
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import results, sweep
from sas_jax.glue.tasks import SPECS, TASKS


def quiet(*_):
    pass


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no handler catches it."""


@pytest.mark.slow
def test_interrupted_sweep_resumes_and_skips_finished_runs(prepared_corpus, tmp_path, monkeypatch, glue_dir):
    pre = gf.random_encoder(prepared_corpus)
    out = str(tmp_path / "sweep")
    kw = dict(tasks="rte,sst2", glue_dir=str(glue_dir), config="glue:tiny", num_seeds=2, pretrained=pre, log=quiet,
              overrides=["num_epochs=1"])
    real = finetune_lib.finetune
    calls = []

    def dying(config, **k):
        calls.append((config.task, config.seed))
        if len(calls) == 3:
            # Killed mid-run: only a half-written temp file is left behind.
            os.makedirs(os.path.dirname(k["result_path"]), exist_ok=True)
            open(k["result_path"] + ".tmp.999", "w").write('{"status": "do')
            raise Killed
        return real(config, **k)

    monkeypatch.setattr(finetune_lib, "finetune", dying)
    with pytest.raises(Killed):
        sweep.run_sweep({}, out, **kw)
    finished = sorted(os.path.relpath(p, out) for p in _jsons(out))
    assert finished == ["runs/sst2/lr0.005_bs8_seed0.json", "runs/sst2/lr0.005_bs8_seed1.json"]
    stamps = {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in finished}

    calls.clear()
    row = sweep.run_sweep({}, out, **kw)  # the same command again
    assert calls == [("rte", 0), ("rte", 1)]  # only what was not finished
    assert {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in finished} == stamps
    assert set(row["tasks"]) == {"sst2", "rte"} and row["tasks"]["rte"]["n"] == 2
    calls.clear()
    sweep.run_sweep({}, out, **kw)
    assert calls == []
    for ext in ("md", "json", "csv"):
        assert os.path.getsize(os.path.join(out, f"glue_table.{ext}")) > 0
    run = json.load(open(os.path.join(out, "runs/rte/lr0.005_bs8_seed1.json")))
    assert run["status"] == "done" and run["init_from"] == {"kind": "random", "seed": 0}


def _jsons(out):
    for root, _, files in os.walk(os.path.join(out, "runs")):
        for f in files:
            if f.endswith(".json"):
                yield os.path.join(root, f)


def test_sweep_refuses_results_of_another_checkpoint(tmp_path, tiny_workdir, glue_dir):
    workdir = tiny_workdir
    out = str(tmp_path / "s")
    kw = dict(tasks="rte", glue_dir=str(glue_dir), config="glue:tiny", log=quiet, num_seeds=0)
    sweep.run_sweep({"checkpoint_dir": workdir, "step": 4}, out, **kw)
    with pytest.raises(UserError, match=r"holds results of .*'step': 4.*use another --out"):
        sweep.run_sweep({"checkpoint_dir": workdir, "step": 2}, out, **kw)
    with pytest.raises(UserError, match=r"exactly one GLUE source"):
        sweep.run_sweep({"checkpoint_dir": workdir}, out, tasks="rte", log=quiet)


# ----------------------------------------------------------------------------- tables
def _fake_run(out, task, lr, seed, score, **dev):
    dev = {"score": score, **dev}
    run = {"status": "done", "task": task, "learning_rate": lr, "batch_size": 32, "seed": seed,
           "score": score, "dev": dev}
    path = results.run_file(out, task, lr, 32, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump(run, open(path, "w"))


def _details(task, s):
    return {"cola": {"mcc": s}, "stsb": {"pearson": s + 0.01, "spearman": s - 0.01},
            "mrpc": {"accuracy": s, "f1": s + 0.05}, "qqp": {"accuracy": s, "f1": s - 0.05},
            "mnli": {"accuracy_matched": s + 0.01, "accuracy_mismatched": s - 0.01}}.get(task, {"accuracy": s})


def test_table_picks_the_best_grid_point_and_aggregates_runs(tmp_path):
    base = {t: 0.5 + 0.04 * i for i, t in enumerate(TASKS)}
    sweeps = []
    for run in range(3):  # three pre-training runs
        out = str(tmp_path / f"pre{run}")
        for t in TASKS:
            for seed in range(SPECS[t].num_seeds):
                good = base[t] + 0.01 * run + 0.002 * seed
                _fake_run(out, t, 1e-4, seed, good, **_details(t, good))
                _fake_run(out, t, 7.5e-5, seed, good - 0.05, **_details(t, good - 0.05))
        sweeps.append(out)
    open(os.path.join(sweeps[0], "runs", "rte", "lr0.0001_bs32_seed9.json"), "w").write("{trunc")  # ignored

    row = results.sweep_row("SAS-s0", sweeps[0])
    cola = row["tasks"]["cola"]
    seeds = [base["cola"] + 0.002 * s for s in range(5)]
    assert cola["learning_rate"] == 1e-4 and cola["n"] == 5
    assert cola["mean"] == pytest.approx(np.mean(seeds)) and cola["std"] == pytest.approx(np.std(seeds, ddof=1))
    assert row["tasks"]["mnli"]["n"] == 1 and row["tasks"]["mnli"]["details"]["accuracy_matched"] == pytest.approx(
        base["mnli"] + 0.01)
    assert row["glue"]["mean"] == pytest.approx(np.mean([row["tasks"][t]["mean"] for t in TASKS]))

    rows = sweep.build_table({"SAS": sweeps, "SAS-s0": sweeps[:1]}, str(tmp_path / "table" / "t1"))
    agg = rows[0]
    per_run = [results.sweep_row("x", d) for d in sweeps]
    glues = [r["glue"]["mean"] for r in per_run]
    assert agg["glue"]["mean"] == pytest.approx(np.mean(glues))
    assert agg["glue"]["std"] == pytest.approx(np.std(glues, ddof=1)) and agg["glue"]["n"] == 3
    assert agg["tasks"]["rte"]["std"] == pytest.approx(0.01)

    md = open(tmp_path / "table" / "t1.md").read()
    header = md.splitlines()[0]
    assert header == "| Model | CoLA | SST-2 | MRPC | STS-B | QQP | MNLI | QNLI | RTE | GLUE |"
    sas_line = md.splitlines()[2]
    assert sas_line.startswith("| SAS | ") and re.search(r"\| \d+\.\d ± 1\.0 \|", sas_line)
    assert f"{100 * np.mean(glues):.1f} ± {100 * np.std(glues, ddof=1):.1f}" in sas_line
    assert "MRPC F1" in md and "MNLI mm" in md and "pre-training runs" in md
    table = list(csv.DictReader(open(tmp_path / "table" / "t1.csv")))
    assert [r["model"] for r in table] == ["SAS", "SAS-s0"]
    assert float(table[0]["GLUE"]) == pytest.approx(100 * np.mean(glues), abs=0.01)
    assert float(table[1]["CoLA_n"]) == 5 and table[1]["GLUE_std"] == ""
    assert results.load_table(str(tmp_path / "table" / "t1.json"))[0]["name"] == "SAS"
    assert os.path.getsize(tmp_path / "table" / "t1.png") > 0


# ----------------------------------------------------------------------------- curve
@pytest.mark.slow
def test_curve_over_pretraining_steps_writes_the_plot(tiny_curve):
    out = tiny_curve
    curve = sweep.load_curve(out)
    assert [p["step"] for p in curve["points"]] == [2, 4]
    for p in curve["points"]:
        assert p["glue"] is None and set(p["tasks"]) == {"sst2", "mnli"}  # 2 of 8 tasks: no GLUE score
        assert 0.0 <= p["mnli_m"] <= 1.0 and p["mean_score"] == pytest.approx(np.mean(list(p["tasks"].values())))
    assert os.path.getsize(os.path.join(out, "glue_vs_steps.png")) > 1000
    assert open(os.path.join(out, "curve.csv")).readline().strip() == "step,glue,mean_score,mnli_m"
    assert os.path.isfile(os.path.join(out, "step_2", "glue_table.md"))
    run = json.load(open(os.path.join(out, "step_4", "runs", "mnli", "lr0.005_bs8_seed0.json")))
    assert run["init_from"]["step"] == 4 and "mlm_head/bias" in run["dropped_params"]
    assert set(run["dev"]) >= {"accuracy_matched", "accuracy_mismatched", "score", "matched", "mismatched"}


# ----------------------------------------------------------------------------- CLI
def test_cli_bad_input_is_one_error_line(tmp_path, capsys, tiny_workdir, glue_dir):
    workdir = tiny_workdir
    cases = [
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={glue_dir}", "--tasks=wnli", f"--out={tmp_path}/a"],
         r"unknown GLUE task 'wnli'"),
        (["sweep", f"--checkpoint_dir={tmp_path}/none", f"--glue_dir={glue_dir}", f"--out={tmp_path}/b"],
         r"checkpoint dir .*none not found"),
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={tmp_path}", "--tasks=cola",
          "--config=configs/glue.py:tiny", f"--out={tmp_path}/c"], r"CoLA/train.tsv not found"),
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={glue_dir}", "--tasks=rte", "--config.num_epohcs=1",
          f"--out={tmp_path}/e"], r"unknown config key 'num_epohcs' \(did you mean 'num_epochs'\?\)"),
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={glue_dir}", "--tasks=rte", "--config.num_epochs=few",
          f"--out={tmp_path}/e"], r"num_epochs='few' is not valid: num_epochs takes an int"),
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={glue_dir}", "--set", "num_epochs=1",
          f"--out={tmp_path}/e"], r"unknown argument '--set'; config overrides look like --config.KEY=VALUE"),
        (["sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={glue_dir}", "--config=glue:tiyn",
          f"--out={tmp_path}/e"], r"glue.py:tiyn,task=cola: unknown config variant 'tiyn' \(did you mean 'tiny'\?\)"),
        (["curve", f"--checkpoint_dir={workdir}", "--steps=3", f"--glue_dir={glue_dir}", f"--out={tmp_path}/d"],
         r"no checkpoint of step 3"),
        (["table", f"--model=X={tmp_path}/nothing", f"--out={tmp_path}/t"], r"not a sweep directory"),
    ]
    for argv, pattern in cases:
        assert sweep.main(argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert not os.path.exists(f"{tmp_path}/e")  # a bad config is refused before anything is written


def test_cli_sweep_and_table(tmp_path, capsys, tiny_workdir, glue_dir):
    workdir = tiny_workdir
    out = str(tmp_path / "sweep")
    argv = ["sweep", f"--checkpoint_dir={workdir}", "--step=2", f"--glue_dir={glue_dir}", "--tasks=rte",
            "--config=glue:tiny", "--seeds=1", "--config.num_epochs=1", f"--out={out}", "--name=tiny"]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Model | RTE |\n|---|---|\n" in printed  # only the task run: no empty columns
    assert re.search(r"^\| tiny \| \d+\.\d \|$", printed, re.M)
    run = json.load(open(os.path.join(out, "runs", "rte", "lr0.005_bs8_seed0.json")))
    assert run["num_epochs"] == 1 and run["init_from"]["step"] == 2 and run["config"]["init_from"]["step"] == 2
    assert sweep.main(["table", f"--model=tiny={out}", f"--out={tmp_path}/t"]) == 0
    # The test-set files of the sweep: its encoder is loaded again from the checkpoint (sweep.json).
    assert sweep.main(["predict", f"--sweep_dir={out}", f"--glue_dir={glue_dir}", f"--out={tmp_path}/sub"]) == 0
    assert sorted(os.listdir(tmp_path / "sub")) == ["RTE.tsv", "WNLI.tsv", "predict.json", "submission.zip"]
    assert "not in the sweep, skipped: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI" in capsys.readouterr().out
    state = json.load(open(tmp_path / "sub" / "predict.json"))  # from the weights the sweep kept
    assert state["tasks"]["rte"]["weights"] == "kept" and state["tasks"]["rte"]["sweep_score"] == run["score"]
    assert os.path.isfile(os.path.join(out, "models", "rte", "best", "params.npz"))
    assert os.path.getsize(tmp_path / "t.png") > 0 and (tmp_path / "t.md").read_text().startswith("| Model |")


@pytest.mark.slow
def test_cli_as_a_user_runs_it(tmp_path, cli):
    r = cli("-m", "sas_jax.glue", "sweep", f"--checkpoint_dir={tmp_path}/missing", f"--glue_dir={tmp_path}",
            f"--out={tmp_path}/o", timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "missing not found" in lines[0]


def test_cli_overrides_take_both_absl_forms():
    assert sweep.config_overrides(["--config.num_epochs", "3", "--config.opt.eps=1e-8", "--config.data.glue_dir="]) \
        == ["num_epochs=3", "opt.eps=1e-8", "data.glue_dir="]
    with pytest.raises(UserError, match=r"^--config.num_epochs needs a value: --config.num_epochs=<value>$"):
        sweep.config_overrides(["--config.num_epochs"])
    with pytest.raises(UserError, match=r"^unknown argument 'stray'; config overrides look like --config.KEY=VALUE"):
        sweep.config_overrides(["stray"])
