"""The Enhanced Mask Decoder (`model.enhanced_mask_decoder`, docs/reference.md §9.7).

Off: the DA model is the one it was (no position table, same outputs, blind to absolute
positions). On: the MLM logits equal a plain-NumPy reference built from the same params
(H_{L-1} + z as queries, the last layer twice over keys/values H_{L-1}), absolute positions
matter, the RTD head is untouched, gradients are finite, a tiny SASDA run trains, and the
checkpoint it writes is refused by the HF export in one line.
"""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from sas_jax import config_lib, objectives
from sas_jax.errors import UserError
from sas_jax.models import ModelConfig, PretrainingModel, disentangled

from conftest import load_config

jax.config.update("jax_default_matmul_precision", "highest")

DA = ModelConfig(vocab_size=60, hidden_size=32, embedding_size=32, num_layers=3, num_heads=2, head_dim=16,
                 intermediate_size=64, max_position_embeddings=48, type_vocab_size=0, layer_norm_eps=1e-7,
                 attention_type="disentangled", position_biased_input=False, dropout_rate=0.1,
                 attention_dropout_rate=0.1)
EMD = dataclasses.replace(DA, enhanced_mask_decoder=True)
L = 12


def batch():
    rng = np.random.RandomState(0)
    ids = rng.randint(5, DA.vocab_size, (2, L)).astype(np.int32)
    ids[:, 0] = 2  # a [CLS]-like first token
    mask = np.ones((2, L), np.int32)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    positions = np.array([[1, 4, 7], [2, 5, 8]], np.int32)
    return jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions)


@functools.lru_cache(maxsize=None)
def boxed(cfg, seed=0):
    """The model's initial (boxed) params on `batch()`: one init per config for the whole file
    (read only: `init` unboxes into new containers, the tests make new dicts)."""
    ids, mask, pos = batch()
    return PretrainingModel(cfg).init(jax.random.key(seed), ids, mask, pos)["params"]


def init(cfg, seed=0):
    return nn.meta.unbox(boxed(cfg, seed))


def apply(cfg, params, *args, **kw):
    return PretrainingModel(cfg).apply({"params": params}, *args, **kw)


# ------------------------------------------------------------------ a plain-NumPy reference
# In float64, on host arrays: no JAX op (and so no per-op compile) and no JAX rounding in it.


def f64(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def ln(x, p, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def lin(x, p):
    return x @ p["kernel"] + p["bias"]


def gelu(x):  # exact (erf) GELU
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_layer(p, query_in, kv, mask, rel, cfg):
    """One post-LN DA layer (shared keys, c2p + p2c) with queries and residual from `query_in`."""
    n, d = cfg.num_heads, cfg.head_dim
    heads = lambda t: t.reshape(*t.shape[:-1], n, d)  # noqa: E731
    q, k, v = heads(lin(query_in, p["query"])), heads(lin(kv, p["key"])), heads(lin(kv, p["value"]))
    kr, qr = heads(lin(rel, p["key"])), heads(lin(rel, p["query"]))  # [W, N, D], biases included
    index, _, _ = disentangled.relative_index_for(cfg, kv.shape[1])
    c2p = np.einsum("bqnd,qknd->bnqk", q, kr[index])  # Q_q · Kr[j(q, k)]
    p2c = np.einsum("bknd,qknd->bnqk", k, qr[index])  # K_k · Qr[j(q, k)]
    scores = (np.einsum("bqnd,bknd->bnqk", q, k) + c2p + p2c) / np.sqrt(3 * d)
    scores = np.where(np.asarray(mask)[:, None, None, :] > 0, scores, -1e30)
    ctx = np.einsum("bnqk,bknd->bqnd", softmax(scores), v).reshape(*query_in.shape[:2], n * d)
    x = ln(query_in + lin(ctx, p["attention_output"]), p["attention_LayerNorm"], cfg.layer_norm_eps)
    h = gelu(lin(x, p["intermediate"]))
    return ln(x + lin(h, p["output"]), p["output_LayerNorm"], cfg.layer_norm_eps)


def ref_rel_table(enc, cfg, length):
    _, lo, hi = disentangled.relative_index_for(cfg, length)
    return ln(enc["rel_embeddings"][lo:hi + 1], enc["rel_LayerNorm"], cfg.layer_norm_eps)


def ref_mlm(p, word, hidden_BxPxH, cfg):
    t = gelu(lin(hidden_BxPxH, p["dense"]))
    return ln(t, p["LayerNorm"], cfg.mlm_layer_norm_eps) @ word.T + p["bias"]


def below_last(params, cfg, ids, mask):
    """H_{L-1}: the same params through an encoder without its last layer (the model's own, float32)."""
    short = dataclasses.replace(cfg, num_layers=cfg.num_layers - 1, enhanced_mask_decoder=False)
    enc = {k: v for k, v in params["encoder"].items() if k != f"layer_{cfg.num_layers - 1}"}
    return PretrainingModel(short, use_mlm=False, use_rtd=False).apply(
        {"params": {"embeddings": params["embeddings"], "encoder": enc}}, ids, mask)["hidden"]


# ------------------------------------------------------------------ EMD off: unchanged


def test_emd_off_has_no_position_table_and_emd_on_only_adds_one():
    off, on = init(DA), init(EMD)
    assert "emd_position_embeddings" not in off
    assert "position_embeddings" not in off["embeddings"]  # DA rows: no input position table either
    assert on["emd_position_embeddings"].shape == (DA.max_position_embeddings, DA.hidden_size)
    names = lambda t: sorted(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(t))  # noqa: E731
    assert names(off) == names({k: v for k, v in on.items() if k != "emd_position_embeddings"})
    # The table's logical axes are the input position table's.
    assert tuple(boxed(EMD)["emd_position_embeddings"].names) == (None, "embed")
    # A config dict without the field (an older checkpoint's meta) builds the EMD-off model.
    values = dataclasses.asdict(DA)
    values.pop("enhanced_mask_decoder")
    assert ModelConfig.from_config(values) == DA


def test_emd_changes_only_the_mlm_path():
    ids, mask, pos = batch()
    on = init(EMD)
    off = {k: v for k, v in on.items() if k != "emd_position_embeddings"}
    for kw in (dict(), dict(deterministic=False, rngs={"dropout": jax.random.key(5)})):
        a, b = apply(DA, off, ids, mask, pos, **kw), apply(EMD, on, ids, mask, pos, **kw)
        np.testing.assert_array_equal(a["hidden"], b["hidden"])  # bit-identical
        np.testing.assert_array_equal(a["rtd_logits"], b["rtd_logits"])
        assert not np.allclose(a["mlm_logits"], b["mlm_logits"], atol=1e-3)


# ------------------------------------------------------------------ EMD on: the reference


def test_emd_mlm_logits_match_a_hand_written_reference():
    ids, mask, pos = batch()
    model_params = init(EMD)
    out = apply(EMD, model_params, ids, mask, pos)
    h = f64(below_last(model_params, EMD, ids, mask))
    params, pos = f64(model_params), np.asarray(pos)
    enc, last = params["encoder"], params["encoder"][f"layer_{EMD.num_layers - 1}"]
    rel = ref_rel_table(enc, EMD, L)
    # The reference layer is the model's layer when queries = keys/values (it checks the reference).
    np.testing.assert_allclose(ref_layer(last, h, h, mask, rel, EMD), out["hidden"], atol=5e-6)
    z = params["emd_position_embeddings"][:L][None]
    q = h + z
    for _ in range(2):
        q = ref_layer(last, q, h, mask, rel, EMD)
    gathered = np.take_along_axis(q, pos[:, :, None], axis=1)
    want = ref_mlm(params["mlm_head"], params["embeddings"]["word_embeddings"]["embedding"], gathered, EMD)
    np.testing.assert_allclose(out["mlm_logits"], want, atol=5e-6, rtol=1e-5)
    # One pass (or none) is not what the model computes.
    once = ref_layer(last, h + z, h, mask, rel, EMD)
    once = ref_mlm(params["mlm_head"], params["embeddings"]["word_embeddings"]["embedding"],
                   np.take_along_axis(once, pos[:, :, None], axis=1), EMD)
    assert not np.allclose(out["mlm_logits"], once, atol=1e-3)


def test_absolute_positions_matter_only_with_emd():
    ids, mask, pos = batch()
    params = init(EMD)
    perm = np.random.RandomState(1).permutation(EMD.max_position_embeddings)
    shuffled = dict(params, emd_position_embeddings=params["emd_position_embeddings"][perm])
    a, b = apply(EMD, params, ids, mask, pos), apply(EMD, shuffled, ids, mask, pos)
    assert not np.allclose(a["mlm_logits"], b["mlm_logits"], atol=1e-3)
    np.testing.assert_array_equal(a["rtd_logits"], b["rtd_logits"])

    # The same 9 tokens at positions 0..8 (then padding) or 3..11 (padding first): without EMD
    # nothing sees absolute positions, so the tokens' outputs agree; with EMD they do not.
    # Both rows in one batch of `batch()`'s shape (rows never mix; the ops' shapes are the ones
    # already run above).
    row = ids[0, :9]
    both = jnp.zeros((2, L), jnp.int32).at[0, :9].set(row).at[1, 3:].set(row)
    m_both, p_both = (both > 0).astype(jnp.int32), jnp.asarray([[1, 4, 7], [4, 7, 10]])
    off = {k: v for k, v in params.items() if k != "emd_position_embeddings"}
    out = apply(DA, off, both, m_both, p_both)
    r, lft = ({k: out[k][i:i + 1] for k in ("mlm_logits", "rtd_logits")} for i in (0, 1))
    np.testing.assert_allclose(r["mlm_logits"], lft["mlm_logits"], atol=1e-4)
    np.testing.assert_allclose(r["rtd_logits"][:, :9], lft["rtd_logits"][:, 3:], atol=1e-4)
    out = apply(EMD, params, both, m_both, p_both)
    r, lft = ({k: out[k][i:i + 1] for k in ("mlm_logits", "rtd_logits")} for i in (0, 1))
    np.testing.assert_allclose(r["rtd_logits"][:, :9], lft["rtd_logits"][:, 3:], atol=1e-4)
    assert not np.allclose(r["mlm_logits"], lft["mlm_logits"], atol=1e-3)


def test_emd_gradients_are_finite_and_the_rtd_loss_does_not_reach_the_table():
    # One layer (the remat test's model; its last layer is then the only one, run twice over the
    # embeddings): which loss reaches the table is the decoder's wiring, not depth, and the
    # backward pass of three layers compiles in 60% more time.
    cfg = dataclasses.replace(EMD, num_layers=1)
    ids, mask, pos = batch()
    params = init(cfg)

    def losses(p):
        out = apply(cfg, p, ids, mask, pos, deterministic=False, rngs={"dropout": jax.random.key(7)})
        return jnp.sum(jax.nn.log_softmax(out["mlm_logits"])[..., 7]), out["rtd_logits"].sum()

    _, pull_back = jax.vjp(jax.jit(losses), params)
    (g,), (g_rtd,) = pull_back((1.0, 0.0)), pull_back((0.0, 1.0))
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(g))
    assert np.abs(g["emd_position_embeddings"][:L]).sum() > 0
    assert np.abs(g["emd_position_embeddings"][L:]).sum() == 0  # rows past the length are unused
    assert np.abs(g_rtd["emd_position_embeddings"]).sum() == 0


def test_emd_with_remat_and_pre_layer_norm_runs():
    ids, mask, pos = batch()
    remat = dataclasses.replace(EMD, remat="full")
    params = init(EMD)
    # remat changes no parameter: its init's tree (traced, not run) is EMD's, whose params serve.
    shapes = jax.eval_shape(lambda: PretrainingModel(remat).init(jax.random.key(0), ids, mask, pos)["params"])
    assert jax.tree_util.tree_map(np.shape, nn.meta.unbox(shapes)) == jax.tree_util.tree_map(np.shape, params)
    for cfg, p in ((remat, params), (dataclasses.replace(EMD, pre_layer_norm=True), None),
                   (dataclasses.replace(EMD, num_layers=1), None)):
        out = apply(cfg, init(cfg) if p is None else p, ids, mask, pos, deterministic=False,
                    rngs={"dropout": jax.random.key(0)})
        assert np.isfinite(out["mlm_logits"]).all()
    # remat gives the same numbers as no remat
    np.testing.assert_allclose(apply(remat, params, ids, mask, pos)["mlm_logits"],
                               apply(EMD, params, ids, mask, pos)["mlm_logits"], atol=1e-6)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("row, overrides, match", [
    ("sas_small", [], "needs model.attention_type=disentangled"),
    ("bert_small", [], "needs model.attention_type=disentangled"),
    ("electra_small", [], "not available for objective.corruption=electra"),
    ("sasda_small", ["objective.corruption=unigram", "objective.mlm=false"], "feeds the MLM head"),
])
def test_check_objective_refuses_emd_where_it_means_nothing(row, overrides, match):
    cfg = load_config(row, "tiny", ["model.enhanced_mask_decoder=true", *overrides])
    with pytest.raises(UserError, match=match) as e:
        objectives.check_objective(cfg)
    assert "\n" not in str(e.value)


def test_check_objective_accepts_emd_on_the_da_rows():
    for row in ("sasda_small", "deberta_small", "sasda_base", "deberta_base"):
        objectives.check_objective(load_config(row, "tiny", ["model.enhanced_mask_decoder=true"]))


def test_model_config_refuses_emd_for_absolute_attention():
    with pytest.raises(ValueError, match="enhanced_mask_decoder=True needs model.attention_type=disentangled"):
        dataclasses.replace(DA, attention_type="absolute", enhanced_mask_decoder=True)


def test_da_rows_see_no_absolute_positions_by_default():
    for row in ("sasda_small", "deberta_small", "sasda_base", "deberta_base"):
        m = config_lib.load_config(row).model
        assert (m.attention_type, m.position_biased_input, m.enhanced_mask_decoder) == ("disentangled", False, False)


# ------------------------------------------------------------------ a tiny run, then the export


@pytest.mark.slow
def test_tiny_sasda_run_with_emd_trains_and_its_checkpoint_is_not_exported(tmp_path, capsys):
    from sas_jax import checkpointing, train  # noqa: PLC0415
    from sas_jax.convert import workdir as convert_workdir  # noqa: PLC0415
    from sas_jax.convert.__main__ import main as convert_main  # noqa: PLC0415
    from sas_jax.data.synthetic import markov_corpus  # noqa: PLC0415

    cfg = config_lib.load_config("sasda_small:tiny", ["model.enhanced_mask_decoder=true", "model.num_layers=1"])
    cfg.num_train_steps, cfg.log.every_steps, cfg.ckpt.every_steps, cfg.log.tensorboard = 3, 1, 3, False
    corpus = markov_corpus(32, cfg.seq_len, cfg.model.vocab_size)
    workdir = str(tmp_path / "run")
    # train_and_evaluate's Trainer on one device: the run's logic is the point (the row's
    # data-parallel mesh replicates every parameter, the EMD table too); 8 devices add compile
    # and checkpoint-save time, not coverage. One layer: the EMD's last layer is then the only
    # one, run twice over the embeddings (a second layer adds compile time, not coverage).
    out = train.Trainer(cfg, workdir, corpus=corpus, devices=jax.devices()[:1]).run()
    assert out["step"] == 3
    assert np.isfinite(out["mlm_loss"]) and np.isfinite(out["rtd_loss"])
    params, meta = checkpointing.read_params(workdir, 3)
    assert params["emd_position_embeddings"].shape == (cfg.model.max_position_embeddings, cfg.model.hidden_size)
    assert meta["config"]["model"]["enhanced_mask_decoder"] is True

    with pytest.raises(UserError, match="enhanced_mask_decoder=True") as e:
        convert_workdir.export_checkpoint(workdir, str(tmp_path / "hf"))
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert convert_main(["export", f"--checkpoint_dir={workdir}", f"--out={tmp_path}/hf2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "enhanced_mask_decoder=True" in err
    # The shape-level check (hf_config) refuses it in one line too.
    from sas_jax.convert import hf_config  # noqa: PLC0415

    with pytest.raises(ValueError, match="enhanced mask decoder") as e:
        hf_config.to_hf_config(ModelConfig.from_config(cfg.model), "DebertaV2ForMaskedLM")
    assert "\n" not in str(e.value)
