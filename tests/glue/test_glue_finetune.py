"""Fine-tuning: the recipe configs, learning a separable task, best-epoch selection,
and loading encoders from our checkpoints and from Hugging Face folders."""
import logging

import glue_fixtures as gf
import jax
import numpy as np
import pytest

from sas_jax import optim
from sas_jax.errors import UserError
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import model as model_lib
from sas_jax.glue import recipe, sweep
from sas_jax.glue.tasks import TASKS


def quiet(*_):
    pass


def tiny_config(task, glue_dir, **kw):
    c = sweep.load_task_config(task, "tiny")
    c.data.glue_dir = str(glue_dir)
    for k, v in kw.items():
        c[k] = v
    return c


# ----------------------------------------------------------------------------- recipe
def test_configs_follow_table_6():
    epochs = {"cola": 20, "mrpc": 20, "stsb": 20, "rte": 20, "sst2": 4, "qqp": 4, "mnli": 4, "qnli": 4}
    seeds = {"cola": 5, "mrpc": 5, "stsb": 5, "rte": 5, "qnli": 3, "sst2": 3, "mnli": 1, "qqp": 1}
    for task in TASKS:
        c = sweep.load_task_config(task)  # configs/glue/<task>.py
        assert c.task == task and c.num_epochs == epochs[task] and c.num_seeds == seeds[task]
        assert tuple(c.learning_rates) == (1e-4, 7.5e-5) and c.batch_size == 32
        assert (c.warmup_fraction, c.opt.eps, c.dropout_rate, c.opt.weight_decay) == (0.1, 1e-6, 0.1, 0.0)
        assert set(c.init_from) == {"checkpoint_dir", "step", "hf_folder", "tokenizer"}
        assert tuple(sweep.load_task_config(task, "base").learning_rates) == (7.5e-5, 5e-5)
    s = recipe.derive_steps(sweep.load_task_config("cola"))
    assert s == {"train_rows": 8551, "steps_per_epoch": 268, "num_train_steps": 5360, "warmup_steps": 536}
    with pytest.raises(UserError, match="unknown config variant 'smal'"):
        sweep.load_task_config("rte", "smal")
    c = sweep.load_task_config("rte")
    sweep.apply_overrides(c, {"opt.eps": "1e-8", "batch_sizes": "16,32", "num_epochs": "3"})
    assert (c.opt.eps, tuple(c.batch_sizes), c.num_epochs) == (1e-8, (16, 32), 3)
    with pytest.raises(UserError, match="unknown config key 'opt.epsilon'"):
        sweep.apply_overrides(c, {"opt.epsilon": "1"})


def test_host_learning_rates_equal_the_optax_schedule():
    lrs = finetune_lib.learning_rates(1e-4, 7, 50)
    sched = optim.learning_rate_schedule(type("O", (), {"learning_rate": 1e-4, "warmup_steps": 7}), 50)
    np.testing.assert_allclose(lrs, [float(sched(i)) for i in range(50)], rtol=1e-5, atol=1e-12)
    assert lrs[0] == 0.0 and lrs.max() == pytest.approx(1e-4)


# ----------------------------------------------------------------------------- training
def test_finetune_learns_a_separable_task(prepared_corpus, tmp_path_factory, tmp_path):
    glue_dir = gf.glue_dir(tmp_path_factory)
    pre = gf.random_encoder(prepared_corpus)
    config = tiny_config("sst2", glue_dir, num_epochs=8, predict_test=True)
    result = finetune_lib.finetune(config, pretrained=pre, result_path=str(tmp_path / "r.json"), log=quiet)
    accs = [e["train_accuracy"] for e in result["epochs"]]
    assert accs[0] < 0.75 and max(accs[-2:]) > 0.9, accs
    assert result["score"] > 0.9 and result["dev"]["accuracy"] == result["score"]
    assert result["num_train_steps"] == 8 * 6 and result["warmup_steps"] == 4
    assert result["missing_params"] == ["classifier/dense/bias", "classifier/dense/kernel",
                                        "classifier/out_proj/bias", "classifier/out_proj/kernel"]
    assert (tmp_path / "r.json").is_file()
    # Test-set predictions of the best epoch, in GLUE's submission format.
    lines = (tmp_path / "r.test.tsv").read_text().splitlines()
    assert result["test_predictions"] == {"test": str(tmp_path / "r.test.tsv")}
    assert lines[0] == "index\tprediction" and len(lines) == 1 + gf.SIZES["test"]
    assert {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}


def test_best_epoch_is_kept_and_evaluated_again(prepared_corpus, tmp_path_factory, monkeypatch):
    """Dev scores 0.5, 0.9, 0.6: epoch 2 wins, and the final evaluation sees epoch 2's weights."""
    glue_dir = gf.glue_dir(tmp_path_factory)
    scripted = iter([0.5, 0.9, 0.6])
    seen = []
    real = finetune_lib.evaluate

    def fake_evaluate(runner, params, data, task, batch_size):
        metrics, preds = real(runner, params, data, task, batch_size)
        seen.append(np.array(jax.device_get(params["classifier"]["out_proj"]["kernel"])))
        score = next(scripted, None)
        if score is not None:
            metrics = {**metrics, "accuracy": score, "score": score, "selection": score}
        return metrics, preds

    monkeypatch.setattr(finetune_lib, "evaluate", fake_evaluate)
    result = finetune_lib.finetune(tiny_config("rte", glue_dir, num_epochs=3),
                                   pretrained=gf.random_encoder(prepared_corpus), log=quiet)
    assert [e["dev"]["selection"] for e in result["epochs"]] == [0.5, 0.9, 0.6]
    assert result["best_epoch"] == 2
    assert len(seen) == 4
    np.testing.assert_array_equal(seen[3], seen[1])  # the re-evaluation used epoch 2's weights
    assert not np.array_equal(seen[3], seen[2])
    assert result["score"] == result["dev"]["accuracy"]  # the real re-evaluation, not a scripted value


def test_batch_not_divisible_by_devices(prepared_corpus, tmp_path_factory):
    config = tiny_config("rte", gf.glue_dir(tmp_path_factory), batch_size=12)
    with pytest.raises(UserError, match=r"batch_size=12 is not divisible by the 8 devices"):
        finetune_lib.finetune(config, pretrained=gf.random_encoder(prepared_corpus), log=quiet)
    config = tiny_config("rte", gf.glue_dir(tmp_path_factory))
    config.data.max_seq_length = 128
    with pytest.raises(UserError, match=r"max_seq_length=128 exceeds the model's 64 positions"):
        finetune_lib.finetune(config, pretrained=gf.random_encoder(prepared_corpus), log=quiet)


# ----------------------------------------------------------------------------- loading
def test_checkpoint_loading_drops_heads_and_names_them(prepared_corpus, tmp_path_factory, caplog):
    workdir = gf.tiny_checkpoint(tmp_path_factory, prepared_corpus)
    assert model_lib.checkpoint_steps(workdir) == [2, 4]
    with caplog.at_level(logging.INFO, logger="sas_jax.glue"):
        pre = model_lib.load_pretrained({"checkpoint_dir": workdir, "step": -1})
    assert pre.source["step"] == 4 and set(pre.params) == {"embeddings", "encoder"}
    assert set(pre.heads) == {"mlm_head", "rtd_head"}
    assert "mlm_head/bias" in pre.dropped and "rtd_head/dense_prediction/kernel" in pre.dropped
    assert "dropped" in caplog.text and "rtd_head/dense/kernel" in caplog.text
    fresh = model_lib.init_params(model_lib.GlueModel(pre.cfg, 2), jax.random.key(0))
    with caplog.at_level(logging.INFO, logger="sas_jax.glue"):
        params, missing, unexpected = model_lib.merge_pretrained(fresh, pre.params)
    assert missing == sorted(f"classifier/{d}/{k}" for d in ("dense", "out_proj") for k in ("bias", "kernel"))
    assert unexpected == [] and "classifier/out_proj/kernel" in caplog.text
    np.testing.assert_array_equal(params["encoder"]["layer_1"]["query"]["kernel"],
                                  pre.params["encoder"]["layer_1"]["query"]["kernel"])
    # The step-2 weights differ from step 4's.
    pre2 = model_lib.load_pretrained({"checkpoint_dir": workdir, "step": 2})
    assert not np.array_equal(pre2.params["encoder"]["layer_0"]["key"]["kernel"],
                              pre.params["encoder"]["layer_0"]["key"]["kernel"])
    with pytest.raises(UserError, match=r"has no checkpoint of step 3; it has steps 2, 4"):
        model_lib.load_pretrained({"checkpoint_dir": workdir, "step": 3})
    with pytest.raises(UserError, match=r"checkpoint dir .*nope not found"):
        model_lib.load_pretrained({"checkpoint_dir": workdir + "/nope"})
    with pytest.raises(UserError, match=r"init_from is empty"):
        model_lib.load_pretrained({})


def test_hf_folder_gives_the_same_encoder(prepared_corpus, tmp_path_factory, tmp_path):
    from sas_jax.convert import export_sas  # noqa: PLC0415

    workdir = gf.tiny_checkpoint(tmp_path_factory, prepared_corpus)
    cfg, params, tok, _ = model_lib.load_checkpoint(workdir)
    folders = export_sas(params, cfg, str(tmp_path / "hf"), tokenizer=tok.path)
    pre = model_lib.load_pretrained({"hf_folder": folders["discriminator"]})
    assert pre.source["kind"] == "hf" and pre.tokenizer.fingerprint == tok.fingerprint
    assert pre.dropped == ["rtd_head/dense/bias", "rtd_head/dense/kernel", "rtd_head/dense_prediction/bias",
                           "rtd_head/dense_prediction/kernel"]
    flat = lambda t: dict(jax.tree_util.tree_leaves_with_path(t))  # noqa: E731
    a, b = flat(pre.params), flat({k: params[k] for k in ("embeddings", "encoder")})
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
    assert pre.cfg == cfg
    with pytest.raises(UserError, match=r"not a Hugging Face model folder"):
        model_lib.load_pretrained({"hf_folder": str(tmp_path)})
