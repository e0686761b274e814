"""`log.profile_steps`: a trace file of the chosen steps, and the same losses as without it."""
import json
import pathlib
import re

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


@pytest.mark.slow
def test_profile_writes_a_trace_and_changes_no_loss(tiny_workdir, prepared_corpus, tmp_path, config_factory, capsys,
                                                    monkeypatch):
    """The same run as the session's `tiny_workdir`, with steps 2..3 traced."""
    # A step of its own, as a fresh process builds it: the run's first step then compiles (or
    # loads its compiled code), which its wall-time line must name; the same run before, in this
    # process, would otherwise lend it its jitted step (`train._STEP_FNS`) and leave nothing to name.
    monkeypatch.setattr(train, "_STEP_FNS", {})
    cfg = config_factory("sas_small", "tiny", **{
        "data.corpus_dir": str(prepared_corpus), "model.vocab_size": -1, "num_train_steps": 4,
        "ckpt.every_steps": 2, "ckpt.async_save": False, "log.every_steps": 1, "log.tensorboard": False,
        "log.profile_steps": "2,3"})
    workdir = tmp_path / "run"
    train.train_and_evaluate(cfg, str(workdir))
    traces = [p for p in (workdir / "profile").rglob("*") if p.name.endswith((".xplane.pb", ".trace.json.gz"))]
    assert traces and all(p.stat().st_size > 0 for p in traces)
    out = capsys.readouterr().out
    assert "profile: steps 2..3 traced in" in out
    # The run's last line: where its wall time went; the named parts add up to at most the wall time.
    line = [x for x in out.splitlines() if x.startswith("wall time ")][-1]
    wall, compile_s, steps, evals, saves, rest = map(float, re.findall(r"([0-9.]+) s", line))
    assert compile_s > 0 and steps > 0 and saves > 0 and compile_s + steps + evals + saves <= wall + 1e-6
    # Each of the six figures is printed to 0.1 s (off by up to 0.05 each): the parts' sum and the
    # wall time agree to within 0.3 s (0.2 failed once at 0.2000000000000001).
    assert abs(compile_s + steps + evals + saves + rest - wall) <= 0.3 + 1e-9
    assert _losses(workdir) == _losses(tiny_workdir)


def test_compilation_cache_folder(monkeypatch, tmp_path):
    from sas_jax import startup

    monkeypatch.setenv("SAS_JAX_COMPILATION_CACHE", "0")
    assert startup.cache_dir() is None
    monkeypatch.setenv("SAS_JAX_COMPILATION_CACHE", str(tmp_path / "c"))
    assert startup.cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("SAS_JAX_COMPILATION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert startup.cache_dir() == str(tmp_path / "sas_jax" / "jax")


def test_eta_is_smoothed_and_counts_what_is_left(tmp_path):
    from sas_jax.metrics_log import MetricWriter

    w = MetricWriter(str(tmp_path), tensorboard=False, total_steps=100, tokens_per_step=1)
    assert w.eta(10, 1.0) == 90.0
    w.extra_seconds = lambda step: 5.0
    assert w.eta(20, 0.5) == 80 * (0.3 * 2.0 + 0.7 * 1.0) + 5.0  # a window at half speed: 1.3 s/step, not 2
    w.close()
