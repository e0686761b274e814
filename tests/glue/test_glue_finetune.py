"""Fine-tuning: the recipe configs, learning a separable task, best-epoch selection,
and loading encoders from our checkpoints and from Hugging Face folders."""
import logging

import glue_fixtures as gf
import jax
import numpy as np
import pytest

from sas_jax import checkpointing, config_lib, optim
from sas_jax.errors import UserError
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import model as model_lib
from sas_jax.glue import recipe, sweep
from sas_jax.glue.tasks import TASKS


def quiet(*_):
    pass


@pytest.fixture
def tiny_config(config_factory, glue_dir):
    """`tiny_config(task, **overrides)`: `configs/glue.py:task=<task>,tiny` on the TSV fixtures."""
    def make(task, **overrides):
        return config_factory("glue", f"task={task},tiny", **{"data.glue_dir": str(glue_dir), **overrides})
    return make


# ----------------------------------------------------------------------------- recipe
def test_configs_follow_table_6(repo_root):
    epochs = {"cola": 20, "mrpc": 20, "stsb": 20, "rte": 20, "sst2": 4, "qqp": 4, "mnli": 4, "qnli": 4}
    seeds = {"cola": 5, "mrpc": 5, "stsb": 5, "rte": 5, "qnli": 3, "sst2": 3, "mnli": 1, "qqp": 1}
    for task in TASKS:
        c = sweep.load_task_config(task)  # configs/glue.py:task=<task>
        assert c.task == task and c.num_epochs == epochs[task] and c.num_seeds == seeds[task]
        assert tuple(c.learning_rates) == (1e-4, 7.5e-5) and c.batch_size == 32
        assert (c.warmup_fraction, c.opt.eps, c.dropout_rate, c.opt.weight_decay) == (0.1, 1e-6, 0.1, 0.0)
        assert set(c.init_from) == {"checkpoint_dir", "step", "hf_folder", "tokenizer", "init", "model_config"}
        assert (c.init_from.init, c.data.task_file) == ("pretrained", "")  # GLUE: pre-trained weights, no task file
        assert tuple(sweep.load_task_config(task, "glue:base").learning_rates) == (7.5e-5, 5e-5)
        assert config_lib.load_config(f"{repo_root}/configs/glue.py:task={task}").to_dict() == c.to_dict()
    s = recipe.derive_steps(sweep.load_task_config("cola"))
    assert s == {"train_rows": 8551, "steps_per_epoch": 268, "num_train_steps": 5360, "warmup_steps": 536}
    with pytest.raises(UserError, match=r"^glue.py:smal,task=rte: unknown config variant 'smal'; "
                                        r"known: base, task, tiny$"):
        sweep.load_task_config("rte", "glue:smal")
    with pytest.raises(UserError, match=r"^glue.py: no GLUE task given; add task=<name> to the variant"):
        config_lib.load_config("glue")
    with pytest.raises(UserError, match=r"^glue.py:task=wnli: unknown GLUE task 'wnli'; use one of cola"):
        config_lib.load_config("glue:task=wnli")
    c = sweep.load_task_config("rte", overrides=["opt.eps=1e-8", "batch_sizes=16,32", "num_epochs=3"])
    assert (c.opt.eps, tuple(c.batch_sizes), c.num_epochs) == (1e-8, (16, 32), 3)
    with pytest.raises(UserError, match=r"unknown config key 'opt.epsilon' \(did you mean 'opt.eps'\?\)"):
        config_lib.override(c, "opt.epsilon=1")


def test_finetuning_uses_the_pretraining_optimizer_and_schedule(tiny_config):
    """optim.make_optimizer with the run's peak and derived warm-up: the first update is 0,
    then a linear warm-up to the peak and a linear decay to 0 (constant gradient: |Adam| = 1)."""
    config = tiny_config("rte", learning_rate=1e-3, num_epochs=5)
    steps = recipe.derive_steps(config, 48)
    assert (steps["num_train_steps"], steps["warmup_steps"]) == (30, 3)
    opt = finetune_lib.optimizer_config(config, steps)
    assert (opt.learning_rate, opt.warmup_steps) == (1e-3, 3)
    assert {k: opt[k] for k in config.opt} == config.opt.to_dict()
    tx = optim.make_optimizer(opt, steps["num_train_steps"])
    params = {"w": np.ones((3,), np.float32)}
    state, sizes = tx.init(params), []
    for _ in range(steps["num_train_steps"]):
        updates, state = tx.update({"w": np.full((3,), 0.5, np.float32)}, state, params)
        sizes.append(-float(updates["w"][0]))
    sched = optim.learning_rate_schedule(opt, steps["num_train_steps"])
    np.testing.assert_allclose(sizes, [float(sched(i)) for i in range(30)], rtol=1e-4, atol=1e-9)
    assert sizes[0] == 0.0 and max(sizes) == pytest.approx(1e-3, rel=1e-4) and sizes[-1] < 1e-4


# ----------------------------------------------------------------------------- training
@pytest.mark.slow  # a learning test
def test_finetune_learns_a_separable_task(prepared_corpus, tmp_path, tiny_config):
    pre = gf.random_encoder(prepared_corpus)
    config = tiny_config("sst2", num_epochs=8)
    result = finetune_lib.finetune(config, pretrained=pre, result_path=str(tmp_path / "r.json"), log=quiet).result
    accs = [e["train_accuracy"] for e in result["epochs"]]
    assert accs[0] < 0.75 and max(accs[-2:]) > 0.9, accs
    assert result["score"] > 0.9 and result["dev"]["accuracy"] == result["score"]
    assert result["num_train_steps"] == 8 * 6 and result["warmup_steps"] == 4
    assert result["missing_params"] == ["classifier/dense/bias", "classifier/dense/kernel",
                                        "classifier/out_proj/bias", "classifier/out_proj/kernel"]
    assert (tmp_path / "r.json").is_file()  # test-set predictions: `glue predict` (test_glue_predict.py)


def test_best_epoch_is_kept_and_evaluated_again(prepared_corpus, monkeypatch, tiny_config):
    """Dev scores 0.5, 0.9, 0.6: epoch 2 wins, and the final evaluation sees epoch 2's weights."""
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
    result = finetune_lib.finetune(tiny_config("rte", num_epochs=3),
                                   pretrained=gf.random_encoder(prepared_corpus), log=quiet).result
    assert [e["dev"]["selection"] for e in result["epochs"]] == [0.5, 0.9, 0.6]
    assert result["best_epoch"] == 2
    assert len(seen) == 4
    np.testing.assert_array_equal(seen[3], seen[1])  # the re-evaluation used epoch 2's weights
    assert not np.array_equal(seen[3], seen[2])
    assert result["score"] == result["dev"]["accuracy"]  # the real re-evaluation, not a scripted value


def test_batch_not_divisible_by_devices(prepared_corpus, tiny_config):
    config = tiny_config("rte", batch_size=12)
    with pytest.raises(UserError, match=r"batch_size=12 is not divisible by the 8 devices"):
        finetune_lib.finetune(config, pretrained=gf.random_encoder(prepared_corpus), log=quiet)
    config = tiny_config("rte")
    config.data.max_seq_length = 128
    with pytest.raises(UserError, match=r"max_seq_length=128 exceeds the model's 64 positions"):
        finetune_lib.finetune(config, pretrained=gf.random_encoder(prepared_corpus), log=quiet)


# ----------------------------------------------------------------------------- loading
def test_checkpoint_loading_drops_heads_and_names_them(caplog, tiny_workdir):
    workdir = tiny_workdir
    assert checkpointing.checkpoint_steps(workdir) == [2, 4]
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


def test_hf_folder_gives_the_same_encoder(tmp_path, tiny_workdir):
    from sas_jax.convert import export_sas  # noqa: PLC0415

    workdir = tiny_workdir
    ckpt = checkpointing.read_model(workdir)
    cfg, params, tok = ckpt.cfg, ckpt.params, ckpt.tokenizer
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
