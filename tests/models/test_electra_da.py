"""ELECTRA-DA (`ElectraModel` on disentangled attention, docs/reference.md §9.8): what the pair
shares, the gradient rule of ELECTRA and of GDES under the real training forward and losses, and
the step on 8 devices."""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_config

from sas_jax import losses, objectives, optim, sharding, train_state, train_step
from sas_jax.data.synthetic import markov_corpus
from sas_jax.errors import UserError
from sas_jax.models import ElectraModel, ModelConfig, PretrainingModel, generator_config
from sas_jax.models.electra import network_params

jax.config.update("jax_default_matmul_precision", "highest")

# H = 64, E = 32: both networks project (generator H_g = 16, 1 head of 16).
DA = ModelConfig(vocab_size=100, hidden_size=64, embedding_size=32, num_layers=1, num_heads=4, head_dim=16,
                 intermediate_size=256, max_position_embeddings=64, dropout_rate=0.0, attention_dropout_rate=0.0,
                 attention_type="disentangled", position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)
GDES = dataclasses.replace(DA, embedding_sharing="gdes")


def _inputs():
    rng = np.random.RandomState(0)
    ids = jnp.asarray(rng.randint(5, 100, (2, 16)))
    mask = jnp.ones_like(ids).at[1, 12:].set(0)
    return ids, mask, jnp.asarray([[1, 3, 5], [2, 4, 6]])


@functools.lru_cache(maxsize=None)
def _init_boxed(cfg):
    """The model's initial (boxed) params on `_inputs`: one init per config for the whole file
    (read only: `_perturbed` makes new arrays). DA's and GDES's come from one jit (each its own
    `init`, the same key), so XLA compiles the kernels the two share once."""
    if cfg in (DA, GDES):
        return _init_boxed_pair()[cfg == GDES]
    ids, mask, pos = _inputs()
    return jax.jit(ElectraModel(cfg).init)(jax.random.key(0), ids, mask, pos)["params"]


@functools.lru_cache(maxsize=None)
def _init_boxed_pair():
    ids, mask, pos = _inputs()
    return jax.jit(lambda key: tuple(ElectraModel(c).init(key, ids, mask, pos)["params"] for c in (DA, GDES)))(
        jax.random.key(0))


def _init(cfg, boxed=False):
    params = _init_boxed(cfg)
    return params if boxed else nn.meta.unbox(params)


def _perturbed(params, scale=0.1):
    rng = np.random.RandomState(1)
    return jax.tree_util.tree_map(lambda x: (np.asarray(x) + scale * rng.randn(*x.shape)).astype(np.float32), params)


def test_only_the_word_table_is_shared():
    p = _init(DA)
    assert set(p) == {"embeddings", "generator_embeddings", "generator", "generator_head",
                      "discriminator_embeddings", "discriminator", "discriminator_head"}
    assert jax.tree_util.tree_map(np.shape, p["embeddings"]) == {"word_embeddings": {"embedding": (100, 32)}}
    # Per network: DeBERTa's E→H projection (no bias), the LayerNorm over that H, the relative table.
    assert jax.tree_util.tree_map(np.shape, p["generator_embeddings"]) == {
        "embed_proj": {"kernel": (32, 16)}, "LayerNorm": {"scale": (16,), "bias": (16,)}}
    assert jax.tree_util.tree_map(np.shape, p["discriminator_embeddings"]) == {
        "embed_proj": {"kernel": (32, 64)}, "LayerNorm": {"scale": (64,), "bias": (64,)}}
    assert p["generator"]["rel_embeddings"].shape == (512, 16)
    assert p["discriminator"]["rel_embeddings"].shape == (512, 64)
    assert "embeddings_project" not in p["generator"] and "embeddings_project" not in p["discriminator"]
    assert "word_embeddings" not in p["generator_head"]  # tied to the shared table


def test_gdes_adds_one_zero_table_and_changes_nothing_at_init():
    shared, gdes = _init(DA), _init(GDES)
    assert set(gdes) - set(shared) == {"discriminator_word_delta"}
    np.testing.assert_array_equal(gdes["discriminator_word_delta"], np.zeros((100, 32), np.float32))
    assert tuple(_init(GDES, boxed=True)["discriminator_word_delta"].names) == ("vocab", "embed")
    ids, mask, pos = _inputs()
    a = ElectraModel(DA).apply({"params": shared}, ids, mask, pos)
    b = ElectraModel(GDES).apply({"params": gdes}, ids, mask, pos)
    for k in ("mlm_logits", "rtd_logits"):
        np.testing.assert_array_equal(a[k], b[k])  # sg(E_G) + 0 is E_G


@pytest.mark.parametrize("cfg", [DA, GDES], ids=["shared", "gdes"])
def test_each_network_is_a_pretraining_model_of_its_own_shape(cfg):
    """`network_params` (what the export writes) reproduces each network: the generator as an
    MLM-only model of `generator_config`, the discriminator (E_delta folded) as an RTD-only one."""
    params = _perturbed(_init(cfg))  # E_delta != 0: the fold matters
    ids, mask, pos = _inputs()
    out = ElectraModel(cfg).apply({"params": params}, ids, mask, pos)
    gen_cfg = dataclasses.replace(generator_config(cfg), mlm_layer_norm_eps=cfg.layer_norm_eps)
    gen = PretrainingModel(gen_cfg, use_rtd=False).apply({"params": network_params(params, "generator")},
                                                        ids, mask, pos)
    disc = PretrainingModel(cfg, use_mlm=False).apply({"params": network_params(params, "discriminator")},
                                                     ids, mask)
    np.testing.assert_allclose(gen["mlm_logits"], out["mlm_logits"], atol=1e-6)
    np.testing.assert_allclose(disc["rtd_logits"], out["rtd_logits"], atol=1e-6)
    table = network_params(params, "discriminator")["embeddings"]["word_embeddings"]["embedding"]
    folded = params["embeddings"]["word_embeddings"]["embedding"] + params.get("discriminator_word_delta", 0.0)
    np.testing.assert_array_equal(table, folded)


def test_model_config_and_model_refuse_what_is_not_built():
    with pytest.raises(ValueError, match="embedding_sharing='tied'; use one of shared, gdes"):
        dataclasses.replace(DA, embedding_sharing="tied")
    with pytest.raises(ValueError, match="embedding_sharing=gdes needs model.attention_type=disentangled"):
        dataclasses.replace(GDES, attention_type="absolute")
    with pytest.raises(ValueError, match="ElectraModel has no enhanced mask decoder"):
        _init(dataclasses.replace(DA, enhanced_mask_decoder=True))


def test_config_rows_and_the_gdes_override():
    cfg = load_config("electra_da_small", None)
    m = cfg.model
    assert (m.attention_type, m.embedding_size, m.hidden_size, m.generator_ratio) == ("disentangled", 128, 256, 0.25)
    assert (m.embedding_sharing, cfg.sas.lambda_schedule, cfg.sas.lambda_start) == ("shared", "constant", 50.0)
    gdes = load_config("electra_da_small", "tiny", ["model.embedding_sharing=gdes"])
    objectives.check_objective(gdes)
    assert objectives.build(gdes, gdes.model.vocab_size).model_config.embedding_sharing == "gdes"
    with pytest.raises(UserError, match="gdes splits the word table") as e:
        objectives.check_objective(load_config("electra_small", "tiny", ["model.embedding_sharing=gdes"]))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not available for objective.corruption=electra"):
        objectives.check_objective(load_config("electra_da_small", "tiny", ["model.enhanced_mask_decoder=true"]))


# ----------------------------------------------------------------------------- the gradient rule
def _tiny_config(sharing):
    """The tiny ELECTRA-DA row with one layer per network (which loss reaches which parameters is
    decided by the pair's wiring: shared table, sampled ids, stop-gradients, not by depth; on
    8 devices a second layer is the first's sharding again) and no warmup (the first update is a
    whole one)."""
    return load_config("electra_da_small", "tiny", [f"model.embedding_sharing={sharing}", "opt.warmup_steps=0",
                                                    "model.num_layers=1"])


@functools.lru_cache(maxsize=None)
def _tiny_batch():
    """The step-0 batch of the tiny row (its builder, the same for both sharings)."""
    cfg = _tiny_config("gdes")
    objective = objectives.build(cfg, cfg.model.vocab_size)
    corpus = markov_corpus(cfg.batch_size, cfg.seq_len, cfg.model.vocab_size)
    ids = np.arange(cfg.batch_size)
    return objective.make_builder(corpus, ids).build(corpus.read(ids), ids, 0)[0]


STEP_SEED = 5  # the step's key, jax.random.key(5): its dropout and sample keys at step 0 are split from it


@functools.lru_cache(maxsize=None)
def _tiny_grads():
    """(the GDES row's initial params, {sharing: ([MLM loss, RTD loss], grads of the MLM loss, grads
    of the RTD loss)} for "shared" and "gdes"), at the row's init (`create_sharded_state` on one
    device, key 0) and through the training forward (`train_step.forward`: dropout on, Gumbel
    samples into the discriminator) with the step's own keys at step 0 (`STEP_SEED`), so that
    `train_step`'s loss and gradient at step 0 are MLM + λ·RTD and theirs.

    One init: GDES's params are the shared pair's plus E_delta = 0 (the same key:
    `test_gdes_adds_one_zero_table_and_changes_nothing_at_init`), so the shared pair's are GDES's
    without E_delta (their tree is checked against the shared model's own, traced). One compile:
    one jit computes both pairs, so XLA compiles the kernels the two share once."""
    cfg, batch = _tiny_config("gdes"), _tiny_batch()
    models = {s: objectives.build(_tiny_config(s), cfg.model.vocab_size) for s in ("shared", "gdes")}
    mesh, rules = sharding.make_mesh(cfg.mesh, jax.devices()[:1]), sharding.logical_rules(cfg.mesh)
    tx = optim.make_optimizer(cfg.opt, cfg.num_train_steps)
    state, _ = train_state.create_sharded_state(jax.random.key(0), model=models["gdes"].model, tx=tx, mesh=mesh,
                                                rules=rules, seq_len=cfg.seq_len,
                                                max_predictions=cfg.sas.max_predictions)
    params = {"gdes": state.params,
              "shared": {k: v for k, v in state.params.items() if k != "discriminator_word_delta"}}
    shared_init = jax.eval_shape(functools.partial(train_state.init_fn, model=models["shared"].model, tx=tx,
                                                   seq_len=cfg.seq_len, max_predictions=cfg.sas.max_predictions),
                                 jax.random.key(0))
    shape = functools.partial(jax.tree_util.tree_map, lambda x: (x.shape, x.dtype))
    assert shape(nn.meta.unbox(shared_init.params)) == shape(params["shared"])
    dropout_rng, sample_rng = jax.random.split(jax.random.fold_in(jax.random.key(STEP_SEED), 0))  # train_step's

    def loss_grads(objective, p):
        settings = objective.step_settings(steps_per_epoch=1)

        def both_losses(q):
            out, labels = train_step.forward(q, batch, dropout_rng, sample_rng, model=objective.model,
                                             settings=settings)
            mlm = losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])[0]
            rtd = losses.rtd_loss(out["rtd_logits"], labels, batch["input_mask"])[0]
            return jnp.stack([mlm, rtd]), labels.sum()

        # One forward, pulled back once per loss (cotangents (1, 0) and (0, 1)): each is that loss's
        # gradient alone, what jax.grad of it gives, for one compiled forward instead of two.
        both, pull, replaced = jax.vjp(both_losses, p, has_aux=True)
        per_loss = jax.vmap(lambda ct: pull(ct)[0])(jnp.eye(2))
        return (both, *(jax.tree_util.tree_map(lambda g, i=i: g[i], per_loss) for i in range(2)), replaced)

    out = jax.device_get(jax.jit(lambda ps: {s: loss_grads(models[s], ps[s]) for s in ps})(params))
    for both, g_mlm, g_rtd, replaced in out.values():
        assert replaced > 0  # some sampled tokens differ from the original: the RTD loss has both classes
    return jax.device_get(state.params), {s: (both, g_mlm, g_rtd) for s, (both, g_mlm, g_rtd, _) in out.items()}


def _loss_grads(sharing):
    """(grads of the MLM loss, grads of the RTD loss) of the tiny row at its init (`_tiny_grads`)."""
    return _tiny_grads()[1][sharing][1:]


def _abs_sum(tree):
    return float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree_util.tree_leaves(tree)))


GENERATOR = ("generator_embeddings", "generator", "generator_head")
DISCRIMINATOR = ("discriminator_embeddings", "discriminator", "discriminator_head")


def test_rtd_loss_reaches_the_generator_only_through_the_shared_word_table():
    g_mlm, g_rtd = _loss_grads("shared")
    for name in GENERATOR:  # exactly zero: the discriminator reads sampled ids, under stop-gradient
        assert _abs_sum(g_rtd[name]) == 0.0, name
        assert _abs_sum(g_mlm[name]) > 0, name
    for name in DISCRIMINATOR:
        assert _abs_sum(g_mlm[name]) == 0.0, name
        assert _abs_sum(g_rtd[name]) > 0, name
    word = ("embeddings", "word_embeddings", "embedding")
    assert _abs_sum(g_rtd[word[0]][word[1]][word[2]]) > 0  # shared: both losses update E_G
    assert _abs_sum(g_mlm[word[0]][word[1]][word[2]]) > 0


def test_gdes_splits_the_word_table_between_the_losses():
    g_mlm, g_rtd = _loss_grads("gdes")
    e_g_mlm, e_g_rtd = (g["embeddings"]["word_embeddings"]["embedding"] for g in (g_mlm, g_rtd))
    assert _abs_sum(e_g_rtd) == 0.0  # stop_gradient(E_G): RTD never moves the generator's table
    assert _abs_sum(g_mlm["discriminator_word_delta"]) == 0.0  # the generator never reads E_delta
    assert _abs_sum(e_g_mlm) > 0 and _abs_sum(g_rtd["discriminator_word_delta"]) > 0
    for name in GENERATOR:
        assert _abs_sum(g_rtd[name]) == 0.0, name
    for name in DISCRIMINATOR:
        assert _abs_sum(g_mlm[name]) == 0.0, name


# ----------------------------------------------------------------------------- the step, 8 devices
def _one_step(devices, rules_name):
    cfg = _tiny_config("gdes")
    cfg.mesh.rules = rules_name
    if rules_name == "fsdp":
        cfg.mesh.data, cfg.mesh.fsdp = 1, -1
    mesh, rules = sharding.make_mesh(cfg.mesh, devices), sharding.logical_rules(cfg.mesh)
    objective = objectives.build(cfg, cfg.model.vocab_size)
    tx = optim.make_optimizer(cfg.opt, cfg.num_train_steps)
    state, shardings = train_state.create_sharded_state(
        jax.random.key(0), model=objective.model, tx=tx, mesh=mesh, rules=rules, seq_len=cfg.seq_len,
        max_predictions=cfg.sas.max_predictions)
    settings = objective.step_settings(steps_per_epoch=4)
    step = train_step.jit_train_step(model=objective.model, tx=tx, settings=settings, mesh=mesh, rules=rules,
                                     lr_schedule=optim.learning_rate_schedule(cfg.opt, cfg.num_train_steps),
                                     state_shardings=shardings)
    before = jax.device_get(state.params)
    if len(devices) > 1:
        spec = state.params["discriminator_word_delta"].sharding.spec
        assert spec == jax.sharding.PartitionSpec(None, "fsdp")  # E_delta really is split along E
    state, metrics, _ = step(state, _tiny_batch(), jax.random.key(STEP_SEED))
    return before, jax.device_get(state.params), jax.device_get(metrics)


def _one_device_step():
    """(params, metrics) of the row's first step on one device, from its parts: `train_step`'s loss
    MLM + λ·RTD and its gradient (the losses' and their gradients at the row's init on one device:
    `_tiny_grads`, which the fast tier's gradient tests read), then the row's optimizer update
    (`tx.update` + `optax.apply_updates`, as `train_step` applies it). One small compile (the
    update) instead of a second compile of the whole step."""
    cfg = _tiny_config("gdes")
    init, per_sharing = _tiny_grads()
    (mlm, rtd), g_mlm, g_rtd = per_sharing["gdes"]
    lam = float(objectives.build(cfg, cfg.model.vocab_size).step_settings(steps_per_epoch=4).rtd_weight(0))
    grads = jax.tree_util.tree_map(lambda a, b: a + lam * b, g_mlm, g_rtd)
    tx = optim.make_optimizer(cfg.opt, cfg.num_train_steps)

    def update(params):
        updates, _ = tx.update(grads, tx.init(params), params)
        return optax.apply_updates(params, updates), optax.tree.norm(grads)

    params, grad_norm = jax.device_get(jax.jit(update)(init))
    return params, {"loss": mlm + lam * rtd, "grad_norm": grad_norm}


@pytest.mark.slow  # ~10 s: the 8-device init and step compile; the fast tier keeps GDES's gradient split
def test_gdes_step_on_eight_devices_matches_one_device():
    """The jitted step on 8 devices (FSDP: E_delta split along E) against the same step on one
    device, built from its parts (`_one_device_step`: the gradients the fast tier checks, the row's
    optimizer): the loss, the gradient norm and every updated parameter."""
    p1, m1 = _one_device_step()
    before, p8, m8 = _one_step(jax.devices(), "fsdp")
    assert len(jax.devices()) == 8
    assert {k for k in m8 if k.endswith("_loss")} == {"mlm_loss", "rtd_loss"} and m8["rtd_lambda"] == 50.0
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=1e-4)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p8)
    assert np.abs(p8["discriminator_word_delta"]).max() > 0  # the RTD loss trained E_delta
    assert not np.array_equal(p8["embeddings"]["word_embeddings"]["embedding"],
                              before["embeddings"]["word_embeddings"]["embedding"])


def test_glue_fine_tunes_the_discriminator_with_its_own_projection_and_folded_table():
    from sas_jax.glue import model as glue_model  # noqa: PLC0415

    params = _perturbed(_init(GDES))
    enc, rest = glue_model.split_encoder(params)
    disc = network_params(params, "discriminator")
    jax.tree_util.tree_map(np.testing.assert_array_equal, enc, {"embeddings": disc["embeddings"],
                                                                 "encoder": disc["encoder"]})
    assert set(rest) == {"generator_embeddings", "generator", "generator_head", "discriminator_head"}
    fresh = glue_model.init_params(glue_model.GlueModel(GDES, 2), jax.random.key(0))
    _, missing, unexpected = glue_model.merge_pretrained(fresh, enc)
    assert unexpected == [] and all(k.startswith("classifier/") for k in missing)  # only the new head is fresh
