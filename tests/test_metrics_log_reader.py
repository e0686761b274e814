"""One reader of metrics.jsonl (`metrics_log.read_records`): a line torn by a kill, the last one
cut short or one in the middle, is skipped, and every reader of the log gives what it gives
for the file without those lines."""
import json

import pytest

from sas_jax import metrics_log, study
from sas_jax.analysis import compare_runs, logs
from sas_jax.convert import workdir as convert_workdir

RECORDS = [{"step": 1, "loss": 3.0, "learning_rate": 1e-4},
           {"step": 2, "eval/mlm_loss": 2.5, "eval/unigram_ce": 4.0},
           {"step": 2, "loss": 2.9, "learning_rate": 2e-4},
           {"step": 3, "loss": 2.8, "learning_rate": 3e-4},
           {"step": 4, "eval/mlm_loss": 2.2, "eval/unigram_ce": 3.9, "eval/rtd_accuracy": 0.7},
           {"step": 4, "loss": 2.7, "learning_rate": 4e-4}]


def write_run(path, *, torn: bool) -> str:
    lines = [json.dumps(r) + "\n" for r in RECORDS]
    if torn:
        lines.insert(3, '{"step": 3, "loss": 2.8, "learn\n')  # torn in the middle
        lines.insert(5, "\n")
        lines.append('{"step": 5, "eval/mlm_loss": 2.1, "eval/uni')  # cut short by a kill
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(lines))
    return str(path)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setattr(compare_runs, "flops_per_step", lambda workdir: 10.0)  # no config.json needed
    return write_run(tmp_path / "clean", torn=False), write_run(tmp_path / "torn", torn=True)


def readers(workdir: str) -> dict:
    path = f"{workdir}/metrics.jsonl"
    scalars = logs.read_scalars(workdir)  # no event files: metrics.jsonl
    return {"records": metrics_log.read_records(path),
            "study.read_eval": study.read_eval(workdir),
            "convert._eval_figures": [convert_workdir._eval_figures(workdir, s) for s in (1, 3, 10)],
            "compare_runs.held_out_curve": compare_runs.held_out_curve(workdir),
            "logs.read_scalars": {t: (s.tolist(), v.tolist()) for t, (s, v) in scalars.items()}}


def test_every_reader_skips_a_torn_line_the_same_way(runs):
    clean, torn = runs
    got, want = readers(torn), readers(clean)
    assert got == want
    assert want["records"] == RECORDS
    assert want["study.read_eval"] == {2: {"mlm_loss": 2.5, "unigram_ce": 4.0},
                                       4: {"mlm_loss": 2.2, "unigram_ce": 3.9, "rtd_accuracy": 0.7}}
    assert want["convert._eval_figures"] == [{}, {"step": 2, "eval/mlm_loss": 2.5, "eval/unigram_ce": 4.0},
                                             {"step": 4, **{k: v for k, v in RECORDS[4].items() if k != "step"}}]
    assert want["compare_runs.held_out_curve"] == ([20.0, 40.0], [2.5, 2.2], 3.9)
    assert want["logs.read_scalars"]["train/loss"] == ([1, 2, 3, 4], [3.0, 2.9, 2.8, 2.7])


def test_the_cut_back_of_a_resume_drops_torn_lines_too(runs):
    clean, torn = runs
    metrics_log.keep_up_to(f"{torn}/metrics.jsonl", 3)
    metrics_log.keep_up_to(f"{clean}/metrics.jsonl", 3)
    with open(f"{torn}/metrics.jsonl") as a, open(f"{clean}/metrics.jsonl") as b:
        assert a.read() == b.read()
    assert metrics_log.read_records(f"{clean}/metrics.jsonl") == RECORDS[:4]


def test_a_start_from_step_0_drops_what_a_run_stopped_before_its_first_checkpoint_logged(tmp_path):
    """Stopped (Ctrl-C, a kill) before any checkpoint, a run has logged step 0's held-out figures and
    perhaps a few steps; the re-run starts from step 0 and logs them again, once. A resume from a
    checkpoint keeps what was logged up to its step."""
    run = write_run(tmp_path / "run", torn=False)
    metrics_log.MetricWriter(run, tensorboard=False, total_steps=4, tokens_per_step=1, start_step=2).close()
    assert metrics_log.read_records(f"{run}/metrics.jsonl") == RECORDS[:3]
    metrics_log.MetricWriter(run, tensorboard=False, total_steps=4, tokens_per_step=1, start_step=0).close()
    assert metrics_log.read_records(f"{run}/metrics.jsonl") == []
