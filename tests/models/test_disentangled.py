"""Disentangled (DebertaV2) attention: buckets, the sliced index, the score terms, the model."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sas_jax.models import ModelConfig, PretrainingModel, disentangled
from sas_jax.models.encoder import Embeddings

jax.config.update("jax_default_matmul_precision", "highest")

DA = ModelConfig(vocab_size=100, hidden_size=32, embedding_size=32, num_layers=1, num_heads=2, head_dim=16,
                 intermediate_size=64, max_position_embeddings=512, type_vocab_size=0, layer_norm_eps=1e-7,
                 attention_type="disentangled", position_biased_input=False)


def test_log_bucket_reference_values():
    r = np.array([0, 5, 128, 129, 140, 200, 256, 300, 511])
    want = np.array([0, 5, 128, 129, 137, 169, 192, 207, 255])
    np.testing.assert_array_equal(disentangled.log_bucket(r, 256, 512), want)
    np.testing.assert_array_equal(disentangled.log_bucket(-r, 256, 512), -want)  # odd


def test_log_bucket_matches_hf():
    torch = pytest.importorskip("torch")
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    r = np.arange(-2047, 2048)
    for buckets, max_position in [(256, 512), (256, 1024), (128, 512), (64, 256)]:
        hf = make_log_bucket_position(torch.tensor(r), buckets, max_position).long().numpy()
        np.testing.assert_array_equal(disentangled.log_bucket(r, buckets, max_position), hf)


def test_relative_index_keeps_only_reached_rows():
    # L <= 129: the buckets change nothing, index = q - k + S, rows S-(L-1) .. S+(L-1).
    index, lo, hi = disentangled.relative_index(128, 256, 256, 512)
    q, k = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    assert (lo, hi) == (129, 383)
    np.testing.assert_array_equal(index + lo, q - k + 256)
    index, lo, hi = disentangled.relative_index(300, 256, 256, 512)
    assert index.shape == (300, 300) and index.min() == 0 and index.max() == hi - lo
    # Without buckets the clamp to [0, 2S-1] bites once L > S.
    index, lo, hi = disentangled.relative_index(40, 16, -1, 512)
    assert (lo, hi) == (0, 31)


def test_relative_bias_matches_full_table_loops():
    """The sliced-table gather equals the textbook sum over the full 2S table."""
    rng = np.random.RandomState(0)
    b, length, n, d, span = 2, 9, 2, 4, 4  # L > S so the clamp matters
    q, k = rng.randn(2, b, length, n, d).astype(np.float32)
    table_q, table_k = rng.randn(2, 2 * span, n, d).astype(np.float32)
    index, lo, hi = disentangled.relative_index(length, span, -1, 512)
    got = disentangled.relative_bias(jnp.asarray(q), jnp.asarray(k), jnp.asarray(table_q[lo:hi + 1]),
                                     jnp.asarray(table_k[lo:hi + 1]), index, 0.5)
    want = np.zeros((b, n, length, length), np.float32)
    for i in range(length):
        for j in range(length):
            r = int(np.clip(i - j + span, 0, 2 * span - 1))
            want[:, :, i, j] = 0.5 * (np.einsum("bnd,nd->bn", q[:, i], table_k[r])
                                      + np.einsum("bnd,nd->bn", k[:, j], table_q[r]))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def _inputs(length=24):
    ids = jnp.asarray(np.random.RandomState(0).randint(5, 100, (2, length)))
    mask = jnp.ones_like(ids).at[1, length - 7:].set(0)
    return ids, mask, jnp.asarray([[1, 2, 3], [4, 5, 6]])


def test_da_params_and_outputs():
    ids, mask, pos = _inputs()
    model = PretrainingModel(DA)
    params = nn.meta.unbox(model.init(jax.random.key(0), ids, mask, pos)["params"])
    assert set(params["embeddings"]) == {"word_embeddings", "LayerNorm"}  # no positions, no types
    assert params["encoder"]["rel_embeddings"].shape == (512, 32)
    assert "rel_LayerNorm" in params["encoder"] and "embeddings_project" not in params["encoder"]
    assert set(params["encoder"]["layer_0"]) >= {"query", "key", "value"}
    assert "pos_key_proj" not in params["encoder"]["layer_0"]  # shared keys add no parameters
    out = model.apply({"params": params}, ids, mask, pos)
    assert out["mlm_logits"].shape == (2, 3, 100) and out["rtd_logits"].shape == (2, 24)
    assert np.isfinite(np.asarray(out["hidden"])).all()


def test_da_embeddings_project_before_norm_and_zero_pads():
    cfg = dataclasses.replace(DA, embedding_size=16)
    ids, mask, _ = _inputs()
    emb = Embeddings(cfg)
    v = emb.init(jax.random.key(0), ids, deterministic=True, input_mask_BxL=mask)
    p = nn.meta.unbox(v["params"])
    assert p["embed_proj"] == {"kernel": p["embed_proj"]["kernel"]} and p["embed_proj"]["kernel"].shape == (16, 32)
    assert p["LayerNorm"]["scale"].shape == (32,)
    x = np.asarray(emb.apply(v, ids, deterministic=True, input_mask_BxL=mask))
    assert x.shape == (2, 24, 32) and np.all(x[1, -7:] == 0) and np.all(np.abs(x[0]).sum(-1) > 0)


def test_da_unshared_keys_remat_and_dropout():
    ids, mask, pos = _inputs()
    cfg = dataclasses.replace(DA, share_att_key=False)
    params = nn.meta.unbox(PretrainingModel(cfg).init(jax.random.key(0), ids, mask, pos)["params"])
    assert {"pos_key_proj", "pos_query_proj"} <= set(params["encoder"]["layer_0"])
    plain = PretrainingModel(cfg).apply({"params": params}, ids, mask, pos)
    remat = PretrainingModel(dataclasses.replace(cfg, remat="full")).apply({"params": params}, ids, mask, pos)
    np.testing.assert_allclose(np.asarray(remat["hidden"]), np.asarray(plain["hidden"]), atol=1e-6)

    def loss(p):
        out = PretrainingModel(cfg).apply(
            {"params": p}, ids, mask, pos, deterministic=False, rngs={"dropout": jax.random.key(1)})
        return out["mlm_logits"].mean() + out["rtd_logits"].mean()

    grads = jax.jit(jax.grad(loss))(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))
    assert np.abs(np.asarray(grads["encoder"]["rel_embeddings"])).sum() > 0


def test_only_c2p_changes_scale_and_terms():
    ids, mask, pos = _inputs()
    cfg = dataclasses.replace(DA, pos_att_type="c2p")
    assert disentangled.score_scale(cfg, 64) == pytest.approx(1 / np.sqrt(128))
    assert disentangled.score_scale(DA, 64) == pytest.approx(1 / np.sqrt(192))
    params = PretrainingModel(cfg).init(jax.random.key(0), ids, mask, pos)["params"]
    out = PretrainingModel(cfg).apply({"params": params}, ids, mask, pos)
    assert np.isfinite(np.asarray(out["hidden"])).all()


def test_absolute_models_keep_their_tree():
    cfg = dataclasses.replace(DA, attention_type="absolute", position_biased_input=True, type_vocab_size=2,
                              embedding_size=16)
    ids, mask, pos = _inputs()
    params = nn.meta.unbox(PretrainingModel(cfg).init(jax.random.key(0), ids, mask, pos)["params"])
    assert set(params["embeddings"]) == {"word_embeddings", "position_embeddings", "token_type_embeddings",
                                         "LayerNorm"}
    assert params["embeddings"]["LayerNorm"]["scale"].shape == (16,)  # LayerNorm over E, then project
    assert set(params["encoder"]) == {"embeddings_project", "layer_0"}


@pytest.mark.parametrize("bad", [dict(attention_type="relative"), dict(pos_att_type="c2p|p2p"),
                                 dict(norm_rel_ebd="rms"), dict(generator_ratio=0.0)])
def test_config_rejects(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(DA, **bad)
