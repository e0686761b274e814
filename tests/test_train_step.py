import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from sas_jax import losses, objectives, optim, sharding, train_state, train_step
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.sas_batch import SasBatchBuilder
from sas_jax.corruption.store import SampleStore
from sas_jax.data.synthetic import markov_corpus
from sas_jax.models import ModelConfig, PretrainingModel


def setup(cfg, devices, rules_name):
    cfg.mesh.rules = rules_name
    if rules_name == "fsdp":
        cfg.mesh.data, cfg.mesh.fsdp = 1, -1
    mesh = sharding.make_mesh(cfg.mesh, devices)
    rules = sharding.logical_rules(cfg.mesh)
    objective = objectives.build(cfg, cfg.model.vocab_size)
    model = objective.model
    tx = optim.make_optimizer(cfg.opt, cfg.num_train_steps)
    state, shardings = train_state.create_sharded_state(
        jax.random.key(0), model=model, tx=tx, mesh=mesh, rules=rules, seq_len=cfg.seq_len,
        max_predictions=cfg.sas.max_predictions)
    settings = objective.step_settings(steps_per_epoch=4)
    step = train_step.jit_train_step(model=model, tx=tx, lr_schedule=optim.learning_rate_schedule(cfg.opt, cfg.num_train_steps),
                                     settings=settings, mesh=mesh, rules=rules, state_shardings=shardings)
    return model, state, step, mesh, settings


def sas_batch(cfg):
    corpus = markov_corpus(cfg.batch_size, cfg.seq_len, cfg.model.vocab_size)
    tok = corpus.tokenizer
    store = SampleStore(np.arange(cfg.batch_size), max_predictions=cfg.sas.max_predictions,
                        seq_len=cfg.seq_len, vocab_size=cfg.model.vocab_size)
    b = SasBatchBuilder(store=store, sampler=ColdStartSampler("unigram", tok.vocab_size, corpus.unigram_counts),
                        word_start_table=tok.word_start_table, special_table=tok.special_table, pad_id=0,
                        policy="official", mask_rate=0.15, max_predictions=cfg.sas.max_predictions, seed=0)
    batch, _ = b.build(corpus.rows, np.arange(cfg.batch_size), step=3)
    batch["input_mask"][1, -5:] = 0  # a padded tail, so masks matter
    return batch


def step_config():
    cfg = load_config("sas_small", "tiny")
    cfg.opt.warmup_steps = 0  # a non-zero learning rate on the first step
    return cfg


@functools.cache
def one_device_step():
    """One step of the tiny SAS config on one device (data-parallel rules) on `sas_batch`, key 5,
    taken once for the file (both 8-device layouts compare with it, and it is the step whose
    samples and losses the same-forward test re-derives): (model, settings, batch, params before,
    params after, metrics, samples); read only."""
    cfg = step_config()
    model, state, step, _, settings = setup(cfg, jax.devices()[:1], "data_parallel")
    batch = sas_batch(cfg)
    before = jax.device_get(state.params)
    new_state, metrics, sampled = step(state, batch, jax.random.key(5))
    return (model, settings, batch, before, jax.device_get(new_state.params), jax.device_get(metrics),
            np.asarray(sampled))


@pytest.mark.parametrize("rules_name", ["data_parallel", "fsdp"])
def test_eight_devices_match_one_device(rules_name):
    *_, p1, m1, s1 = one_device_step()
    assert len(jax.devices()) == 8
    cfg = step_config()
    model, state, step, mesh, _ = setup(cfg, jax.devices(), rules_name)
    batch = sas_batch(cfg)
    if rules_name == "fsdp":
        spec = state.params["encoder"]["layer_0"]["intermediate"]["kernel"].sharding.spec
        assert spec == jax.sharding.PartitionSpec("fsdp", None)  # parameters really are split
    new_state, metrics, sampled = step(state, batch, jax.random.key(5))
    p8, m8, s8 = jax.device_get(new_state.params), jax.device_get(metrics), np.asarray(sampled)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=1e-4)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p8)
    np.testing.assert_array_equal(s1, s8)  # partitionable threefry: same draws however sharded


def test_samples_come_from_the_same_training_forward_before_the_update():
    model, settings, batch, params, _, metrics, sampled = one_device_step()
    key = jax.random.key(5)  # the key that step was given
    # Re-derive the step's keys: fold in the step (0), split into dropout / sample keys.
    dropout_rng, sample_rng = jax.random.split(jax.random.fold_in(key, 0))
    out = model.apply({"params": params}, batch["input_ids"], batch["input_mask"], batch["mlm_positions"],
                      deterministic=False, rngs={"dropout": dropout_rng})
    expect = losses.sample_tokens(sample_rng, out["mlm_logits"], settings.temperature)
    np.testing.assert_array_equal(np.asarray(sampled), np.asarray(expect))
    mlm, _ = losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])
    rtd, _ = losses.rtd_loss(out["rtd_logits"], batch["rtd_labels"], batch["input_mask"])
    np.testing.assert_allclose(metrics["mlm_loss"], mlm, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], mlm + 50.0 * rtd, rtol=1e-5)  # λ = 50 in epoch 0


def test_tied_word_table_gets_gradient_from_input_and_from_mlm_logits():
    cfg = load_config("sas_small", "tiny")
    model = PretrainingModel(ModelConfig.from_config(cfg.model))
    batch = sas_batch(cfg)
    ids = jnp.asarray(batch["input_ids"])
    params = model.init({"params": jax.random.key(0)}, ids, batch["input_mask"], batch["mlm_positions"])["params"]
    params = nn.meta.unbox(params)

    def mlm(p, cut_output_path):
        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            return jax.lax.stop_gradient(out) if cut_output_path and context.method_name == "word_table" else out
        with nn.intercept_methods(interceptor):
            out = model.apply({"params": p}, ids, batch["input_mask"], batch["mlm_positions"])
        return losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])[0]

    table = lambda g: np.asarray(g["embeddings"]["word_embeddings"]["embedding"])  # noqa: E731
    grad = jax.jit(jax.grad(mlm), static_argnums=1)  # two compiles instead of op-by-op backward passes
    g_total = table(grad(params, False))
    g_input = table(grad(params, True))
    g_output = g_total - g_input
    unused = np.setdiff1d(np.arange(cfg.model.vocab_size), np.asarray(ids))
    assert np.abs(g_input[unused]).max() == 0.0  # rows not in the input: no input-path gradient
    assert np.abs(g_output[unused]).max() > 0.0  # ...but the tied logits reach them
    used = np.unique(np.asarray(ids))
    assert np.abs(g_input[used]).max() > 0.0
