"""`benchmarks/gpu_check.py` cannot rot: its phases run on the CPU at the tiny shapes.

The orchestration test runs the wheels, env and the summary alone; the end-to-end one every
phase in this process (`--tiny --in_process`: checks, step_throughput, hf_baseline eager,
a 16-step training run with held-out evaluation and a 5-step profile), and checks the
step_throughput report as tests/test_benchmarks.py defines it.
"""
import json

import pytest
from conftest import load_script
from test_benchmarks import check_step_report


@pytest.mark.slow
def test_gpu_check_orchestration(tmp_path, capsys):
    check = load_script("gpu_check")
    assert check.ensure_wheels() == []  # everything importable here: nothing installed
    summary = check.main(["--tiny", "--in_process", f"--out={tmp_path}", "--skip=checks,step,hf,train"])
    out = capsys.readouterr().out
    assert "==== gpu_check summary" in out and "phases: env 0, checks --skip" in out
    assert summary["versions"]["jax"] and json.loads((tmp_path / "summary.json").read_text())["tiny"] is True
    assert check.step_argv(type("A", (), {"tiny": False})(), "s.json")[0].startswith("--configs=sas_small,sasc_small")


@pytest.mark.slow
def test_gpu_check_tiny_in_process(tmp_path, capsys):
    """Every phase; the `step` phase's report (step_throughput's tiny three rows with the store)
    is also the suite's check of that benchmark (`test_benchmarks.check_step_report`)."""
    check = load_script("gpu_check")
    summary = check.main(["--tiny", "--in_process", f"--out={tmp_path}"])
    out = capsys.readouterr().out
    assert all(v["rc"] == 0 for v in summary["phases"].values()), summary["phases"]
    step_table = out[out.index("== step (budget"):out.index("== step: exit")]
    check_step_report(json.loads((tmp_path / "step.json").read_text()), step_table)
    assert summary["checks"] == {"attention": True, "bf16_step": True, "sampler": True}
    assert set(summary["ours"]) == {"sas_small:tiny", "bert_small:tiny", "electra_small:tiny"}
    assert "sas_small:tiny / bert_small:tiny" in summary["ratios"]
    assert "sas_small:tiny (eager)" in summary["ours_over_hf"]
    train = summary["train"]
    assert train["steps"] == 16 and [e["step"] for e in train["eval"]] == [0, 8, 16]
    assert train["profile_files"]
    for name in ("env.json", "checks.json", "step.json", "hf.json", "train.json", "summary.json",
                 "train/metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    assert "ours / HF sas_small:tiny (eager) tokens/s" in out
