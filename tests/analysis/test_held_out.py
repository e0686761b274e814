"""A finished run's checkpoints re-evaluated on the held-out rows reproduce what training logged."""
import json

import pytest

from sas_jax import train
from sas_jax.analysis import held_out
from sas_jax.data.synthetic import markov_corpus


@pytest.mark.slow
def test_reevaluated_checkpoints_match_the_logged_held_out_figures(tmp_path, config_factory):
    cfg = config_factory("sas_small", "tiny", **{
        "num_train_steps": 4, "data.eval_rows": 16, "log.eval_every_steps": 2, "ckpt.every_steps": 2,
        "ckpt.async_save": False, "log.tensorboard": False})
    corpus = markov_corpus(96, cfg.seq_len, cfg.model.vocab_size)
    train.train_and_evaluate(cfg, str(tmp_path), corpus=corpus)
    logged = {}
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "eval/mlm_loss" in d:
            logged[d["step"]] = d
    got = held_out.evaluate_run(str(tmp_path), corpus=corpus)
    assert sorted(got) == [2, 4] and {2, 4} <= set(logged)
    for step in (2, 4):
        for key in ("mlm_loss", "mlm_loss_replaced", "sample_hit_replaced", "rtd_accuracy", "rtd_auc", "unigram_hit"):
            assert got[step][key] == pytest.approx(logged[step][f"eval/{key}"], rel=1e-5, abs=1e-7), (step, key)
    assert got[2]["mlm_loss"] != got[4]["mlm_loss"]  # two different parameter sets


def test_a_run_without_held_out_rows_is_refused_in_one_line(tiny_workdir, capsys):
    assert held_out.main(["--checkpoint_dir", tiny_workdir]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "data.eval_rows=0" in err and "--eval_rows" in err
