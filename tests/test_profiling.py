"""`log.profile_steps`: a trace file of the chosen steps, and the same losses as without it."""
import json
import pathlib

import pytest

from sas_jax import profiling, train
from sas_jax.errors import UserError


def test_parse_steps():
    assert profiling.parse_steps("") is None
    assert profiling.parse_steps("3,5") == (3, 5) and profiling.parse_steps("4") == (4, 4)
    for bad in ("0,2", "5,3", "a,b", "1,2,3"):
        with pytest.raises(UserError, match="profile_steps"):
            profiling.parse_steps(bad)


def _losses(workdir):
    return {r["step"]: r["loss"] for r in map(json.loads, pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines())
            if "loss" in r}


def test_profile_writes_a_trace_and_changes_no_loss(tiny_workdir, prepared_corpus, tmp_path, config_factory, capsys):
    """The same run as the session's `tiny_workdir`, with steps 2..3 traced."""
    cfg = config_factory("sas_small", "tiny", **{
        "data.corpus_dir": str(prepared_corpus), "model.vocab_size": -1, "num_train_steps": 4,
        "ckpt.every_steps": 2, "ckpt.async_save": False, "log.every_steps": 1, "log.tensorboard": False,
        "log.profile_steps": "2,3"})
    workdir = tmp_path / "run"
    train.train_and_evaluate(cfg, str(workdir))
    traces = [p for p in (workdir / "profile").rglob("*") if p.name.endswith((".xplane.pb", ".trace.json.gz"))]
    assert traces and all(p.stat().st_size > 0 for p in traces)
    assert "profile: steps 2..3 traced in" in capsys.readouterr().out
    assert _losses(workdir) == _losses(tiny_workdir)
