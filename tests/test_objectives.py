"""Objective plumbing: the one chooser (`objectives.build`) of every config's model, builder and
step settings, the ELECTRA step's generator → Gumbel-max → discriminator path, slot scatter with
repeated positions, the Gumbel-max law, and objective validation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_config
from scipy import stats
from test_configs import setup_row

from sas_jax import losses, objectives, train_step
from sas_jax.corruption.sas_batch import SasBatchBuilder
from sas_jax.corruption.static_batch import ElectraBatchBuilder, StaticBatchBuilder
from sas_jax.data.synthetic import MASK, markov_corpus
from sas_jax.errors import UserError
from sas_jax.models import ElectraModel, ModelConfig, PretrainingModel


def first_slot_map(positions, valid, tokens, base):
    """base with base[b, positions[b, p]] = tokens[b, p] at the FIRST valid slot of each position."""
    out = base.copy()
    for b in range(base.shape[0]):
        for p in reversed(range(positions.shape[1])):  # reversed: the first slot writes last
            if valid[b, p]:
                out[b, positions[b, p]] = tokens[b, p]
    return out


def test_electra_discriminator_reads_the_generator_samples_never_the_masks():
    cfg, model, state, step, settings, _, builder, corpus = setup_row("electra_small")
    assert settings.generator and not settings.sample
    ids = np.arange(cfg.batch_size)
    x = corpus.read(ids)
    batch, _ = builder.build(x, ids, 0)
    # Force a repeated position: slot 1 of row 0 points where slot 0 does (its old
    # position gets its original token back, since no slot covers it any more).
    old = batch["mlm_positions"][0, 1]
    batch["input_ids"][0, old] = x[0, old]
    batch["mlm_positions"][0, 1] = batch["mlm_positions"][0, 0]
    batch["mlm_targets"][0, 1] = batch["mlm_targets"][0, 0]
    batch["mlm_weights"][0, :2] = 1.0
    batch["input_ids"][0, batch["mlm_positions"][0, 0]] = MASK
    pos, valid = batch["mlm_positions"], batch["mlm_weights"] > 0
    assert (batch["input_ids"] == MASK).sum() >= 5  # the generator's input is [MASK]ed

    params = jax.device_get(state.params)
    key = jax.random.key(1)
    dropout_rng, sample_rng = jax.random.split(jax.random.fold_in(key, 0))  # the step's keys at step 0
    fwd = jax.jit(functools.partial(train_step.forward, model=model, settings=settings))
    out, labels = jax.device_get(fwd(params, batch, dropout_rng, sample_rng))
    disc, samples = np.asarray(out["discriminator_ids"]), np.asarray(out["generator_samples"])

    np.testing.assert_array_equal(out["original_ids"], x)  # the [MASK]s are undone from the slot targets
    np.testing.assert_array_equal(disc, first_slot_map(pos, valid, samples, x))
    assert disc[0, pos[0, 0]] == samples[0, 0]  # the repeated position takes its first slot's draw
    sampled_mask = first_slot_map(pos, valid, samples, np.zeros_like(x)) == MASK
    assert not np.any((disc == MASK) & ~sampled_mask)  # no [MASK] reaches the discriminator from masking
    selected = first_slot_map(pos, valid, np.ones_like(pos), np.zeros_like(x)) > 0
    np.testing.assert_array_equal(labels, (selected & (disc != x)).astype(np.int32))  # is_fake
    assert 0 < labels.sum() < selected.sum() + 1

    # The jitted step trains on exactly this forward: same samples, same losses.
    _, metrics, sampled = step(state, batch, key)
    metrics = jax.device_get(metrics)
    np.testing.assert_array_equal(np.asarray(sampled), samples)
    mlm, _ = losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])
    rtd, _ = losses.rtd_loss(out["rtd_logits"], labels, batch["input_mask"])
    np.testing.assert_allclose(metrics["mlm_loss"], mlm, rtol=1e-5)
    np.testing.assert_allclose(metrics["rtd_loss"], rtd, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], mlm + 50.0 * rtd, rtol=1e-5)


def test_scatter_slots_first_valid_slot_wins_and_invalid_slots_are_dropped():
    ids = jnp.arange(10, dtype=jnp.int32).reshape(2, 5)
    pos = jnp.asarray([[1, 1, 3, 0], [4, 2, 4, 4]])
    tok = jnp.asarray([[70, 71, 72, 73], [80, 81, 82, 83]])
    valid = jnp.asarray([[True, True, True, False], [False, True, True, True]])
    out = np.asarray(train_step.scatter_slots(ids, pos, tok, valid))
    np.testing.assert_array_equal(out, [[0, 70, 2, 72, 4], [5, 6, 81, 8, 82]])


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_gumbel_max_samples_follow_the_softmax(temperature):
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logits = jnp.broadcast_to(jnp.log(jnp.asarray(p, jnp.float32)), (20_000, 5, 6))
    draws = np.asarray(train_step.gumbel_sample(jax.random.key(3), logits, temperature)).ravel()
    q = p ** (1 / temperature)
    q = q / q.sum()
    assert stats.chisquare(np.bincount(draws, minlength=6), q * draws.size).pvalue > 1e-4


def test_step_settings_follow_the_objective():
    for name, sample, generator, mlm, rtd in [("sas_small", True, False, True, True),
                                              ("unig_mlm_sas", True, False, True, False),
                                              ("unig_mlm_rtd", False, False, True, True),
                                              ("bert_small", False, False, True, False),
                                              ("electra_small", False, True, True, True)]:
        cfg = load_config(name, "tiny")
        s = objectives.build(cfg, cfg.model.vocab_size).step_settings(steps_per_epoch=4)
        assert (s.sample, s.generator, s.use_mlm, s.use_rtd) == (sample, generator, mlm, rtd), name


E, C = "epochwise", "constant"
# Every pre-training row of configs/: what `objectives.build` chooses for it.
#   row: (model class, builder class, corruption, mlm, rtd, λ schedule, cold-start epochs of λ = 0)
CHOSEN = {
    "bert_base": (PretrainingModel, StaticBatchBuilder, "bert", True, False, E, 0),
    "bert_small": (PretrainingModel, StaticBatchBuilder, "bert", True, False, E, 0),
    "bert_small_1_5x": (PretrainingModel, StaticBatchBuilder, "bert", True, False, E, 0),
    "deberta_base": (PretrainingModel, StaticBatchBuilder, "bert", True, False, E, 0),
    "deberta_small": (PretrainingModel, StaticBatchBuilder, "bert", True, False, E, 0),
    "electra_base": (ElectraModel, ElectraBatchBuilder, "electra", True, True, C, 0),
    "electra_da_base": (ElectraModel, ElectraBatchBuilder, "electra", True, True, C, 0),
    "electra_da_small": (ElectraModel, ElectraBatchBuilder, "electra", True, True, C, 0),
    "electra_small": (ElectraModel, ElectraBatchBuilder, "electra", True, True, C, 0),
    "sas_base": (PretrainingModel, SasBatchBuilder, "sas", True, True, E, 0),
    "sas_demo": (PretrainingModel, SasBatchBuilder, "sas", True, True, C, 1),  # the `mlm` cold start
    "sas_small": (PretrainingModel, SasBatchBuilder, "sas", True, True, E, 0),
    "sasc_small": (PretrainingModel, SasBatchBuilder, "sas", True, True, C, 0),
    "sasda_base": (PretrainingModel, SasBatchBuilder, "sas", True, True, E, 0),
    "sasda_small": (PretrainingModel, SasBatchBuilder, "sas", True, True, E, 0),
    "sascda_small": (PretrainingModel, SasBatchBuilder, "sas", True, True, C, 0),
    "unif_sas": (PretrainingModel, SasBatchBuilder, "sas", True, True, E, 0),
    "unif_sasc": (PretrainingModel, SasBatchBuilder, "sas", True, True, C, 0),
    "unig_mlm": (PretrainingModel, StaticBatchBuilder, "unigram", True, False, E, 0),
    "unig_mlm_rtd": (PretrainingModel, StaticBatchBuilder, "unigram", True, True, E, 0),
    "unig_mlm_rtdc": (PretrainingModel, StaticBatchBuilder, "unigram", True, True, C, 0),
    "unig_mlm_sas": (PretrainingModel, SasBatchBuilder, "sas", True, False, E, 0),
}


def test_every_pretraining_config_has_a_chosen_row():
    assert set(CHOSEN) == {p.stem for p in (ROOT / "configs").glob("*.py")} - {"glue"}


@pytest.mark.parametrize("name", sorted(CHOSEN))
def test_build_chooses_the_rows_model_builder_and_step_settings(name):
    model_class, builder_class, corruption, mlm, rtd, schedule, rtd_off_epochs = CHOSEN[name]
    cfg = load_config(name, "tiny")
    vocab = cfg.model.vocab_size
    objective = objectives.build(cfg, vocab)
    assert objective.heads == objectives.Heads(corruption, mlm, rtd) == objectives.heads(cfg)
    assert (objective.heads.sample, objective.heads.generator) == (corruption == "sas", corruption == "electra")
    assert type(objective.model) is model_class and objective.builder_class is builder_class
    assert objective.model.cfg is objective.model_config
    assert objective.model_config == ModelConfig.from_config(cfg.model, vocab_size=vocab)
    assert objective.vocab_size == vocab
    if model_class is PretrainingModel:
        assert (objective.model.use_mlm, objective.model.use_rtd) == (mlm, rtd)

    corpus = markov_corpus(8, cfg.seq_len, vocab)
    builder = objective.make_builder(corpus, np.arange(8), steps_per_epoch=4)
    assert type(builder) is builder_class
    assert (builder.vocab_size, builder.seed, builder.max_predictions) == (vocab, cfg.seed, cfg.sas.max_predictions)
    assert (builder.store is not None) == (corruption == "sas")
    if corruption == "sas":
        assert builder.store.example_ids.tolist() == list(range(8))
        assert (builder.cold_start, builder.policy) == (cfg.sas.cold_start, cfg.sas.position_policy)
        assert builder.cold_start_steps == 4 * cfg.sas.cold_start_epochs == 4
    elif corruption == "electra":
        assert builder.mask_token_rate == 0.85
    else:
        assert builder.kind == corruption
        assert (builder.mask_token_rate, builder.random_token_rate) == ((0.8, 0.1) if corruption == "bert" else
                                                                        (0.8, 0.0))

    settings = objective.step_settings(steps_per_epoch=4)
    assert settings == train_step.StepSettings(
        use_mlm=mlm, use_rtd=rtd, sample=corruption == "sas", generator=corruption == "electra",
        temperature=float(cfg.sas.temperature), lambda_schedule=schedule, lambda_start=float(cfg.sas.lambda_start),
        lambda_end=float(cfg.sas.lambda_end), steps_per_epoch=4, num_epochs=-(-cfg.num_train_steps // 4),
        rtd_off_steps=4 * rtd_off_epochs)


@pytest.mark.parametrize("edit,message", [
    ({"objective.corruption": "mask"}, r"objective.corruption='mask' is unknown"),
    ({"objective.mlm": False, "objective.rtd": False}, r"there is no loss"),
    ({"objective.mlm": False}, r"corruption=sas samples the MLM head"),
    ({"objective.corruption": "electra", "objective.rtd": False}, r"generator \(MLM\) and a discriminator"),
    ({"objective.corruption": "electra", "objective.random_token_rate": 0.1}, r"random_token_rate is BERT's"),
    ({"model.embedding_sharing": "tied"}, r"model.embedding_sharing='tied' is unknown; use one of shared, gdes"),
    ({"model.embedding_sharing": "gdes"}, r"gdes splits the word table .*set model.embedding_sharing=shared"),
    ({"objective.corruption": "electra", "model.embedding_sharing": "gdes"}, r"embedding_sharing=gdes .*disentangled"),
    ({"objective.corruption": "electra", "sas.max_predictions": 18, "seq_len": 128,
      "model.max_position_embeddings": 128}, r"max_predictions=18 < ELECTRA's budget .*=19"),
])
def test_objective_validation_names_the_fix(edit, message):
    cfg = load_config("sas_small", "tiny")
    cfg.objective.random_token_rate = 0.0
    for k, v in edit.items():
        node = cfg
        *path, last = k.split(".")
        for part in path:
            node = node[part]
        node[last] = v
    with pytest.raises(UserError, match=message):
        objectives.check_objective(cfg)
