"""Objective plumbing: the ELECTRA step's generator → Gumbel-max → discriminator path,
slot scatter with repeated positions, the Gumbel-max law, and objective validation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from scipy import stats
from test_configs import setup_row

from sas_jax import losses, objectives, train_step
from sas_jax.data.synthetic import MASK
from sas_jax.errors import UserError


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
        s = train_step.StepSettings.from_config(load_config(name, "tiny"), steps_per_epoch=4)
        assert (s.sample, s.generator, s.use_mlm, s.use_rtd) == (sample, generator, mlm, rtd), name


@pytest.mark.parametrize("edit,message", [
    ({"objective.corruption": "mask"}, r"objective.corruption='mask' is unknown"),
    ({"objective.mlm": False, "objective.rtd": False}, r"there is no loss"),
    ({"objective.mlm": False}, r"corruption=sas samples the MLM head"),
    ({"objective.corruption": "electra", "objective.rtd": False}, r"generator \(MLM\) and a discriminator"),
    ({"objective.corruption": "electra", "objective.random_token_rate": 0.1}, r"random_token_rate is BERT's"),
    ({"objective.corruption": "electra", "model.attention_type": "disentangled"}, r"attention_type=absolute"),
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
