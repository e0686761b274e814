"""compare_runs: held-out curves on the FLOPs axis of each run's own config."""
import json

import pytest

from sas_jax import config_lib, flops
from sas_jax.analysis import compare_runs


def fake_run(path, name, points):
    path.mkdir(parents=True)
    cfg = config_lib.load_config(f"{name}:tiny")
    (path / "config.json").write_text(json.dumps({**cfg.to_dict(), "resolved": {"vocab_size": 128}}))
    lines = [{"step": s, "loss": 1.0} for s, _ in points]
    lines += [{"step": s, "eval/mlm_loss": v, "eval/unigram_ce": 4.5} for s, v in points]
    (path / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    cfg.num_train_steps = 1
    return flops.train_flops(cfg, vocab_size=128)


def test_curves_use_each_runs_flops_per_step(tmp_path):
    per_sas = fake_run(tmp_path / "sas", "sas_small", [(0, 5.0), (10, 4.0)])
    per_electra = fake_run(tmp_path / "electra", "electra_small", [(0, 5.0), (10, 4.2)])
    x, y, ce = compare_runs.held_out_curve(str(tmp_path / "sas"))
    assert x == [0.0, pytest.approx(10 * per_sas)] and y == [5.0, 4.0] and ce == 4.5
    assert compare_runs.held_out_curve(str(tmp_path / "electra"))[0][1] == pytest.approx(10 * per_electra)
    assert per_electra > per_sas  # the generator costs FLOPs: ELECTRA's points sit further right
    out = tmp_path / "c.png"
    assert compare_runs.main([f"--run=SAS, tiny={tmp_path / 'sas'}", f"--run=ELECTRA={tmp_path / 'electra'}",
                              f"--out={out}"]) == 0
    assert out.stat().st_size > 1000


def test_bad_run_arguments_are_one_line_errors(tmp_path, capsys):
    assert compare_runs.main(["--run=nolabel", f"--out={tmp_path / 'c.png'}"]) == 2
    assert compare_runs.main([f"--run=x={tmp_path / 'missing'}", f"--out={tmp_path / 'c.png'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)
